"""Nested-sampling evidence of priors known only through their score (issue 12 item 3).

Truths are independent of the sampler: 1-D quadrature for an i.i.d. logistic prior (a
non-Gaussian potential, where the trapezoid energy is approximate) and dense linear
algebra for a Gaussian prior seen through a masked FFT. Negative control: an
over-sharpened score (3x) must miss the truth by far more than the reported error.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.nested import ball_projection, proximal_nested_sampling
from astrobayes.imaging.operators import fourier_mask_operator
from astrobayes.imaging.prior_evidence import score_prior_log_evidence

_GRID = np.linspace(-40.0, 40.0, 40001)


def _logistic_log_evidence(y, sigma):
    """Exact ln Z of y = x + N(0, sigma^2), x_i i.i.d. standard logistic, by quadrature."""
    log_prior = -np.abs(_GRID) - 2 * np.log1p(np.exp(-np.abs(_GRID)))
    f = (
        log_prior[None]
        - 0.5 * (y[:, None] - _GRID[None]) ** 2 / sigma**2
        - 0.5 * math.log(2 * math.pi * sigma**2)
    )
    top = f.max(axis=1)
    return float(np.sum(top + np.log(np.trapezoid(np.exp(f - top[:, None]), _GRID, axis=1))))


def _logistic_run(d, num_live, sigma, factor, seed, num_mcmc_steps=20):
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=d)
    y = np.log(u / (1 - u)) + sigma * rng.normal(size=d)
    u = rng.uniform(size=(num_live, d))
    live = jnp.asarray(np.log(u / (1 - u)))
    data = jnp.asarray(y)
    result = proximal_nested_sampling(
        jax.random.key(seed),
        lambda x: -jnp.sum((data - x) ** 2) / (2 * sigma**2),
        None,  # the prior is known only through its score, -tanh(x / 2)
        ball_projection(data, sigma),
        live,
        log_likelihood_offset=-0.5 * d * math.log(2 * math.pi * sigma**2),
        prior_gradient_fn=lambda x: factor * jnp.tanh(x / 2),
        num_mcmc_steps=num_mcmc_steps,
        num_delete=max(1, num_live // 20),
    )
    return result, _logistic_log_evidence(y, sigma)


def test_score_only_prior_evidence_matches_quadrature_and_control_fails():
    result, truth = _logistic_run(64, 50, 0.5, 1.0, seed=0, num_mcmc_steps=10)
    assert result.status.is_ok
    assert abs(result.log_evidence - truth) < 3 * result.log_evidence_error
    # Negative control: the score of a different (over-sharpened) prior.
    wrong, _ = _logistic_run(64, 50, 0.5, 3.0, seed=0, num_mcmc_steps=10)
    assert abs(wrong.log_evidence - truth) > 10 * wrong.log_evidence_error


def _gaussian_mask_problem(seed, prior_sd=1.0, sigma=0.3, n=8, num_draws=60):
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(n, n)) < 0.4
    op = fourier_mask_operator(mask)
    # Real matrix of the operator: [Re; Im] of Phi e_j, column by column.
    basis = np.eye(n * n).reshape(n * n, n, n)
    columns = np.stack([np.asarray(op(b)) for b in basis], axis=1)
    a = np.concatenate([columns.real, columns.imag])
    x = prior_sd * rng.normal(size=(n, n))
    y = op(jnp.asarray(x)) + sigma * (
        rng.normal(size=op.num_visibilities) + 1j * rng.normal(size=op.num_visibilities)
    )
    y_real = np.concatenate([np.asarray(y).real, np.asarray(y).imag])
    cov = prior_sd**2 * a @ a.T + sigma**2 * np.eye(a.shape[0])
    _, logdet = np.linalg.slogdet(2 * np.pi * cov)
    truth = float(-0.5 * (y_real @ np.linalg.solve(cov, y_real)) - 0.5 * logdet)
    draws = prior_sd * rng.normal(size=(num_draws, n, n))
    return op, y, sigma, draws, truth


def test_score_prior_log_evidence_gaussian_through_masked_fft():
    op, y, sigma, draws, truth = _gaussian_mask_problem(1)
    result = score_prior_log_evidence(
        jax.random.key(2), op, y, sigma, lambda x: -x, draws, num_mcmc_steps=15, num_delete=3
    )
    assert result.status.is_ok
    assert result.prior_samples.is_exact
    assert abs(result.log_evidence - truth) < 3 * result.log_evidence_error


def test_score_prior_bad_inputs_are_clear():
    op, y, sigma, draws, _ = _gaussian_mask_problem(3)
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="score_fn must be callable"):
        score_prior_log_evidence(key, op, y, sigma, "score", draws)
    with pytest.raises(ValueError, match="prior_draws must have shape"):
        score_prior_log_evidence(key, op, y, sigma, lambda x: -x, draws[0])
    with pytest.raises(ValueError, match="not finite at the prior draws"):
        score_prior_log_evidence(key, op, y, sigma, lambda x: x / 0.0 * 0.0, draws)
    with pytest.raises(ValueError, match="sigma"):
        score_prior_log_evidence(key, op, y, -1.0, lambda x: -x, draws)
    with pytest.raises(ValueError, match="prior_gradient_fn is required"):
        proximal_nested_sampling(
            key, lambda x: -jnp.sum(x**2), None, ball_projection(jnp.zeros(2), 1.0),
            jnp.zeros((4, 2)),
        )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_score_only_evidence_d256(seed):
    # Acceptance (issue 12): ln z within 3 sigma of the exact value at d >= 256.
    result, truth = _logistic_run(256, 100, 0.5, 1.0, seed=seed)
    assert result.status.is_ok
    assert abs(result.log_evidence - truth) < 3 * result.log_evidence_error


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_prior_evidence_gaussian_d256(seed):
    # Acceptance (issue 12): ln z within 3 sigma of the analytic value on the
    # Gaussian-prior problem at d >= 256 (16 x 16 image, 40% Fourier mask, exact
    # evidence by dense linear algebra), with only the prior's score given.
    op, y, sigma, draws, truth = _gaussian_mask_problem(10 + seed, n=16, num_draws=100)
    result = score_prior_log_evidence(
        jax.random.key(seed), op, y, sigma, lambda x: -x, draws, num_mcmc_steps=20, num_delete=5
    )
    assert result.status.is_ok
    assert abs(result.log_evidence - truth) < 3 * result.log_evidence_error
    # negative control: the score of a prior twice too narrow misses by far more
    wrong = score_prior_log_evidence(
        jax.random.key(seed), op, y, sigma, lambda x: -4.0 * x, draws / 2.0,
        num_mcmc_steps=20, num_delete=5,
    )  # fmt: skip
    assert abs(wrong.log_evidence - truth) > 10 * wrong.log_evidence_error
