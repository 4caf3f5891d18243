"""Posterior validation: coverage, TARP, SBC, C2ST, intervals, a report, a predictive check.

Interval coverage with honest errors and split-conformal quantiles live in
:mod:`astrobayes.validation.intervals`, the one implementation every unit uses.
"""

from astrobayes.validation.c2st import C2STResult, c2st
from astrobayes.validation.coverage import (
    CalibrationStatus,
    CoverageResult,
    SBCResult,
    TarpResult,
    expected_coverage,
    sbc_ranks,
    tarp,
)
from astrobayes.validation.intervals import (
    IntervalCoverage,
    conformal_quantile,
    coverage_verdict,
    interval_coverage,
)
from astrobayes.validation.predictive import (
    PredictiveCheckResult,
    PredictiveStatus,
    posterior_predictive_check,
)
from astrobayes.validation.report import CalibrationReport, calibration_report, report_to_dict

__all__ = [
    "C2STResult",
    "CalibrationReport",
    "CalibrationStatus",
    "CoverageResult",
    "IntervalCoverage",
    "PredictiveCheckResult",
    "PredictiveStatus",
    "SBCResult",
    "TarpResult",
    "c2st",
    "calibration_report",
    "conformal_quantile",
    "coverage_verdict",
    "expected_coverage",
    "interval_coverage",
    "posterior_predictive_check",
    "report_to_dict",
    "sbc_ranks",
    "tarp",
]
