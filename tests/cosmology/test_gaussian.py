import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from astrobayes.cosmology import GaussianLikelihood, gaussian_log_likelihood, validate_covariance


def test_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 5))
    covariance = a @ a.T + 5 * np.eye(5)
    data = rng.normal(size=5)
    model = rng.normal(size=5)
    expected = multivariate_normal(model, covariance).logpdf(data)
    with jax.enable_x64(True):
        np.testing.assert_allclose(
            GaussianLikelihood(data, covariance)(model), expected, rtol=1e-12
        )
        np.testing.assert_allclose(
            gaussian_log_likelihood(data - model, covariance), expected, rtol=1e-12
        )
    np.testing.assert_allclose(GaussianLikelihood(data, covariance)(model), expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("covariance", "match"),
    [
        (np.ones(3), "must have 2 dimensions"),
        (np.ones((2, 3)), "square"),
        (np.array([[1.0, 0.5], [0.4, 1.0]]), "symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive definite; its smallest eigenvalue is -1"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "finite"),
        (np.eye(3), "must be 2x2"),
    ],
)
def test_invalid_covariance(covariance, match):
    with pytest.raises(ValueError, match=match):
        GaussianLikelihood(np.zeros(2), covariance, name="my_cov")


def test_invalid_covariance_names_argument():
    with pytest.raises(ValueError, match="my_cov must be symmetric"):
        validate_covariance(np.array([[1.0, 0.5], [0.4, 1.0]]), "my_cov")
    with pytest.raises(TypeError, match="array of numbers"):
        validate_covariance(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="data must be finite"):
        GaussianLikelihood(np.array([0.0, np.inf]), np.eye(2))
