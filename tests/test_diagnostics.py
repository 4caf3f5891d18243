"""Tests of astrobayes.diagnostics (R-hat, ESS, Kish, tail index, batch means) and evidence.bayes_factor."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.signal import lfilter

from astrobayes.diagnostics import (
    effective_sample_size,
    integrated_autocorrelation_time,
    kish_effective_sample_size,
    move_fractions,
    pareto_tail_index,
    split_rhat,
    standardised_kurtosis,
    stationarity,
    weighted_batch_means,
)
from astrobayes.evidence import jeffreys_reading, log_bayes_factor

pytestmark = pytest.mark.usefixtures("strict_dtypes")


def _ar1(rng, rho, shape):
    """AR(1) series along the last axis with unit stationary variance."""
    noise = rng.standard_normal(shape)
    noise[..., 1:] *= np.sqrt(1.0 - rho**2)
    return lfilter([1.0], [1.0, -rho], noise, axis=-1)


@pytest.mark.parametrize("shape", [-0.3, 0.3, 0.8])
def test_pareto_tail_index_recovers_generalised_pareto_shape(shape):
    # 10^6 draws: the tail holds 3 sqrt(n) = 3000 values, so the standard error of k
    # is about (1 + k) / sqrt(3000) < 0.035; tolerance 0.1 is about 3 sigma.
    rng = np.random.default_rng(11)
    ratios = stats.genpareto(c=shape).rvs(size=1_000_000, random_state=rng)
    k = pareto_tail_index(np.log(ratios))
    assert abs(k - shape) < 0.1, k


def test_pareto_tail_index_is_shift_invariant_and_needs_20_values():
    log_r = np.log(stats.genpareto(c=0.3).rvs(size=5000, random_state=np.random.default_rng(1)))
    np.testing.assert_allclose(pareto_tail_index(log_r - 1e4), pareto_tail_index(log_r), atol=1e-8)
    assert np.isnan(pareto_tail_index(np.zeros(19)))
    assert pareto_tail_index(np.zeros(100)) == 0.0  # constant ratios: no tail


def test_autocorrelation_time_of_ar1():
    rho = 0.8
    series = _ar1(np.random.default_rng(2), rho, 200_000)
    tau = integrated_autocorrelation_time(series)
    truth = (1 + rho) / (1 - rho)
    assert abs(tau - truth) < 0.2 * truth, tau


def test_autocorrelation_time_of_iid_and_degenerate_series():
    tau = integrated_autocorrelation_time(np.random.default_rng(3).standard_normal(20_000))
    assert 1.0 <= tau < 1.2
    assert integrated_autocorrelation_time(np.ones(100)) == 1.0
    assert integrated_autocorrelation_time(np.arange(3.0)) == 1.0


def test_batch_means_error_of_iid_mean_is_sigma_over_sqrt_n():
    # Over many replicas the batch-means std matches both sigma / sqrt(n) and the
    # actual scatter of the means.
    sigma, n = 2.0, 4000
    rng = np.random.default_rng(4)
    means, stds = [], []
    for _ in range(200):
        r = rng.normal(5.0, sigma, n)
        out = weighted_batch_means([r[: n // 2], r[n // 2 :]], [np.ones(n // 2)] * 2, [50, 50])
        means.append(out.mean)
        stds.append(out.std)
        assert out.batch_means.size == 80
    truth = sigma / np.sqrt(n)
    # mean of 200 std estimates, each with ~8% relative error: 3% tolerance is ~5 sigma.
    np.testing.assert_allclose(np.mean(stds), truth, rtol=0.03)
    # scatter of 200 means: relative error 1/sqrt(400) = 5%; 15% is 3 sigma.
    np.testing.assert_allclose(np.std(means), truth, rtol=0.15)


def test_batch_means_with_weights_is_the_weighted_mean():
    rng = np.random.default_rng(5)
    r = [rng.uniform(size=300), rng.uniform(size=200)]
    w = [rng.uniform(size=300), np.zeros(200)]
    w[1][:100] = 1.0
    out = weighted_batch_means(r, w, [30, 30])
    expected = (np.sum(r[0] * w[0]) + np.sum(r[1][:100])) / (w[0].sum() + 100)
    np.testing.assert_allclose(out.mean, expected, rtol=1e-12)
    # batches of zero weight are dropped
    assert out.batch_means.size == 10 + 3  # the second chain's last 3 batches weigh 0
    single = weighted_batch_means([r[0]], [w[0]], [1000])
    assert np.isnan(single.std)
    assert single.batch_means.size == 1


def test_kish_ess_and_kurtosis():
    assert kish_effective_sample_size(np.ones(50)) == pytest.approx(50.0)
    assert kish_effective_sample_size(np.r_[1.0, np.zeros(9)]) == pytest.approx(1.0)
    assert kish_effective_sample_size(np.zeros(5)) == 0.0
    # the JAX path (usable inside jit/vmap) gives the same numbers per row
    w = jnp.asarray(np.random.default_rng(0).exponential(size=(3, 40)))
    np.testing.assert_allclose(
        np.asarray(jax.jit(kish_effective_sample_size)(w)),
        [kish_effective_sample_size(np.asarray(row, np.float64)) for row in w],
        rtol=1e-5,
    )
    x = np.random.default_rng(6).standard_normal(200_000)
    assert abs(standardised_kurtosis(x, np.ones_like(x)) - 3.0) < 0.1
    assert np.isnan(standardised_kurtosis(np.ones(5), np.ones(5)))


@pytest.mark.parametrize(
    ("value", "reading"),
    [
        (0.5, "inconclusive"),
        (-0.99, "inconclusive"),
        (1.5, "weak evidence for A"),
        (-2.0, "weak evidence for B"),
        (3.0, "moderate evidence for A"),
        (-6.0, "strong evidence for B"),
        (np.nan, "undefined"),
        (np.inf, "undefined"),
    ],
)
def test_jeffreys_reading(value, reading):
    assert jeffreys_reading(value) == reading


def test_log_bayes_factor_adds_errors_in_quadrature():
    a = SimpleNamespace(log_evidence=-10.0, log_evidence_std=0.3)
    b = SimpleNamespace(log_evidence=-13.0, log_evidence_std=0.4)
    bf = log_bayes_factor(a, b, "wcdm", "lcdm")
    assert bf.log_bayes_factor == pytest.approx(3.0)
    assert bf.log_bayes_factor_std == pytest.approx(0.5)
    assert bf.reading == "moderate evidence for wcdm"
    assert log_bayes_factor(b, a, "lcdm", "wcdm").reading == "moderate evidence for wcdm"


def test_log_bayes_factor_is_not_read_on_jeffreys_scale_when_an_estimate_failed():
    from astrobayes.evidence import EvidenceStatus
    from astrobayes.sampling import SamplingStatus

    ok = SimpleNamespace(log_evidence=-75.4, log_evidence_std=0.01, status=EvidenceStatus.OK)
    warned = SimpleNamespace(
        log_evidence=-69.3, log_evidence_std=0.02, status=EvidenceStatus.NOT_STATIONARY
    )
    failed = SimpleNamespace(
        log_evidence=-69.3, log_evidence_std=1.0, status=SamplingStatus.NOT_CONVERGED
    )
    # a warning keeps the reading; a failure on either side replaces it (the number stays)
    assert log_bayes_factor(warned, ok, "planet", "flat").reading == "strong evidence for planet"
    bf = log_bayes_factor(failed, ok, "planet", "flat")
    assert bf.log_bayes_factor == pytest.approx(6.1)
    assert bf.reading == "not read: the evidence of planet failed (not_converged)"
    assert log_bayes_factor(ok, failed, "flat", "planet").reading == (
        "not read: the evidence of planet failed (not_converged)"
    )


def test_split_rhat_is_one_for_iid_chains_and_flags_stuck_ones():
    rng = np.random.default_rng(1)
    iid = rng.standard_normal((4, 2000, 3))
    np.testing.assert_allclose(split_rhat(iid), 1.0, atol=0.01)
    stuck = iid + np.arange(4)[:, None, None]  # negative control: chains in different places
    assert np.all(split_rhat(stuck) > 1.5)
    drifting = iid + np.linspace(0, 3, 2000)[None, :, None]  # trend within each chain
    assert np.all(split_rhat(drifting) > 1.1)
    assert np.all(np.isnan(split_rhat(iid[:, :3])))
    with pytest.raises(
        ValueError, match=r"samples must have shape \(num_chains, num_samples, dim\)"
    ):
        split_rhat(iid[0])


def test_effective_sample_size_matches_the_ar1_value():
    rho, n, chains = 0.8, 20_000, 4
    series = _ar1(np.random.default_rng(2), rho, (chains, 1, n)).transpose(0, 2, 1)
    expected = chains * n * (1 - rho) / (1 + rho)  # tau = (1 + rho) / (1 - rho)
    ess = effective_sample_size(series)[0]
    # the relative error of an ESS estimate at tau = 9 over 8e4 draws is a few per cent
    assert abs(ess / expected - 1) < 0.1
    iid = np.random.default_rng(3).standard_normal((chains, n, 1))
    assert effective_sample_size(iid)[0] > 5 * ess  # negative control: correlation costs draws


def test_rhat_and_ess_are_scale_free_and_survive_huge_finite_draws():
    """R-hat and ESS of draws scaled by 2**600 are bit for bit those of the draws; scaled by
    1e200 (a chain blowing up in float64) they agree to rounding, with no overflow warning.
    Negative control: NumPy's own variance of those draws overflows."""
    rng = np.random.default_rng(7)
    scales = np.array([1e-3, 1.0, 50.0])
    draws = _ar1(rng, 0.6, (4, 3, 400)).transpose(0, 2, 1) * scales
    draws[1] += 2.0 * scales  # one chain off: R-hat well above 1 in every column
    rhat, ess = split_rhat(draws), effective_sample_size(draws)
    assert np.all(rhat > 1.05)
    np.testing.assert_array_equal(split_rhat(draws * 2.0**600), rhat)
    np.testing.assert_array_equal(effective_sample_size(draws * 2.0**600), ess)
    huge = draws * 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(split_rhat(huge), rhat, rtol=1e-12)
        np.testing.assert_allclose(effective_sample_size(huge), ess, rtol=1e-12)
    with pytest.warns(RuntimeWarning, match="overflow"):
        np.var(huge, axis=1)


