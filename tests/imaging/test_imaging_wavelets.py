import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.wavelets import (
    WaveletTransform,
    prox_l1_orthonormal,
    soft_threshold,
    wavelet_transform,
)


@pytest.mark.parametrize(
    ("order", "levels", "size"), [(1, 3, 16), (2, 2, 16), (8, 1, 8), (8, 3, 16)]
)
def test_orthonormality(order, levels, size):
    n = size * size
    basis = np.eye(n, dtype=np.float32).reshape(n, size, size)
    matrix = np.asarray(wavelet_transform(basis, order=order, levels=levels)).reshape(n, n)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(n), atol=2e-6)
    back = np.asarray(
        wavelet_transform(matrix.reshape(n, size, size), order=order, levels=levels, inverse=True)
    )
    np.testing.assert_allclose(back.reshape(n, n), np.eye(n), atol=2e-6)


def test_matches_pywavelets_periodization():
    pywt = pytest.importorskip("pywt")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 64)).astype(np.float32)
    for order in (1, 4, 8):
        ours = np.asarray(wavelet_transform(x, order=order, levels=2))
        theirs, _ = pywt.coeffs_to_array(
            pywt.wavedec2(x.astype(np.float64), f"db{order}", mode="periodization", level=2)
        )
        np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_jit_equals_eager_and_batch():
    psi = WaveletTransform(order=3, levels=2)
    x = jax.random.normal(jax.random.key(0), (3, 16, 16))
    np.testing.assert_allclose(jax.jit(psi)(x), psi(x), atol=1e-6)
    np.testing.assert_allclose(psi(x)[1], psi(x[1]), atol=1e-6)


def test_prox_optimality_condition():
    """0 in (p - z)/t + d||Psi p||_1: Psi(z - p)/t is a subgradient of ||.||_1 at Psi p."""
    psi = WaveletTransform(order=4, levels=2)
    z = jax.random.normal(jax.random.key(1), (16, 16))
    threshold = 0.3
    p = prox_l1_orthonormal(z, threshold, psi)
    g = np.asarray(psi(z - p)) / threshold
    c = np.asarray(psi(p))
    active = np.abs(c) > 1e-6
    assert active.any()
    assert (~active).any()
    np.testing.assert_allclose(g[active], np.sign(c[active]), atol=1e-4)
    assert np.all(np.abs(g[~active]) <= 1 + 1e-4)

    # and it is a minimiser: random perturbations never decrease the objective
    def objective(u):
        return threshold * jnp.sum(jnp.abs(psi(u))) + 0.5 * jnp.sum((u - z) ** 2)

    base = objective(p)
    for k in range(5):
        d = 1e-2 * jax.random.normal(jax.random.key(10 + k), z.shape)
        assert objective(p + d) >= base - 1e-5


def test_soft_threshold():
    np.testing.assert_allclose(soft_threshold(jnp.array([-2.0, 0.5, 3.0]), 1.0), [-1.0, 0.0, 2.0])


def test_bad_wavelet_inputs():
    with pytest.raises(ValueError, match="order must be an integer in 1..8"):
        WaveletTransform(order=9, levels=1)
    with pytest.raises(ValueError, match="levels must be an integer"):
        WaveletTransform(order=2, levels=0)
    with pytest.raises(ValueError, match="divisible by 2\\^levels"):
        wavelet_transform(np.zeros((12, 16)), order=2, levels=3)
