"""Tests of astrobayes.models.problems: exact samplers agree with the log posteriors and
the stated evidences agree with quadrature / Monte Carlo integrals of those log posteriors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from astrobayes.chains import Chains
from astrobayes.io import read_radiata_pine
from astrobayes.models.problems import (
    bimodal_gaussian,
    gaussian_gaussian_prior,
    gaussian_uniform_prior,
    normal_gamma,
    radiata_pine,
    rosenbrock,
)


def _quadratic_form(fn, dim):
    """Exact mean, covariance and log integral of ``exp(fn)`` for a quadratic ``fn``.

    Central differences with unit steps are exact for a quadratic (up to rounding).
    """
    eye = np.eye(dim)
    f0 = fn(np.zeros(dim))
    grad = np.array([(fn(e) - fn(-e)) / 2 for e in eye])
    hess = np.array(
        [[(fn(a + b) - fn(a - b) - fn(b - a) + fn(-a - b)) / 4 for b in eye] for a in eye]
    )
    cov = np.linalg.inv(-hess)
    mean = cov @ grad
    peak = f0 + 0.5 * grad @ mean
    log_integral = peak + 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]
    return mean, cov, log_integral


def test_gaussian_gaussian_prior_evidence_and_sampler(key):
    dim = 4
    problem = gaussian_gaussian_prior(dim)
    mean, cov, log_integral = _quadratic_form(problem.log_posterior_fn, dim)
    np.testing.assert_allclose(log_integral, problem.log_evidence, rtol=0, atol=1e-9)
    num = 200_000
    draws = problem.sampler(key, num)
    assert draws.shape == (num, dim)
    std_mean = np.sqrt(np.diag(cov) / num)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * std_mean)
    # Sample covariance: standard error of entry (i, j) is sqrt((c_ij^2 + c_ii c_jj) / n).
    sample_cov = np.cov(draws.T)
    std_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / num)
    assert np.all(np.abs(sample_cov - cov) < 5 * std_cov)


def test_gaussian_gaussian_prior_jax_density_matches_numpy():
    problem = gaussian_gaussian_prior(3)
    theta = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(
        np.asarray(jax.vmap(problem.logdensity_fn)(jnp.asarray(theta))),
        problem.log_posterior_fn(theta),
        rtol=1e-5,
    )


def test_bimodal_gaussian_evidence_and_sampler(key):
    problem = bimodal_gaussian(2)
    grid = np.linspace(-12, 12, 1201)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    density = np.exp(problem.log_posterior_fn(np.stack([xx, yy], axis=-1)))
    z = integrate.trapezoid(integrate.trapezoid(density, grid, axis=1), grid)
    np.testing.assert_allclose(np.log(z), problem.log_evidence, rtol=0, atol=1e-6)
    draws = problem.sampler(key, 100_000)
    upper = draws.sum(-1) > 0
    # equal mode weights: 5 binomial standard deviations
    assert abs(upper.mean() - 0.5) < 5 * np.sqrt(0.25 / draws.shape[0])
    # each mode's mean against quadrature of the posterior restricted to x + y > 0
    mask = (xx + yy) > 0
    weight = density * mask
    total = integrate.trapezoid(integrate.trapezoid(weight, grid, axis=1), grid)
    mean_x = integrate.trapezoid(integrate.trapezoid(weight * xx, grid, axis=1), grid) / total
    assert abs(draws[upper, 0].mean() - mean_x) < 5 * draws[upper, 0].std() / np.sqrt(upper.sum())


def test_normal_gamma_evidence_and_sampler(key):
    problem = normal_gamma()
    mu = np.linspace(-0.5, 2.8, 1001)
    log_tau = np.linspace(-2.6, -0.2, 1001)
    mm, tt = np.meshgrid(mu, log_tau, indexing="ij")
    log_p = problem.log_posterior_fn(np.stack([mm, tt], axis=-1))
    density = np.exp(log_p - problem.log_evidence)
    # the grid holds the whole posterior (density negligible at its edges)
    assert density[0].max() < 1e-8
    assert density[-1].max() < 1e-8
    assert density[:, 0].max() < 1e-8
    assert density[:, -1].max() < 1e-8
    mass = integrate.trapezoid(integrate.trapezoid(density, log_tau, axis=1), mu)
    np.testing.assert_allclose(mass, 1.0, rtol=1e-6)
    draws = problem.sampler(key, 100_000)
    for index, grid in ((0, mm), (1, tt)):
        moment = integrate.trapezoid(integrate.trapezoid(density * grid, log_tau, axis=1), mu)
        std = draws[:, index].std() / np.sqrt(draws.shape[0])
        assert abs(draws[:, index].mean() - moment) < 5 * std


def test_rosenbrock_marginal_of_x(key):
    problem = rosenbrock()
    x_edges = np.linspace(-2.5, 4.0, 66)
    x_grid = np.linspace(-5.0, 5.0, 1001)
    y_grid = np.linspace(-5.0, 30.0, 3501)
    # marginal p(x) = int exp(log_posterior(x, y)) dy / z, by quadrature on a fine grid
    xx, yy = np.meshgrid(x_grid, y_grid, indexing="ij")
    log_p = problem.log_posterior_fn(np.stack([xx, yy], axis=-1)) - problem.log_evidence
    marginal = integrate.trapezoid(np.exp(log_p), y_grid, axis=1)
    np.testing.assert_allclose(integrate.trapezoid(marginal, x_grid), 1.0, rtol=1e-5)
    cdf = np.concatenate([[0.0], integrate.cumulative_trapezoid(marginal, x_grid)])
    expected = np.diff(np.interp(x_edges, x_grid, cdf))
    num = 50_000
    draws = problem.sampler(key, num)
    assert np.all(np.isfinite(problem.log_posterior_fn(draws)))
    counts, _ = np.histogram(draws[:, 0], bins=x_edges)
    keep = expected * num > 5
    chi2 = np.sum((counts[keep] - num * expected[keep]) ** 2 / (num * expected[keep]))
    assert stats.chi2.sf(chi2, keep.sum()) > 1e-3, chi2
    # y | x: the valley y ~ x^2 with variance 1 / (2 b) = 0.05 (truncation negligible here)
    resid = draws[:, 1] - draws[:, 0] ** 2
    inner = np.abs(draws[:, 0]) < 2
    assert abs(resid[inner].std() - np.sqrt(0.05)) < 0.01


def test_rosenbrock_log_posterior_outside_prior_is_minus_infinity():
    problem = rosenbrock()
    theta = np.array([[6.0, 1.0], [0.0, 31.0], [0.0, 0.0]])
    lp = problem.log_posterior_fn(theta)
    assert np.isneginf(lp[:2]).all()
    assert np.isfinite(lp[2])


def test_gaussian_uniform_prior_evidence_by_monte_carlo(key):
    problem = gaussian_uniform_prior(2, half_width=3.0)
    rng = np.random.default_rng(1)
    num = 2_000_000
    prior_draws = rng.uniform(-3.0, 3.0, size=(num, 2))
    # z = E_prior[L]; log_posterior = log L + log prior and the prior density is 1/36
    like = np.exp(problem.log_posterior_fn(prior_draws) + 2 * np.log(6.0))
    estimate, std = like.mean(), like.std() / np.sqrt(num)
    assert std / estimate < 0.01
    assert abs(np.log(estimate) - problem.log_evidence) < 4.5 * std / estimate
    # the draws lie inside the box and the log posterior is -inf outside it
    draws = problem.sampler(key, 10_000)
    assert np.all(np.abs(draws) <= 3.0)
    assert np.isneginf(problem.log_posterior_fn(np.array([3.5, 0.0])))


def test_gaussian_uniform_prior_sampler_matches_truncated_density(key):
    problem = gaussian_uniform_prior(1, half_width=2.0)
    grid = np.linspace(-2.0, 2.0, 20001)
    density = np.exp(problem.log_posterior_fn(grid[:, None]) - problem.log_evidence)
    np.testing.assert_allclose(integrate.trapezoid(density, grid), 1.0, rtol=1e-7)
    cdf = np.concatenate([[0.0], integrate.cumulative_trapezoid(density, grid)])
    draws = problem.sampler(key, 20_000)[:, 0]
    result = stats.kstest(draws, lambda v: np.interp(v, grid, cdf))
    assert result.pvalue > 1e-3


@pytest.mark.parametrize(("covariate", "log_z"), [("x", -310.1283), ("z", -301.7046)])
def test_radiata_pine_reference_evidence(shared_data, covariate, log_z):
    problem = radiata_pine(
        read_radiata_pine(shared_data / "evidence" / "radiata_pine.dat"), covariate
    )
    assert problem.dim == 3
    assert problem.names == ("alpha", "beta", "log_tau")
    np.testing.assert_allclose(problem.log_evidence, log_z, rtol=0, atol=1e-3)


def test_radiata_pine_sampler_agrees_with_log_posterior(shared_data, key):
    # The posterior of (alpha, beta) given tau is Gaussian: its conditional mean is the
    # maximiser of the log posterior along (alpha, beta); check the draws' mean there.
    problem = radiata_pine(read_radiata_pine(shared_data / "evidence" / "radiata_pine.dat"), "x")
    draws = problem.sampler(key, 50_000)
    assert np.all(np.isfinite(problem.log_posterior_fn(draws)))
    log_tau = np.median(draws[:, 2])

    def fn(beta):
        return problem.log_posterior_fn(np.r_[beta, log_tau])

    mean, _, _ = _quadratic_form(fn, 2)
    std = draws[:, :2].std(0) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws[:, :2].mean(0) - mean) < 5 * std)


def test_radiata_pine_without_header_and_bad_covariate(shared_data, tmp_path):
    source = shared_data / "evidence" / "radiata_pine.dat"
    lines = source.read_text().splitlines()
    copy = tmp_path / "radiata.dat"
    copy.write_text("\n".join(line for line in lines if not line.startswith("#")) + "\n")
    np.testing.assert_array_equal(read_radiata_pine(copy), read_radiata_pine(source))
    table = read_radiata_pine(source)
    assert table.shape == (42, 4)
    with pytest.raises(ValueError, match="covariate must be 'x' or 'z'; got 'y'"):
        radiata_pine(table, "y")
    with pytest.raises(ValueError, match=r"table must have 4 columns \(id y x z\)"):
        radiata_pine(table[:, :3], "x")
    with pytest.raises(ValueError, match="table must be finite"):
        radiata_pine(np.where(table == table[3, 1], np.nan, table), "x")


def test_sample_chains(key):
    problem = normal_gamma()
    chains = problem.sample_chains(key, 3, 100)
    assert isinstance(chains, Chains)
    assert chains.samples.shape == (3, 100, 2)
    assert chains.names == ("mu", "log_tau")
    np.testing.assert_allclose(chains.log_posterior, problem.log_posterior_fn(chains.samples))
    again = problem.sample_chains(key, 3, 100)
    np.testing.assert_array_equal(chains.samples, again.samples)
    other = problem.sample_chains(jax.random.fold_in(key, 1), 3, 100)
    assert not np.array_equal(chains.samples, other.samples)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        problem.sample_chains(0, 3, 100)
    with pytest.raises(ValueError, match="num_chains must be >= 1"):
        problem.sample_chains(key, 0, 100)
    with pytest.raises(TypeError, match="dim must be an integer"):
        gaussian_gaussian_prior(2.0)
