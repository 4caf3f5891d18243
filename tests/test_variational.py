"""Variational families and mass mapping against the exact Wiener-filter posterior."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
import pytest

from astrobayes.variational import (
    FlowFamily,
    LowRankGaussian,
    MeanFieldGaussian,
    VIConfig,
    fit_variational,
    kaiser_squires_shear,
    lognormal_convergence,
    lognormal_logdensity,
    make_problem,
    mass_map_logdensity,
    simulate_lognormal_shear,
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
    with pytest.raises(ValueError, match="num_elbo_draws must be at least 2"):
        VIConfig(num_elbo_draws=1)
    with pytest.raises(ValueError, match="mean must be a vector"):
        FlowFamily.init(key, jnp.zeros(1))
    with pytest.raises(ValueError, match="shift must be positive"):
        lognormal_logdensity(make_problem(4), np.zeros((2, 4, 4)), 0.0)


def _mean_field_elbo(mean, variance, centre, precision):
    """Analytic ELBO of ``N(mean, diag(variance))`` against ``exp(-(x-c)^T P (x-c) / 2)``
    and the standard deviation of its per-draw terms ``log p(x) + H[q]``, ``x ~ q``:
    ``Var = d^T P S P d + tr((S^1/2 P S^1/2)^2) / 2`` with ``d = mean - c``, ``S = diag(variance)``."""
    d = mean - centre
    entropy = 0.5 * np.sum(np.log(2 * np.pi * np.e * variance))
    elbo = -0.5 * (d @ precision @ d + np.sum(np.diag(precision) * variance)) + entropy
    root = np.sqrt(variance)
    a = root[:, None] * precision * root[None, :]
    std = np.sqrt(d @ precision @ (variance * (precision @ d)) + 0.5 * np.trace(a @ a))
    return elbo, std


def test_reported_elbo_is_the_fitted_familys_within_its_monte_carlo_error(key):
    """``VIResult.elbo`` against the analytic ELBO of the returned mean-field Gaussian on a
    correlated Gaussian target, within 3 of its reported errors; the reported error against
    the analytic per-draw standard deviation over sqrt(num_elbo_draws) (its sampling error
    at 4096 draws is ~3%). Negative control: the untrained family's analytic ELBO is many
    errors away, so a result that ignored the fit would fail."""
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    precision, centre = np.linalg.inv(cov), np.array([1.0, -1.0, 0.5])
    p, c = jnp.asarray(precision, jnp.float32), jnp.asarray(centre, jnp.float32)
    q = MeanFieldGaussian.init(jnp.zeros(3))
    result = fit_variational(key, lambda x: -0.5 * (x - c) @ p @ (x - c), q, config=FAST)
    fitted = result.family
    mean = np.asarray(fitted.mean, np.float64)
    variance = np.asarray(fitted.variance(), np.float64)
    truth, term_std = _mean_field_elbo(mean, variance, centre, precision)
    assert abs(result.elbo - truth) < 3 * result.elbo_error, (result.elbo, truth)
    expected_error = term_std / np.sqrt(FAST.num_elbo_draws)
    assert abs(result.elbo_error / expected_error - 1) < 0.15, (result.elbo_error, expected_error)
    untrained, _ = _mean_field_elbo(np.zeros(3), np.ones(3), centre, precision)
    assert abs(result.elbo - untrained) > 10 * result.elbo_error


def test_flow_log_prob_is_the_change_of_variables_density(key):
    """log q from the sampling pass equals log N(u) - log|det dtheta/du| by autodiff, and the
    inverse-direction log_prob; negative control: dropping the flow's Jacobian is wrong."""
    dim = 3
    q = FlowFamily.init(key, jnp.arange(dim, dtype=jnp.float32), std=0.5, flow_layers=1, nn_width=6)
    # move the conditioners' last layers far from the near-identity start
    q = eqx.tree_at(lambda m: m.flow, q, replace_fn=lambda f: _scale_last(f, 60.0))
    flow = paramax.unwrap(q.flow)

    def theta_of(u):
        return q.loc + jnp.exp(q.log_scale) * flow.bijection.transform(u)

    u = jax.random.normal(jax.random.fold_in(key, 1), (3, dim))
    theta = jax.vmap(theta_of)(u)
    log_det = jax.jit(jax.vmap(lambda x: jnp.linalg.slogdet(jax.jacfwd(theta_of)(x))[1]))(u)
    base = -0.5 * jnp.sum(u**2, axis=1) - 0.5 * dim * np.log(2 * np.pi)
    expected = np.asarray(base - log_det)
    log_prob = eqx.filter_jit(lambda x: q.log_prob(x))
    np.testing.assert_allclose(np.asarray(log_prob(theta)), expected, atol=1e-3)
    draws, log_q = q.sample_and_log_prob(jax.random.fold_in(key, 2), 3)
    np.testing.assert_allclose(np.asarray(log_q), np.asarray(log_prob(draws)), atol=1e-3)
    # negative control: without the flow layers' Jacobian the density misses the tolerance
    # above tenfold (0.4 in float32, 0.02 in float64: the initial weights differ)
    scale_only = np.asarray(base - jnp.sum(q.log_scale))
    assert np.max(np.abs(scale_only - expected)) > 10 * 1e-3


