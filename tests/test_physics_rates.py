"""Rate-coefficient recovery through the chemistry ODE (astrobayes.physics.rates)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from astrobayes.physics.chemistry import rate_coefficients
from astrobayes.physics.rates import (
    RateNetworkConfig,
    RateProblem,
    check_rate_draws,
    posterior_interval_coverage,
    rate_logdensity,
    rate_models,
    sample_rate_posteriors,
    simulate_rate_data,
    solve_rate_network,
    solve_stiff_subnetwork,
)


@pytest.fixture(autouse=True)
def _x64(global_x64):
    del global_x64


def _scipy_stiff(theta, config):
    """H, H+, H-, H2, e- with H- as a species: NumPy + scipy Radau (independent code)."""
    k = np.asarray(rate_coefficients(config.temperature))[[1, 6, 7, 13]]
    k = k * np.array([10 ** theta[1], 10 ** theta[0], 1.0, 1.0])
    n = config.density

    def rhs(t, x):
        h, hp, hm, h2, e = x
        r = n * np.array([k[0] * hp * e, k[1] * h * e, k[2] * hm * h, k[3] * hm * hp])
        return np.array(
            [
                r[0] - r[1] - r[2] + 2 * r[3],
                -r[0] - r[3],
                r[1] - r[2] - r[3],
                r[2],
                -r[0] - r[1] + r[2],
            ]
        )

    x0 = [1 - config.ionised_fraction, config.ionised_fraction, 0, 0, config.ionised_fraction]
    out = solve_ivp(
        rhs, (0, config.times[-1]), x0, method="Radau", t_eval=config.times, rtol=1e-10, atol=1e-22
    )
    return np.log10(out.y[[4, 3]].T)


@pytest.mark.parametrize("theta", [(0.0, 0.0), (0.5, -0.4), (-0.6, 0.6)])
def test_reduced_network_matches_independent_stiff_solve(theta):
    config = RateNetworkConfig()
    ours = np.asarray(solve_rate_network(jnp.asarray(theta), config))
    truth = _scipy_stiff(theta, config)
    # The equilibrium-H- reduction lags the true H- build-up by 1/(k8 n_H) ~ 8e6 s:
    # < 2e-3 dex at the first time (1e9 s), far below the 0.05 dex noise.
    np.testing.assert_allclose(ours, truth, atol=2.5e-3)
    np.testing.assert_allclose(ours[1:], truth[1:], atol=5e-4)
    # Negative control: a factor 1.5 in k7 is visible far above that tolerance.
    other = np.asarray(solve_rate_network(jnp.asarray(theta) + jnp.array([0.18, 0.0]), config))
    assert np.max(np.abs(other - truth)) > 0.1


@pytest.mark.slow
def test_gradient_through_solver_matches_finite_differences():
    config = RateNetworkConfig()
    data = simulate_rate_data(jax.random.key(3), jnp.array([0.2, -0.1]), config)
    problem = RateProblem(data, jnp.asarray(config.noise_dex), config)
    theta = jnp.array([0.1, 0.05])
    grad = np.asarray(jax.grad(lambda t: rate_logdensity(problem, t))(theta))
    step = 1e-5
    numeric = [
        (rate_logdensity(problem, theta + step * e) - rate_logdensity(problem, theta - step * e))
        / (2 * step)
        for e in np.eye(2)
    ]
    np.testing.assert_allclose(grad, np.asarray(numeric), rtol=1e-4)


def test_interval_coverage_calibrated_and_negative_control():
    # Exact Gaussian posteriors with truths drawn from them: coverage = level within the
    # binomial error; posteriors too narrow by 2 under-cover.
    key_truth, key_draws = jax.random.split(jax.random.key(0))
    num = 2000
    truths = jax.random.normal(key_truth, (num, 1))
    draws = jax.random.normal(key_draws, (num, 400, 1))
    for level in (0.68, 0.9):
        covered = float(posterior_interval_coverage(draws, truths, level).mean())
        # 400 draws per interval: quantile noise lowers coverage by ~ level(1-level)/400.
        assert abs(covered - level) < 4 * np.sqrt(level * (1 - level) / num) + 0.01
    narrow = float(posterior_interval_coverage(0.5 * draws, truths, 0.68).mean())
    assert narrow < 0.68 - 0.2


def test_validation_errors():
    with pytest.raises(ValueError, match="noise_dex"):
        RateNetworkConfig(noise_dex=0.0)
    with pytest.raises(ValueError, match="ionised_fraction"):
        RateNetworkConfig(ionised_fraction=1.5)
    with pytest.raises(ValueError, match="log10_times"):
        RateNetworkConfig(log10_times=(13.0, 9.0))
    with pytest.raises(ValueError, match="level"):
        posterior_interval_coverage(jnp.zeros((1, 5, 1)), jnp.zeros((1, 1)), 1.2)
    with pytest.raises(ValueError, match="truths"):
        posterior_interval_coverage(jnp.zeros((2, 5, 1)), jnp.zeros((3, 1)), 0.5)
    with pytest.raises(ValueError, match="observations"):
        sample_rate_posteriors(jax.random.key(0), jnp.zeros((2, 3, 2)), RateNetworkConfig())
    with pytest.raises(ValueError, match="observations"):
        rate_models(jnp.zeros((3, 2)), RateNetworkConfig())


@pytest.mark.slow
def test_stiff_jax_subnetwork_agrees_with_reduction():
    config = RateNetworkConfig()
    theta = jnp.array([0.3, -0.2])
    stiff = np.asarray(solve_stiff_subnetwork(theta, config))
    np.testing.assert_allclose(stiff, _scipy_stiff(np.asarray(theta), config), atol=1e-6)
    np.testing.assert_allclose(np.asarray(solve_rate_network(theta, config)), stiff, atol=2.5e-3)


@pytest.mark.slow
def test_nuts_recovers_rates_on_a_few_data_sets():
    config = RateNetworkConfig()
    truths = config.prior_std_dex * jax.random.normal(jax.random.key(5), (4, 2))
    keys = jax.random.split(jax.random.key(6), 4)
    observations = jax.vmap(lambda k, t: simulate_rate_data(k, t, config))(keys, truths)
    draws = sample_rate_posteriors(
        jax.random.key(7), observations, config, num_chains=2, num_warmup=150, num_samples=300
    )
    mean = np.asarray(draws.samples.mean(axis=(1, 2)))
    std = np.asarray(draws.samples.std(axis=(1, 2)))
    assert np.all(np.abs(mean - np.asarray(truths)) < 4 * std)
    assert np.all(std < 0.1)  # data constrain both multipliers far beyond the prior (0.3)


def test_check_rate_draws_flags_unconverged_data_sets():
    rng = np.random.default_rng(0)
    # iid draws: split R-hat - 1 has sd ~ 0.002 with 8 halves of 500, so 1.01 is > 4 sd.
    draws = rng.normal(size=(3, 4, 1000, 2))
    divergent = np.zeros((3, 4, 1000), bool)
    good = check_rate_draws(draws, divergent)
    assert good.status.name == "OK"
    assert good.above.size == 0
    assert np.all(np.abs(good.rhat - 1.0) < 0.01)
    # Negative controls: one chain of data set 2 offset by half a posterior sd; a divergence.
    shifted = draws.copy()
    shifted[2, 1] += 0.5
    bad = check_rate_draws(shifted, divergent)
    assert bad.status.name == "RHAT_HIGH"
    assert bad.above.tolist() == [2]
    assert bad.status.is_warning
    divergent[0, 0, 5] = True
    flagged = check_rate_draws(draws, divergent)
    assert flagged.status.name == "DIVERGENT"
    assert flagged.num_divergent.tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="is_divergent"):
        check_rate_draws(draws, divergent[:, :, :10])
    with pytest.raises(ValueError, match="rhat_threshold"):
        check_rate_draws(draws, divergent, rhat_threshold=1.0)
