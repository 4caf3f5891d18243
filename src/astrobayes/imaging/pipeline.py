"""One entry point for the imaging workflow: prior -> MAP -> HPD -> LCIs -> tests.

:class:`ImagingConfig` is the frozen configuration shared by the Python API and the
``astrobayes image`` command (whose TOML maps onto it, see ``docs/imaging.md``).
:func:`run_imaging` is pure: it takes an operator and data and returns an
:class:`ImagingResult`; reading and writing files is left to :mod:`astrobayes.io` and
:mod:`astrobayes.cli`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from astrobayes.imaging.map import (
    MapResult,
    StrengthResult,
    discrepancy_strength,
    map_estimate,
    snr_db,
)
from astrobayes.imaging.operators import MeasurementOperator
from astrobayes.imaging.posterior import ImagingPosterior, imaging_posterior
from astrobayes.imaging.priors import Prior, WaveletSparsityPrior
from astrobayes.imaging.uq import (
    HpdResult,
    HypothesisTestResult,
    LocalCredibleIntervals,
    hpd_threshold,
    hypothesis_test,
    inpaint_region,
    local_credible_intervals,
)
from astrobayes.imaging.wavelets import WaveletTransform

__all__ = [
    "PRIOR_KINDS",
    "ImagingConfig",
    "ImagingResult",
    "build_prior",
    "demo_sky",
    "run_imaging",
]

PRIOR_KINDS = ("wavelets", "crr")
STRENGTH_RULES = ("auto", "discrepancy", "trained", "fixed")


@dataclasses.dataclass(frozen=True)
class ImagingConfig:
    """Settings of the imaging workflow.

    Attributes:
        prior: ``"wavelets"`` or ``"crr"``.
        wavelet_order: Daubechies order for the wavelet prior.
        wavelet_levels: Decomposition levels.
        crr_weights: Path of CRR weights (``None``: the shipped ones).
        strength: A positive number (with ``strength_rule="fixed"``, or as the start of
            the discrepancy search).
        strength_rule: ``"discrepancy"`` (Morozov's discrepancy principle),
            ``"trained"`` (CRR only: ``lam_train / sigma_train^2``, the strength at which
            the trained denoiser is the MAP of the same prior), ``"fixed"`` (use
            ``strength``) or ``"auto"`` (default: ``"fixed"`` when a strength is given,
            else ``"trained"`` for the CRR and ``"discrepancy"`` for wavelets).
        positivity: Constrain ``x >= 0``.
        alpha: ``1 - alpha`` credibility of the HPD region.
        superpixel_sizes: Super-pixel sides for local credible intervals.
        max_iterations: FISTA iterations.
        tolerance: FISTA relative objective tolerance.
        test_regions: Rectangles ``(row0, row1, col0, col1)`` whose structure is tested.
    """

    prior: str = "wavelets"
    wavelet_order: int = 8
    wavelet_levels: int = 4
    crr_weights: str | None = None
    strength: float | None = None
    strength_rule: str = "auto"
    positivity: bool = True
    alpha: float = 0.01
    superpixel_sizes: tuple[int, ...] = (8,)
    max_iterations: int = 3000
    tolerance: float = 1e-6
    test_regions: tuple[tuple[int, int, int, int], ...] = ()

    def resolved_strength_rule(self) -> str:
        """The rule actually used (``"auto"`` resolved)."""
        if self.strength_rule != "auto":
            return self.strength_rule
        if self.strength is not None:
            return "fixed"
        return "trained" if self.prior == "crr" else "discrepancy"

    def __post_init__(self):
        if self.prior not in PRIOR_KINDS:
            raise ValueError(f"unknown prior {self.prior!r}; choose one of {PRIOR_KINDS}")
        if self.strength is not None and not (np.isfinite(self.strength) and self.strength > 0):
            raise ValueError(f"strength must be positive or None; got {self.strength}")
        if self.strength_rule not in STRENGTH_RULES:
            raise ValueError(
                f"unknown strength_rule {self.strength_rule!r}; choose one of {STRENGTH_RULES}"
            )
        if self.strength_rule == "fixed" and self.strength is None:
            raise ValueError("strength_rule 'fixed' needs a strength")
        if self.strength_rule == "trained" and self.prior != "crr":
            raise ValueError("strength_rule 'trained' applies to the learned prior (crr) only")
        if not (0 < self.alpha < 1):
            raise ValueError(f"alpha must lie in (0, 1); got {self.alpha}")
        for size in self.superpixel_sizes:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(
                    f"superpixel_sizes must be positive integers; got {self.superpixel_sizes}"
                )
        for region in self.test_regions:
            if len(region) != 4:
                raise ValueError(f"test_regions are (row0, row1, col0, col1); got {region}")


class ImagingResult(NamedTuple):
    """Output of :func:`run_imaging`.

    Attributes:
        map_result: The MAP.
        posterior: The posterior at the chosen strength.
        strength: Regularisation strength used.
        strength_rule: The rule that set the strength.
        strength_result: The discrepancy search (``None`` for other rules).
        hpd: The HPD bound.
        intervals: Local credible intervals, one per super-pixel size.
        tests: Hypothesis tests, one per test region.
        dirty: ``Phi^H y`` rescaled to the PSF peak.
        snr_db: Reconstruction SNR when the truth is given, else ``None``.
        timings: Seconds per stage.
    """

    map_result: MapResult
    posterior: ImagingPosterior
    strength: float
    strength_rule: str
    strength_result: StrengthResult | None
    hpd: HpdResult
    intervals: tuple[LocalCredibleIntervals, ...]
    tests: tuple[HypothesisTestResult, ...]
    dirty: Float[Array, "height width"]
    snr_db: float | None
    timings: dict


def build_prior(config: ImagingConfig, image_shape: tuple[int, int], strength: float) -> Prior:
    """The prior named by ``config`` with the given strength.

    Args:
        config: The configuration.
        image_shape: Image shape (for checks).
        strength: Regularisation strength.

    Returns:
        The prior.

    Raises:
        ValueError: On an unknown prior or an image shape the wavelets cannot handle.
    """
    if config.prior == "wavelets":
        factor = 2**config.wavelet_levels
        if image_shape[0] % factor or image_shape[1] % factor:
            raise ValueError(
                f"image shape {image_shape} must be divisible by 2^levels = {factor} for wavelets"
            )
        return WaveletSparsityPrior(
            strength, WaveletTransform(config.wavelet_order, config.wavelet_levels)
        )
    if config.prior == "crr":
        from astrobayes.imaging.crr import ConvexRidgePrior, load_convex_ridge

        return ConvexRidgePrior(strength, load_convex_ridge(config.crr_weights).normalised())
    raise ValueError(f"unknown prior {config.prior!r}; choose one of {PRIOR_KINDS}")


def _initial_strength(config: ImagingConfig, operator, visibilities, sigma) -> float:
    """A scale-aware starting value for the discrepancy search."""
    if config.prior == "crr":
        from astrobayes.imaging.crr import load_convex_ridge

        model = load_convex_ridge(config.crr_weights)
        with np.load(_weights_path(config.crr_weights), allow_pickle=False) as content:
            sigma_train = (
                float(content["meta_sigma_train"]) if "meta_sigma_train" in content else 0.02
            )
        # the denoising energy |x - z|^2 / 2 + lam R at noise sigma_train is, divided by
        # sigma_train^2, the negative log posterior with the prior exp(-lam R / sigma_train^2)
        return float(model.strength) / sigma_train**2
    from astrobayes.imaging.operators import FourierMaskOperator, operator_norm

    if isinstance(operator, FourierMaskOperator):
        norm2 = operator.norm() ** 2
    else:
        norm2 = operator_norm(operator.normal, operator.image_shape, tolerance=1e-4).norm ** 2
    dirty = operator.adjoint(visibilities) / norm2
    transform = WaveletTransform(config.wavelet_order, config.wavelet_levels)
    l1 = float(jnp.sum(jnp.abs(transform(dirty))))
    return dirty.size / max(l1, 1e-30)


def _weights_path(path):
    from importlib import resources

    if path is None:
        return resources.files("astrobayes.imaging") / "weights" / "crr_default.npz"
    return path


def run_imaging(
    config: ImagingConfig,
    operator: MeasurementOperator,
    visibilities: Complex[Array, " num_visibilities"],
    sigma: float,
    *,
    truth: Float[Array, "height width"] | None = None,
) -> ImagingResult:
    """Run MAP estimation and MAP-based uncertainty quantification.

    Args:
        config: The settings.
        operator: The measurement operator.
        visibilities: Observed visibilities.
        sigma: Noise standard deviation (each of real and imaginary parts).
        truth: Optional ground truth, for the reported SNR only (never used to tune).

    Returns:
        An :class:`ImagingResult`.

    Raises:
        ValueError: On invalid inputs (see :func:`~astrobayes.imaging.posterior.imaging_posterior`).
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    rule = config.resolved_strength_rule()
    if rule == "fixed" or (rule == "discrepancy" and config.strength is not None):
        first = config.strength
    else:
        first = _initial_strength(config, operator, visibilities, sigma)
    prior = build_prior(config, operator.image_shape, first)
    posterior = imaging_posterior(
        operator, visibilities, sigma, prior, positivity=config.positivity
    )
    strength_result = None
    if rule == "discrepancy":
        strength_result = discrepancy_strength(
            posterior, max_iterations=config.max_iterations, tolerance=config.tolerance
        )
        posterior = strength_result.posterior
        timings["strength_search_s"] = time.perf_counter() - start
    strength = float(posterior.prior.strength)
    tic = time.perf_counter()
    initial = None if strength_result is None else strength_result.map_result.image
    map_result = map_estimate(
        posterior,
        initial_image=initial,
        max_iterations=config.max_iterations,
        tolerance=config.tolerance,
    )
    map_result.image.block_until_ready()
    timings["map_s"] = time.perf_counter() - tic
    tic = time.perf_counter()
    hpd = hpd_threshold(map_result.potential, posterior.dimension, config.alpha)
    intervals = []
    for size in config.superpixel_sizes:
        lci = local_credible_intervals(posterior, map_result.image, hpd, size)
        lci.length.block_until_ready()
        intervals.append(lci)
        timings[f"lci_{size}x{size}_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
    tests = []
    for row0, row1, col0, col1 in config.test_regions:
        region = np.zeros(operator.image_shape, bool)
        region[row0:row1, col0:col1] = True
        surrogate = inpaint_region(map_result.image, region)
        tests.append(hypothesis_test(posterior, surrogate, hpd))
    timings["tests_s"] = time.perf_counter() - tic
    timings["total_s"] = time.perf_counter() - start
    from astrobayes.imaging.operators import dirty_image

    dirty = dirty_image(operator, posterior.visibilities)
    snr = None if truth is None else snr_db(truth, map_result.image)
    return ImagingResult(
        map_result,
        posterior,
        strength,
        rule,
        strength_result,
        hpd,
        tuple(intervals),
        tuple(tests),
        dirty,
        snr,
        timings,
    )


def demo_sky(size: int = 64) -> np.ndarray:
    """A deterministic synthetic radio sky for the offline demo (values in ``[0, 1]``).

    Two elliptical lobes joined by a faint jet, a compact core and a few point sources.

    Args:
        size: Side in pixels.

    Returns:
        The image ``(size, size)``.
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
