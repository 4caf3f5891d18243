"""Tests of the pure NUTS kernel (astrobayes.sampling.kernel) and the sampling status."""

from __future__ import annotations

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.io.checkpoint import NpzCheckpoint
from astrobayes.sampling import (
    NUTSConfig,
    SamplingStatus,
    build_nuts_steps,
    nuts_init,
    pathfinder_start,
    run_nuts,
    sample_nuts,
    sampling_diagnostics,
    warmup_schedule,
)


def _two_modes(x):
    return jnp.logaddexp(-0.5 * jnp.sum((x - 8.0) ** 2), -0.5 * jnp.sum((x + 8.0) ** 2))


def _shifted_normal(mean, x):
    return -0.5 * jnp.sum((x - mean) ** 2)


# ------------------------------------------------------------------------ status


def test_sampling_status_severity():
    assert SamplingStatus.OK.is_ok
    assert SamplingStatus.NOT_CONVERGED.is_failure
    assert SamplingStatus.NON_FINITE.is_failure
    for warning in ("DIVERGENCES", "HIGH_RHAT", "LOW_EFFECTIVE_SAMPLE_SIZE"):
        assert SamplingStatus[warning].is_warning
    assert "1.01" in SamplingStatus.HIGH_RHAT.value
    assert "arXiv:1903.08008" in SamplingStatus.HIGH_RHAT.value


def test_sampling_diagnostics_statuses():
    rng = np.random.default_rng(0)
    good = rng.normal(size=(4, 1000, 2))
    zeros = np.zeros((4, 1000))
    rhat, ess, status, messages = sampling_diagnostics(good, zeros, np.zeros(4))
    assert status is SamplingStatus.OK
    assert messages == ()
    assert rhat.shape == ess.shape == (2,)
    # one divergent transition is a warning
    _, _, status, _ = sampling_diagnostics(good, zeros, np.array([0, 1, 0, 0]))
    assert status is SamplingStatus.DIVERGENCES
    # chains offset by 0.2 sd: R-hat between 1.01 and 1.1
    shifted = good + 0.2 * np.arange(4)[:, None, None]
    rhat, _, status, _ = sampling_diagnostics(shifted, zeros, np.zeros(4))
    assert 1.01 < rhat.max() < 1.1
    assert status is SamplingStatus.HIGH_RHAT
    # chains offset by 3 sd: failure
    _, _, status, messages = sampling_diagnostics(
        good + 3.0 * np.arange(4)[:, None, None], zeros, np.zeros(4)
    )
    assert status is SamplingStatus.NOT_CONVERGED
    # strongly autocorrelated chains (a random walk): few effective draws
    walk = np.cumsum(rng.normal(size=(4, 1000, 1)), axis=1) * 0.01 + rng.normal(size=(4, 1, 1))
    _, ess, _, messages = sampling_diagnostics(walk, zeros, np.zeros(4))
    assert SamplingStatus.LOW_EFFECTIVE_SAMPLE_SIZE in messages
    bad = good.copy()
    bad[1, 3, 0] = np.nan
    _, _, status, _ = sampling_diagnostics(bad, zeros, np.zeros(4))
    assert status is SamplingStatus.NON_FINITE


def test_run_nuts_throw_on_chains_stuck_in_two_modes(key):
    # Two modes 16 sd apart, one chain started in each: R-hat >> 1.1, a failure.
    config = NUTSConfig(num_chains=2, num_warmup=10, num_samples=20, checkpoint_every=20)
    start = jnp.array([[-8.0], [8.0]])
    with pytest.raises(UnreliableResultError, match="split R-hat above 1.1") as info:
        run_nuts(key, _two_modes, start, config=config, throw=True)
    result = info.value.result
    assert result.status is SamplingStatus.NOT_CONVERGED
    assert result.rhat[0] > 1.1
    assert result.samples.shape == (2, 20, 1)


# ------------------------------------------------------------------------ kernel


def test_warmup_schedule_matches_stan_windows():
    stage, window_end = warmup_schedule(100)
    assert stage.shape == window_end.shape == (100,)
    # 15 fast steps, 75 slow steps (one window when this short), 10 fast steps
    assert not stage[:15].any()
    assert stage[15:90].all()
    assert not stage[90:].any()
    np.testing.assert_array_equal(np.flatnonzero(window_end), [89])


