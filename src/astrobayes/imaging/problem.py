"""Imaging problems from settings: the ``[data]`` table, the demo sky and mask, whitening.

The ``astrobayes image`` TOML maps onto :class:`ImagingFileConfig` (tables ``[data]``,
``[prior]``, ``[uq]``, ``[map]``) with :func:`astrobayes._config.from_mapping`;
:meth:`ImagingFileConfig.imaging_config` gives the workflow's
:class:`~astrobayes.imaging.pipeline.ImagingConfig`. :func:`build_problem` turns the
``[data]`` settings and the arrays a caller read from files (through
:mod:`astrobayes.io.imaging_files`) into an :class:`ImagingProblem`: the operator, the
(whitened) visibilities, the noise level and the truth. Either the visibilities are
simulated (a truth seen through a Fourier mask or at uv points, with complex Gaussian
noise at an input SNR) or observed (a mask in the visibilities' order, or uv points with
per-visibility noise, whitened by natural weighting). Nothing here touches a file.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Complex, Float

from astrobayes._checks import check_key
from astrobayes.imaging.nufft import nufft_operator, nufft_operator_from_pixel_phases
from astrobayes.imaging.operators import (
    MeasurementOperator,
    add_complex_noise,
    fourier_mask_operator,
    noise_sigma_from_isnr,
)
from astrobayes.imaging.pipeline import ImagingConfig

__all__ = [
    "DEMO",
    "UV_UNITS",
    "ImagingDataConfig",
    "ImagingFileConfig",
    "ImagingMapConfig",
    "ImagingPriorConfig",
    "ImagingProblem",
    "ImagingUqConfig",
    "build_problem",
    "demo_mask",
    "demo_sky",
    "natural_whitening",
    "problem_image_shape",
    "resize_image",
]

DEMO = "demo"
"""The value of ``[data].truth`` / ``[data].mask`` that selects the built-in demo."""
UV_UNITS = ("wavelengths", "radians_per_pixel")
STRENGTH_WORDS = ("auto", "discrepancy", "trained", "noise_scaled", "geometric")


@dataclasses.dataclass(frozen=True)
class ImagingDataConfig:
    """The ``[data]`` table: where the data come from (paths are read by the caller).

    Attributes:
        truth: FITS image of the truth, ``"demo"`` or ``None``.
        flip: Flip the truth up-down (FITS rows run bottom to top).
        resize: ``(rows, cols)`` to resample the truth to before anything else, with
            bicubic interpolation and Gaussian anti-aliasing (:func:`resize_image`; the
            QuantifAI study resizes Cygnus A, 477x1025, to 256x512 this way), or ``None``.
        normalise: Apply the QuantifAI preprocessing (flip, rescale to ``[0, 1]``).
        mask: Fourier mask (``.mat``/``.npy``), ``"demo"`` or ``None``.
        mask_centred: The mask is drawn on the ``fftshift``-ed plane.
        uv: ``.npz`` of simulated uv points (``uu``, ``vv``).
        uv_units: ``"wavelengths"`` or ``"radians_per_pixel"``.
        pixel_size_arcsec: Pixel size, required with uv points in wavelengths.
        visibilities: ``.npz`` of observed visibilities.
        image_shape: ``(height, width)`` for observed visibilities without a truth.
        isnr_db: Input SNR of simulated visibilities (default 30 dB).
        seed: Seed of the demo mask and of the simulated noise.
    """

    truth: str | None = None
    flip: bool = True
    resize: tuple[int, int] | None = None
    normalise: bool = True
    mask: str | None = None
    mask_centred: bool = False
    uv: str | None = None
    uv_units: str = "wavelengths"
    pixel_size_arcsec: float | None = None
    visibilities: str | None = None
    image_shape: tuple[int, int] | None = None
    isnr_db: float | None = None
    seed: int = 0

    @property
    def is_observed(self) -> bool:
        """Whether the visibilities are read from a file (else simulated)."""
        return self.visibilities is not None

    def __post_init__(self):
        if self.uv_units not in UV_UNITS:
            raise ValueError(
                f"uv_units must be 'wavelengths' or 'radians_per_pixel'; got {self.uv_units!r}"
            )
        if self.image_shape is not None:
            _check_shape("[data].image_shape", self.image_shape)
        if self.resize is not None:
            _check_shape("[data].resize", self.resize)
            if self.truth is None or self.truth == DEMO:
                raise ValueError(
                    "[data].resize resamples a truth FITS image; "
                    f"got resize = {list(self.resize)} with truth = {self.truth!r}"
                )
        if self.is_observed:
            self._check_observed()
        else:
            self._check_simulated()

    def _check_observed(self):
        for key in ("isnr_db", "uv"):
            if getattr(self, key) is not None:
                raise ValueError(
                    f"[data].{key} is for simulated data; with [data].visibilities the data, "
                    "noise and uv points come from the visibilities file"
                )
        if self.mask == DEMO:
            raise ValueError("mask = 'demo' cannot be used with observed visibilities")

    def _check_simulated(self):
        if self.image_shape is not None:
            raise ValueError(
                "[data].image_shape is for observed visibilities; with a truth its shape is used"
            )
        if self.truth is None:
            raise ValueError(
                "[data] needs 'truth' (a FITS image or 'demo') to simulate visibilities, "
                "or 'visibilities' (an .npz)"
            )
        if self.mask is not None and self.uv is not None:
            raise ValueError("[data] takes either 'mask' or 'uv', not both")
        if self.mask is None and self.uv is None:
            raise ValueError("[data] needs 'mask' (.mat/.npy/'demo') or 'uv' (.npz)")
        if self.uv is not None and self.uv_units == "wavelengths":
            _require_pixel_size(self)


def _check_shape(name: str, raw) -> None:
    if (
        not isinstance(raw, tuple | list)
        or len(raw) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in raw)
    ):
        raise ValueError(f"{name} must be two integers >= 2; got {raw!r}")


def resize_image(
    image: Float[np.ndarray, "rows cols"], shape: tuple[int, int]
) -> Float[np.ndarray, "new_rows new_cols"]:
    """Resample an image to ``shape`` as the QuantifAI study does for its truth images.

    Bicubic spline interpolation (order 3) with Gaussian anti-aliasing when shrinking
    (``skimage.transform.resize(image, shape, order=3, anti_aliasing=True)``; Liaudat et
    al. 2024, RASTI, arXiv:2312.00125, resize Cygnus A from 477x1025 to 256x512).

    Args:
        image: 2-d image.
        shape: ``(rows, cols)``, each at least 2.

    Returns:
        The resampled image (float64).

    Raises:
        ValueError: If ``image`` is not 2-d or ``shape`` is not two integers >= 2.

    Examples:
        >>> import numpy as np
        >>> resize_image(np.ones((9, 20)), (4, 8)).shape
        (4, 8)
    """
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-d; got shape {image.shape}")
    _check_shape("shape", shape)
    return resize(image, tuple(shape), order=3, anti_aliasing=True)


def _require_pixel_size(config: ImagingDataConfig) -> float:
    if config.pixel_size_arcsec is None:
        raise ValueError("[data].pixel_size_arcsec is required with uv in wavelengths")
    return float(config.pixel_size_arcsec)


@dataclasses.dataclass(frozen=True)
class ImagingPriorConfig:
    """The ``[prior]`` table (see :class:`~astrobayes.imaging.pipeline.ImagingConfig`).

    ``strength`` is a positive number or one of ``"auto"``, ``"discrepancy"``,
    ``"trained"``, ``"noise_scaled"``, ``"geometric"`` (the rule that sets it).
    ``kind = "unrolled"`` selects the learned reconstruction network
    (:mod:`astrobayes.imaging.unrolled`); ``weights`` is then its ``.eqx`` file
    (default: the shipped weights) and ``strength`` stays ``"auto"``.
    """

    kind: str = "wavelets"
    wavelet_order: int = 8
    wavelet_levels: int = 4
    strength: float | str = "auto"
    positivity: bool = True
    crr_weights: str | None = None
    weights: str | None = None

    def __post_init__(self):
        if isinstance(self.strength, str) and self.strength not in STRENGTH_WORDS:
            raise ValueError(
                "prior.strength must be a number, 'auto', 'discrepancy', 'trained', "
                "'noise_scaled' or 'geometric'; "
                f"got {self.strength!r}"
            )
        if self.weights is not None and self.kind != "unrolled":
            raise ValueError(
                f"prior.weights is for kind = 'unrolled' (the network's .eqx file); got kind "
                f"{self.kind!r} (the CRR's weights are prior.crr_weights)"
            )


@dataclasses.dataclass(frozen=True)
class ImagingUqConfig:
    """The ``[uq]`` table: HPD level, super-pixel sizes and test regions."""

    alpha: float = 0.01
    superpixel_sizes: tuple[int, ...] = (8,)
    test_regions: tuple[tuple[int, int, int, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class ImagingMapConfig:
    """The ``[map]`` table: FISTA settings."""

    max_iterations: int = 3000
    tolerance: float = 1e-6


@dataclasses.dataclass(frozen=True)
class ImagingFileConfig:
    """A whole ``astrobayes image`` TOML file: ``[data]``, ``[prior]``, ``[uq]``, ``[map]``."""

    data: ImagingDataConfig = dataclasses.field(default_factory=ImagingDataConfig)
    prior: ImagingPriorConfig = dataclasses.field(default_factory=ImagingPriorConfig)
    uq: ImagingUqConfig = dataclasses.field(default_factory=ImagingUqConfig)
    map: ImagingMapConfig = dataclasses.field(default_factory=ImagingMapConfig)

    def imaging_config(self) -> ImagingConfig:
        """The workflow settings (:class:`~astrobayes.imaging.pipeline.ImagingConfig`)."""
        prior, uq = self.prior, self.uq
        if isinstance(prior.strength, str):
            rule, strength = prior.strength, None
        else:
            rule, strength = "fixed", float(prior.strength)
        return ImagingConfig(
            prior=prior.kind,
            wavelet_order=int(prior.wavelet_order),
            wavelet_levels=int(prior.wavelet_levels),
            crr_weights=prior.crr_weights,
            unrolled_weights=prior.weights,
            strength=strength,
            strength_rule=rule,
            positivity=bool(prior.positivity),
            alpha=float(uq.alpha),
            superpixel_sizes=tuple(int(s) for s in uq.superpixel_sizes),
            max_iterations=int(self.map.max_iterations),
            tolerance=float(self.map.tolerance),
            test_regions=tuple(tuple(int(v) for v in r) for r in uq.test_regions),
        )


class ImagingProblem(NamedTuple):
    """A linear imaging problem ready for :func:`~astrobayes.imaging.pipeline.run_imaging`.

    Attributes:
        operator: The (whitened) measurement operator.
        visibilities: The (whitened) visibilities.
        sigma: Noise standard deviation of each of the real and imaginary parts.
        truth: The truth, when known.
    """

    operator: MeasurementOperator
    visibilities: Complex[Array, " num_visibilities"]
    sigma: float
    truth: Float[np.ndarray, "height width"] | None


def demo_sky(size: int = 64) -> Float[np.ndarray, "size size"]:
    """A deterministic synthetic radio sky for the offline demo (values in ``[0, 1]``).

    Two elliptical lobes joined by a faint jet, a compact core and a few point sources.

    Args:
        size: Side in pixels.

    Returns:
        The image ``(size, size)``.

    Example:
        >>> float(demo_sky(16).max())
        1.0
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    sky = np.zeros((size, size))

    def blob(cx, cy, sx, sy, amplitude, angle=0.0):
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        return amplitude * np.exp(-(u**2 / (2 * sx**2) + v**2 / (2 * sy**2)))

    sky += blob(0.3, 0.45, 0.08, 0.05, 0.7, 0.4)
    sky += blob(0.72, 0.58, 0.09, 0.05, 0.6, 0.4)
    sky += blob(0.5, 0.5, 0.2, 0.012, 0.25, 0.4)
    sky += blob(0.5, 0.5, 0.015, 0.015, 1.0)
    for cx, cy, a in [(0.15, 0.8, 0.5), (0.85, 0.2, 0.4), (0.2, 0.15, 0.3)]:
        sky += blob(cx, cy, 0.012, 0.012, a)
    return sky / sky.max()


