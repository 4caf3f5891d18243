"""Posterior validation: expected coverage, TARP, SBC ranks, C2ST and a combined report."""

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
from astrobayes.validation.report import CalibrationReport, calibration_report, report_to_dict

__all__ = [
    "C2STResult",
    "CalibrationReport",
    "CalibrationStatus",
    "CoverageResult",
    "SBCResult",
    "TarpResult",
    "c2st",
    "calibration_report",
    "expected_coverage",
    "report_to_dict",
    "sbc_ranks",
    "tarp",
]