def test_effective_sample_size_in_blocks_equals_one_pass(monkeypatch):
    # Many dimensions (an image's pixels) go through the FFT in blocks of columns, so the
    # working memory stays bounded; the blocks must not change a single value.
    import astrobayes.diagnostics as diagnostics

    draws = _ar1(np.random.default_rng(4), 0.5, (3, 7, 200)).transpose(0, 2, 1)  # 7 dims
    whole = effective_sample_size(draws)
    monkeypatch.setattr(diagnostics, "_ESS_BLOCK_ELEMENTS", 3 * 512 * 2)  # 2 columns a block
    blocks = []
    one_block = diagnostics._ess_columns
    monkeypatch.setattr(
        diagnostics, "_ess_columns", lambda x, size: blocks.append(x.shape[2]) or one_block(x, size)
    )
    blocked = effective_sample_size(draws)
    assert blocks == [2, 2, 2, 1]  # the blocked path ran (FFT length 512 for 200 draws)
    np.testing.assert_array_equal(blocked, whole)
    assert effective_sample_size(draws[:, :, :0]).shape == (0,)


def test_prior_edge_density_reads_a_posterior_cut_by_the_prior():
    from astrobayes.diagnostics import prior_edge_density

    rng = np.random.default_rng(0)
    n = 12_000
    # posterior = prior (uniform): highest density at both edges. 20 bins of ~600 draws:
    # the largest of 20 Poisson(600) counts is ~650, so the ratio is ~0.92 +- 0.04.
    at_low, at_high = prior_edge_density(rng.uniform(0.0, 1.0, n), 0.0, 1.0)
    assert at_low > 0.8
    assert at_high > 0.8
    # a half-normal against its edge: the edge bin is the peak
    assert prior_edge_density(np.abs(rng.normal(size=n)), 0.0, None)[0] == 1.0
    # negative controls: a posterior well inside, and a narrow one near (6 sigma), not at,
    # the edge; an open side is nan
    assert prior_edge_density(rng.normal(0.5, 0.05, n), 0.0, 1.0) == (0.0, 0.0)
    at_low, at_high = prior_edge_density(rng.normal(0.03, 0.005, n), 0.0, None)
    assert at_low == 0.0
    assert np.isnan(at_high)
    with pytest.raises(ValueError, match="outside the prior's low edge 0.0: 1 do"):
        prior_edge_density(np.array([-0.1, 0.5]), 0.0, 1.0)
    with pytest.raises(ValueError, match="non-empty array of finite numbers"):
        prior_edge_density(np.array([np.nan]), 0.0, 1.0)
    with pytest.raises(ValueError, match="num_bins must be an integer >= 2; got 1"):
        prior_edge_density(np.array([0.5]), 0.0, 1.0, num_bins=1)