def test_sample_nuts_validates_its_arguments(key):
    with pytest.raises(ValueError, match=r"initial_positions must have shape \(num_chains, dim\)"):
        sample_nuts(key, _shifted_normal, 0.0, jnp.zeros(3), num_warmup=10, num_samples=5)
    with pytest.raises(ValueError, match="num_warmup must be >= 10"):
        sample_nuts(key, _shifted_normal, 0.0, jnp.zeros((2, 1)), num_warmup=5, num_samples=5)
    with pytest.raises(ValueError, match=r"target_acceptance_rate must lie in \(0, 1\)"):
        sample_nuts(
            key,
            _shifted_normal,
            0.0,
            jnp.zeros((2, 1)),
            num_warmup=10,
            num_samples=5,
            target_acceptance_rate=1.5,
        )


def test_steps_program_reuses_compiled_code_for_new_params(key):
    steps = build_nuts_steps(_shifted_normal)
    on = np.ones(5, bool)
    index, stage = np.arange(5), np.zeros(5, np.int32)
    keys = jax.random.split(key, 2)
    outs = []
    for mean in (jnp.array([0.0, 0.0]), jnp.array([3.0, 3.0])):
        state, adaptation = nuts_init(_shifted_normal, mean, jnp.zeros((2, 2)))
        outs.append(steps(mean, keys, state, adaptation, index, stage, ~on, ~on, on))
    assert steps._cache_size() == 1
    (_, _), first = outs[0]
    (_, _), second = outs[1]
    assert first.position.shape == (2, 5, 2)
    assert not np.array_equal(first.position, second.position)


@pytest.mark.slow
def test_sample_nuts_matches_run_nuts_and_the_target(key):
    mean = jnp.array([1.0, -2.0])
    start = jnp.zeros((4, 2))
    draws = sample_nuts(key, _shifted_normal, mean, start, num_warmup=200, num_samples=500)
    config = NUTSConfig(num_chains=4, num_warmup=200, num_samples=500, checkpoint_every=500)
    run = run_nuts(key, lambda x: _shifted_normal(mean, x), start, config=config)
    # one program in one call or in blocks of 100 steps: the same draws
    samples = np.asarray(draws.samples)  # float32, or float64 in a float64 session
    np.testing.assert_array_equal(samples, run.samples.astype(samples.dtype))
    np.testing.assert_array_equal(np.asarray(draws.is_divergent).sum(1), run.num_divergent)
    error = 1.0 / np.sqrt(run.ess)
    assert np.all(np.abs(run.samples.mean((0, 1)) - np.asarray(mean)) < 4.5 * error)
    assert run.status is SamplingStatus.OK
    # negative control: the wrong mean is detected at the same tolerance
    assert np.any(np.abs(run.samples.mean((0, 1)) - (np.asarray(mean) + 0.5)) > 4.5 * error)


def test_sequential_chains_take_the_same_steps_as_vectorized_ones(key):
    """Same keys and logic: the first steps agree to rounding (NUTS then amplifies it)."""
    with pytest.raises(ValueError, match="chain_method must be one of"):
        NUTSConfig(chain_method="parallel")
    with pytest.raises(ValueError, match="chain_method must be one of"):
        build_nuts_steps(_shifted_normal, chain_method="threads")
    mean = jnp.array([1.0, -2.0, 0.5])
    start = jax.random.normal(key, (3, 3))
    stage, window_end = warmup_schedule(100)
    on = np.ones(8, bool)
    positions = {}
    for method in ("vectorized", "sequential"):
        steps = build_nuts_steps(_shifted_normal, chain_method=method)
        state, adaptation = nuts_init(_shifted_normal, mean, start)
        (_, adaptation), info = steps(
            mean,
            jax.random.split(key, 3),
            state,
            adaptation,
            np.arange(8),
            stage[:8],
            window_end[:8],
            on,
            on,
        )
        positions[method] = np.asarray(info.position)
    assert positions["sequential"].shape == (3, 8, 3)
    np.testing.assert_allclose(positions["sequential"], positions["vectorized"], atol=1e-4)
    # negative control: another key gives other steps
    assert (
        np.abs(
            positions["sequential"]
            - np.asarray(
                steps(
                    mean,
                    jax.random.split(jax.random.key(9), 3),
                    *nuts_init(_shifted_normal, mean, start),
                    np.arange(8),
                    stage[:8],
                    window_end[:8],
                    on,
                    on,
                )[1].position
            )
        ).max()
        > 1e-2
    )


