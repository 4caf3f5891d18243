"""Negative controls on a Gaussian with known posterior (analytic, no training).

theta ~ N(0, I_2), x = theta + N(0, I_2): the posterior is N(x / 2, I / 2).
"""

import jax
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.validation import (
    CalibrationStatus,
    c2st,
    calibration_report,
    expected_coverage,
    report_to_dict,
    sbc_ranks,
    tarp,
)

N, M, DIM = 1000, 200, 2
SD = np.sqrt(0.5)


def _gaussian_draws(seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(N, DIM))
    x = theta + rng.normal(size=(N, DIM))
    mean = x / 2 + shift * SD
    sd = scale * SD
    draws = mean[:, None] + sd * rng.normal(size=(N, M, DIM))

    def log_q(t, loc):
        return (-0.5 * ((t - loc) / sd) ** 2).sum(-1)

    return theta, draws, log_q(theta, mean), log_q(draws, mean[:, None])


def _gaussian_report(seed, shift=0.0, scale=1.0, throw=False):
    return calibration_report(
        jax.random.key(seed), *_gaussian_draws(seed, shift, scale), throw=throw
    )


def test_exact_posterior_passes():
    report = _gaussian_report(0)
    assert report.is_calibrated, report.flags
    assert report.coverage.max_deviation < 0.05
    assert report.status is CalibrationStatus.CALIBRATED


def test_overconfident_posterior_is_flagged():
    report = _gaussian_report(2, scale=0.5)
    assert not report.is_calibrated
    assert report.coverage.status is CalibrationStatus.OVERCONFIDENT
    assert report.sbc.status is CalibrationStatus.OVERCONFIDENT
    assert report.coverage.area < -0.1


def test_half_sigma_shift_is_flagged():
    report = _gaussian_report(3, shift=0.5)
    assert not report.is_calibrated
    assert report.coverage.status is not CalibrationStatus.CALIBRATED
    assert report.sbc.status is CalibrationStatus.BIASED
    np.testing.assert_array_less(report.sbc.mean_rank_deviation, -0.05)


def test_underconfident_posterior_is_flagged():
    report = _gaussian_report(4, scale=2.0)
    assert report.coverage.status is CalibrationStatus.UNDERCONFIDENT


def test_report_to_dict_is_json_ready():
    import json

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    text = json.dumps(report_to_dict(_gaussian_report(2, scale=0.5)), allow_nan=False)
    summary = json.loads(text, parse_constant=refuse)
    assert "expected_coverage" in summary
    assert summary["status"] == "overconfident"
    assert summary["status_message"] == CalibrationStatus.OVERCONFIDENT.value
    assert summary["sbc"]["status"] == "overconfident"


def test_severities():
    assert CalibrationStatus.CALIBRATED.is_ok
    assert CalibrationStatus.UNDERCONFIDENT.is_warning
    for status in ("OVERCONFIDENT", "BIASED", "MISCALIBRATED"):
        assert CalibrationStatus[status].is_failure


def test_failed_checks_throw_with_the_result(key):
    """Forced failure: an overconfident posterior raises with throw=True, each check too."""
    with pytest.raises(UnreliableResultError, match="overconfident") as error:
        _gaussian_report(2, scale=0.5, throw=True)
    assert error.value.result.coverage.area < -0.1
    assert _gaussian_report(4, scale=2.0, throw=True).status is CalibrationStatus.UNDERCONFIDENT
    theta, draws, log_true, log_draws = _gaussian_draws(2, scale=0.5)
    for check in (
        lambda: sbc_ranks(theta, draws, throw=True),
        lambda: tarp(key, theta, draws, throw=True),
        lambda: expected_coverage(log_true, log_draws, throw=True),
    ):
        with pytest.raises(UnreliableResultError, match="CalibrationStatus.OVERCONFIDENT"):
            check()


def test_credibility_uniform_and_coverage_curve_monotone():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(300, 100))
    result = expected_coverage(-0.5 * rng.normal(size=300) ** 2, -0.5 * z**2)
    assert np.all(np.diff(result.coverage) >= 0)
    assert np.all(result.coverage_low <= result.coverage)
    assert np.all(result.coverage <= result.coverage_high)


def test_tarp_same_key_same_result(key):
    rng = np.random.default_rng(6)
    theta, draws = rng.normal(size=(50, 2)), rng.normal(size=(50, 30, 2))
    np.testing.assert_array_equal(tarp(key, theta, draws).ecp, tarp(key, theta, draws).ecp)


def test_validation_errors(key):
    with pytest.raises(ValueError, match="log_prob_samples must have shape"):
        expected_coverage(np.zeros(5), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="must not be NaN"):
        expected_coverage(np.array([np.nan, 0.0]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at least 2 test simulations"):
        expected_coverage(np.zeros(1), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="samples must have shape"):
        sbc_ranks(np.zeros((5, 2)), np.zeros((5, 10, 3)))
    with pytest.raises(ValueError, match="tolerance must lie"):
        sbc_ranks(np.zeros((5, 2)), np.zeros((5, 10, 2)), tolerance=2.0)
    with pytest.raises(ValueError, match="references must have shape"):
        tarp(key, np.zeros((5, 2)), np.zeros((5, 10, 2)), references=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="give both"):
        calibration_report(key, np.zeros((5, 2)), np.zeros((5, 10, 2)), log_prob_true=np.zeros(5))
    with pytest.raises(ValueError, match="same dim"):
        c2st(key, np.zeros((20, 2)), np.zeros((20, 3)))
    with pytest.raises(ValueError, match="samples must be finite"):
        c2st(key, np.full((20, 2), np.nan), np.zeros((20, 2)))


def test_c2st_separates_shifted_samples(key):
    rng = np.random.default_rng(7)
    same = c2st(key, rng.normal(size=(400, 2)), rng.normal(size=(400, 2)), num_epochs=20)
    shifted = c2st(key, rng.normal(size=(400, 2)), 2.0 + rng.normal(size=(400, 2)), num_epochs=20)
    assert same.accuracy < 0.6
    assert shifted.accuracy > 0.8