# --- stationarity -------------------------------------------------------------------


def _metropolis(rng, num_chains, num_steps, dim, step):
    """The benchmark's random-walk Metropolis on N(0, I), as rows with multiplicities."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "stationarity_calibration.py"
    spec = importlib.util.spec_from_file_location("stationarity_calibration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.metropolis(rng, num_chains, num_steps, dim, step * np.sqrt(dim))


def test_stationarity_false_alarm_rate_is_at_most_its_significance():
    # 300 stationary AR(1) data sets (tau = 1 to 39, some short): at significance 0.05 the
    # test's failure rate must stay below 0.05 plus 3 binomial sigmas (0.088); Bonferroni
    # over the columns makes it conservative, so no lower bound is asserted.
    rng = np.random.default_rng(5)
    failures, cases = 0, [(2, 300, 2, 0.0), (4, 400, 5, 0.8), (8, 1000, 3, 0.95)]
    for num_chains, num_samples, dim, rho in cases:
        for _ in range(100):
            x = _ar1(rng, rho, (num_chains, dim, num_samples)).transpose(0, 2, 1)
            result = stationarity(x, -0.5 * (x**2).sum(-1), significance=0.05)
            failures += not result.stationary
    assert failures / 300 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300), failures


def test_stationarity_finds_a_burn_in_and_the_fraction_that_removes_it():
    rng = np.random.default_rng(0)
    x = _ar1(rng, 0.9, (16, 2, 3000)).transpose(0, 2, 1)
    assert stationarity(x, -0.5 * (x**2).sum(-1)).stationary  # negative control
    # every walker starts far out and relaxes, as an emcee ensemble from a bad ball does
    x[:, :90] += 8.0 * np.exp(-np.arange(90) / 15.0)[None, :, None]
    result = stationarity(x, -0.5 * (x**2).sum(-1), names=["a", "b"])
    assert not result.stationary
    assert result.p_value < 1e-4
    assert result.burn_in == 0.05
    assert result.rhat > 1.01
    assert "burn_in=0.05" in result.summary()


def test_stationarity_fails_a_trend_that_no_burn_in_removes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1000, 2))
    assert stationarity(x).stationary  # negative control
    x += np.linspace(0.0, 1.0, 1000)[None, :, None]  # a drift of one sigma over the run
    result = stationarity(x)
    assert not result.stationary
    assert np.isnan(result.burn_in)
    assert "run longer chains" in result.summary()


def test_stationarity_leaves_chains_that_differ_but_are_each_stationary_to_rhat():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1000, 2))
    x[2:] += 5.0  # two chains in another mode for their whole length
    assert stationarity(x).stationary
    assert np.all(split_rhat(x) > 1.5)


def test_stationarity_sees_a_change_of_spread_through_the_folded_columns():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 2000, 1))
    x[:, :1000] *= 0.3  # the same mean, a narrower first half
    result = stationarity(x, names=["s"])
    assert not result.stationary
    assert result.column == "|s - median|"


def test_stationarity_reads_integer_weights_as_multiplicities():
    # A Metropolis chain stored as rows with repeat counts passes; the same rows taken as
    # unweighted draws would misstate the chain, so the weights are used, not ignored.
    rng = np.random.default_rng(3)
    samples, weights = _metropolis(rng, 4, 4000, 2, 2.4)
    lp = -0.5 * (samples**2).sum(-1)
    assert stationarity(samples, lp, weights).stationary
    expanded = [np.repeat(s, w.astype(int), axis=0) for s, w in zip(samples, weights, strict=True)]
    n = min(len(e) for e in expanded)
    steps = np.stack([e[:n] for e in expanded])
    assert stationarity(steps, -0.5 * (steps**2).sum(-1)).stationary
    burned = samples.copy()
    burned[:, :40] += 6.0
    assert not stationarity(burned, -0.5 * (burned**2).sum(-1), weights).stationary


def test_stationarity_rejects_bad_input_by_name():
    x = np.zeros((2, 10, 1))
    with pytest.raises(ValueError, match="samples must have shape"):
        stationarity(np.zeros((10, 1)))
    with pytest.raises(ValueError, match=r"log_posterior must have shape \(2, 10\)"):
        stationarity(x, np.zeros((2, 9)))
    with pytest.raises(ValueError, match="pieces_per_chain must be an integer >= 2"):
        stationarity(x, pieces_per_chain=1)
    with pytest.raises(ValueError, match="significance must be in"):
        stationarity(x, significance=0.0)
    with pytest.raises(ValueError, match="names must hold 1 names"):
        stationarity(x, names=["a", "b"])


def test_move_fractions_count_steps_of_multiplicity_rows():
    rows = np.array([[[0.0], [1.0], [2.0], [2.0]]])
    # rows with weights 3, 1, 2 and a zero-weight pad: 6 steps, 2 moves in 5 transitions
    assert move_fractions(rows, np.array([[3.0, 1.0, 2.0, 0.0]]))[0] == pytest.approx(0.4)
    # unweighted: the repeated last row is a step that did not move
    assert move_fractions(rows)[0] == pytest.approx(2 / 3)