def test_fisher_mass_matrix_estimator_recovers_a_badly_scaled_gaussian(key):
    """nutpie's diagonal estimator: the adapted metric tracks the scales, the draws the target."""
    with pytest.raises(ValueError, match="mass_matrix_estimator must be one of"):
        NUTSConfig(mass_matrix_estimator="adam")
    with pytest.raises(ValueError, match="diagonal only"):
        NUTSConfig(mass_matrix_estimator="fisher", dense_mass=True)
    scales = np.array([0.01, 0.1, 1.0, 10.0])
    config = NUTSConfig(4, 300, 400, mass_matrix_estimator="fisher")
    run = run_nuts(
        key, lambda x: -0.5 * jnp.sum((x / scales) ** 2), jnp.zeros((4, 4)) + 0.01, config=config
    )
    assert run.status is SamplingStatus.OK
    std = run.samples.std(axis=(0, 1)) / scales
    # the relative error of a standard deviation from n effective draws is ~ 1/sqrt(2 n)
    tolerance = 4.5 / np.sqrt(2 * run.ess)
    assert np.all(np.abs(std - 1) < tolerance), (std, tolerance)
    assert np.any(np.abs(std / 1.25 - 1) > tolerance)  # negative control: 25% wider fails


def test_pooled_metric_is_the_covariance_of_all_chains_window_draws(key):
    """``pooled_metric``: every chain gets Stan's regularised covariance of all chains'
    draws in the last slow window (checked exactly), and the draws still match the target."""
    with pytest.raises(ValueError, match="pooled_metric=True needs"):
        NUTSConfig(pooled_metric=True, chain_method="sequential")
    with pytest.raises(ValueError, match="pooled_metric=True needs"):
        build_nuts_steps(_shifted_normal, pooled_metric=True, mass_matrix_estimator="fisher")
    chol = jnp.array([[1.0, 0.0, 0.0], [0.9, 0.5, 0.0], [-0.3, 0.2, 0.1]])

    def correlated(params, x):
        del params
        return -0.5 * jnp.sum(jax.scipy.linalg.solve_triangular(chol, x, lower=True) ** 2)

    num_chains, num_warmup = 4, 150
    stage, window_end = warmup_schedule(num_warmup)
    ends = np.flatnonzero(window_end)
    last = np.arange(ends[-2] + 1, ends[-1] + 1) if len(ends) > 1 else np.flatnonzero(stage)
    last = last[stage[last] == 1]
    on = np.ones(num_warmup, bool)
    start = 0.1 * jax.random.normal(key, (num_chains, 3))
    metrics = {}
    for pooled in (True, False):
        steps = build_nuts_steps(correlated, dense_mass=True, pooled_metric=pooled)
        state, adaptation = nuts_init(correlated, None, start, dense_mass=True)
        (_, adaptation), info = steps(
            None,
            jax.random.split(key, num_chains),
            state,
            adaptation,
            np.arange(num_warmup),
            stage,
            window_end,
            on,
            on,
        )
        metrics[pooled] = np.asarray(adaptation.inverse_mass_matrix, np.float64)
        window = np.asarray(info.position, np.float64)[:, last]
        draws = window.reshape(-1, 3) if pooled else window[0]
        n = len(draws)
        expected = n / (n + 5) * np.cov(draws.T) + 5 / (n + 5) * 1e-3 * np.eye(3)
        np.testing.assert_allclose(metrics[pooled][0], expected, rtol=2e-4, atol=1e-6)
    assert len(last) > 10
    # one metric for every chain when pooled; four different ones otherwise (the control)
    np.testing.assert_array_equal(metrics[True], np.broadcast_to(metrics[True][0], (4, 3, 3)))
    assert np.abs(metrics[False] - metrics[False][:1]).max() > 1e-3
    # the pooled dense metric's draws match the target's covariance (Monte Carlo error)
    config = NUTSConfig(4, 200, 400, dense_mass=True, pooled_metric=True)
    run = run_nuts(key, lambda x: correlated(None, x), start, config=config)
    assert run.status is SamplingStatus.OK
    truth = np.asarray(chol @ chol.T)
    draws = run.samples.reshape(-1, 3)
    # sd of a sample variance from n effective draws: sigma^2 sqrt(2 / n)
    error = np.diag(truth) * np.sqrt(2.0 / run.ess)
    assert np.all(np.abs(draws.var(0) - np.diag(truth)) < 4.5 * error)
    assert np.any(np.abs(draws.var(0) - 1.5 * np.diag(truth)) > 4.5 * error)  # control


