"""Posterior validation: coverage, TARP, SBC, C2ST, a report and a predictive check."""

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
    "PredictiveCheckResult",
    "PredictiveStatus",
    "SBCResult",
    "TarpResult",
    "c2st",
    "calibration_report",
    "expected_coverage",
    "posterior_predictive_check",
    "report_to_dict",
    "sbc_ranks",
    "tarp",
]
