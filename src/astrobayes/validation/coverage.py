"""Calibration of posteriors: expected coverage, TARP and simulation-based calibration.

All three take, for ``n`` test simulations ``(theta_i, x_i)`` drawn from the joint
(prior x simulator), ``m`` posterior draws per ``x_i``; everything is vectorised over
the ``n`` tests, so that checking costs little beside training.

* :func:`expected_coverage` (Hermans et al. 2022) uses log densities: the credibility
  level of the smallest highest-posterior-density region containing ``theta_i``.
* :func:`tarp` (Lemos et al. 2023) uses only samples and random reference points.
* :func:`sbc_ranks` (Talts et al. 2018) ranks each true parameter among the marginal
  draws.

Each returns a NamedTuple with a ``status`` (a :class:`CalibrationStatus`, whose value is
the message and whose severity says how far the posterior can be trusted: an
overconfident, biased or otherwise miscalibrated posterior is a failure, an
underconfident one a warning, since its credible regions are conservative); a
miscalibrated posterior is *flagged* when a Kolmogorov-Smirnov test of the relevant
statistic against uniformity rejects at ``significance`` **and** the largest distance
of the empirical curve from the diagonal exceeds ``tolerance``.

References:
    Hermans, Delaunoy, Rozet, Wehenkel, Begy & Louppe 2022, arXiv:2110.06581;
    Lemos, Coogan, Hezaveh & Perreault-Levasseur 2023, arXiv:2302.03026;
    Talts, Betancourt, Simpson, Vehtari & Gelman 2018, arXiv:1804.06788.

"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray
from scipy import stats

from astrobayes._checks import as_float_array, check_finite, check_fraction, check_key
from astrobayes._status import Severity, Status, check

__all__ = [
    "CalibrationStatus",
    "CoverageResult",
    "SBCResult",
    "TarpResult",
    "expected_coverage",
    "sbc_ranks",
    "tarp",
]


class CalibrationStatus(Status):
    """Verdict of a calibration check; the value is the message.

    Overconfident, biased and miscalibrated posteriors are failures (their credible
    regions cannot be trusted); an underconfident one is a warning (its regions are too
    large, so conservative).
    """

    CALIBRATED = (Severity.OK, "consistent with calibration")
    OVERCONFIDENT = (
        Severity.FAILURE,
        "overconfident: credible regions are too small (coverage below nominal)",
    )
    UNDERCONFIDENT = (
        Severity.WARNING,
        "underconfident: credible regions are too large (coverage above nominal)",
    )
    BIASED = (
        Severity.FAILURE,
        "biased: posterior draws are systematically shifted from the truth",
    )
    MISCALIBRATED = (Severity.FAILURE, "miscalibrated: the statistic is not uniform")


class CoverageResult(NamedTuple):
    """Expected coverage of highest-posterior-density regions.

    Attributes:
        levels: Nominal credibility levels, ``(num_levels,)``.
        coverage: Empirical coverage at each level.
        coverage_low: Lower end of the central 95% Jeffreys interval of the coverage.
        coverage_high: Upper end.
        credibility: Credibility level of the smallest HPD region holding each true
            parameter, ``(n,)`` (uniform when calibrated).
        max_deviation: ``max |coverage - level|``.
        area: ``mean(coverage - level)`` (negative: overconfident).
        ks_pvalue: Kolmogorov-Smirnov p-value of ``credibility`` against uniform.
        status: A :class:`CalibrationStatus`.

    """

    levels: np.ndarray
    coverage: np.ndarray
    coverage_low: np.ndarray
    coverage_high: np.ndarray
    credibility: np.ndarray
    max_deviation: float
    area: float
    ks_pvalue: float
    status: CalibrationStatus


class TarpResult(NamedTuple):
    """Tests of Accuracy with Random Points.

    Attributes:
        levels: Credibility levels.
        ecp: Expected coverage probability at each level.
        fractions: Per-test fraction of draws closer to the reference than the truth.
        atc: Area between the ECP curve and the diagonal (signed, mean).
        max_deviation: ``max |ecp - level|``.
        ks_pvalue: KS p-value of ``fractions`` against uniform.
        status: A :class:`CalibrationStatus`.

    """

    levels: np.ndarray
    ecp: np.ndarray
    fractions: np.ndarray
    atc: float
    max_deviation: float
    ks_pvalue: float
    status: CalibrationStatus


class SBCResult(NamedTuple):
    """Simulation-based calibration ranks.

    Attributes:
        ranks: Rank of each true parameter among its ``m`` marginal draws, ``(n, dim)``
            integers in ``[0, m]``.
        num_posterior_samples: ``m``.
        ks_pvalues: Per-parameter KS p-values of the normalised ranks.
        mean_rank_deviation: Per-parameter ``mean(rank / m) - 0.5`` (bias indicator).
        max_deviation: Largest ``|ECDF(rank / m) - u|`` over parameters.
        status: A :class:`CalibrationStatus`.

    """

    ranks: np.ndarray
    num_posterior_samples: int
    ks_pvalues: np.ndarray
    mean_rank_deviation: np.ndarray
    max_deviation: float
    status: CalibrationStatus


def _levels(num_levels: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, num_levels + 1)[1:]


def _verdict(fractions: np.ndarray, levels: np.ndarray, significance: float, tolerance: float):
    """Coverage of rank fractions at ``levels`` and its verdict (shared by coverage and TARP).

    Returns:
        ``(ecp, max_deviation, mean_deviation, ks_pvalue, status)``: the empirical coverage,
        its largest and mean departure from the diagonal, the KS p-value of the fractions
        against U(0, 1), and OVER-/UNDERCONFIDENT (by the sign of the mean departure) when
        the KS test rejects at ``significance`` *and* the largest departure exceeds
        ``tolerance``, else CALIBRATED.

    """
    ecp = _ecdf(fractions, levels)
    deviation = ecp - levels
    max_deviation = float(np.max(np.abs(deviation)))
    mean_deviation = float(deviation.mean())
    ks_pvalue = float(stats.kstest(fractions, "uniform").pvalue)
    if ks_pvalue < significance and max_deviation > tolerance:
        if mean_deviation < 0:
            status = CalibrationStatus.OVERCONFIDENT
        else:
            status = CalibrationStatus.UNDERCONFIDENT
    else:
        status = CalibrationStatus.CALIBRATED
    return ecp, max_deviation, mean_deviation, ks_pvalue, status


def _ecdf(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    return (values[None, :] < levels[:, None]).mean(axis=1)


def _check_common(significance: float, tolerance: float) -> tuple[float, float]:
    return check_fraction(significance, "significance"), check_fraction(tolerance, "tolerance")


def _check_samples(theta_true, samples) -> tuple[np.ndarray, np.ndarray]:
    theta_true = as_float_array(theta_true, "theta_true", ndim=(1, 2))
    if theta_true.ndim == 1:
        theta_true = theta_true[:, None]
    samples = as_float_array(samples, "samples", ndim=(2, 3))
    if samples.ndim == 2:
        samples = samples[..., None]
    if samples.shape[0] != theta_true.shape[0] or samples.shape[2] != theta_true.shape[1]:
        raise ValueError(
            "samples must have shape (n, num_posterior_samples, dim) matching theta_true "
            f"(n, dim) = {theta_true.shape}; got {samples.shape}"
        )
    if theta_true.shape[0] < 2:
        raise ValueError(f"need at least 2 test simulations; got {theta_true.shape[0]}")
    check_finite(theta_true, "theta_true")
    check_finite(samples, "samples")
    return theta_true, samples


def expected_coverage(
    log_prob_true: Float[Array, " n"] | np.ndarray,
    log_prob_samples: Float[Array, "n m"] | np.ndarray,
    *,
    num_levels: int = 50,
    significance: float = 0.01,
    tolerance: float = 0.05,
    throw: bool = False,
) -> CoverageResult:
    """Compute the expected coverage of highest-posterior-density (HPD) regions.

    For test ``i`` the credibility of the smallest HPD region holding the true parameter
    is the fraction of posterior draws whose log density exceeds that of the truth. The
    coverage at level ``a`` is the fraction of tests with credibility below ``a``; a
    calibrated posterior gives ``coverage(a) = a``. Log densities may be unnormalised
    (NLE, NRE), as only comparisons within one test are made.

    Args:
        log_prob_true: Posterior log density at each true parameter, ``(n,)``.
        log_prob_samples: Posterior log density of each draw, ``(n, m)``.
        num_levels: Number of credibility levels in ``(0, 1]``.
        significance: KS-test level for flagging.
        tolerance: Largest acceptable ``|coverage - level|``.
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        A :class:`CoverageResult`.

    Raises:
        ValueError: If the shapes disagree, ``n < 2``, or the draws' log densities are
            not finite (a true parameter may have ``-inf``: it is outside every region).
        UnreliableResultError: With ``throw=True``, on a failure status.

    References:
        Hermans et al. 2022, arXiv:2110.06581.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(500, 200)); z0 = rng.normal(size=500)
        >>> result = expected_coverage(-0.5 * z0**2, -0.5 * z**2)
        >>> result.status.name
        'CALIBRATED'

    """
    significance, tolerance = _check_common(significance, tolerance)
    log_prob_true = as_float_array(log_prob_true, "log_prob_true", ndim=1)
    log_prob_samples = as_float_array(log_prob_samples, "log_prob_samples", ndim=2)
    if log_prob_samples.shape[0] != log_prob_true.shape[0]:
        raise ValueError(
            f"log_prob_samples must have shape (n, m) with n = len(log_prob_true) = "
            f"{log_prob_true.shape[0]}; got {log_prob_samples.shape}"
        )
    if log_prob_true.shape[0] < 2:
        raise ValueError(f"need at least 2 test simulations; got {log_prob_true.shape[0]}")
    if np.isnan(log_prob_true).any() or np.isposinf(log_prob_true).any():
        raise ValueError("log_prob_true must not be NaN or +inf")
    check_finite(log_prob_samples, "log_prob_samples")
    credibility = (log_prob_samples > log_prob_true[:, None]).mean(axis=1)
    levels = _levels(num_levels)
    coverage, max_deviation, area, ks_pvalue, status = _verdict(
        credibility, levels, significance, tolerance
    )
    count = coverage * credibility.size
    low = stats.beta.ppf(0.025, count + 0.5, credibility.size - count + 0.5)
    high = stats.beta.ppf(0.975, count + 0.5, credibility.size - count + 0.5)
    result = CoverageResult(
        levels=levels,
        coverage=coverage,
        coverage_low=low,
        coverage_high=high,
        credibility=credibility,
        max_deviation=max_deviation,
        area=area,
        ks_pvalue=ks_pvalue,
        status=status,
    )
    return check(result, throw)


def tarp(
    key: PRNGKeyArray,
    theta_true: Float[Array, "n dim"] | np.ndarray,
    samples: Float[Array, "n m dim"] | np.ndarray,
    *,
    references: Float[Array, "n dim"] | np.ndarray | None = None,
    num_levels: int = 50,
    significance: float = 0.01,
    tolerance: float = 0.05,
    throw: bool = False,
) -> TarpResult:
    """TARP expected coverage probability with random reference points.

    Parameters are normalised by the range of ``theta_true`` (as the ``tarp`` package
    does with ``norm=True``); each test gets a reference point drawn uniformly in the
    unit box unless ``references`` is given. For test ``i`` the statistic is the
    fraction of draws closer to the reference than the truth is; calibrated posteriors
    make it uniform.

    Args:
        key: JAX PRNG key for the reference points.
        theta_true: True parameters, ``(n, dim)``.
        samples: Posterior draws, ``(n, m, dim)``.
        references: Optional reference points in normalised units, ``(n, dim)``.
        num_levels: Number of credibility levels.
        significance: KS-test level for flagging.
        tolerance: Largest acceptable ``|ecp - level|``.
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        A :class:`TarpResult`.

    Raises:
        ValueError: On inconsistent shapes or non-finite values.
        UnreliableResultError: With ``throw=True``, on a failure status.

    References:
        Lemos et al. 2023, arXiv:2302.03026.

    """
    check_key(key)
    significance, tolerance = _check_common(significance, tolerance)
    theta_true, samples = _check_samples(theta_true, samples)
    low, high = theta_true.min(axis=0), theta_true.max(axis=0)
    scale = np.where(high > low, high - low, 1.0)
    truth = (theta_true - low) / scale
    draws = (samples - low) / scale
    if references is None:
        references = np.asarray(jax.random.uniform(key, truth.shape), dtype=float)
    else:
        references = as_float_array(references, "references", ndim=2)
        if references.shape != truth.shape:
            raise ValueError(f"references must have shape {truth.shape}; got {references.shape}")
    distance_true = np.linalg.norm(truth - references, axis=-1)
    distance_draws = np.linalg.norm(draws - references[:, None, :], axis=-1)
    fractions = (distance_draws < distance_true[:, None]).mean(axis=1)
    levels = _levels(num_levels)
    ecp, max_deviation, atc, ks_pvalue, status = _verdict(
        fractions, levels, significance, tolerance
    )
    result = TarpResult(
        levels=levels,
        ecp=ecp,
        fractions=fractions,
        atc=atc,
        max_deviation=max_deviation,
        ks_pvalue=ks_pvalue,
        status=status,
    )
    return check(result, throw)


def sbc_ranks(
    theta_true: Float[Array, "n dim"] | np.ndarray,
    samples: Float[Array, "n m dim"] | np.ndarray,
    *,
    significance: float = 0.01,
    tolerance: float = 0.05,
    throw: bool = False,
) -> SBCResult:
    """Simulation-based calibration: rank of each true parameter among its draws.

    Ranks are uniform on ``{0, ..., m}`` for a calibrated posterior (draws should be
    nearly independent: thin MCMC chains first). A bias shows as a mean rank away from
    ``m / 2``; overconfidence as a U-shaped histogram. The per-parameter KS tests are
    Bonferroni-corrected.

    Args:
        theta_true: True parameters, ``(n, dim)``.
        samples: Posterior draws, ``(n, m, dim)``.
        significance: Family-wise KS-test level.
        tolerance: Largest acceptable ECDF distance.
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        An :class:`SBCResult`.

    Raises:
        ValueError: On inconsistent shapes or non-finite values.
        UnreliableResultError: With ``throw=True``, on a failure status.

    References:
        Talts et al. 2018, arXiv:1804.06788.

    """
    significance, tolerance = _check_common(significance, tolerance)
    theta_true, samples = _check_samples(theta_true, samples)
    m = samples.shape[1]
    ranks = (samples < theta_true[:, None, :]).sum(axis=1)
    normalised = (ranks + 0.5) / (m + 1)
    dim = theta_true.shape[1]
    ks = np.array([stats.kstest(normalised[:, j], "uniform").pvalue for j in range(dim)])
    mean_deviation = normalised.mean(axis=0) - 0.5
    levels = _levels(50)
    max_deviation = float(
        max(np.max(np.abs(_ecdf(normalised[:, j], levels) - levels)) for j in range(dim))
    )
    flagged = (ks < significance / dim) & (max_deviation > tolerance)
    if not flagged.any():
        status = CalibrationStatus.CALIBRATED
    else:
        # A shift moves the mean rank; overconfidence piles ranks at both ends.
        tails = ((normalised < 0.1) | (normalised > 0.9)).mean(axis=0)
        j = int(np.argmin(ks))
        if abs(mean_deviation[j]) > 0.05:
            status = CalibrationStatus.BIASED
        elif tails[j] > 0.2:
            status = CalibrationStatus.OVERCONFIDENT
        elif tails[j] < 0.2:
            status = CalibrationStatus.UNDERCONFIDENT
        else:
            status = CalibrationStatus.MISCALIBRATED
    result = SBCResult(
        ranks=ranks,
        num_posterior_samples=m,
        ks_pvalues=ks,
        mean_rank_deviation=mean_deviation,
        max_deviation=max_deviation,
        status=status,
    )
    return check(result, throw)