def test_pooled_step_size_is_dual_averaging_on_the_chains_mean_acceptance(key):
    """``pooled_step_size``: every chain's step size is dual averaging fed the chains' mean
    acceptance rate (replayed here with BlackJAX's dual averaging), so the chains share one;
    without it each chain has its own (the control); and the draws match the target."""
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    with pytest.raises(ValueError, match="pooled_step_size=True needs chain_method='vectorized'"):
        NUTSConfig(pooled_step_size=True, chain_method="sequential")
    scales = jnp.array([0.1, 1.0, 3.0])

    def scaled(params, x):
        del params
        return -0.5 * jnp.sum((x / scales) ** 2)

    num_chains, num_steps = 4, 40
    start = jax.random.normal(key, (num_chains, 3))
    # fast-window adaptation only (stage 0, no window end): the step size alone moves
    schedule = (np.arange(num_steps), np.zeros(num_steps, np.int32))
    on, off = np.ones(num_steps, bool), np.zeros(num_steps, bool)
    step_sizes = {}
    for pooled in (True, False):
        steps = build_nuts_steps(scaled, pooled_step_size=pooled)
        state, adaptation = nuts_init(scaled, None, start)
        (_, adaptation), info = steps(
            None, jax.random.split(key, num_chains), state, adaptation, *schedule, off, on, on
        )
        step_sizes[pooled] = np.asarray(adaptation.step_size, np.float64)
        if pooled:
            da_init, da_update, _ = dual_averaging_adaptation(0.8)
            replay = da_init(jnp.float32(1.0))
            for rate in np.asarray(info.acceptance_rate).mean(axis=0):
                replay = da_update(replay, jnp.float32(rate))
            expected = float(np.exp(replay.log_step_size))
            np.testing.assert_allclose(step_sizes[True], expected, rtol=1e-4)
    np.testing.assert_array_equal(step_sizes[True], step_sizes[True][0])
    assert np.ptp(step_sizes[False]) > 1e-3 * step_sizes[False].mean()  # control
    config = NUTSConfig(4, 150, 300, pooled_metric=True, pooled_step_size=True)
    run = run_nuts(key, lambda x: scaled(None, x), start, config=config)
    assert run.status is SamplingStatus.OK
    np.testing.assert_array_equal(run.step_size, run.step_size[0])
    std = run.samples.std(axis=(0, 1)) / np.asarray(scales)
    tolerance = 4.5 / np.sqrt(2 * run.ess)  # relative error of an sd from n effective draws
    assert np.all(np.abs(std - 1) < tolerance), (std, tolerance)
    assert np.any(np.abs(std / 1.25 - 1) > tolerance)  # negative control: 25% wider fails


def test_max_tree_depth_caps_the_trajectories(key):
    """``max_tree_depth``: no transition takes more than ``2**depth - 1`` leapfrog steps,
    where the default's do (a badly scaled target with the identity metric, no adaptation)."""
    for bad in (0, 11, True, 8.0, "8"):
        with pytest.raises(ValueError, match="max_tree_depth must be an integer in"):
            NUTSConfig(max_tree_depth=bad)
    scales = jnp.array([0.01, 1.0])

    def scaled(params, x):
        del params
        return -0.5 * jnp.sum((x / scales) ** 2)

    num_steps = 20
    schedule = (np.arange(num_steps), np.zeros(num_steps, np.int32))
    on, off = np.ones(num_steps, bool), np.zeros(num_steps, bool)
    start = jnp.array([[0.0, 1.0], [0.0, -1.0]])
    most = {}
    for depth in (3, 10):
        steps = build_nuts_steps(scaled, max_tree_depth=depth)
        state, adaptation = nuts_init(scaled, None, start)
        adaptation = adaptation._replace(step_size=jnp.full(2, 0.005))
        _, info = steps(None, jax.random.split(key, 2), state, adaptation, *schedule, off, off, on)
        most[depth] = int(np.asarray(info.num_integration_steps).max())
    assert most[3] == 2**3 - 1
    assert most[10] > 2**3 - 1  # control: the default goes further


