"""validation.intervals: coverage with honest errors, verdicts, split-conformal quantiles."""

import numpy as np
import pytest

from astrobayes.validation.coverage import CalibrationStatus
from astrobayes.validation.intervals import (
    IntervalCoverage,
    conformal_quantile,
    coverage_verdict,
    interval_coverage,
)


def test_binomial_error_is_calibrated_over_repeats():
    # 400 repeats of 500 independent N(0,1) points in [-1.645, 1.645] (exactly 90%):
    # the z-scores (fraction - 0.9) / error must have unit spread.
    rng = np.random.default_rng(0)
    z = []
    for _ in range(400):
        result = interval_coverage(rng.normal(size=500), -1.6448536, 1.6448536)
        z.append((result.fraction - 0.9) / result.error)
    z = np.array(z)
    # sd of the sample sd of 400 unit normals ~ 1/sqrt(800) = 0.035
    assert abs(z.std() - 1.0) < 4 * 0.035
    assert abs(z.mean()) < 4 / np.sqrt(400)


def test_cluster_error_is_honest_for_correlated_pixels():
    # Each replicate is one shared draw for all 64 "pixels" (fully correlated): the
    # binomial error over 64*R points is far too small, the per-replicate one is right.
    rng = np.random.default_rng(1)
    fractions, errors, naive = [], [], []
    for _ in range(200):
        truth = np.repeat(rng.normal(size=(50, 1)), 64, axis=1)
        clustered = interval_coverage(truth, -1.6448536, 1.6448536, axis=0)
        binomial = interval_coverage(truth, -1.6448536, 1.6448536)
        fractions.append(clustered.fraction)
        errors.append(clustered.error)
        naive.append(binomial.error)
    spread = np.std(fractions)
    assert abs(np.mean(errors) / spread - 1.0) < 0.2
    # Negative control: the binomial error understates the spread ~8x here.
    assert np.mean(naive) / spread < 0.2


def test_where_mask_and_axis_weighting():
    truth = np.array([[0.0, 5.0], [0.0, 0.0], [5.0, 5.0]])
    result = interval_coverage(
        truth, -1.0, 1.0, where=np.array([[True, True], [True, False], [True, True]])
    )
    assert result.count == 5
    assert result.fraction == pytest.approx(2 / 5)
    clustered = interval_coverage(truth, -1.0, 1.0, axis=0)
    assert clustered.groups == 3
    assert clustered.fraction == pytest.approx(3 / 6)


def test_verdict_and_negative_controls():
    good = IntervalCoverage(0.905, 0.01, 900, 900)
    assert coverage_verdict(good, 0.9) is CalibrationStatus.CALIBRATED
    low = IntervalCoverage(0.80, 0.01, 900, 900)
    assert coverage_verdict(low, 0.9) is CalibrationStatus.OVERCONFIDENT
    assert coverage_verdict(IntervalCoverage(0.99, 0.003, 900, 900), 0.9) is (
        CalibrationStatus.UNDERCONFIDENT
    )
    # A tolerance widens the band: 0.86 passes "90% +- 3%" with error 0.005 (3 sigma).
    assert coverage_verdict(IntervalCoverage(0.86, 0.005, 5000, 5000), 0.9, tolerance=0.03).is_ok
    # Full coverage by chance is judged with the nominal binomial error, not zero.
    assert coverage_verdict(IntervalCoverage(1.0, 0.0, 10, 10), 0.9).is_ok
    # Under-scaled intervals on real draws are flagged.
    truth = np.random.default_rng(2).normal(size=20_000)
    assert coverage_verdict(interval_coverage(truth, -0.5 * 1.645, 0.5 * 1.645), 0.9).is_failure


def test_conformal_quantile_guarantee_and_rank():
    assert conformal_quantile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    # (74 + 1) * 0.68 = 51.00000000000001 in floating point: still rank 51.
    assert conformal_quantile(np.arange(1.0, 75.0), 0.68) == 51.0
    # Coverage guarantee over repeats: P(new <= q) >= level, close to it.
    rng = np.random.default_rng(3)
    hits = [
        rng.exponential() <= conformal_quantile(rng.exponential(size=19), 0.9) for _ in range(4000)
    ]
    assert abs(np.mean(hits) - 0.9) < 4 * np.sqrt(0.09 / 4000)


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="broadcast"):
        interval_coverage(np.zeros(3), np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="lower end"):
        interval_coverage(np.zeros(3), 1.0, -1.0)
    with pytest.raises(ValueError, match="truth must be finite"):
        interval_coverage(np.array([np.nan, 0.0]), -1.0, 1.0)
    with pytest.raises(ValueError, match="at least 2 replicates"):
        interval_coverage(np.zeros((1, 4)), -1.0, 1.0, axis=0)
    with pytest.raises(ValueError, match="axis"):
        interval_coverage(np.zeros((2, 4)), -1.0, 1.0, axis=2)
    with pytest.raises(TypeError, match="truth"):
        interval_coverage("abc", -1.0, 1.0)
    with pytest.raises(ValueError, match="at least 6 calibration scores"):
        conformal_quantile(np.ones(5), 0.9)
    with pytest.raises(ValueError, match="level"):
        conformal_quantile(np.ones(5), 1.5)
    with pytest.raises(TypeError, match="IntervalCoverage"):
        coverage_verdict((0.9, 0.01, 10, 10), 0.9)
