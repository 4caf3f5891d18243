"""Preconditioned tempered SMC against analytic evidences and mode weights.

Tolerances come from the reported error (coverage over repeats within binomial slack) and
from the binomial error of mode shares; each check has a negative control.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm
from scipy import stats

from astrobayes._status import UnreliableResultError
from astrobayes.sampling import SMCConfig, SMCStatus, run_smc
from astrobayes.sampling.smc import next_temperature

PRIOR_SCALE = 3.0


def _log_prior(x):
    return jnp.sum(norm.logpdf(x, scale=PRIOR_SCALE))


def _gaussian_problem(dim, mu=1.0):
    """Normalised Gaussian likelihood N(mu | x, I) and prior N(0, 9 I): analytic ln z."""

    def log_likelihood(x):
        return jnp.sum(norm.logpdf(mu, loc=x))

    truth = dim * float(norm.logpdf(mu, scale=np.sqrt(1.0 + PRIOR_SCALE**2)))
    return log_likelihood, truth


def test_evidence_error_covers_the_truth_over_repeats():
    # 16 independent runs on a 3-d Gaussian: |ln z - truth| <= sigma in ~68.3% of them,
    # within max(0.15, 2 binomial standard deviations); every pull within 4.5.
    dim, num, repeats = 3, 400, 16
    log_likelihood, truth = _gaussian_problem(dim)
    config = SMCConfig(num_particles=num, preconditioner="diagonal")
    pulls, means = [], []
    for index in range(repeats):
        init = PRIOR_SCALE * jax.random.normal(jax.random.key(100 + index), (num, dim))
        result = run_smc(jax.random.key(index), log_likelihood, _log_prior, init, config=config)
        assert result.status is SMCStatus.OK, result.messages
        assert result.temperatures[0] == 0.0
        assert result.temperatures[-1] == 1.0
        pulls.append((result.log_evidence - truth) / result.log_evidence_std)
        means.append(result.samples.mean(axis=0))
    pulls = np.asarray(pulls)
    assert np.all(np.abs(pulls) <= 4.5), pulls
    expected = stats.norm.cdf(1) - stats.norm.cdf(-1)
    slack = max(0.15, 2.0 * np.sqrt(expected * (1 - expected) / repeats))
    fraction = np.mean(np.abs(pulls) <= 1.0)
    assert abs(fraction - expected) <= slack, (fraction, pulls)
    # negative control: an error three times too small fails the same window
    assert np.mean(np.abs(3.0 * pulls) <= 1.0) < expected - slack
    # posterior mean 9/10 per coordinate, posterior sd sqrt(0.9); 16 x 400 particles
    # (resampled, so at most ~num/2 independent each): 5 sigma with that count
    posterior_mean = PRIOR_SCALE**2 / (1.0 + PRIOR_SCALE**2)
    tolerance = 5.0 * np.sqrt(0.9 / (repeats * num / 2))
    np.testing.assert_allclose(np.mean(means, axis=0), posterior_mean, atol=tolerance)


def _bimodal(dim=2):
    """0.7 N(-4, I) + 0.3 N(4, I) likelihood under the N(0, 9 I) prior; analytic weights."""
    centres, weights = jnp.array([-4.0, 4.0]), jnp.array([0.7, 0.3])

    def log_likelihood(x):
        terms = jnp.log(weights) + jax.vmap(lambda c: jnp.sum(norm.logpdf(x, loc=c)))(centres)
        return logsumexp(terms)

    variance = 1.0 + PRIOR_SCALE**2
    log_z_k = np.log(np.asarray(weights)) + dim * norm.logpdf(
        np.asarray(centres), scale=np.sqrt(variance)
    )
    true_weights = np.exp(log_z_k - np.logaddexp.reduce(log_z_k))
    return log_likelihood, true_weights, float(np.logaddexp.reduce(log_z_k))


def _check_bimodal(config, num):
    # Local samplers started from the prior would keep whatever mix the starts gave;
    # tempering sets the weights. Share tolerance: binomial with num / 2 independent draws.
    log_likelihood, true_weights, truth = _bimodal()
    init = PRIOR_SCALE * jax.random.normal(jax.random.key(7), (num, 2))
    result = run_smc(jax.random.key(3), log_likelihood, _log_prior, init, config=config)
    assert not result.status.is_failure, result.messages
    share = np.mean(result.samples[:, 0] < 0.0)
    sigma = np.sqrt(true_weights[0] * (1 - true_weights[0]) / (num / 2))
    assert abs(share - true_weights[0]) < 5 * sigma, (share, true_weights)
    # negative control: a 50/50 split (modes found, weights ignored) fails the tolerance
    assert abs(0.5 - true_weights[0]) > 5 * sigma
    assert abs(result.log_evidence - truth) < 4.5 * result.log_evidence_std, (
        result.log_evidence,
        result.log_evidence_std,
        truth,
    )


def test_tempering_weighs_separated_modes():
    _check_bimodal(SMCConfig(num_particles=600, preconditioner="diagonal"), 600)


@pytest.mark.slow
def test_flow_preconditioned_smc_weighs_separated_modes():
    config = SMCConfig(num_particles=600, flow_layers=1, nn_width=16, num_epochs=3, batch_size=200)
    _check_bimodal(config, 600)


def test_capped_tempering_is_a_failure_and_throw_raises():
    log_likelihood, _ = _gaussian_problem(2, mu=5.0)
    config = SMCConfig(
        num_particles=100, preconditioner="diagonal", max_temperatures=1, ess_fraction=0.99
    )
    init = PRIOR_SCALE * jax.random.normal(jax.random.key(0), (100, 2))
    result = run_smc(jax.random.key(1), log_likelihood, _log_prior, init, config=config)
    assert result.status is SMCStatus.MAX_TEMPERATURES
    assert result.temperatures[-1] < 1.0
    assert np.isnan(result.log_evidence_std)
    with pytest.raises(UnreliableResultError, match="max_temperatures"):
        run_smc(jax.random.key(1), log_likelihood, _log_prior, init, config=config, throw=True)


def test_next_temperature_hits_the_target_ess():
    ell = np.random.default_rng(0).normal(size=500) * 30.0
    step = next_temperature(ell, 0.2, 0.7)
    w = np.exp(step * ell - np.max(step * ell))
    assert abs(w.sum() ** 2 / np.sum(w**2) / ell.size - 0.7) < 1e-6
    assert next_temperature(np.zeros(10), 0.4, 0.9) == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ess_fraction": 1.0}, "ess_fraction must lie strictly between 0.0 and 1.0; got 1.0"),
        ({"preconditioner": "full"}, "preconditioner must be one of"),
        ({"learning_rate": 0.0}, "learning_rate must be a positive finite number; got 0.0"),
        ({"num_particles": 4}, "num_particles"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SMCConfig(**kwargs)


def test_bad_input_is_refused(key):
    config = SMCConfig(num_particles=8, preconditioner="diagonal")
    log_likelihood, _ = _gaussian_problem(2)
    with pytest.raises(ValueError, match="num_particles=8"):
        run_smc(key, log_likelihood, _log_prior, np.zeros((9, 2)), config=config)
    with pytest.raises(ValueError, match="finite"):
        run_smc(key, log_likelihood, _log_prior, np.full((8, 2), np.nan), config=config)
    with pytest.raises(ValueError, match="every initial particle"):
        run_smc(key, lambda x: -jnp.inf, _log_prior, np.zeros((8, 2)), config=config)
    with pytest.raises(TypeError, match="SMCConfig"):
        run_smc(key, log_likelihood, _log_prior, np.zeros((8, 2)), config={"num_particles": 8})


def test_checkpoint_resume_is_bitwise_and_another_run_is_refused(tmp_path):
    """Stopped after two temperatures and started again: the uninterrupted run, bit for bit."""
    from astrobayes.io import NpzCheckpoint

    def log_likelihood(x):
        return jnp.logaddexp(
            jnp.log(0.7) - 2.0 * jnp.sum((x - 2.0) ** 2),
            jnp.log(0.3) - 2.0 * jnp.sum((x + 2.0) ** 2),
        )

    def log_prior(x):
        return jnp.sum(jax.scipy.stats.norm.logpdf(x, scale=3.0))

    prior = jax.random.normal(jax.random.key(1), (200, 2)) * 3.0
    config = SMCConfig(num_particles=200, preconditioner="diagonal")
    whole = run_smc(jax.random.key(0), log_likelihood, log_prior, prior, config=config)
    assert whole.temperatures.size > 3

    class Stop(Exception):
        pass

    calls = []

    def stop_after_two(stage, done, total):
        calls.append(done)
        if len(calls) == 2:
            raise Stop

    path = tmp_path / "smc.npz"
    with pytest.raises(Stop):
        run_smc(
            jax.random.key(0),
            log_likelihood,
            log_prior,
            prior,
            config=config,
            checkpoint=NpzCheckpoint(path),
            progress_fn=stop_after_two,
        )
    resumed = run_smc(
        jax.random.key(0),
        log_likelihood,
        log_prior,
        prior,
        config=config,
        checkpoint=NpzCheckpoint(path),
    )
    assert resumed.resumed_from == 2
    assert whole.resumed_from == 0
    np.testing.assert_array_equal(resumed.samples, whole.samples)
    np.testing.assert_array_equal(resumed.temperatures, whole.temperatures)
    assert resumed.log_evidence == whole.log_evidence
    assert resumed.log_evidence_std == whole.log_evidence_std
    assert resumed.messages == whole.messages
    with pytest.raises(ValueError, match="belongs to a different run"):
        run_smc(
            jax.random.key(9),
            log_likelihood,
            log_prior,
            prior,
            config=config,
            checkpoint=NpzCheckpoint(path),
        )
