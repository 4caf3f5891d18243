"""Variational families and mass mapping against the exact Wiener-filter posterior."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.variational import (
    LowRankGaussian,
    MeanFieldGaussian,
    VIConfig,
    fit_variational,
    kaiser_squires_shear,
    make_problem,
    mass_map_logdensity,
    simulate_shear,
    wiener_posterior,
)

FAST = VIConfig(num_draws=8, steps_per_epoch=50, max_epochs=20, patience=20, learning_rate=2e-2)


def _problem(key):
    problem = make_problem(6, mask_fraction=0.25)
    kappa, data = simulate_shear(key, problem)
    return problem, kappa, data, wiener_posterior(problem, np.asarray(data))


def test_shear_operator_is_unitary_off_the_mean(key):
    kappa = jax.random.normal(key, (8, 8))
    kappa = kappa - kappa.mean()
    g1, g2 = kaiser_squires_shear(kappa)
    np.testing.assert_allclose(jnp.sum(g1**2 + g2**2), jnp.sum(kappa**2), rtol=1e-5)


def test_wiener_posterior_is_the_exact_gaussian_posterior(key):
    problem, _, data, exact = _problem(key)
    logdensity = mass_map_logdensity(problem, data)
    # the log density is quadratic: f(x) - f(mean) = -(x - mean)^T Lambda (x - mean) / 2
    mean = jnp.asarray(exact.mean, jnp.float32)
    points = 0.3 * jax.random.normal(jax.random.fold_in(key, 1), (4, 36)) + mean
    measured = np.asarray(jax.vmap(logdensity)(points) - logdensity(mean), np.float64)
    offsets = np.asarray(points, np.float64) - exact.mean
    expected = -0.5 * np.einsum("ni,ij,nj->n", offsets, exact.precision, offsets)
    np.testing.assert_allclose(measured, expected, rtol=1e-3)
    # negative control: the prior alone (no shear term) is a different quadratic form
    prior = -0.5 * np.einsum("ni,nj,ij->n", offsets, offsets, np.eye(36))
    assert np.max(np.abs(prior - expected)) > 0.1 * np.max(np.abs(expected))


def test_entropies_match_dense_formulae(key):
    q = LowRankGaussian.init(key, jnp.zeros(5), rank=2, std=0.7)
    q = q.__class__(q.mean, q.log_diag, 30 * q.factor)
    cov = (
        np.diag(np.exp(2 * np.asarray(q.log_diag))) + np.asarray(q.factor) @ np.asarray(q.factor).T
    )
    dense = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]
    np.testing.assert_allclose(float(q.entropy()), dense, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(q.variance()), np.diag(cov), rtol=1e-5)
    draws = np.asarray(q.sample(key, 4000))
    np.testing.assert_allclose(draws.var(0), np.diag(cov), rtol=0.15)


def test_rejects_bad_input(key):
    with pytest.raises(ValueError, match="size must be an integer >= 4"):
        make_problem(3)
    with pytest.raises(ValueError, match="mask_fraction"):
        make_problem(8, mask_fraction=1.0)
    with pytest.raises(ValueError, match=r"data must have shape \(2, 6, 6\)"):
        wiener_posterior(make_problem(6), np.zeros((2, 5, 5)))
    with pytest.raises(TypeError, match="family must have a sample"):
        fit_variational(key, lambda x: -jnp.sum(x**2), object())
    with pytest.raises(ValueError, match="num_draws"):
        VIConfig(num_draws=0)


@pytest.mark.slow
def test_mean_field_matches_wiener_mean_and_underestimates_variance(key):
    """Mean within the run-to-run Monte Carlo error of the Wiener filter; variance at the
    mean-field optimum 1 / Lambda_ii, below the exact C_ii (measured, not assumed)."""
    problem, _, data, exact = _problem(key)
    logdensity = mass_map_logdensity(problem, data)
    sd = np.sqrt(np.diag(exact.covariance))
    runs = [
        fit_variational(
            jax.random.fold_in(key, seed),
            logdensity,
            MeanFieldGaussian.init(jnp.zeros(36), 0.3),
            config=FAST,
        )
        for seed in (1, 2)
    ]
    # Monte Carlo error of one run, per pixel in posterior-std units, from two runs
    mc = np.sqrt(np.mean(((runs[0].mean - runs[1].mean) / sd) ** 2 / 2))
    average = 0.5 * (runs[0].mean + runs[1].mean)
    rms = np.sqrt(np.mean(((average - exact.mean) / sd) ** 2))
    assert mc < 0.2
    assert rms < 2.0 * mc / np.sqrt(2)
    optimum = 1.0 / np.diag(exact.precision)
    np.testing.assert_allclose(runs[0].std ** 2 / optimum, 1.0, atol=0.15)
    # negative control: the mean-field variance is clearly below the exact one
    assert np.mean(runs[0].std ** 2 / sd**2) < 0.9
    # negative control: a fit to the wrong noise level misses the Wiener mean by far more
    wrong = mass_map_logdensity(problem._replace(noise_std=problem.noise_std / 3), data)
    biased = fit_variational(key, wrong, MeanFieldGaussian.init(jnp.zeros(36), 0.3), config=FAST)
    assert np.sqrt(np.mean(((biased.mean - exact.mean) / sd) ** 2)) > 10 * mc
