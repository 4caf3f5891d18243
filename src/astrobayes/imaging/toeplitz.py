"""The normal operator ``Phi^H W Phi`` applied exactly as a convolution (Toeplitz embedding).

For the NUFFT operator ``(Phi x)_m = sqrt(w_m) sum_k x_k exp(-i k . p_m)`` (``p_m`` the
uv point in radians per pixel, ``k`` the integer pixel position), the normal operator is

    (Phi^H Phi x)_k = Re sum_m w_m exp(i k . p_m) sum_k' x_k' exp(-i k' . p_m)
                    = sum_k' kappa(k - k') x_k',
    kappa(d) = Re sum_m w_m exp(i d . p_m),     d in [-(H-1), H-1] x [-(W-1), W-1],

a linear convolution of the image with the point-spread function ``kappa`` (real and
even). Embedding the ``(2H-1) x (2W-1)`` Toeplitz kernel in a ``2H x 2W`` circulant and
zero-padding the image makes it a circular convolution, applied with two real FFTs of
the padded image: ``Phi^H Phi x = crop(IFFT(FFT(kappa) * FFT(pad(x))))``. The kernel
(one type-1 NUFFT of the weights onto the ``2H x 2W`` grid) is computed once per
uv-coverage; each application then costs two FFTs of ``4 H W`` points instead of two
NUFFTs of ``M`` visibilities. The result is exact: it differs from
``adjoint(forward(x))`` only by the NUFFTs' own tolerance (and is closer to the exact
operator than that when the kernel is computed with a tighter ``eps``).

For the masked FFT ``y = FFT2(x, norm="ortho")[mask]``, ``Phi^H Phi = F^H diag(m_s) F``
is already a circular convolution, with ``m_s(k) = (m(k) + m(-k)) / 2`` (the real part
symmetrises the mask): no padding is needed.

:class:`NormalOperator` stores the real spectrum of the (circular) kernel and is an
equinox Module, so a network can take it as an input (the measurement operator is data,
not weights), and a batch of them (:func:`stack_normal_operators`) goes through
``jax.vmap``.

References:
    Fessler, Lee, Olafsson & Noll 2005, IEEE Trans. Signal Process. 53, 3393, "Toeplitz-based
    iterative image reconstruction for MRI with correction for magnetic field
    inhomogeneity" (the Toeplitz embedding of ``A^H W A`` for a NUFFT).
    Mars, Betcke & McEwen 2024, "Learned interferometric imaging for the SPIDER instrument"
    / "Learned radio interferometric imaging for varying visibility coverage"
    (arXiv:2405.08958): the normal operator inside an unrolled network.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._checks import check_finite
from astrobayes.imaging.nufft import NufftOperator, nufft_operator_from_pixel_phases
from astrobayes.imaging.operators import FourierMaskOperator

__all__ = [
    "NormalOperator",
    "mask_normal_operator",
    "normal_operator",
    "stack_normal_operators",
    "toeplitz_normal_operator",
    "toeplitz_normal_operator_from_points",
]


class NormalOperator(eqx.Module):
    """``Phi^H W Phi`` as a (zero-padded) circular convolution with a real, even kernel.

    Build it with :func:`toeplitz_normal_operator` (NUFFT, padded to ``2H x 2W``) or
    :func:`mask_normal_operator` (masked FFT, no padding).

    Attributes:
        spectrum: Real FFT (``rfft2`` layout, real because the kernel is even) of the
            circular kernel on the ``padded_shape`` grid, shape
            ``(padded_height, padded_width // 2 + 1)``.
        shape: Image shape ``(height, width)``.
        padded_shape: Grid of the circular convolution: ``(2H, 2W)`` for a NUFFT,
            ``(H, W)`` for a mask.

    """

    spectrum: Float[Array, "padded_height half_width"]
    shape: tuple[int, int] = eqx.field(static=True)
    padded_shape: tuple[int, int] = eqx.field(static=True)

    @property
    def image_shape(self) -> tuple[int, int]:
        """Shape ``(height, width)`` of the image domain."""
        return self.shape

    def __call__(self, image: Float[Array, "height width"]) -> Float[Array, "height width"]:
        """Apply ``Phi^H W Phi`` to one image (same as :meth:`apply`)."""
        return self.apply(image)

    def apply(self, image: Float[Array, "height width"]) -> Float[Array, "height width"]:
        """Apply ``Phi^H W Phi`` to one image: FFT, multiply, inverse FFT, crop.

        Args:
            image: Real image ``(height, width)``. For a batch, ``jax.vmap`` over images
                (and over a stacked operator, :func:`stack_normal_operators`).

        Returns:
            ``Phi^H W Phi image``, same shape and (real) dtype as the spectrum's.
        """
        height, width = self.shape
        if image.shape != (height, width):
            raise ValueError(f"image must have shape {self.shape}; got {image.shape}")
        dtype = self.spectrum.dtype
        spectrum = jnp.fft.rfft2(image.astype(dtype), s=self.padded_shape)
        out = jnp.fft.irfft2(spectrum * self.spectrum, s=self.padded_shape)
        return out[:height, :width].astype(dtype)

    def kernel(self) -> Float[Array, "padded_height padded_width"]:
        """The circular kernel ``kappa`` in NumPy's FFT layout (``kappa(0)`` at ``[0, 0]``)."""
        return jnp.fft.irfft2(self.spectrum, s=self.padded_shape)

    def psf(self) -> Float[Array, "height width"]:
        """Point-spread function: ``Phi^H W Phi`` of a unit impulse at ``[H // 2, W // 2]``."""
        height, width = self.shape
        impulse = jnp.zeros(self.shape, self.spectrum.dtype).at[height // 2, width // 2].set(1.0)
        return self.apply(impulse)

    def psf_peak(self) -> Float[Array, ""]:
        """``kappa(0) = sum_m w_m`` for a NUFFT (``M / (H W)`` for a mask): the PSF's peak.

        Divide ``Phi^H y`` by it for the usual peak-normalised dirty image.
        """
        return self.kernel()[0, 0]

    def norm_bound(self) -> Float[Array, ""]:
        """An upper bound on ``||Phi^H W Phi||_2 = ||sqrt(W) Phi||_2^2``: ``max |spectrum|``.

        Exact for a mask (a circulant's norm is its largest eigenvalue). For the Toeplitz
        embedding the operator is a compression of the ``2H x 2W`` circulant, whose
        spectral radius therefore bounds its norm, but loosely (the circulant's spectrum
        has negative lobes the compression does not see): for a tight value use
        ``operator_norm(normal, normal.image_shape).norm ** 2`` (power iteration, cheap
        with this operator).
        """
        return jnp.max(jnp.abs(self.spectrum))


def _check_weights(weights, count: int, name: str = "weights") -> np.ndarray:
    """Non-negative finite ``(count,)`` weights as float64 (shared with ``uv_coverage``)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (count,):
        raise ValueError(f"{name} must have shape ({count},); got {w.shape}")
    check_finite(w, name)
    if np.any(w < 0):
        raise ValueError(f"{name} must be non-negative")
    return w


def _default_eps(dtype) -> float:
    return 1e-12 if jnp.dtype(dtype) == jnp.float64 else 1e-6


def _toeplitz_spectrum(rows, cols, weights, shape, eps, num_threads):
    """Real spectrum of the 2H x 2W circulant embedding ``kappa(d) = Re sum w e^{i d.p}``."""
    from jax_finufft import nufft1
    from jax_finufft.options import Opts

    height, width = shape
    real_dtype = rows.dtype
    complex_dtype = jnp.result_type(real_dtype, jnp.complex64)
    opts = Opts(nthreads=int(num_threads)) if num_threads > 0 else None
    # Modes d in [-H, H-1] x [-W, W-1] (finufft's centred order), then FFT layout.
    centred = nufft1(
        (2 * height, 2 * width),
        weights.astype(complex_dtype),
        rows,
        cols,
        iflag=1,
        eps=eps,
        opts=opts,
    )
    kernel = jnp.fft.ifftshift(jnp.real(centred))
    # kappa is even (kappa(-d) = kappa(d)), so its spectrum is real; the imaginary part
    # is rounding only.
    return jnp.fft.rfft2(kernel).real.astype(real_dtype)


def toeplitz_normal_operator_from_points(
    points: Float[Array, "num_visibilities 2"],
    *,
    image_shape: tuple[int, int],
    weights: Float[Array, " num_visibilities"] | None = None,
    eps: float | None = None,
    num_threads: int = 1,
) -> NormalOperator:
    """Toeplitz normal operator of a NUFFT from uv points in radians per pixel.

    ``points`` are ``(u, v)`` phases per pixel, ``2 pi (u, v) * pixel_size``, in
    ``[-pi, pi]`` (the convention of
    :func:`~astrobayes.imaging.nufft.nufft_operator_from_pixel_phases`); the operator is
    ``Phi^H W Phi`` for ``Phi`` that NUFFT with unit weights.

    Args:
        points: ``(M, 2)`` array of ``(u, v)`` phases per pixel.
        image_shape: ``(height, width)``.
        weights: Optional non-negative weights ``w_m`` (default all ones).
        eps: finufft tolerance for the kernel (default ``1e-12`` in float64, ``1e-6``
            in float32).
        num_threads: finufft threads (0: finufft's default, all cores).

    Returns:
        The :class:`NormalOperator` (padded to ``2H x 2W``).

    Raises:
        ValueError: On a wrong shape, non-finite values, points outside ``[-pi, pi]``,
            negative weights or a bad ``eps`` / ``num_threads``.

    Example:
        >>> import numpy as np
        >>> pts = np.array([[0.3, -1.0], [2.0, 0.5]])
        >>> normal = toeplitz_normal_operator_from_points(pts, image_shape=(8, 8))
        >>> normal.padded_shape, round(float(normal.psf_peak()), 4)
        ((16, 16), 2.0)

    """
    # The NUFFT operator validates the points, weights and shape; building it computes
    # nothing.
    operator = nufft_operator_from_pixel_phases(
        points, image_shape=image_shape, weights=weights, num_threads=num_threads
    )
    return toeplitz_normal_operator(operator, eps=eps)


def _build_toeplitz(rows, cols, weights, shape, eps, num_threads) -> NormalOperator:
    if eps is None:
        eps = _default_eps(rows.dtype)
    if not (isinstance(eps, int | float) and 0 < eps < 1):
        raise ValueError(f"eps must be a number in (0, 1); got {eps!r}")
    if isinstance(num_threads, bool) or int(num_threads) != num_threads or num_threads < 0:
        raise ValueError(f"num_threads must be a non-negative integer; got {num_threads!r}")
    spectrum = _toeplitz_spectrum(rows, cols, weights, shape, float(eps), int(num_threads))
    return NormalOperator(spectrum=spectrum, shape=shape, padded_shape=(2 * shape[0], 2 * shape[1]))


def toeplitz_normal_operator(
    operator: NufftOperator,
    *,
    weights: Float[Array, " num_visibilities"] | None = None,
    eps: float | None = None,
    num_threads: int | None = None,
) -> NormalOperator:
    """``Phi^H W Phi`` of a :class:`~astrobayes.imaging.nufft.NufftOperator`, by Toeplitz embedding.

    The operator's own weights (``sqrt_weights``) are included, so with
    ``weights=None`` this is ``operator.adjoint(operator(x))``; ``weights`` multiply
    them (e.g. a filter for a filtered data-fidelity gradient).

    Args:
        operator: The NUFFT operator.
        weights: Optional extra non-negative weights ``W`` (one per visibility).
        eps: finufft tolerance for the kernel (default ``1e-12`` in float64, ``1e-6``
            in float32; independent of the operator's ``eps``).
        num_threads: finufft threads for the kernel (default: the operator's).

    Returns:
        The :class:`NormalOperator` (padded to ``2H x 2W``).

    Raises:
        TypeError: If ``operator`` is not a ``NufftOperator``.
        ValueError: On bad weights, ``eps`` or ``num_threads``.

    Example:
        >>> import numpy as np
        >>> from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
        >>> op = nufft_operator_from_pixel_phases(np.array([[0.3, -1.0]]), image_shape=(8, 8))
        >>> normal = toeplitz_normal_operator(op)
        >>> import jax.numpy as jnp
        >>> x = jnp.zeros((8, 8)).at[2, 3].set(1.0)
        >>> bool(np.allclose(normal(x), op.adjoint(op(x)), atol=1e-5))
        True

    """
    if not isinstance(operator, NufftOperator):
        raise TypeError(f"operator must be a NufftOperator; got {type(operator).__name__}")
    combined = operator.sqrt_weights**2
    if weights is not None:
        w = _check_weights(weights, operator.num_visibilities)
        combined = combined * jnp.asarray(w, combined.dtype)
    if num_threads is None:
        num_threads = operator.num_threads
    return _build_toeplitz(
        operator.points_rows,
        operator.points_cols,
        combined,
        operator.image_shape,
        eps,
        num_threads,
    )


def mask_normal_operator(operator: FourierMaskOperator) -> NormalOperator:
    """``Phi^H Phi`` of a masked FFT: a circular convolution, diagonal in Fourier space.

    ``Phi^H Phi x = Re IFFT(m * FFT(x)) = IFFT(m_s * FFT(x))`` with the symmetrised mask
    ``m_s(k) = (m(k) + m(-k)) / 2``.

    Args:
        operator: The :class:`~astrobayes.imaging.operators.FourierMaskOperator`.

    Returns:
        The :class:`NormalOperator` (no padding).

    Raises:
        TypeError: If ``operator`` is not a ``FourierMaskOperator``.

    Example:
        >>> import numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> op = fourier_mask_operator(np.eye(8, dtype=bool))
        >>> x = np.arange(64.0).reshape(8, 8)
        >>> bool(np.allclose(mask_normal_operator(op)(x), op.adjoint(op(x)), atol=1e-4))
        True

    """
    if not isinstance(operator, FourierMaskOperator):
        raise TypeError(f"operator must be a FourierMaskOperator; got {type(operator).__name__}")
    height, width = operator.image_shape
    mask = operator.mask().astype(jnp.zeros(()).dtype)
    mirrored = jnp.roll(mask[::-1, ::-1], shift=(1, 1), axis=(0, 1))
    symmetric = 0.5 * (mask + mirrored)
    return NormalOperator(
        spectrum=symmetric[:, : width // 2 + 1], shape=(height, width), padded_shape=(height, width)
    )


def normal_operator(operator, **kwargs) -> NormalOperator:
    """The :class:`NormalOperator` of a NUFFT (Toeplitz) or masked-FFT operator.

    Args:
        operator: A :class:`~astrobayes.imaging.nufft.NufftOperator` or
            :class:`~astrobayes.imaging.operators.FourierMaskOperator`.
        **kwargs: Passed to :func:`toeplitz_normal_operator` (NUFFT only).

    Returns:
        The :class:`NormalOperator`.

    Raises:
        TypeError: For another operator type, or keyword arguments with a mask.

    Example:
        >>> import numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> normal_operator(fourier_mask_operator(np.eye(4, dtype=bool))).padded_shape
        (4, 4)

    """
    if isinstance(operator, NufftOperator):
        return toeplitz_normal_operator(operator, **kwargs)
    if isinstance(operator, FourierMaskOperator):
        if kwargs:
            raise TypeError(f"a FourierMaskOperator takes no options; got {sorted(kwargs)}")
        return mask_normal_operator(operator)
    raise TypeError(
        f"operator must be a NufftOperator or FourierMaskOperator; got {type(operator).__name__}"
    )


def stack_normal_operators(operators: Sequence[NormalOperator]) -> NormalOperator:
    """Stack operators of one image and padded shape into a batch for ``jax.vmap``.

    Args:
        operators: Non-empty sequence of :class:`NormalOperator` with equal shapes.

    Returns:
        One :class:`NormalOperator` whose ``spectrum`` has a leading batch axis; use
        it as ``jax.vmap(lambda op, x: op(x))(stacked, images)``.

    Raises:
        ValueError: If the sequence is empty or the shapes differ.

    Example:
        >>> import numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> ops = [mask_normal_operator(fourier_mask_operator(np.eye(4, dtype=bool)))] * 3
        >>> stack_normal_operators(ops).spectrum.shape
        (3, 4, 3)

    """
    operators = list(operators)
    if not operators:
        raise ValueError("operators must be a non-empty sequence")
    first = operators[0]
    for op in operators:
        if not isinstance(op, NormalOperator):
            raise TypeError(f"operators must be NormalOperator; got {type(op).__name__}")
        if (op.shape, op.padded_shape) != (first.shape, first.padded_shape):
            raise ValueError(
                f"all operators need one shape; got {op.shape}/{op.padded_shape} and "
                f"{first.shape}/{first.padded_shape}"
            )
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *operators)
