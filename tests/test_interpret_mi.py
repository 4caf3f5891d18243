"""GMM mutual information: analytic truths on Gaussians, a negative control, validation."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from astrobayes.interpret import (
    GaussianMixture,
    MIConfig,
    MIStatus,
    fit_gaussian_mixture,
    mixture_log_density,
    mixture_mutual_information,
    mutual_information,
)

SMALL = MIConfig(max_components=2, num_bootstrap=20, num_mc_samples=2000, num_iterations=100)


def _correlated(seed: int, rho: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    return z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]


@pytest.fixture(scope="module")
def results():
    """One correlated (rho = 0.8) and one independent data set, same compiled program."""
    out = {}
    for name, rho in (("correlated", 0.8), ("independent", 0.0)):
        x, y = _correlated(7, rho, 400)
        out[name] = mutual_information(jax.random.key(3), x, y, config=SMALL)
    return out


def test_correlated_gaussian_matches_the_analytic_mi(results):
    r = results["correlated"]
    truth = -0.5 * np.log(1 - 0.8**2)
    assert r.status in (MIStatus.OK, MIStatus.MAX_COMPONENTS)
    assert r.num_components == 1
    assert r.error > 0
    assert abs(r.estimate - truth) < 3 * r.error
    # negative control: a wrong correlation (0.7 instead of 0.8) is rejected
    wrong = -0.5 * np.log(1 - 0.7**2)
    assert abs(r.estimate - wrong) > 3 * r.error


def test_independent_variables_have_mi_consistent_with_zero(results):
    r = results["independent"]
    assert r.estimate < 3 * r.error + 3 * r.monte_carlo_error
    assert r.estimate < 0.3 * results["correlated"].estimate / 10


def test_bootstrap_values_are_reported(results):
    r = results["correlated"]
    assert r.bootstrap.shape == (SMALL.num_bootstrap,)
    np.testing.assert_allclose(r.estimate, r.bootstrap.mean(), rtol=1e-12)
    # the replicas share their Monte Carlo points: the one Monte Carlo error is added
    np.testing.assert_allclose(
        r.error, np.hypot(r.bootstrap.std(ddof=1), r.monte_carlo_error), rtol=1e-12
    )
    assert r.num_components == 1
    assert r.monte_carlo_error == 0.0  # one Gaussian: the integral is exact
    assert r.held_out_log_likelihood.shape == (SMALL.max_components,)


@pytest.mark.slow
def test_mixture_mi_is_differentiable():
    import jax.numpy as jnp

    def mi_of(rho):
        cov = jnp.array([[1.0, rho], [rho, 1.0]])
        g = GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.linalg.cholesky(cov)[None])
        return mixture_mutual_information(jax.random.key(0), g, 1, 4000)[0]

    rho = 0.6
    gradient = float(jax.grad(mi_of)(rho))
    analytic = rho / (1 - rho**2)  # d/d rho of -1/2 ln(1 - rho^2)
    assert abs(gradient - analytic) < 0.1 * analytic


# slow (~13 s): the fast suite checks the estimator against the analytic Gaussian MI
@pytest.mark.slow
def test_mixture_mi_matches_quadrature_on_a_two_mode_mixture():
    import jax.numpy as jnp

    from astrobayes.mixtures import marginal_mixture

    # two tilted components: far from Gaussian, the control variate cannot make it exact
    cov_a = jnp.array([[1.0, 0.8], [0.8, 1.0]])
    cov_b = jnp.array([[0.5, -0.2], [-0.2, 0.8]])
    g = GaussianMixture(
        jnp.array([0.4, 0.6]),
        jnp.array([[-2.0, 1.0], [1.5, -1.0]]),
        jnp.linalg.cholesky(jnp.stack([cov_a, cov_b])),
    )
    axis = jnp.linspace(-9.0, 9.0, 481)
    step = float(axis[1] - axis[0])
    grid = jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    log_joint = mixture_log_density(g, grid).reshape(axis.size, axis.size)
    log_x = mixture_log_density(marginal_mixture(g, slice(0, 1)), axis[:, None])
    log_y = mixture_log_density(marginal_mixture(g, slice(1, 2)), axis[:, None])
    integrand = jnp.exp(log_joint) * (log_joint - log_x[:, None] - log_y[None, :])
    truth = float(jnp.sum(integrand)) * step**2
    mi, err = mixture_mutual_information(jax.random.key(4), g, 1, 4000)
    mi, err = float(mi), float(err)
    assert 0 < err < 0.02
    assert abs(mi - truth) < 4 * err
    # negative control: the moment-matched Gaussian's MI (the control variate's mean)
    # is not the answer, so the estimate is not just the control
    mean = g.weights @ g.means
    second = jnp.einsum("k,kij->ij", g.weights, jnp.stack([cov_a, cov_b])) + jnp.einsum(
        "k,ki,kj->ij", g.weights, g.means, g.means
    )
    s = np.asarray(second - jnp.outer(mean, mean))
    gaussian = 0.5 * np.log(s[0, 0] * s[1, 1] / np.linalg.det(s))
    assert abs(gaussian - truth) > 10 * err


def test_mixture_log_density_integrates_to_one():
    import jax.numpy as jnp

    g = GaussianMixture(
        jnp.array([0.3, 0.7, 0.0]),
        jnp.array([[-1.0], [2.0], [0.0]]),
        jnp.array([[[0.5]], [[1.5]], [[1.0]]]),
    )
    grid = jnp.linspace(-10, 12, 4001)[:, None]
    total = float(jnp.trapezoid(jnp.exp(mixture_log_density(g, grid)), grid[:, 0]))
    np.testing.assert_allclose(total, 1.0, atol=1e-4)


@pytest.mark.slow
def test_vector_variables_match_the_gaussian_mi(key):
    rng = np.random.default_rng(1)
    cov = np.array([[1.0, 0.3, 0.5], [0.3, 1.0, -0.4], [0.5, -0.4, 1.0]])
    samples = rng.multivariate_normal(np.zeros(3), cov, size=1500)
    truth = -0.5 * np.log(np.linalg.det(cov) / np.linalg.det(cov[:2, :2]))
    r = mutual_information(key, samples[:, :2], samples[:, 2], config=MIConfig(max_components=3))
    assert abs(r.estimate - truth) < 3 * r.error


@pytest.mark.slow
def test_mi_is_invariant_under_monotone_maps(key):
    # a bimodal, non-Gaussian pair: the mixture needs more than one component
    x, y = _correlated(2, 0.7, 1500)
    r_plain = mutual_information(key, x, y)
    r_mapped = mutual_information(key, np.sinh(2 * x), np.exp(y))
    truth = -0.5 * np.log(1 - 0.7**2)
    assert r_mapped.num_components > 1
    assert abs(r_plain.estimate - truth) < 3 * r_plain.error
    assert abs(r_mapped.estimate - truth) < 3 * r_mapped.error + 0.05


def test_fit_gaussian_mixture_recovers_two_components():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(-3, 0.5, 300), rng.normal(2, 1.0, 700)])[:, None]
    g, _, converged = fit_gaussian_mixture(jax.random.key(0), points, 2)
    order = np.argsort(np.asarray(g.means[:, 0]))
    np.testing.assert_allclose(np.asarray(g.weights)[order], [0.3, 0.7], atol=0.04)
    np.testing.assert_allclose(np.asarray(g.means[:, 0])[order], [-3, 2], atol=0.15)
    assert converged


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.ones(100), np.arange(100.0), "constant column"),
        (np.arange(100.0), np.arange(99.0), "same number of samples"),
        (np.arange(10.0), np.arange(10.0), "at least"),
        (np.r_[np.nan, np.arange(99.0)], np.arange(100.0), "x"),
        (np.zeros((100, 2, 2)), np.arange(100.0), "x"),
    ],
)
def test_bad_input_is_rejected(x, y, match):
    with pytest.raises(ValueError, match=match):
        mutual_information(jax.random.key(0), x, y, config=SMALL)


def test_integer_key_and_bad_config_are_rejected():
    with pytest.raises(TypeError, match="key"):
        mutual_information(0, np.arange(100.0), np.arange(100.0))
    with pytest.raises(TypeError, match="MIConfig"):
        mutual_information(jax.random.key(0), np.arange(100.0), np.arange(100.0), config={})
    with pytest.raises(ValueError, match="num_folds"):
        MIConfig(num_folds=1)
    with pytest.raises(ValueError, match="covariance_floor"):
        MIConfig(covariance_floor=-1.0)