def test_gradient_initial_metric_is_nutpies_start(key):
    """``initial_metric="gradient"``: ``1 / |grad log p|`` at each start (diagonal or dense)."""
    with pytest.raises(ValueError, match="initial_metric must be one of"):
        NUTSConfig(initial_metric="hessian")
    scales = jnp.array([0.01, 1.0, 100.0])
    start = 1.0 + jax.random.uniform(key, (2, 3))

    def scaled(params, x):
        del params
        return -0.5 * jnp.sum((x / scales) ** 2)

    expected = np.asarray(scales**2 / start)  # 1 / |grad| = sigma^2 / |x|
    for dense in (False, True):
        _, adaptation = nuts_init(scaled, None, start, dense_mass=dense, initial_metric="gradient")
        imm = np.asarray(adaptation.inverse_mass_matrix)
        diagonal = np.diagonal(imm, axis1=1, axis2=2) if dense else imm
        np.testing.assert_allclose(diagonal, expected, rtol=1e-5)
        # the default start is the identity (the control)
        _, identity = nuts_init(scaled, None, start, dense_mass=dense)
        assert np.allclose(np.asarray(identity.inverse_mass_matrix), np.eye(3) if dense else 1.0)


# slow: compiles four NUTS warm-up programs; the behaviour (draws of parameters 1e-3 to 10
# apart match their variances) is checked in the fast suite by the test below
@pytest.mark.slow
def test_scale_free_shrinkage_is_stans_weights_toward_each_variance(key):
    """``metric_shrinkage="scale_free"``: ``n/(n+5) C + 5/(n+5) 1e-3 diag(C)`` at a window's
    end (checked exactly, diagonal and dense); Stan's ``1e-3 I`` target is the control."""
    with pytest.raises(ValueError, match="metric_shrinkage must be one of"):
        NUTSConfig(metric_shrinkage="ledoit_wolf")
    with pytest.raises(ValueError, match="needs mass_matrix_estimator='welford'"):
        NUTSConfig(metric_shrinkage="scale_free", mass_matrix_estimator="fisher")
    scales = np.array([1e-3, 1e-2, 1.0])

    def scaled(params, x):
        del params
        return -0.5 * jnp.sum((x / scales) ** 2)

    num_warmup = 100
    stage, window_end = warmup_schedule(num_warmup)
    window = np.flatnonzero(stage == 1)
    on = np.ones(num_warmup, bool)
    start = jnp.asarray(scales) * jax.random.normal(key, (2, 3))
    for dense in (False, True):
        metrics = {}
        for shrinkage in ("scale_free", "stan"):
            steps = build_nuts_steps(scaled, dense_mass=dense, metric_shrinkage=shrinkage)
            state, adaptation = nuts_init(scaled, None, start, dense_mass=dense)
            (_, adaptation), info = steps(
                None, jax.random.split(key, 2), state, adaptation,
                np.arange(num_warmup), stage, window_end, on, on,
            )  # fmt: skip
            metrics[shrinkage] = np.asarray(adaptation.inverse_mass_matrix, np.float64)[0]
            draws = np.asarray(info.position, np.float64)[0, window]
        n = len(draws)
        covariance = np.cov(draws.T)
        expected = n / (n + 5) * covariance + 5 / (n + 5) * 1e-3 * np.diag(np.diag(covariance))
        if not dense:
            expected = np.diag(expected)
        np.testing.assert_allclose(metrics["scale_free"], expected, rtol=2e-4, atol=1e-12)
        # Stan's target adds 5/(n+5) 1e-3 to every variance: ~100x the smallest one here
        stan_variances = np.diagonal(metrics["stan"]) if dense else metrics["stan"]
        assert stan_variances[0] > 10 * scales[0] ** 2
        assert not np.allclose(metrics["stan"], expected, rtol=0.1)


