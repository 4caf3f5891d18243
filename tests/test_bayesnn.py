"""Tests of astrobayes.bayesnn: every method's shared predictive, the calibration harness
against analytic values (with negative controls), recalibration and input validation."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._training import TrainingConfig
from astrobayes.bayesnn import (
    NUTS,
    SGLD,
    BayesByBackprop,
    BNNStatus,
    DeepEnsemble,
    HeteroscedasticMLP,
    IsotonicRecalibration,
    LastLayerLaplace,
    MCDropout,
    Predictive,
    PredictiveMixture,
    evaluate,
    fit,
    fit_recalibration,
    gaussian_crps,
    mixture_crps,
    simulate_photometry,
)
from astrobayes.sampling import NUTSConfig

TINY = TrainingConfig(learning_rate=1e-2, batch_size=32, max_epochs=3, patience=2)


def _data(num=48):
    x = jnp.linspace(-1.0, 1.0, num)[:, None]
    return x, jnp.sin(3.0 * x[:, 0]) + 0.1 * jnp.cos(17.0 * x[:, 0])


@pytest.mark.parametrize(
    "method",
    [
        DeepEnsemble(num_members=2, training=TINY),
        # each fit compiles its own training epoch: two methods in the default suite
        pytest.param(MCDropout(num_samples=5, training=TINY), marks=pytest.mark.slow),
        pytest.param(
            BayesByBackprop(num_samples=5, num_mc=1, training=TINY), marks=pytest.mark.slow
        ),
        LastLayerLaplace(num_samples=5, training=TINY),
        pytest.param(
            SGLD(num_chains=2, num_steps=20, num_burnin=4, num_samples=6, training=TINY),
            marks=pytest.mark.slow,
        ),
        pytest.param(
            NUTS(sampling=NUTSConfig(num_chains=2, num_warmup=20, num_samples=20),
                 num_samples=6, training=TINY),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["ensemble", "dropout", "bbb", "laplace", "sgld", "nuts"],
)  # fmt: skip
def test_every_method_returns_the_shared_predictive(method):
    x, y = _data()
    net = HeteroscedasticMLP(1, width=4, key=jax.random.key(0))
    pred = fit(jax.random.key(1), method, net, (x, y))
    assert isinstance(pred, Predictive)
    assert isinstance(pred.status, BNNStatus)
    mix = pred(np.asarray(x[:7]))
    assert isinstance(mix, PredictiveMixture)
    assert mix.means.shape == mix.scales.shape == (7, pred.num_members)
    assert np.all(np.isfinite(mix.means))
    assert np.all(np.asarray(mix.scales) > 0)
    assert np.all(np.asarray(mix.variance()) >= np.asarray(mix.aleatoric_variance()))
    # 3 epochs cannot converge: the status protocol says so (a warning, not silence)
    assert BNNStatus.TRAINING_MAX_EPOCHS in pred.messages


def test_same_key_same_predictive():
    x, y = _data()
    net = HeteroscedasticMLP(1, width=4, key=jax.random.key(0))
    method = LastLayerLaplace(num_samples=5, training=TINY)  # the compiled epoch is reused
    a = fit(jax.random.key(3), method, net, (x, y))(np.asarray(x))
    b = fit(jax.random.key(3), method, net, (x, y))(np.asarray(x))
    np.testing.assert_array_equal(np.asarray(a.means), np.asarray(b.means))


def test_folded_dropout_equals_masked_network():
    net = HeteroscedasticMLP(3, width=6, depth=2, dropout_rate=0.3, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3,))
    key = jax.random.key(2)
    folded = eqx.filter_jit(lambda n, k: n.fold_dropout(k)(x))(net, key)
    masked = eqx.filter_jit(lambda n, k: n(x, key=k))(net, key)
    np.testing.assert_allclose(folded, masked, rtol=1e-6)


def test_mixture_moments_and_quantiles():
    mix = PredictiveMixture(jnp.array([[-1.0, 2.0]]), jnp.array([[0.5, 1.0]]))
    np.testing.assert_allclose(mix.mean(), [0.5])
    np.testing.assert_allclose(mix.variance(), [0.5 * (0.25 + 1.0) + 2.25])
    q = mix.quantile(jnp.array([0.1, 0.5, 0.9]))
    for j, level in enumerate([0.1, 0.5, 0.9]):
        np.testing.assert_allclose(mix.cdf(q[:, j]), [level], atol=1e-5)


def test_crps_closed_forms_against_monte_carlo():
    # Gaussian: the closed form at y = mu is (sqrt(2) - 1) / sqrt(pi) * sigma
    np.testing.assert_allclose(
        gaussian_crps(1.0, 2.0, 1.0), 2 * (np.sqrt(2) - 1) / np.sqrt(np.pi), rtol=1e-6
    )
    # mixture of identical components = the Gaussian
    same = PredictiveMixture(jnp.full((3, 4), 0.3), jnp.full((3, 4), 1.5))
    y = np.array([-1.0, 0.3, 2.0])
    np.testing.assert_allclose(mixture_crps(same, y), gaussian_crps(0.3, 1.5, y), rtol=1e-5)
    # a two-component mixture: CRPS = E|X - y| - E|X - X'| / 2 by Monte Carlo
    mix = PredictiveMixture(jnp.array([[-1.0, 2.0]]), jnp.array([[0.5, 1.0]]))
    rng = np.random.default_rng(0)

    def draws(num):
        component = rng.integers(0, 2, num)
        return np.array([-1.0, 2.0])[component] + np.array([0.5, 1.0])[component] * rng.normal(
            size=num
        )

    draws, other = draws(400_000), draws(400_000)
    terms = np.abs(draws - 0.4) - 0.5 * np.abs(draws - other)
    error = terms.std() / np.sqrt(terms.size)
    assert abs(mixture_crps(mix, np.array([0.4]))[0] - terms.mean()) < 4 * error
    # the quantile-score CRPS of evaluate (identity recalibration) matches the closed form
    identity = IsotonicRecalibration(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    ys = np.linspace(-3, 4, 50)
    wide = PredictiveMixture(jnp.tile(mix.means, (50, 1)), jnp.tile(mix.scales, (50, 1)))
    exact = evaluate(wide, ys).crps
    np.testing.assert_allclose(evaluate(wide, ys, recalibration=identity, num_levels=200).crps,
                               exact, rtol=5e-3)  # fmt: skip


def _gaussian_problem(key, num, scale_factor):
    k_mu, k_sd, k_y = jax.random.split(key, 3)
    mu = jax.random.normal(k_mu, (num,))
    sd = jnp.exp(0.5 * jax.random.normal(k_sd, (num,)))
    y = mu + sd * jax.random.normal(k_y, (num,))
    return PredictiveMixture(mu[:, None], scale_factor * sd[:, None]), np.asarray(y)


def test_calibrated_predictive_passes_and_overconfident_fails():
    num = 10_000
    tol90 = 4 * np.sqrt(0.9 * 0.1 / num)
    tol68 = 4 * np.sqrt(0.68 * 0.32 / num)
    # binomial noise of each level's share: mean_q sqrt(q (1 - q) / num); ECE <= 3 of them
    ece_bound = 3 * np.mean(np.sqrt(np.arange(1, 100) / 100 * (1 - np.arange(1, 100) / 100) / num))
    mix, y = _gaussian_problem(jax.random.key(0), num, 1.0)
    good = evaluate(mix, y)
    assert abs(good.coverage_90 - 0.90) < tol90
    assert abs(good.coverage_68 - 0.68) < tol68
    assert good.ece < ece_bound
    # the analytic mean NLL of a calibrated Gaussian: 0.5 ln(2 pi e) + E ln sd
    expected_nll = 0.5 * np.log(2 * np.pi * np.e) + np.mean(np.log(np.asarray(mix.scales)))
    assert abs(good.nll - expected_nll) < 4 * np.sqrt(0.5 / num)
    # negative control: half the true width
    over, y = _gaussian_problem(jax.random.key(0), num, 0.5)
    bad = evaluate(over, y)
    assert abs(bad.coverage_90 - 0.90) > 10 * tol90
    assert bad.ece > 5 * ece_bound
    assert bad.nll > good.nll
    assert bad.crps > good.crps


@pytest.mark.parametrize("scale_factor", [0.5, 2.0])
def test_recalibration_fixes_a_misscaled_predictive_on_held_out_points(scale_factor):
    calib, y_calib = _gaussian_problem(jax.random.key(1), 3000, scale_factor)
    test, y_test = _gaussian_problem(jax.random.key(2), 10_000, scale_factor)
    before = evaluate(test, y_test)
    recal = fit_recalibration(calib, y_calib)
    after = evaluate(test, y_test, recalibration=recal)
    # tolerance: binomial noise of the test share plus that of the calibration quantile
    tol = 4 * np.sqrt(0.09 / 10_000 + 0.09 / 3000)
    assert abs(before.coverage_90 - 0.9) > 3 * tol
    assert abs(after.coverage_90 - 0.9) < tol
    assert after.ece < before.ece / 3
    assert after.nll < before.nll


def test_photometry_breaks_move_through_the_bands():
    near = simulate_photometry(jax.random.key(0), 200, redshift_range=(0.02, 0.1))
    far = simulate_photometry(jax.random.key(1), 200, redshift_range=(0.35, 0.45))
    g_r = lambda d: np.asarray(d.true_magnitudes[:, 1] - d.true_magnitudes[:, 2])  # noqa: E731
    # the 4000 A break enters g-r near z ~ 0.3: red galaxies redden strongly
    red_near, red_far = (
        g_r(near)[np.asarray(near.galaxy_type) < 0.2],
        g_r(far)[np.asarray(far.galaxy_type) < 0.2],
    )
    assert red_far.mean() > red_near.mean() + 0.3
    again = simulate_photometry(jax.random.key(0), 200, redshift_range=(0.02, 0.1))
    np.testing.assert_array_equal(np.asarray(near.features), np.asarray(again.features))


def test_bad_input_raises_naming_the_argument():
    x, y = _data(16)
    net = HeteroscedasticMLP(1, width=4, key=jax.random.key(0))
    key = jax.random.key(1)
    method = DeepEnsemble(num_members=1, training=TINY)
    with pytest.raises(TypeError, match="data must be a tuple"):
        fit(key, method, net, [x, y])
    with pytest.raises(ValueError, match="same length"):
        fit(key, method, net, (x, y[:-1]))
    with pytest.raises(ValueError, match="data targets must be finite"):
        fit(key, method, net, (x, y.at[3].set(jnp.nan)))
    with pytest.raises(ValueError, match="model expects 1"):
        fit(key, method, net, (jnp.ones((16, 2)), y))
    with pytest.raises(TypeError, match="method must be one of"):
        fit(key, "ensemble", net, (x, y))
    with pytest.raises(TypeError, match="model must be a HeteroscedasticMLP"):
        fit(key, method, object(), (x, y))
    with pytest.raises(ValueError, match="max_parameters"):
        fit(key, NUTS(max_parameters=10, training=TINY), net, (x, y))
    with pytest.raises(ValueError, match="rate"):
        MCDropout(rate=1.5)
    with pytest.raises(ValueError, match="num_members"):
        DeepEnsemble(num_members=0)
    with pytest.raises(ValueError, match="prior_scale"):
        BayesByBackprop(prior_scale=-1.0)
    with pytest.raises(TypeError, match="sampling must be a NUTSConfig"):
        NUTS(sampling={"num_chains": 2})
    with pytest.raises(ValueError, match="redshift_range"):
        simulate_photometry(key, 10, redshift_range=(2.0, 1.0))
    mix = PredictiveMixture(jnp.zeros((5, 1)), jnp.ones((5, 1)))
    with pytest.raises(ValueError, match="targets must have one value per predictive point"):
        evaluate(mix, np.zeros(4))
    with pytest.raises(ValueError, match="at least 20 calibration points"):
        fit_recalibration(mix, np.zeros(5))
    stacked = jax.tree.map(lambda a: a[None], eqx.filter(net, eqx.is_array))
    pred = Predictive(
        networks=eqx.combine(stacked, eqx.partition(net, eqx.is_array)[1]),
        input_mean=np.zeros(1), input_scale=np.ones(1), target_mean=0.0, target_scale=1.0,
        method="test", status=BNNStatus.OK, messages=(BNNStatus.OK,), diagnostics={},
        wall_time_s=0.0,
    )  # fmt: skip
    assert pred(np.ones((3, 1))).means.shape == (3, 1)
    with pytest.raises(ValueError, match="inputs must have 1 features"):
        pred(np.ones((3, 2)))
    with pytest.raises(ValueError, match="inputs must be finite"):
        pred(np.full((3, 1), np.nan))
