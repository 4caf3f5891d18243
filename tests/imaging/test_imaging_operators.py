import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.nufft import (
    natural_weights,
    nufft_operator,
    nufft_operator_from_pixel_phases,
    uniform_weights,
)
from astrobayes.imaging.operator_norm import operator_norm
from astrobayes.imaging.operators import (
    ARCSEC_TO_RADIANS,
    add_complex_noise,
    fourier_mask_operator,
    noise_sigma_from_isnr,
)


def _random_mask(rng, shape=(16, 12), fraction=0.3):
    mask = rng.random(shape) < fraction
    mask[0, 0] = True
    return mask


def _adjoint_gap(op, rng):
    x = rng.normal(size=op.image_shape)
    y = rng.normal(size=op.num_visibilities) + 1j * rng.normal(size=op.num_visibilities)
    lhs = float(jnp.real(jnp.vdot(op(jnp.asarray(x, jnp.float32)), jnp.asarray(y, jnp.complex64))))
    rhs = float(jnp.sum(jnp.asarray(x, jnp.float32) * op.adjoint(jnp.asarray(y, jnp.complex64))))
    return lhs, rhs


def test_fourier_mask_adjoint_identity():
    rng = np.random.default_rng(0)
    op = fourier_mask_operator(_random_mask(rng))
    lhs, rhs = _adjoint_gap(op, rng)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def test_fourier_mask_forward_matches_numpy_fft():
    rng = np.random.default_rng(1)
    mask = _random_mask(rng)
    x = rng.normal(size=mask.shape)
    op = fourier_mask_operator(mask)
    np.testing.assert_allclose(op(jnp.asarray(x)), np.fft.fft2(x, norm="ortho")[mask], atol=1e-5)
    centred = fourier_mask_operator(np.fft.fftshift(mask), centred=True)
    np.testing.assert_array_equal(np.asarray(centred.mask()), mask)


@pytest.mark.parametrize("session", ["float32", "float64"])
def test_nufft_adjoint_identity_and_dense_dft(session, request):
    # "float64": under jax_enable_x64 the operator's weights are float64; complex64
    # visibilities met float32 points as complex128 in the adjoint and jax_finufft refused
    # the mix (found 2026-12-06)
    if session == "float64":
        request.getfixturevalue("global_x64")
    rng = np.random.default_rng(2)
    pixel = 40.0
    limit = 1 / (2 * pixel * ARCSEC_TO_RADIANS)
    uv = rng.uniform(-limit, limit, size=(30, 2))
    op = nufft_operator(uv, image_shape=(12, 16), pixel_size_arcsec=pixel, eps=1e-7)
    lhs, rhs = _adjoint_gap(op, rng)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)
    x = rng.normal(size=(12, 16))
    p = pixel * ARCSEC_TO_RADIANS
    m = (np.arange(12) - 6) * p
    ell = (np.arange(16) - 8) * p
    dense = np.array(
        [np.sum(x * np.exp(-2j * np.pi * (u * ell[None, :] + v * m[:, None]))) for u, v in uv]
    )
    np.testing.assert_allclose(
        op(jnp.asarray(x, jnp.float32)), dense, atol=1e-3 * np.abs(dense).max()
    )


def test_nufft_field_of_view_equals_pixel_size():
    uv = np.array([[100.0, 50.0]])
    a = nufft_operator(uv, image_shape=(8, 8), pixel_size_arcsec=10.0)
    b = nufft_operator(uv, image_shape=(8, 8), field_of_view_arcsec=80.0)
    np.testing.assert_allclose(a.points_cols, b.points_cols)


def test_nufft_threads_do_not_change_the_result():
    rng = np.random.default_rng(3)
    uv = rng.uniform(-500, 500, size=(30, 2))
    single = nufft_operator(uv, image_shape=(8, 8), pixel_size_arcsec=100.0)
    assert single.num_threads == 1  # small problem: one thread by default
    default = nufft_operator(uv, image_shape=(8, 8), pixel_size_arcsec=100.0, num_threads=0)
    assert default.num_threads == 0
    x = jnp.asarray(rng.normal(size=(8, 8)), jnp.float32)
    np.testing.assert_allclose(single(x), default(x), rtol=1e-5, atol=1e-5)
    y = single(x)
    np.testing.assert_allclose(single.adjoint(y), default.adjoint(y), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="num_threads must be a non-negative integer"):
        nufft_operator(uv, image_shape=(8, 8), pixel_size_arcsec=100.0, num_threads=-1)


def test_power_iteration_matches_dense_svd():
    rng = np.random.default_rng(3)
    op = fourier_mask_operator(_random_mask(rng, shape=(8, 8)))
    basis = np.eye(64).reshape(64, 8, 8)
    dense = np.stack([np.asarray(op(jnp.asarray(b, jnp.float32))) for b in basis], axis=1)
    real_dense = np.concatenate([dense.real, dense.imag], axis=0)
    top = np.linalg.svd(real_dense, compute_uv=False)[0]
    result = operator_norm(op.normal, (8, 8), tolerance=1e-7, num_iterations=2000)
    np.testing.assert_allclose(result.norm, top, rtol=1e-3)
    np.testing.assert_allclose(op.norm(), top, rtol=1e-5)