def test_scale_free_shrinkage_samples_parameters_of_very_different_scales(key):
    """Scales 1e-3 to 10: the draws match the target's variances (Monte Carlo error), and
    the adapted step size is several times Stan's shrinkage's on the same run."""
    scales = np.array([1e-3, 1e-2, 1.0, 10.0])
    start = jnp.asarray(scales) * jax.random.normal(key, (4, 4))
    runs = {}
    # Stan's run is the control of the adapted step size only, fixed at the end of
    # warm-up: a few draws suffice (its tiny steps make each draw ~1000 leapfrog steps)
    for shrinkage, num_samples in (("scale_free", 400), ("stan", 5)):
        config = NUTSConfig(4, 200, num_samples, metric_shrinkage=shrinkage)
        runs[shrinkage] = run_nuts(
            key, lambda x: -0.5 * jnp.sum((x / scales) ** 2), start, config=config
        )
    run = runs["scale_free"]
    assert run.status is SamplingStatus.OK
    variance = run.samples.var(axis=(0, 1)) / scales**2
    error = np.sqrt(2.0 / run.ess)  # relative sd of a sample variance from n draws
    assert np.all(np.abs(variance - 1) < 4.5 * error), (variance, error)
    assert np.any(np.abs(variance / 1.5 - 1) > 4.5 * error)  # control: 1.5x the variance
    assert np.median(run.step_size) > 3 * np.median(runs["stan"].step_size)


def _far_gaussian(params, x):
    del params
    chol = jnp.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.1, -0.2, 0.05]])
    return -0.5 * jnp.sum(jax.scipy.linalg.solve_triangular(chol, x - 3.0, lower=True) ** 2)


def test_pathfinder_start_lands_in_the_typical_set_with_the_targets_scales(key):
    """From points ~100 sd away, each chain starts inside the target's 99.99% region and
    its metric is within a factor 3 of the target's variances (the far points: control)."""
    far = 30.0 + jax.random.uniform(key, (3, 3))
    start = pathfinder_start(key, _far_gaussian, None, far)
    assert start.positions.shape == (3, 3)
    assert start.inverse_mass_matrix.shape == (3, 3)
    assert bool(start.succeeded.all())
    assert np.all(np.asarray(start.num_iterations) > 0)
    assert np.all(np.isfinite(np.asarray(start.elbo)))
    # -2 log p above the mode is chi-square with 3 degrees of freedom: 99.99% at 21.1
    chi2 = -2.0 * np.asarray(jax.vmap(lambda x: _far_gaussian(None, x))(start.positions))
    assert np.all(chi2 < 21.1), chi2
    far_chi2 = -2.0 * np.asarray(jax.vmap(lambda x: _far_gaussian(None, x))(far))
    assert np.all(far_chi2 > 21.1)  # control: where they came from
    chol = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.1, -0.2, 0.05]])
    variances = np.diag(chol @ chol.T)
    ratio = np.asarray(start.inverse_mass_matrix) / variances
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio
    dense = pathfinder_start(key, _far_gaussian, None, far, dense_mass=True)
    assert dense.inverse_mass_matrix.shape == (3, 3, 3)
    np.testing.assert_allclose(
        np.diagonal(np.asarray(dense.inverse_mass_matrix), axis1=1, axis2=2),
        np.asarray(start.inverse_mass_matrix),
        rtol=1e-4,
    )
    # pooled: every chain gets the equal-weight mixture's covariance, mean_c S_c + cov_c(m_c)
    # (paths stopped after 2 L-BFGS steps, so that their approximations differ)
    short = pathfinder_start(key, _far_gaussian, None, far, dense_mass=True, maxiter=2)
    covariances = np.asarray(short.inverse_mass_matrix, np.float64)
    means = np.asarray(short.means, np.float64)
    expected = covariances.mean(0) + np.cov(means.T, bias=True)
    for dense_mass in (True, False):
        pooled = pathfinder_start(
            key, _far_gaussian, None, far, dense_mass=dense_mass, pooled=True, maxiter=2
        )
        metric = np.asarray(pooled.inverse_mass_matrix, np.float64)
        for chain in range(3):
            want = expected if dense_mass else np.diag(expected)
            np.testing.assert_allclose(metric[chain], want, rtol=1e-3, atol=1e-7)
    assert not np.allclose(covariances[0], expected, rtol=1e-3)  # control: one path's own


