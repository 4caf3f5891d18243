"""One entry point for the imaging workflow: prior -> MAP -> HPD -> LCIs -> tests.

:class:`ImagingConfig` is the frozen configuration shared by the Python API and the
``astrobayes image`` command (whose TOML maps onto it, see ``docs/imaging.md`` and
:mod:`~astrobayes.imaging.problem`). :func:`run_imaging` is pure: it takes an operator,
data and (for the learned prior) the CRR weights and returns an :class:`ImagingResult`;
reading and writing files is left to :mod:`astrobayes.io` and :mod:`astrobayes.cli`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from astrobayes._status import Status, check, worst
from astrobayes.imaging.crr import ConvexRidgePrior, ConvexRidgeWeights
from astrobayes.imaging.intervals import LocalCredibleIntervals, local_credible_intervals
from astrobayes.imaging.map import (
    MapResult,
    StrengthResult,
    discrepancy_strength,
    map_estimate,
    snr_db,
    with_strength,
)
from astrobayes.imaging.operators import MeasurementOperator, dirty_image
from astrobayes.imaging.posterior import ImagingPosterior, imaging_posterior
from astrobayes.imaging.priors import ImagingPrior, WaveletSparsityPrior
from astrobayes.imaging.uq import (
    HpdResult,
    HypothesisTestResult,
    hpd_threshold,
    hypothesis_test,
    inpaint_region,
)
from astrobayes.imaging.wavelets import WaveletTransform

__all__ = [
    "PRIOR_KINDS",
    "STRENGTH_RULES",
    "ImagingConfig",
    "ImagingResult",
    "build_prior",
    "initial_strength",
    "noise_scaled_strength",
    "run_imaging",
]

PRIOR_KINDS = ("wavelets", "crr", "unrolled")
"""``"unrolled"`` is the learned reconstruction network (:mod:`astrobayes.imaging.unrolled`),
run by :func:`~astrobayes.imaging.unrolled.run_unrolled_imaging`, not by :func:`run_imaging`."""
STRENGTH_RULES = ("auto", "discrepancy", "trained", "noise_scaled", "geometric", "fixed")
_CRR_ONLY_RULES = ("trained", "noise_scaled", "geometric")


@dataclasses.dataclass(frozen=True)
class ImagingConfig:
    """Settings of the imaging workflow.

    Attributes:
        prior: ``"wavelets"``, ``"crr"`` or ``"unrolled"`` (the learned network: no
            prior, strength or MAP; run it with
            :func:`~astrobayes.imaging.unrolled.run_unrolled_imaging`).
        wavelet_order: Daubechies order for the wavelet prior.
        wavelet_levels: Decomposition levels.
        crr_weights: Path of CRR weights (``None``: the shipped ones), read by the
            caller through :func:`astrobayes.io.imaging_files.read_convex_ridge` and
            passed to :func:`run_imaging` as ``crr``.
        unrolled_weights: Path of the unrolled network's weights (``None``: the shipped
            ones), read by the caller through
            :func:`astrobayes.io.unrolled_files.read_unrolled`.
        strength: A positive number (with ``strength_rule="fixed"``, or as the start of
            the discrepancy search).
        strength_rule: ``"discrepancy"`` (Morozov's discrepancy principle),
            ``"trained"`` (CRR only: ``lam_train / sigma_train^2``, the strength at which
            the trained denoiser is the MAP of the same prior), ``"noise_scaled"`` (CRR
            only: the ``"trained"`` strength times ``sqrt(sigma_train / sigma_eff)``
            with ``sigma_eff = sigma / ||Phi||``, see :func:`noise_scaled_strength`),
            ``"geometric"`` (CRR only: the geometric mean of the ``"trained"`` and
            ``"discrepancy"`` strengths), ``"fixed"`` (use ``strength``) or ``"auto"``
            (default: ``"fixed"`` when a strength is given, else ``"noise_scaled"``
            for the CRR and ``"discrepancy"`` for wavelets; see
            :meth:`resolved_strength_rule`). The CRR rules were measured against a
            grid's best strength in ``benchmarks/imaging_strength_rules.py``
            (docs/imaging.md, "Is the strength rule tuned to M31?").
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
    unrolled_weights: str | None = None
    strength: float | None = None
    strength_rule: str = "auto"
    positivity: bool = True
    alpha: float = 0.01
    superpixel_sizes: tuple[int, ...] = (8,)
    max_iterations: int = 3000
    tolerance: float = 1e-6
    test_regions: tuple[tuple[int, int, int, int], ...] = ()

    def resolved_strength_rule(self) -> str:
        """The rule actually used (``"auto"`` resolved).

        ``"auto"`` with the learned prior is ``"noise_scaled"``: within 0.5 dB of a
        grid's best strength on 14 of 14 gridded (masked FFT) cases against 5 of 14 for
        ``"trained"``, and on the six ungridded MeerKAT cases (M31 and Cygnus A, 1, 2
        and 4 h) within 0.5 dB on 3 of 6 (worst gap 2.1 dB, mean 0.9 dB) against 2 of
        6 for ``"trained"`` (worst 4.8 dB, mean 1.5 dB); see docs/imaging.md, "Is the
        strength rule tuned to M31?".

        Returns:
            The rule's name.
        """
        if self.strength_rule != "auto":
            return self.strength_rule
        if self.strength is not None:
            return "fixed"
        return "noise_scaled" if self.prior == "crr" else "discrepancy"

    def __post_init__(self):
        if self.prior not in PRIOR_KINDS:
            raise ValueError(f"unknown prior {self.prior!r}; choose one of {PRIOR_KINDS}")
        if self.strength is not None and not (np.isfinite(self.strength) and self.strength > 0):
            raise ValueError(f"strength must be positive or None; got {self.strength}")
        if self.strength_rule not in STRENGTH_RULES:
            raise ValueError(
                f"unknown strength_rule {self.strength_rule!r}; choose one of {STRENGTH_RULES}"
            )
        if self.prior == "unrolled" and (
            self.strength is not None or self.strength_rule not in ("auto",)
        ):
            raise ValueError(
                "prior 'unrolled' is a learned reconstruction with no regularisation "
                f"strength; got strength={self.strength!r}, strength_rule={self.strength_rule!r}"
            )
        if self.strength_rule == "fixed" and self.strength is None:
            raise ValueError("strength_rule 'fixed' needs a strength")
        if self.strength_rule in _CRR_ONLY_RULES and self.prior != "crr":
            raise ValueError(
                f"strength_rule {self.strength_rule!r} applies to the learned prior (crr) only"
            )
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
        status: The worst of the MAP's and the strength search's statuses. On a failed
            MAP the run stops there: ``hpd`` is ``None`` and there are no intervals
            or tests.
    """

    map_result: MapResult
    posterior: ImagingPosterior
    strength: float
    strength_rule: str
    strength_result: StrengthResult | None
    hpd: HpdResult | None
    intervals: tuple[LocalCredibleIntervals, ...]
    tests: tuple[HypothesisTestResult, ...]
    dirty: Float[Array, "height width"]
    snr_db: float | None
    timings: dict[str, float]
    status: Status


def build_prior(
    config: ImagingConfig,
    image_shape: tuple[int, int],
    strength: float,
    *,
    crr: ConvexRidgeWeights | None = None,
) -> ImagingPrior:
    """The prior named by ``config`` with the given strength.

    Args:
        config: The configuration.
        image_shape: Image shape (for checks).
        strength: Regularisation strength.
        crr: The CRR weights (required for ``prior="crr"``; read them with
            :func:`astrobayes.io.imaging_files.read_convex_ridge`).

    Returns:
        The prior.

    Raises:
        ValueError: On an unknown prior, missing CRR weights or an image shape the
            wavelets cannot handle.
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
        return ConvexRidgePrior(strength, _require_crr(crr).regulariser.normalised())
    raise ValueError(f"unknown prior {config.prior!r}; choose one of {PRIOR_KINDS}")


def _require_crr(crr: ConvexRidgeWeights | None) -> ConvexRidgeWeights:
    if not isinstance(crr, ConvexRidgeWeights):
        raise ValueError(
            "prior 'crr' needs crr= ConvexRidgeWeights (read them with "
            f"astrobayes.io.imaging_files.read_convex_ridge); got {type(crr).__name__}"
        )
    return crr


def initial_strength(
    config: ImagingConfig,
    operator: MeasurementOperator,
    visibilities: Complex[Array, " num_visibilities"],
    *,
    crr: ConvexRidgeWeights | None = None,
) -> float:
    """A scale-aware starting value for the discrepancy search (or the trained strength).

    CRR: ``lam_train / sigma_train^2`` (the denoising energy ``|x - z|^2 / 2 + lam R`` at
    noise ``sigma_train``, divided by ``sigma_train^2``, is the negative log posterior
    with the prior ``exp(-lam R / sigma_train^2)``). Wavelets: ``N / ||Psi x_0||_1`` for
    the back-projection ``x_0 = Phi^H y / ||Phi||^2``.

    Args:
        config: The configuration.
        operator: The measurement operator.
        visibilities: Observed visibilities.
        crr: The CRR weights (for ``prior="crr"``).

    Returns:
        The strength.
    """
    if config.prior == "crr":
        weights = _require_crr(crr)
        return float(weights.regulariser.strength) / weights.sigma_train**2
    norm2 = operator.norm(tolerance=1e-4) ** 2
    dirty = operator.adjoint(visibilities) / norm2
    transform = WaveletTransform(config.wavelet_order, config.wavelet_levels)
    l1 = float(jnp.sum(jnp.abs(transform(dirty))))
    return dirty.size / max(l1, 1e-30)


def noise_scaled_strength(crr: ConvexRidgeWeights, sigma: float, operator_norm: float) -> float:
    """The ``"noise_scaled"`` CRR strength: ``(lam_train / sigma_train^2) sqrt(sigma_train / sigma_eff)``.

    ``sigma_eff = sigma / ||Phi||`` is the noise of the data in image units (for the
    masked orthonormal FFT, whose norm is 1, the noise of each measured Fourier mode of
    the image). The rule sits halfway, in ``log``, between two scalings of the strength
    with the noise: the ``"trained"`` rule (a fixed prior ``exp(-theta R)``, whose
    denoising strength ``lam = theta sigma^2`` grows as ``sigma^2``) and the scaling of
    a one-homogeneous regulariser such as the ``l1`` norm, whose best threshold grows as
    ``sigma`` (the CRR's potentials grow linearly far from zero). Both agree at the
    training noise ``sigma_train``. No constant is fitted; the exponent ``1/2`` was
    chosen after the ten cases of docs/imaging.md ("Is the strength rule tuned to
    M31?") and checked on four skies drawn afterwards. Costs nothing beyond the MAP.

    Args:
        crr: The CRR weights (their learned ``lam_train`` and ``sigma_train``).
        sigma: Noise standard deviation of each of the real and imaginary parts.
        operator_norm: ``||Phi||_2`` of the measurement operator.

    Returns:
        The strength ``theta`` of the prior ``exp(-theta R(x))``.

    Raises:
        ValueError: If ``sigma`` or ``operator_norm`` is not positive and finite.

    Example:
        >>> from astrobayes.io.imaging_files import read_convex_ridge
        >>> crr = read_convex_ridge()
        >>> trained = float(crr.regulariser.strength) / crr.sigma_train**2
        >>> round(noise_scaled_strength(crr, crr.sigma_train / 4, 1.0) / trained, 6)
        2.0
    """
    weights = _require_crr(crr)
    for name, value in (("sigma", sigma), ("operator_norm", operator_norm)):
        if isinstance(value, bool) or not (np.isscalar(value) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    trained = float(weights.regulariser.strength) / weights.sigma_train**2
    sigma_eff = float(sigma) / float(operator_norm)
    return trained * float(np.sqrt(weights.sigma_train / sigma_eff))


def _select_strength(config, operator, visibilities, sigma, crr, timings):
    """The posterior at the strength the rule selects, and the search (or ``None``)."""
    start = time.perf_counter()
    rule = config.resolved_strength_rule()
    if rule == "fixed" or (rule == "discrepancy" and config.strength is not None):
        first = config.strength
    else:
        first = initial_strength(config, operator, visibilities, crr=crr)
    prior = build_prior(config, operator.image_shape, first, crr=crr)
    posterior = imaging_posterior(
        operator, visibilities, sigma, prior, positivity=config.positivity
    )
    if rule == "noise_scaled":
        strength = noise_scaled_strength(crr, sigma, float(posterior.operator_norm))
        posterior = with_strength(posterior, strength)
    strength_result = None
    if rule in ("discrepancy", "geometric"):
        strength_result = discrepancy_strength(
            posterior, max_iterations=config.max_iterations, tolerance=config.tolerance
        )
        posterior = strength_result.posterior
        if rule == "geometric":  # between the trained prior and the data's discrepancy
            posterior = with_strength(posterior, float(np.sqrt(first * strength_result.strength)))
        timings["strength_search_s"] = time.perf_counter() - start
    return posterior, strength_result


def _uncertainty(config, posterior, map_result, timings):
    """HPD bound, local credible intervals per super-pixel size, hypothesis tests."""
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
        region = np.zeros(posterior.image_shape, bool)
        region[row0:row1, col0:col1] = True
        surrogate = inpaint_region(map_result.image, region)
        tests.append(hypothesis_test(posterior, surrogate, hpd))
    timings["tests_s"] = time.perf_counter() - tic
    return hpd, tuple(intervals), tuple(tests)


def run_imaging(
    config: ImagingConfig,
    operator: MeasurementOperator,
    visibilities: Complex[Array, " num_visibilities"],
    sigma: float,
    *,
    truth: Float[Array, "height width"] | None = None,
    crr: ConvexRidgeWeights | None = None,
    throw: bool = False,
) -> ImagingResult:
    """Run MAP estimation and MAP-based uncertainty quantification.

    Args:
        config: The settings.
        operator: The measurement operator.
        visibilities: Observed visibilities.
        sigma: Noise standard deviation (each of real and imaginary parts).
        truth: Optional ground truth, for the reported SNR only (never used to tune).
        crr: CRR weights, required with ``config.prior == "crr"`` (read them with
            :func:`astrobayes.io.imaging_files.read_convex_ridge`).
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) when the status is a failure.

    Returns:
        An :class:`ImagingResult`.

    Raises:
        ValueError: On invalid inputs (see :func:`~astrobayes.imaging.posterior.imaging_posterior`).
        UnreliableResultError: With ``throw=True`` on a failure status (a failed MAP).
    """
    if config.prior == "unrolled":
        raise ValueError(
            "prior 'unrolled' is a learned reconstruction, not a MAP prior: run it with "
            "astrobayes.imaging.unrolled.run_unrolled_imaging"
        )
    timings: dict[str, float] = {}
    start = time.perf_counter()
    posterior, strength_result = _select_strength(
        config, operator, visibilities, sigma, crr, timings
    )
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
    hpd, intervals, tests = None, (), ()
    if not map_result.status.is_failure:
        hpd, intervals, tests = _uncertainty(config, posterior, map_result, timings)
    timings["total_s"] = time.perf_counter() - start
    statuses = [map_result.status] + ([] if strength_result is None else [strength_result.status])
    result = ImagingResult(
        map_result=map_result,
        posterior=posterior,
        strength=strength,
        strength_rule=config.resolved_strength_rule(),
        strength_result=strength_result,
        hpd=hpd,
        intervals=intervals,
        tests=tests,
        dirty=dirty_image(operator, posterior.visibilities),
        snr_db=None
        if truth is None or map_result.status.is_failure
        else snr_db(truth, map_result.image),
        timings=timings,
        status=worst(statuses),
    )
    return check(result, throw)
