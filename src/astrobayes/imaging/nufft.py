"""The NUFFT measurement operator: visibilities at arbitrary ``(u, v)``, and uv weights.

:class:`NufftOperator` maps a real image to visibilities at ``(u, v)`` in wavelengths
for an image with a given pixel size, through jax-finufft; :func:`natural_weights` and
:func:`uniform_weights` give the usual visibility weights.

References:
    Barnett, Magland & af Klinteberg 2019, "A parallel non-uniform fast Fourier
    transform library based on an 'exponential of semicircle' kernel"
    (arXiv:1808.06736).
    Briggs 1995, PhD thesis, "High fidelity deconvolution of moderately resolved
    sources" (natural and uniform weighting).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from astrobayes._checks import check_finite
from astrobayes.imaging.operators import ARCSEC_TO_RADIANS, MeasurementOperator

__all__ = [
    "NufftOperator",
    "natural_weights",
    "nufft_operator",
    "nufft_operator_from_pixel_phases",
    "uniform_weights",
]


class NufftOperator(MeasurementOperator):
    """Visibilities ``V(u, v) = sum_pix I(l, m) exp(-2 pi i (u l + v m))`` via finufft.

    Pixel ``[j, k]`` sits at ``m = (j - height // 2) * pixel_size`` and
    ``l = (k - width // 2) * pixel_size`` (radians), so the phase centre is the pixel
    ``[height // 2, width // 2]``. Optional weights ``w`` make the operator
    ``sqrt(w) * V``, i.e. the whitened operator of a weighted least-squares fit.

    Build it with :func:`nufft_operator`.

    Attributes:
        points_rows: ``2 pi v * pixel_size`` (radians per pixel, in ``[-pi, pi]``).
        points_cols: ``2 pi u * pixel_size``.
        sqrt_weights: Square roots of the visibility weights.
        shape: Image shape ``(height, width)``.
        eps: finufft relative tolerance.
        num_threads: finufft threads (0: finufft's default, all cores).

    """

    points_rows: Float[Array, " num_visibilities"]
    points_cols: Float[Array, " num_visibilities"]
    sqrt_weights: Float[Array, " num_visibilities"]
    shape: tuple[int, int] = eqx.field(static=True)
    eps: float = eqx.field(static=True, default=1e-6)
    num_threads: int = eqx.field(static=True, default=0)

    def _options(self):
        """Options for finufft: the thread count when one is set."""
        if self.num_threads <= 0:
            return None
        from jax_finufft.options import Opts

        return Opts(nthreads=self.num_threads)

    @property
    def image_shape(self) -> tuple[int, int]:
        """Shape ``(height, width)`` of the image domain."""
        return self.shape

    @property
    def supports_vmap(self) -> bool:
        """``False``: jax-finufft 1.3's batching rule fails under ``vmap`` on jax 0.10.

        (It tests for the removed ``batching.not_mapped``.)
        """
        return False

    @property
    def num_visibilities(self) -> int:
        """Number of visibilities."""
        return int(self.points_rows.shape[0])

    def __call__(self, image: Float[Array, "height width"]) -> Complex[Array, " num_visibilities"]:
        """Type-2 NUFFT (uniform image to non-uniform visibilities)."""
        from jax_finufft import nufft2

        complex_dtype = jnp.result_type(image, jnp.complex64)
        values = nufft2(
            image.astype(complex_dtype),
            self.points_rows.astype(image.dtype),
            self.points_cols.astype(image.dtype),
            iflag=-1,
            eps=self.eps,
            opts=self._options(),
        )
        return self.sqrt_weights * values

    def adjoint(
        self, visibilities: Complex[Array, " num_visibilities"]
    ) -> Float[Array, "height width"]:
        """Type-1 NUFFT with the opposite sign; real part."""
        from jax_finufft import nufft1

        # one precision for the points and the source: with jax_enable_x64 on, the
        # float64 weights made complex64 visibilities complex128 beside float32 points
        # and jax_finufft refused the mix
        complex_dtype = jnp.promote_types(jnp.asarray(visibilities).dtype, jnp.complex64)
        real_dtype = jnp.finfo(complex_dtype).dtype
        values = nufft1(
            self.shape,
            (self.sqrt_weights * visibilities).astype(complex_dtype),
            self.points_rows.astype(real_dtype),
            self.points_cols.astype(real_dtype),
            iflag=1,
            eps=self.eps,
            opts=self._options(),
        )
        return jnp.real(values)


def nufft_operator(
    uv_wavelengths: Float[Array, "num_visibilities 2"],
    *,
    image_shape: tuple[int, int],
    pixel_size_arcsec: float | None = None,
    field_of_view_arcsec: float | None = None,
    weights: Float[Array, " num_visibilities"] | None = None,
    eps: float = 1e-6,
    num_threads: int | None = None,
) -> NufftOperator:
    """Build a NUFFT measurement operator from ``(u, v)`` in wavelengths.

    Give either the pixel size or the field of view (``width * pixel_size``), in
    arcseconds. Every baseline must satisfy ``|u|, |v| <= 1 / (2 * pixel_size)``
    (Nyquist): longer ones would alias and are refused.

    Args:
        uv_wavelengths: Array ``(M, 2)`` of ``(u, v)`` in wavelengths.
        image_shape: ``(height, width)`` in pixels.
        pixel_size_arcsec: Pixel size in arcseconds.
        field_of_view_arcsec: Field of view along the width, in arcseconds.
        weights: Optional non-negative visibility weights (e.g. from
            :func:`natural_weights` or :func:`uniform_weights`).
        eps: finufft relative tolerance.
        num_threads: finufft threads; ``None`` picks 1 for small problems (at most
            128x128 pixels and 20,000 visibilities), where threads only add overhead
            and, on a busy machine, spin-waiting OpenMP threads made a NUFFT MCMC test
            8-18x slower; otherwise finufft's default (all cores). 0 forces that
            default.

    Returns:
        The :class:`NufftOperator`.

    Raises:
        ValueError: If the inputs have wrong shapes, are not finite, if neither or both
            of pixel size and field of view are given, a baseline exceeds Nyquist, or
            ``num_threads`` is negative.

    Example:
        >>> import numpy as np
        >>> uv = np.array([[10.0, -5.0], [100.0, 40.0]])
        >>> op = nufft_operator(uv, image_shape=(32, 32), pixel_size_arcsec=100.0)
        >>> op.num_visibilities
        2

    """
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv_wavelengths must have shape (M, 2); got {uv.shape}")
    check_finite(uv, "uv_wavelengths")
    shape = _check_image_shape(image_shape)
    if (pixel_size_arcsec is None) == (field_of_view_arcsec is None):
        raise ValueError("give exactly one of pixel_size_arcsec and field_of_view_arcsec")
    if pixel_size_arcsec is None:
        pixel_size_arcsec = float(field_of_view_arcsec) / shape[1]
    pixel_size_arcsec = float(pixel_size_arcsec)
    if not (np.isfinite(pixel_size_arcsec) and pixel_size_arcsec > 0):
        raise ValueError(f"pixel size must be positive and finite; got {pixel_size_arcsec}")
    pixel = pixel_size_arcsec * ARCSEC_TO_RADIANS
    points = 2.0 * np.pi * uv * pixel
    worst = float(np.max(np.abs(points))) if points.size else 0.0
    if worst > np.pi * (1 + 1e-6):
        limit = 1.0 / (2.0 * pixel)
        raise ValueError(
            f"a baseline of {worst / (2 * np.pi * pixel):.4g} wavelengths exceeds the Nyquist "
            f"limit 1/(2 pixel) = {limit:.4g} wavelengths; use a smaller pixel size"
        )
    if weights is None:
        sqrt_w = np.ones(uv.shape[0])
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (uv.shape[0],):
            raise ValueError(f"weights must have shape ({uv.shape[0]},); got {weights.shape}")
        check_finite(weights, "weights")
        if np.any(weights < 0):
            raise ValueError("weights must be non-negative")
        sqrt_w = np.sqrt(weights)
    if num_threads is None:
        small = shape[0] * shape[1] <= 128 * 128 and points.shape[0] <= 20_000
        num_threads = 1 if small else 0
    elif int(num_threads) != num_threads or num_threads < 0:
        raise ValueError(f"num_threads must be a non-negative integer or None; got {num_threads!r}")
    dtype = jnp.zeros(()).dtype
    return NufftOperator(
        points_rows=jnp.asarray(points[:, 1], dtype=dtype),
        points_cols=jnp.asarray(points[:, 0], dtype=dtype),
        sqrt_weights=jnp.asarray(sqrt_w, dtype=dtype),
        shape=shape,
        eps=float(eps),
        num_threads=int(num_threads),
    )


def nufft_operator_from_pixel_phases(
    points: Float[Array, "num_visibilities 2"],
    *,
    image_shape: tuple[int, int],
    weights: Float[Array, " num_visibilities"] | None = None,
    eps: float = 1e-6,
    num_threads: int | None = None,
) -> NufftOperator:
    """NUFFT operator from ``(u, v)`` already given as phases per pixel, in ``[-pi, pi]``.

    ``points = 2 pi (u, v) * pixel_size``. This is the convention of files whose
    coordinates were rescaled per axis to ``[-pi, pi]`` (e.g. the QuantifAI MeerKAT uv
    tracks); prefer :func:`nufft_operator` with physical units when they are known.

    Args:
        points: Array ``(M, 2)`` of ``(u, v)`` phases per pixel.
        image_shape: ``(height, width)``.
        weights: Optional non-negative visibility weights.
        eps: finufft tolerance.
        num_threads: finufft threads (see :func:`nufft_operator`).

    Returns:
        The :class:`NufftOperator`.

    Raises:
        ValueError: If the points are outside ``[-pi, pi]`` or not finite.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (M, 2); got {points.shape}")
    check_finite(points, "points")
    if np.max(np.abs(points)) > np.pi * (1 + 1e-6):
        raise ValueError("points must lie in [-pi, pi] (phases per pixel)")
    pixel_arcsec = 1.0
    uv = points / (2 * np.pi * pixel_arcsec * ARCSEC_TO_RADIANS)
    return nufft_operator(
        uv,
        image_shape=image_shape,
        pixel_size_arcsec=pixel_arcsec,
        weights=weights,
        eps=eps,
        num_threads=num_threads,
    )


def natural_weights(
    visibility_sigma: Float[Array, " num_visibilities"],
) -> Float[Array, " num_visibilities"]:
    """Natural weights ``w_i = 1 / sigma_i^2`` (inverse noise variance).

    Args:
        visibility_sigma: Per-visibility noise standard deviations (positive).

    Returns:
        The weights, normalised to mean one.

    Raises:
        ValueError: If a sigma is not positive and finite.

    """
    sigma = np.asarray(visibility_sigma, dtype=np.float64)
    check_finite(sigma, "visibility_sigma")
    if np.any(sigma <= 0):
        raise ValueError("visibility_sigma must be positive")
    weights = 1.0 / sigma**2
    return jnp.asarray(weights / weights.mean())


def uniform_weights(
    uv_wavelengths: Float[Array, "num_visibilities 2"],
    *,
    image_shape: tuple[int, int],
    pixel_size_arcsec: float,
) -> Float[Array, " num_visibilities"]:
    """Uniform weights: inverse number of visibilities in each uv cell (Briggs 1995).

    The uv cells are those of the image's discrete Fourier grid, of size
    ``1 / (N * pixel_size)`` wavelengths.

    Args:
        uv_wavelengths: Array ``(M, 2)`` of ``(u, v)`` in wavelengths.
        image_shape: ``(height, width)`` in pixels.
        pixel_size_arcsec: Pixel size in arcseconds.

    Returns:
        Weights ``1 / n_cell``, normalised to mean one.

    Raises:
        ValueError: On bad shapes or non-finite input.

    """
    uv = np.asarray(uv_wavelengths, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv_wavelengths must have shape (M, 2); got {uv.shape}")
    check_finite(uv, "uv_wavelengths")
    height, width = _check_image_shape(image_shape)
    pixel = float(pixel_size_arcsec) * ARCSEC_TO_RADIANS
    cell_u = np.round(uv[:, 0] * width * pixel).astype(np.int64)
    cell_v = np.round(uv[:, 1] * height * pixel).astype(np.int64)
    _, inverse, counts = np.unique(
        np.stack([cell_u, cell_v], axis=1), axis=0, return_inverse=True, return_counts=True
    )
    weights = 1.0 / counts[inverse.reshape(-1)]
    return jnp.asarray(weights / weights.mean())


def _check_image_shape(image_shape) -> tuple[int, int]:
    try:
        shape = tuple(int(n) for n in image_shape)
    except TypeError:
        raise ValueError(f"image_shape must be (height, width); got {image_shape!r}") from None
    if len(shape) != 2 or min(shape) < 2:
        raise ValueError(f"image_shape must be two integers >= 2; got {image_shape!r}")
    return shape