def test_pathfinder_paths_compile_once_for_equal_settings(key):
    """Diagonal, dense and pooled starts with the same density, shapes and L-BFGS settings
    run one compiled path program; another ``maxiter`` builds a second (control); the
    program is dropped with the density."""
    from astrobayes.sampling import kernel

    def density(params, x):
        del params
        return -0.5 * jnp.sum((x - 1.0) ** 2)

    points = jnp.zeros((2, 2))
    for dense_mass, pooled in ((False, False), (True, False), (True, True)):
        start = pathfinder_start(
            key, density, None, points, dense_mass=dense_mass, pooled=pooled, maxiter=5
        )
        assert bool(start.succeeded.all())
    program = kernel._PATH_PROGRAMS[density]
    assert program._cache_size() == 1
    pathfinder_start(key, density, None, points, maxiter=6)
    assert program._cache_size() == 2
    # the program does not keep the density alive
    alive = weakref.ref(density)
    del density, program
    gc.collect()
    assert alive() is None


def test_pathfinder_start_keeps_the_point_where_it_fails(key):
    """A NaN gradient at the start: the chain keeps its point and the identity metric."""

    def nan_gradient(params, x):
        del params  # sqrt has an infinite derivative at 0: 0 * inf is NaN
        return -0.5 * jnp.sum(x**2) + 0.0 * jnp.sqrt(jnp.abs(x[0] - 1.0))

    points = jnp.array([[1.0, 2.0], [1.0, -1.0]])
    start = pathfinder_start(key, nan_gradient, None, points)
    assert not bool(start.succeeded.any())
    np.testing.assert_array_equal(np.asarray(start.positions), np.asarray(points))
    np.testing.assert_array_equal(np.asarray(start.inverse_mass_matrix), 1.0)
    assert np.all(np.asarray(start.elbo) == -np.inf)
    with pytest.raises(ValueError, match="positions must have shape"):
        pathfinder_start(key, nan_gradient, None, points[0])


def test_pathfinder_initial_metric_samples_the_target_and_resumes_bitwise(key, tmp_path):
    """``initial_metric="pathfinder"`` from far starts: the draws match the target (Monte
    Carlo error, with a control), and a run killed after warm-up resumes bit for bit."""
    with pytest.raises(ValueError, match="needs mass_matrix_estimator='welford'"):
        NUTSConfig(initial_metric="pathfinder", mass_matrix_estimator="fisher")
    with pytest.raises(ValueError, match="needs the inverse_mass_matrix"):
        nuts_init(_far_gaussian, None, jnp.zeros((2, 3)), initial_metric="pathfinder")
    with pytest.raises(ValueError, match="inverse_mass_matrix must have shape"):
        nuts_init(_far_gaussian, None, jnp.zeros((2, 3)), inverse_mass_matrix=jnp.ones((2, 2)))
    far = 30.0 + jax.random.uniform(key, (4, 3))
    config = NUTSConfig(
        4, 100, 300, dense_mass=True, initial_metric="pathfinder", checkpoint_every=100
    )
    stages = []
    run = run_nuts(
        key,
        lambda x: _far_gaussian(None, x),
        far,
        config=config,
        progress_fn=lambda stage, done, total: stages.append(stage),
    )
    assert stages[:2] == ["pathfinder", "pathfinder"]
    assert "warmup" in stages
    assert run.status is SamplingStatus.OK
    chol = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.1, -0.2, 0.05]])
    sd = np.sqrt(np.diag(chol @ chol.T))
    error = sd / np.sqrt(run.ess)  # Monte Carlo error of each mean
    mean = run.samples.mean(axis=(0, 1))
    assert np.all(np.abs(mean - 3.0) < 4.5 * error), (mean, error)
    assert np.any(np.abs(mean - 3.0 - 0.2 * sd) > 4.5 * error)  # control: a 0.2 sd shift

    class Killed(NpzCheckpoint):
        saves = 0

        def save(self, arrays):
            super().save(arrays)
            Killed.saves += 1
            if Killed.saves == 2:  # after warm-up and the first 100 draws
                raise KeyboardInterrupt

    path = tmp_path / "run.npz"
    with pytest.raises(KeyboardInterrupt):
        run_nuts(key, lambda x: _far_gaussian(None, x), far, config=config, checkpoint=Killed(path))
    resumed = run_nuts(
        key, lambda x: _far_gaussian(None, x), far, config=config, checkpoint=NpzCheckpoint(path)
    )
    assert resumed.resumed_from == 100
    np.testing.assert_array_equal(resumed.samples, run.samples)
