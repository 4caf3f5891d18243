import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
from astrobayes.imaging.operators import fourier_mask_operator
from astrobayes.imaging.toeplitz import (
    NormalOperator,
    mask_normal_operator,
    normal_operator,
    stack_normal_operators,
    toeplitz_normal_operator,
    toeplitz_normal_operator_from_points,
)

pytestmark = pytest.mark.usefixtures("global_x64")


def _explicit_normal(points, weights, shape):
    """Dense ``Re(A^H W A)`` of the NUFFT with pixel k at ``k - N // 2`` (float64)."""
    height, width = shape
    rows, cols = np.meshgrid(
        np.arange(height) - height // 2, np.arange(width) - width // 2, indexing="ij"
    )
    phase = np.outer(points[:, 1], rows.ravel()) + np.outer(points[:, 0], cols.ravel())
    matrix = np.exp(-1j * phase)
    return np.real(matrix.conj().T @ (weights[:, None] * matrix))


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def test_toeplitz_equals_explicit_normal_operator():
    shape = (9, 12)
    rng = np.random.default_rng(1)
    points = rng.uniform(-np.pi, np.pi, size=(60, 2))
    weights = rng.uniform(0.2, 2.0, size=60)
    extra = rng.uniform(0.0, 3.0, size=60)
    op = nufft_operator_from_pixel_phases(points, image_shape=shape, weights=weights, eps=1e-13)
    dense = _explicit_normal(points, weights, shape)
    dense_extra = _explicit_normal(points, weights * extra, shape)
    x = rng.normal(size=shape)
    exact = (dense @ x.ravel()).reshape(shape)
    normal = toeplitz_normal_operator(op)
    assert normal.padded_shape == (2 * shape[0], 2 * shape[1])
    assert _rel(normal(jnp.asarray(x)), exact) < 1e-10
    # ... and equal to adjoint(forward(x)) of the operator itself, to its tolerance
    assert _rel(normal(jnp.asarray(x)), op.adjoint(op(jnp.asarray(x)))) < 1e-10
    filtered = toeplitz_normal_operator(op, weights=extra)
    assert _rel(filtered(jnp.asarray(x)), (dense_extra @ x.ravel()).reshape(shape)) < 1e-10
    # from raw points, the same operator
    raw = toeplitz_normal_operator_from_points(points, image_shape=shape, weights=weights)
    np.testing.assert_allclose(raw.spectrum, normal.spectrum, rtol=0, atol=1e-9)
    # PSF peak = sum of weights; the PSF is the column of the centre pixel
    np.testing.assert_allclose(float(normal.psf_peak()), weights.sum(), rtol=1e-10)
    centre = (shape[0] // 2) * shape[1] + shape[1] // 2
    np.testing.assert_allclose(normal.psf().ravel(), dense[:, centre], rtol=0, atol=1e-9)
    # norm bound is an upper bound on the top eigenvalue
    top = np.linalg.eigvalsh(dense).max()
    assert float(normal.norm_bound()) >= top * (1 - 1e-10)


def test_toeplitz_is_not_a_circular_convolution():
    """Negative control: the unpadded circulant (no embedding) is wrong for a NUFFT."""
    rng = np.random.default_rng(2)
    shape = (9, 12)  # the sizes of the test above: compiled kernels are reused
    points = rng.uniform(-np.pi, np.pi, size=(60, 2))
    normal = toeplitz_normal_operator_from_points(points, image_shape=shape)
    wrong = NormalOperator(
        spectrum=jnp.fft.rfft2(normal.kernel()[::2, ::2]).real,
        shape=shape,
        padded_shape=shape,
    )
    x = rng.normal(size=shape)
    exact = (_explicit_normal(points, np.ones(60), shape) @ x.ravel()).reshape(shape)
    assert _rel(normal(jnp.asarray(x)), exact) < 1e-10
    assert _rel(wrong(jnp.asarray(x)), exact) > 0.1


def test_mask_normal_operator_equals_explicit():
    rng = np.random.default_rng(3)
    shape = (10, 14)
    mask = rng.random(shape) < 0.3
    op = fourier_mask_operator(mask)
    normal = mask_normal_operator(op)
    assert normal.padded_shape == shape
    # explicit matrix Re(F^H S^T S F) with the unitary 2-d DFT F (NumPy layout)
    fourier = np.kron(
        np.fft.fft(np.eye(shape[0]), norm="ortho"), np.fft.fft(np.eye(shape[1]), norm="ortho")
    )
    sampled = fourier[mask.ravel()]
    dense = np.real(sampled.conj().T @ sampled)
    x = rng.normal(size=shape)
    assert _rel(normal(jnp.asarray(x)), (dense @ x.ravel()).reshape(shape)) < 1e-12
    np.testing.assert_allclose(float(normal.norm_bound()), op.norm() ** 2, rtol=1e-12)
    np.testing.assert_allclose(float(normal.psf_peak()), mask.sum() / mask.size, rtol=1e-12)
    assert normal_operator(op).padded_shape == shape


def test_vmap_and_jit_match_loop():
    rng = np.random.default_rng(4)
    shape = (9, 12)
    ops = [
        toeplitz_normal_operator_from_points(rng.uniform(-3, 3, size=(60, 2)), image_shape=shape)
        for _ in range(3)
    ]
    images = jnp.asarray(rng.normal(size=(3, *shape)))
    stacked = stack_normal_operators(ops)
    batched = jax.jit(jax.vmap(lambda op, x: op(x)))(stacked, images)
    loop = jnp.stack([op(x) for op, x in zip(ops, images, strict=True)])
    np.testing.assert_allclose(batched, loop, rtol=1e-12, atol=1e-12)


def test_bad_inputs():
    shape = (8, 8)
    good = np.array([[0.1, 0.2], [-0.3, 1.0]])
    with pytest.raises(ValueError, match="points must have shape"):
        toeplitz_normal_operator_from_points(np.zeros((3, 3)), image_shape=shape)
    with pytest.raises(ValueError, match=r"points must lie in \[-pi, pi\]"):
        toeplitz_normal_operator_from_points(np.array([[4.0, 0.0]]), image_shape=shape)
    with pytest.raises(ValueError, match="points must be finite"):
        toeplitz_normal_operator_from_points(np.array([[np.nan, 0.0]]), image_shape=shape)
    with pytest.raises(ValueError, match="weights must have shape"):
        toeplitz_normal_operator_from_points(good, image_shape=shape, weights=np.ones(3))
    with pytest.raises(ValueError, match="weights must be non-negative"):
        toeplitz_normal_operator_from_points(good, image_shape=shape, weights=np.array([1, -1]))
    with pytest.raises(ValueError, match="image_shape must be two integers"):
        toeplitz_normal_operator_from_points(good, image_shape=(8,))
    with pytest.raises(ValueError, match="eps must be"):
        toeplitz_normal_operator_from_points(good, image_shape=shape, eps=2.0)
    with pytest.raises(ValueError, match="num_threads"):
        toeplitz_normal_operator_from_points(good, image_shape=shape, num_threads=-1)
    mask_op = fourier_mask_operator(np.eye(8, dtype=bool))
    with pytest.raises(TypeError, match="must be a NufftOperator"):
        toeplitz_normal_operator(mask_op)
    nufft = nufft_operator_from_pixel_phases(good, image_shape=shape)
    with pytest.raises(TypeError, match="must be a FourierMaskOperator"):
        mask_normal_operator(nufft)
    with pytest.raises(TypeError, match="NufftOperator or FourierMaskOperator"):
        normal_operator(object())
    with pytest.raises(TypeError, match="takes no options"):
        normal_operator(mask_op, eps=1e-6)
    with pytest.raises(ValueError, match="weights must have shape"):
        toeplitz_normal_operator(nufft, weights=np.ones(5))
    normal = toeplitz_normal_operator(nufft)
    with pytest.raises(ValueError, match=r"image must have shape \(8, 8\)"):
        normal(jnp.zeros((8, 9)))
    with pytest.raises(ValueError, match="non-empty"):
        stack_normal_operators([])
    other = toeplitz_normal_operator_from_points(good, image_shape=(6, 8))
    with pytest.raises(ValueError, match="one shape"):
        stack_normal_operators([normal, other])