def demo_mask(key: jax.Array, shape: tuple[int, int]) -> Bool[np.ndarray, "height width"]:
    """The demo's random Fourier mask, densest at low frequencies (NumPy FFT layout).

    Each coefficient at radial frequency ``r`` (cycles per pixel) is measured with
    probability ``clip(0.9 exp(-r / 0.12), 0.02, 1)``; the zero frequency always.

    Args:
        key: JAX PRNG key.
        shape: ``(height, width)``.

    Returns:
        Boolean mask of ``shape``.
    """
    check_key(key)
    radius = np.hypot(
        *np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
    )
    probability = np.clip(0.9 * np.exp(-radius / 0.12), 0.02, 1.0)
    mask = np.asarray(jax.random.uniform(key, shape)) < probability
    mask[0, 0] = True
    return mask


def natural_whitening(
    visibility_sigma: Float[np.ndarray, " num_visibilities"],
) -> tuple[Float[np.ndarray, " num_visibilities"], float]:
    """Natural weighting as whitening: ``w_i = sigma_0^2 / sigma_i^2`` (exact likelihood).

    With ``sigma_0^-2 = mean(sigma_i^-2)``, the weighted operator ``sqrt(w) Phi`` and data
    ``sqrt(w) y`` have i.i.d. noise of standard deviation ``sigma_0``.

    Args:
        visibility_sigma: Per-visibility noise standard deviations (positive).

    Returns:
        ``(weights, sigma_0)``.
    """
    sigma_values = np.asarray(visibility_sigma, np.float64)
    sigma = float(1.0 / np.sqrt(np.mean(1.0 / sigma_values**2)))
    return (sigma / sigma_values) ** 2, sigma


