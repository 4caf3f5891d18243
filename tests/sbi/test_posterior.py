"""Posterior samplers on estimators with analytic log densities (no training)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

from astrobayes.sbi import MCMCConfig, Prior, sample_posterior
from astrobayes.sbi.estimators import AbstractEstimator
from astrobayes.sbi.importance import resample

SIGMA = 0.3
CENTRES = np.array([[-1.5, 0.5], [1.5, 0.5]])


class MixtureLikelihood(AbstractEstimator):
    """Likelihood ``w N(theta; c_1, s^2 I) + (1 - w) N(theta; c_2, s^2 I)``; ``x`` unused.

    Under a uniform prior on ``[-4, 4]^2`` the posterior is the same mixture (truncation
    below 1e-20), with mode weights ``w`` and ``1 - w`` and evidence ``1 / 64``.
    """

    prior: Prior
    log_weights: jax.Array
    u_shift: jax.Array
    u_scale: jax.Array
    x_shift: jax.Array
    x_scale: jax.Array

    def __init__(self, weight: float):
        self.prior = Prior.uniform([-4.0, -4.0], [4.0, 4.0])
        self.log_weights = jnp.log(jnp.array([weight, 1.0 - weight]))
        self.u_shift = jnp.zeros(2)
        self.u_scale = jnp.ones(2)
        self.x_shift = jnp.zeros(1)
        self.x_scale = jnp.ones(1)

    def log_posterior_unconstrained(self, u, x):
        theta = self.prior.to_constrained(u)
        log_normal = -0.5 * jnp.sum((theta - CENTRES) ** 2, axis=1) / SIGMA**2
        log_normal = log_normal - jnp.log(2 * jnp.pi * SIGMA**2)
        log_likelihood = logsumexp(log_normal + self.log_weights)
        return log_likelihood + self.prior.log_prob_unconstrained(u)


def exact_mixture(key, weight, num):
    k_mode, k_noise = jax.random.split(key)
    right = np.asarray(jax.random.uniform(k_mode, (num,)) > weight)
    return CENTRES[right.astype(int)] + SIGMA * np.asarray(jax.random.normal(k_noise, (num, 2)))


def mixture_check(samples, weight, num_effective):
    """z-scores of the left-mode weight and of each mode's mean and std."""
    left = samples[:, 0] < 0
    z = [(left.mean() - weight) / np.sqrt(weight * (1 - weight) / num_effective)]
    for mask, centre in ((left, CENTRES[0]), (~left, CENTRES[1])):
        n = max(1, int(mask.mean() * num_effective))
        z.extend((samples[mask].mean(0) - centre) / (SIGMA / np.sqrt(n)))
        z.extend((samples[mask].std(0) - SIGMA) / (SIGMA / np.sqrt(2 * n)))
    return np.abs(np.asarray(z))


# SMC particles are correlated through resampling; a quarter of the particles as the
# effective number is conservative for these settings (measured spread of the mode
# weight over seeds: ~0.01 with 2000 particles, against sqrt(0.25/500) = 0.022 here).
NUM_PARTICLES = 2000
NUM_EFFECTIVE = NUM_PARTICLES // 4
SMC = MCMCConfig(smc_moves=3, smc_final_moves=20)


def test_smc_recovers_unequal_modes_and_evidence(key):
    estimator = MixtureLikelihood(0.3)
    posterior = sample_posterior(
        key, estimator, np.zeros(1), NUM_PARTICLES, method="smc", mcmc_config=SMC
    )
    assert posterior.samples.shape == (NUM_PARTICLES, 2)
    assert posterior.method == "smc"
    assert posterior.status.name == "SUCCESS"
    assert posterior.diagnostics["temperatures"][-1] == 1.0
    assert np.all(mixture_check(posterior.samples, 0.3, NUM_EFFECTIVE) < 4.0)
    # log Z = log(1/64): the SMC estimate's spread over seeds was ~0.03 here.
    np.testing.assert_allclose(posterior.diagnostics["log_evidence"], -np.log(64.0), atol=0.15)
    np.testing.assert_allclose(
        posterior.log_posterior,
        np.asarray(estimator.log_posterior(jnp.asarray(posterior.samples), jnp.zeros(1))),
        rtol=1e-4,
        atol=1e-4,
    )


