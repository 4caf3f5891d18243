import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from astrobayes.sbi import Prior, prior_from_config


@pytest.fixture
def prior():
    return Prior([0.0, -1.0, 2.0], [1.0, 1.0, 0.5], [True, True, False], names=("a", "b", "c"))


def test_samples_in_support_and_log_prob_matches_scipy(key, prior):
    theta = prior.sample(key, 500)
    assert theta.shape == (500, 3)
    assert bool(jnp.all(prior.in_support(theta)))
    expected = (
        stats.uniform(0, 1).logpdf(theta[:, 0])
        + stats.uniform(-1, 2).logpdf(theta[:, 1])
        + stats.norm(2, 0.5).logpdf(theta[:, 2])
    )
    np.testing.assert_allclose(prior.log_prob(theta), expected, rtol=1e-5, atol=1e-5)
    assert prior.log_prob(jnp.array([1.5, 0.0, 0.0])) == -jnp.inf


def test_bijection_inverse_and_log_det(key, prior):
    u = jax.random.normal(key, (20, 3)) * 2
    theta = prior.to_constrained(u)
    np.testing.assert_allclose(prior.to_unconstrained(theta), u, atol=2e-4)
    jac = jax.vmap(jax.jacobian(prior.to_constrained))(u)
    log_det = jnp.log(jnp.abs(jnp.linalg.det(jac)))
    np.testing.assert_allclose(prior.log_abs_det_jacobian(u), log_det, atol=1e-4)
    np.testing.assert_allclose(
        prior.log_prob_unconstrained(u),
        prior.log_prob(theta) + prior.log_abs_det_jacobian(u),
        atol=1e-4,
    )


def test_same_key_same_result(key, prior):
    np.testing.assert_array_equal(prior.sample(key, 5), prior.sample(key, 5))


def test_prior_validation():
    with pytest.raises(ValueError, match="needs low < high"):
        Prior.uniform([1.0], [0.0])
    with pytest.raises(ValueError, match="needs std > 0"):
        Prior.normal([0.0], [-1.0])
    with pytest.raises(ValueError, match="names must hold"):
        Prior.uniform([0.0], [1.0], names=("a", "b"))
    with pytest.raises(TypeError, match="JAX PRNG key"):
        Prior.uniform([0.0], [1.0]).sample(0, 3)


def test_prior_from_config():
    prior = prior_from_config({"a": {"uniform": [0, 1]}, "b": {"normal": [0, 2]}})
    assert prior.names == ("a", "b")
    assert prior.is_bounded == (True, False)
    with pytest.raises(ValueError, match="unknown distribution"):
        prior_from_config({"a": {"gamma": [1, 1]}})
    with pytest.raises(ValueError, match="needs two numbers"):
        prior_from_config({"a": {"uniform": [0, 1, 2]}})
    with pytest.raises(ValueError, match="at least one parameter"):
        prior_from_config({})