def problem_image_shape(
    config: ImagingDataConfig, truth: np.ndarray | None = None
) -> tuple[int, int]:
    """The image shape: ``[data].image_shape`` (observed data) or the truth's.

    Args:
        config: The ``[data]`` settings.
        truth: The truth, when given.

    Returns:
        ``(height, width)``.

    Raises:
        ValueError: If neither is known, or they disagree.
    """
    if config.image_shape is not None:
        shape = (int(config.image_shape[0]), int(config.image_shape[1]))
        if truth is not None and truth.shape != shape:
            raise ValueError(f"[data].image_shape {shape} differs from the truth's {truth.shape}")
        return shape
    if truth is not None:
        return (int(truth.shape[0]), int(truth.shape[1]))
    raise ValueError("[data].image_shape = [height, width] is required with visibilities")


def _uv_operator(config, points, shape, weights=None):
    if config.uv_units == "wavelengths":
        return nufft_operator(
            points,
            image_shape=shape,
            pixel_size_arcsec=_require_pixel_size(config),
            weights=weights,
        )
    return nufft_operator_from_pixel_phases(points, image_shape=shape, weights=weights)


def build_problem(
    key: jax.Array,
    config: ImagingDataConfig,
    *,
    truth: Float[np.ndarray, "height width"] | None = None,
    mask: Bool[np.ndarray, "height width"] | None = None,
    uv_points: Float[np.ndarray, "num_visibilities 2"] | None = None,
    visibilities: Complex[np.ndarray, " num_visibilities"] | None = None,
    visibility_sigma: Float[np.ndarray, " num_visibilities"] | None = None,
) -> ImagingProblem:
    """The imaging problem described by ``config`` and the arrays read for it.

    Simulated (``config.visibilities is None``): ``truth`` seen through ``mask`` (or the
    demo mask drawn from ``key`` when ``config.mask == "demo"``) or at ``uv_points``,
    plus complex Gaussian noise at ``config.isnr_db`` (default 30). Observed: the
    ``visibilities`` with per-visibility ``visibility_sigma``, on a ``mask`` (a single
    noise level) or at ``uv_points`` (natural weighting, :func:`natural_whitening`).

    Args:
        key: JAX PRNG key (``jax.random.key(config.seed)`` for the CLI); split into the
            demo mask's key and the noise key.
        config: The ``[data]`` settings.
        truth: The truth image (prepared by the caller).
        mask: The Fourier mask read from ``config.mask`` (not for ``"demo"``).
        uv_points: ``(M, 2)`` uv points (simulated: from ``config.uv``; observed: from
            the visibilities file, ``None`` when it has none).
        visibilities: Observed visibilities ``(M,)``.
        visibility_sigma: Their noise standard deviations ``(M,)``.

    Returns:
        :class:`ImagingProblem`.

    Raises:
        ValueError: When the arrays do not fit the settings (naming what is missing or
            inconsistent).

    Example:
        >>> config = ImagingDataConfig(truth="demo", mask="demo")
        >>> problem = build_problem(jax.random.key(0), config, truth=demo_sky(16))
        >>> problem.operator.image_shape
        (16, 16)
    """
    check_key(key)
    key_mask, key_noise = jax.random.split(key)
    if config.is_observed:
        return _observed_problem(config, truth, mask, uv_points, visibilities, visibility_sigma)
    if truth is None:
        raise ValueError("truth is required to simulate visibilities ([data].truth)")
    shape = truth.shape
    if config.mask is not None:
        if config.mask == DEMO:
            mask = demo_mask(key_mask, shape)
        elif mask is None:
            raise ValueError("mask is required: read [data].mask and pass it as mask=")
        operator = fourier_mask_operator(mask, centred=config.mask_centred)
    else:
        if uv_points is None:
            raise ValueError("uv_points is required: read [data].uv and pass it as uv_points=")
        operator = _uv_operator(config, uv_points, shape)
    isnr = 30.0 if config.isnr_db is None else config.isnr_db
    clean = operator(jnp.asarray(truth, jnp.float32))
    sigma = noise_sigma_from_isnr(clean, isnr)
    return ImagingProblem(
        operator=operator,
        visibilities=add_complex_noise(key_noise, clean, sigma),
        sigma=sigma,
        truth=truth,
    )