def test_mixture_check_negative_control(key):
    """The check passes exact draws and flags draws with the wrong mode weights."""
    exact = exact_mixture(key, 0.3, NUM_PARTICLES)
    assert np.all(mixture_check(exact, 0.3, NUM_EFFECTIVE) < 4.0)
    wrong = exact_mixture(key, 0.5, NUM_PARTICLES)
    assert np.any(mixture_check(wrong, 0.3, NUM_EFFECTIVE) >= 4.0)


def test_smc_same_key_same_result(key):
    estimator = MixtureLikelihood(0.5)
    config = MCMCConfig(smc_moves=1, smc_final_moves=2)
    a = sample_posterior(key, estimator, np.zeros(1), 100, method="smc", mcmc_config=config)
    b = sample_posterior(key, estimator, np.zeros(1), 100, method="smc", mcmc_config=config)
    np.testing.assert_array_equal(a.samples, b.samples)


def test_resample_frequencies_and_memory(key):
    """Inverse-CDF resampling: right frequencies, no (num, num_weights) Gumbel array."""
    log_w = jnp.log(jnp.array([0.1, 0.0, 0.6, 0.3]))
    index = np.asarray(resample(key, log_w, 20_000))
    counts = np.bincount(index, minlength=4) / 20_000
    expected = np.array([0.1, 0.0, 0.6, 0.3])
    # multinomial standard errors; 5 sigma
    assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected * (1 - expected) / 20_000))
    # 10^6 weights and 10^4 draws would need 40 GB through jax.random.categorical.
    many = resample(key, jnp.zeros(1_000_000), 10_000)
    assert many.shape == (10_000,)
    assert int(many.max()) < 1_000_000


def test_smc_config_validation():
    with pytest.raises(ValueError, match="smc_ess_fraction"):
        MCMCConfig(smc_ess_fraction=1.5)
    with pytest.raises(ValueError, match="smc_moves"):
        MCMCConfig(smc_moves=-1)
    assert eqx.is_array(MixtureLikelihood(0.5).log_weights)


class GaussianLikelihood(AbstractEstimator):
    """Likelihood ``N(theta; x, s^2 I)`` under a uniform prior on ``[-4, 4]^2``.

    For ``|x| << 4`` the posterior is ``N(x, s^2 I)`` (truncation below 1e-20).
    """

    prior: Prior
    u_shift: jax.Array
    u_scale: jax.Array
    x_shift: jax.Array
    x_scale: jax.Array

    def __init__(self):
        self.prior = Prior.uniform([-4.0, -4.0], [4.0, 4.0])
        self.u_shift = jnp.zeros(2)
        self.u_scale = jnp.ones(2)
        self.x_shift = jnp.zeros(2)
        self.x_scale = jnp.ones(2)

    def log_posterior_unconstrained(self, u, x):
        theta = self.prior.to_constrained(u)
        log_likelihood = -0.5 * jnp.sum((theta - x) ** 2) / SIGMA**2
        return log_likelihood + self.prior.log_prob_unconstrained(u)


def test_nuts_recovers_a_gaussian_posterior(key):
    """NUTS on the sampling kernel: mean and std within 5 Monte Carlo errors (ESS-based)."""
    config = MCMCConfig(num_chains=4, num_warmup=200, num_initial=2000)
    x_obs = np.array([0.5, -1.0])
    posterior = sample_posterior(
        key, GaussianLikelihood(), x_obs, 2000, method="nuts", mcmc_config=config
    )
    assert posterior.method == "nuts"
    assert posterior.status.name == "SUCCESS", posterior.diagnostics
    assert posterior.diagnostics["split_rhat_max"] < 1.05
    ess = posterior.diagnostics["effective_sample_size_min"]
    assert ess > 200
    np.testing.assert_allclose(posterior.samples.mean(0), x_obs, atol=5 * SIGMA / np.sqrt(ess))
    np.testing.assert_allclose(posterior.samples.std(0), SIGMA, atol=5 * SIGMA / np.sqrt(2 * ess))
    # Negative control: the same check rejects draws centred on the wrong observation.
    wrong = posterior.samples + 0.1
    assert np.any(np.abs(wrong.mean(0) - x_obs) > 5 * SIGMA / np.sqrt(ess))
    again = sample_posterior(
        key, GaussianLikelihood(), x_obs, 2000, method="nuts", mcmc_config=config
    )
    np.testing.assert_array_equal(posterior.samples, again.samples)


def test_mcmc_config_needs_ten_warmup_steps():
    with pytest.raises(ValueError, match="num_warmup must be >= 10"):
        MCMCConfig(num_warmup=5)
