"""One report holding every calibration check, with a single verdict."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key
from astrobayes._status import Status, check, worst
from astrobayes.validation.coverage import (
    CalibrationStatus,
    CoverageResult,
    SBCResult,
    TarpResult,
    expected_coverage,
    sbc_ranks,
    tarp,
)

__all__ = ["CalibrationReport", "calibration_report", "report_to_dict"]


class CalibrationReport(NamedTuple):
    """Expected coverage, TARP and SBC reported together.

    The checks see different failures: on a Gaussian with known posterior, TARP with
    random reference points can miss a posterior shifted by half a standard deviation
    that expected coverage and SBC catch. The report is flagged when any check is.

    Attributes:
        coverage: :class:`CoverageResult` (``None`` without log densities).
        tarp: :class:`TarpResult`.
        sbc: :class:`SBCResult`.
        is_calibrated: ``True`` when no check flags the posterior.
        flags: One message per flagging check.
        status: The most severe status of the checks (``CALIBRATED`` when none flags;
            the first flagged one among equally severe).

    """

    coverage: CoverageResult | None
    tarp: TarpResult
    sbc: SBCResult
    is_calibrated: bool
    flags: tuple[str, ...]
    status: CalibrationStatus


def calibration_report(
    key: PRNGKeyArray,
    theta_true: Float[Array, "n dim"] | np.ndarray,
    samples: Float[Array, "n m dim"] | np.ndarray,
    log_prob_true: Float[Array, " n"] | np.ndarray | None = None,
    log_prob_samples: Float[Array, "n m"] | np.ndarray | None = None,
    *,
    significance: float = 0.01,
    tolerance: float = 0.05,
    throw: bool = False,
) -> CalibrationReport:
    """Run expected coverage (when log densities are given), TARP and SBC.

    Args:
        key: JAX PRNG key (TARP reference points).
        theta_true: True parameters of the test simulations, ``(n, dim)``.
        samples: Posterior draws for each test, ``(n, m, dim)``.
        log_prob_true: Optional log posterior at each truth, ``(n,)``.
        log_prob_samples: Optional log posterior of each draw, ``(n, m)``.
        significance: KS-test level of every check.
        tolerance: Largest acceptable distance of each curve from the diagonal.
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            report) when a check fails (overconfident, biased or miscalibrated).

    Returns:
        A :class:`CalibrationReport`.

    Raises:
        ValueError: If only one of the two log-density arrays is given, or on bad shapes.
        UnreliableResultError: With ``throw=True``, on a failure status.

    References:
        Hermans et al. 2022, arXiv:2110.06581; Lemos et al. 2023, arXiv:2302.03026;
        Talts et al. 2018, arXiv:1804.06788.

    """
    check_key(key)
    if (log_prob_true is None) != (log_prob_samples is None):
        raise ValueError("give both log_prob_true and log_prob_samples, or neither")
    coverage = None
    if log_prob_true is not None:
        coverage = expected_coverage(
            log_prob_true, log_prob_samples, significance=significance, tolerance=tolerance
        )
    tarp_result = tarp(key, theta_true, samples, significance=significance, tolerance=tolerance)
    sbc = sbc_ranks(theta_true, samples, significance=significance, tolerance=tolerance)
    flags = []
    statuses = []
    for name, result in (("expected coverage", coverage), ("TARP", tarp_result), ("SBC", sbc)):
        if result is not None and result.status is not CalibrationStatus.CALIBRATED:
            flags.append(f"{name}: {result.status.value}")
            statuses.append(result.status)
    result = CalibrationReport(
        coverage=coverage,
        tarp=tarp_result,
        sbc=sbc,
        is_calibrated=not flags,
        flags=tuple(flags),
        status=worst(statuses) if statuses else CalibrationStatus.CALIBRATED,
    )
    return check(result, throw)


def _status_fields(status: Status) -> dict[str, str]:
    """The package's JSON form of a status: lower-case name and its message."""
    return {"status": status.name.lower(), "status_message": status.value}


def report_to_dict(report: CalibrationReport) -> dict:
    """Return a JSON-ready summary of a :class:`CalibrationReport` (curves included).

    Statuses appear as in :func:`astrobayes.io.to_jsonable`: ``"status"`` holds the
    lower-case name and ``"status_message"`` the message.
    """

    def clean(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        return value

    out = {
        "is_calibrated": report.is_calibrated,
        **_status_fields(report.status),
        "flags": list(report.flags),
    }
    if report.coverage is not None:
        c = report.coverage
        out["expected_coverage"] = {
            "levels": clean(c.levels),
            "coverage": clean(c.coverage),
            "max_deviation": c.max_deviation,
            "area": c.area,
            "ks_pvalue": c.ks_pvalue,
            **_status_fields(c.status),
        }
    t = report.tarp
    out["tarp"] = {
        "levels": clean(t.levels),
        "ecp": clean(t.ecp),
        "atc": t.atc,
        "max_deviation": t.max_deviation,
        "ks_pvalue": t.ks_pvalue,
        **_status_fields(t.status),
    }
    s = report.sbc
    out["sbc"] = {
        "ks_pvalues": clean(s.ks_pvalues),
        "mean_rank_deviation": clean(s.mean_rank_deviation),
        "max_deviation": s.max_deviation,
        "num_posterior_samples": s.num_posterior_samples,
        **_status_fields(s.status),
    }
    return out