def _observed_problem(config, truth, mask, uv_points, visibilities, visibility_sigma):
    """Operator, whitened visibilities and noise level from observed visibilities."""
    if visibilities is None or visibility_sigma is None:
        raise ValueError("visibilities and visibility_sigma are required with [data].visibilities")
    shape = problem_image_shape(config, truth)
    num = visibilities.shape[0]
    sigma_values = np.asarray(visibility_sigma, np.float64)
    if config.mask is not None:
        if uv_points is not None:
            raise ValueError(
                "the visibilities file has 'uu'/'vv' and [data].mask is given; give one of them"
            )
        if not np.all(sigma_values == sigma_values[0]):
            raise ValueError(
                "per-visibility sigma is supported with uv points (NUFFT), not with a Fourier mask"
            )
        if mask is None:
            raise ValueError("mask is required: read [data].mask and pass it as mask=")
        operator = fourier_mask_operator(mask, centred=config.mask_centred)
        if operator.num_visibilities != num:
            raise ValueError(
                f"the mask samples {operator.num_visibilities} coefficients but the file has "
                f"{num} visibilities"
            )
        return ImagingProblem(
            operator=operator,
            visibilities=jnp.asarray(visibilities),
            sigma=float(sigma_values[0]),
            truth=truth,
        )
    if uv_points is None:
        raise ValueError("the visibilities file has no 'uu'/'vv'; add them or give [data].mask")
    weights, sigma = natural_whitening(sigma_values)
    return ImagingProblem(
        operator=_uv_operator(config, uv_points, shape, weights),
        visibilities=jnp.asarray(np.sqrt(weights) * visibilities),
        sigma=sigma,
        truth=truth,
    )