def _scale_last(flow, factor):
    def scale(node):
        if not isinstance(node, eqx.nn.MLP):
            return node
        return eqx.tree_at(
            lambda mlp: mlp.layers[-1],
            node,
            replace_fn=lambda layer: jax.tree_util.tree_map(
                lambda x: x * factor if eqx.is_inexact_array(x) else x, layer
            ),
        )

    return jax.tree_util.tree_map(scale, flow, is_leaf=lambda n: isinstance(n, eqx.nn.MLP))


@pytest.mark.slow
def test_flow_elbo_reaches_the_analytic_evidence(key):
    """On a correlated Gaussian target with known log Z, the fitted flow's reported ELBO
    equals log Z within 3 of its Monte Carlo errors plus 0.01 nats for the fit (an affine
    flow can represent this posterior exactly, but a finite fit leaves KL(q || p) > 0);
    negative control: the mean-field optimum's ELBO sits below log Z by its analytic KL gap.

    Measured 2026-12-06 (stop 50), log Z - ELBO over 6 keys: 12 epochs with 256 validation
    draws (the settings before), 0.017-0.053 (0.016-0.045 with the validation draws
    renewed every epoch): this test's bound failed for most keys. The 256-draw validation
    estimate picks its best epoch within its own noise (~0.01 nats) and stops the fit
    early; with 2048 validation draws and 40 epochs, 0.0045-0.0124 (errors ~0.002).
    """
    dim = 3
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    precision = np.linalg.inv(cov)
    mean = np.array([1.0, -1.0, 0.5])
    log_z = 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]  # of exp(-x^T P x / 2)
    p, m = jnp.asarray(precision, jnp.float32), jnp.asarray(mean, jnp.float32)

    def logdensity(x):
        return -0.5 * (x - m) @ p @ (x - m)

    config = VIConfig(
        num_draws=16, steps_per_epoch=50, max_epochs=40, patience=40, num_validation_draws=2048
    )
    q = FlowFamily.init(key, jnp.zeros(dim), flow_layers=1, nn_width=8)
    result = fit_variational(jax.random.fold_in(key, 1), logdensity, q, config=config)
    elbo, error = result.elbo, result.elbo_error
    assert log_z - elbo < 3 * error + 0.01  # a bound: the ELBO never exceeds log Z
    assert elbo - log_z < 3 * error
    # negative control: mean-field's best ELBO is log Z - KL, KL analytic and large here
    gap = 0.5 * (np.sum(np.log(np.diag(precision))) - np.linalg.slogdet(precision)[1])
    assert gap > 10 * (3 * error + 0.01)