def test_power_iteration_nufft_against_svd():
    rng = np.random.default_rng(4)
    uv = rng.uniform(-2000, 2000, size=(40, 2))
    op = nufft_operator(uv, image_shape=(8, 8), pixel_size_arcsec=20.0)
    basis = np.eye(64).reshape(64, 8, 8)
    dense = np.stack([np.asarray(op(jnp.asarray(b, jnp.float32))) for b in basis], axis=1)
    top = np.linalg.svd(np.concatenate([dense.real, dense.imag]), compute_uv=False)[0]
    result = operator_norm(op.normal, (8, 8), tolerance=1e-7, num_iterations=3000)
    np.testing.assert_allclose(result.norm, top, rtol=1e-3)


def test_noise_from_isnr_and_same_key_same_noise(key):
    y = jnp.ones(1000, jnp.complex64)
    sigma = noise_sigma_from_isnr(y, 20.0)
    np.testing.assert_allclose(sigma, 0.1)
    a = add_complex_noise(key, y, sigma)
    b = add_complex_noise(key, y, sigma)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.std(np.real(a - y)), sigma, rtol=0.1)
    np.testing.assert_allclose(np.std(np.imag(a - y)), sigma, rtol=0.1)


def test_weights():
    w = natural_weights(np.array([1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(w), [1.6, 0.4])
    uv = np.array([[0.0, 0.0], [0.1, 0.0], [5000.0, 0.0]])
    u = uniform_weights(uv, image_shape=(8, 8), pixel_size_arcsec=10.0)
    np.testing.assert_allclose(np.asarray(u) / np.asarray(u)[0], [1.0, 1.0, 2.0])


@pytest.mark.parametrize("isnr", [-5.0, 0.0, float("nan"), float("inf")])
def test_bad_isnr(isnr):
    with pytest.raises(ValueError, match="isnr_db must be a finite positive"):
        noise_sigma_from_isnr(jnp.ones(4, jnp.complex64), isnr)


def test_bad_inputs():
    with pytest.raises(ValueError, match="mask must be 2-d"):
        fourier_mask_operator(np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="selects no Fourier"):
        fourier_mask_operator(np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="Nyquist"):
        nufft_operator(np.array([[1e9, 0.0]]), image_shape=(8, 8), pixel_size_arcsec=1.0)
    with pytest.raises(ValueError, match="exactly one of"):
        nufft_operator(np.zeros((2, 2)), image_shape=(8, 8))
    with pytest.raises(ValueError, match="uv_wavelengths must be finite"):
        nufft_operator(np.array([[np.nan, 0.0]]), image_shape=(8, 8), pixel_size_arcsec=1.0)
    with pytest.raises(TypeError, match="PRNG key"):
        add_complex_noise(0, jnp.ones(3, jnp.complex64), 0.1)
    _ = jax  # keep import used


def test_pixel_phase_constructor_and_dirty_image():
    from astrobayes.imaging.operators import dirty_image

    rng = np.random.default_rng(5)
    points = rng.uniform(-np.pi, np.pi, size=(50, 2))
    op = nufft_operator_from_pixel_phases(points, image_shape=(16, 16))
    np.testing.assert_allclose(op.points_rows, points[:, 1], rtol=1e-5)
    np.testing.assert_allclose(op.points_cols, points[:, 0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[-pi, pi\]"):
        nufft_operator_from_pixel_phases(points * 2, image_shape=(16, 16))
    impulse = jnp.zeros((16, 16)).at[8, 8].set(1.0)
    np.testing.assert_allclose(float(jnp.max(dirty_image(op, op(impulse)))), 1.0, rtol=1e-4)


def test_operator_behaviour_replaces_type_dispatch():
    """What differs between operators is behaviour on the classes, not isinstance tests."""
    rng = np.random.default_rng(2)
    mask = _random_mask(rng, (8, 8))
    mask[0, 0] = True
    fourier = fourier_mask_operator(mask)
    assert fourier.supports_vmap
    assert fourier.is_shift_invariant
    assert fourier.measures_zero_frequency()
    assert fourier.norm_upper_bound() == fourier.norm() == 1.0
    uv = rng.uniform(-1, 1, size=(30, 2)) / (2 * 100.0 * ARCSEC_TO_RADIANS)
    nufft = nufft_operator(uv, image_shape=(8, 8), pixel_size_arcsec=100.0)
    assert not nufft.supports_vmap
    assert not nufft.is_shift_invariant
    estimate = nufft.norm()
    np.testing.assert_allclose(nufft.norm_upper_bound(), 1.001 * estimate, rtol=1e-6)
    with pytest.raises(TypeError, match="no exact constraint projection"):
        nufft.likelihood_constraint(jnp.zeros(30, jnp.complex64), 1.0)


def test_operator_norm_status_and_throw():
    from astrobayes._status import UnreliableResultError
    from astrobayes.imaging.operator_norm import OperatorNormStatus

    op = fourier_mask_operator(np.ones((8, 8), bool))
    assert operator_norm(op.normal, (8, 8)).status is OperatorNormStatus.CONVERGED
    short = operator_norm(lambda x: 2.0 * x + 0.1 * jnp.roll(x, 1), (8, 8), num_iterations=1)
    assert short.status.is_warning
    with pytest.raises(UnreliableResultError, match="NOT_FINITE") as error:
        operator_norm(lambda x: x * jnp.nan, (8, 8), throw=True)
    assert error.value.result.status is OperatorNormStatus.NOT_FINITE