def test_lognormal_logdensity_matches_a_direct_numpy_computation(key):
    """The JAX log density against dense NumPy (prior covariance square root by eigen-
    decomposition, Kaiser-Squires by its Fourier kernel); negative control: the Gaussian
    prior on the same field (kappa = g) gives a different density."""
    size, shift = 4, 0.4
    problem = make_problem(size, amplitude=10.0, noise_std=0.3)
    _, kappa, data = simulate_lognormal_shear(key, problem, shift)
    white = np.asarray(jax.random.normal(jax.random.fold_in(key, 1), (3, size * size)))
    measured = np.asarray(
        jax.jit(jax.vmap(lognormal_logdensity(problem, data, shift)))(
            jnp.asarray(white, jnp.float32)
        )
    )
    # dense prior covariance C = U^H diag(P) U and its symmetric square root
    pixels = size * size
    dft = np.fft.fft2(np.eye(pixels).reshape(pixels, size, size), norm="ortho").reshape(pixels, -1)
    cov = np.real(dft.conj().T @ (problem.power.ravel()[:, None] * dft))
    values, vectors = np.linalg.eigh(cov)
    root = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    k = np.fft.fftfreq(size)
    k1, k2 = np.meshgrid(k, k, indexing="ij")
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(k1**2 + k2**2 > 0, (k1 + 1j * k2) ** 2 / (k1**2 + k2**2), 0)

    def direct(w, lognormal=True):
        g = (root @ w).reshape(size, size)
        field = shift * (np.exp(g - 0.5 * np.mean(np.diag(cov))) - 1) if lognormal else g
        gamma = np.fft.ifft2(kernel * np.fft.fft2(field))
        chi2 = np.sum(problem.mask * ((gamma.real - data[0]) ** 2 + (gamma.imag - data[1]) ** 2))
        return -0.5 * chi2 / problem.noise_std**2 - 0.5 * np.sum(w**2)

    expected = np.array([direct(w) for w in white])
    np.testing.assert_allclose(measured, expected, rtol=1e-4, atol=1e-3)
    gaussian = np.array([direct(w, lognormal=False) for w in white])
    assert np.min(np.abs(gaussian - expected)) > 100 * (1e-3 + 1e-4 * np.abs(expected).max())
    # the convergence is bounded below by -shift (the simulated map and an extreme field)
    extreme = lognormal_convergence(
        jnp.asarray(-5 * white[0].reshape(size, size)), problem.power, shift
    )
    assert float(jnp.min(kappa)) > -shift
    assert float(jnp.min(extreme)) >= -shift


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


@pytest.mark.slow
def test_flow_matches_wiener_mean_within_its_monte_carlo_error(key):
    """The flow family's mean (from draws) agrees with the Wiener filter within the run-to-run
    Monte Carlo error, and its variance is closer to the exact one than mean-field's optimum;
    negative control: the flow fitted to the wrong noise level misses by > 10 MC errors."""
    problem, _, data, exact = _problem(key)
    logdensity = mass_map_logdensity(problem, data)
    sd = np.sqrt(np.diag(exact.covariance))
    config = VIConfig(num_draws=8, steps_per_epoch=50, max_epochs=30, patience=30)

    def flow_fit(seed, density):
        q = FlowFamily.init(jax.random.fold_in(key, 10 + seed), jnp.zeros(36), std=0.3)
        return fit_variational(jax.random.fold_in(key, seed), density, q, config=config)

    runs = [flow_fit(seed, logdensity) for seed in (1, 2)]
    mc = np.sqrt(np.mean(((runs[0].mean - runs[1].mean) / sd) ** 2 / 2))
    average = 0.5 * (runs[0].mean + runs[1].mean)
    rms = np.sqrt(np.mean(((average - exact.mean) / sd) ** 2))
    assert mc < 0.2
    assert rms < 2.0 * mc / np.sqrt(2)
    ratio = np.mean(runs[0].std ** 2 / sd**2)
    mean_field_ratio = np.mean(1.0 / np.diag(exact.precision) / sd**2)
    assert mean_field_ratio < ratio < 1.1
    wrong = mass_map_logdensity(problem._replace(noise_std=problem.noise_std / 3), data)
    biased = flow_fit(1, wrong)
    assert np.sqrt(np.mean(((biased.mean - exact.mean) / sd) ** 2)) > 10 * mc
