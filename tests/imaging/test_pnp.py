"""PnP-ULA / PnP-MALA: invariants, exactness on Gaussian targets, statuses, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.imaging.operators import fourier_mask_operator
from astrobayes.imaging.pnp import (
    PnPStatus,
    pnp_step_size,
    pnp_ula,
    pnp_ula_batch,
    score_lipschitz_estimate,
)
from astrobayes.imaging.prior_calibration import (
    gaussian_posterior,
    power_law_prior,
    ula_stationary_covariance,
)

SHAPE = (4, 4)


def _problem():
    mask = np.zeros(SHAPE, bool)
    mask[0, 0] = mask[1, 2] = mask[3, 2] = mask[2, 1] = mask[2, 3] = True
    op = fourier_mask_operator(mask)
    prior = power_law_prior(SHAPE, slope=2.0, knee=1.0)
    sigma = 0.5
    truth = prior.sample(jax.random.key(3), 1)[0]
    data = op(truth) + 0.1 * (1 + 1j)
    return op, prior, sigma, data


def _run(key, op, prior, sigma, data, **kwargs):
    settings = dict(num_chains=4, num_samples=400, num_warmup=300, thinning=5)
    settings.update(kwargs)
    return pnp_ula(
        key,
        op,
        data,
        sigma,
        settings.pop("score_fn", prior.score),
        jnp.zeros(SHAPE),
        score_lipschitz=settings.pop("score_lipschitz", prior.score_lipschitz),
        **settings,
    )


def _z_scores(result, mean, covariance):
    """Per-pixel z-scores of the chain mean and log-variance ratio against a Gaussian law."""
    draws = np.asarray(result.summaries, np.float64)
    sd = np.sqrt(np.diag(covariance))
    ess = result.ess
    z_mean = (draws.mean(axis=(0, 1)) - mean) / (sd / np.sqrt(ess))
    ratio = draws.reshape(-1, draws.shape[2]).var(axis=0) / sd**2
    z_var = (ratio - 1) / np.sqrt(2 / ess)
    return z_mean, z_var


def test_ula_matches_its_exact_stationary_law_and_oversharpened_score_does_not(key):
    op, prior, sigma, data = _problem()
    result = _run(key, op, prior, sigma, data)
    exact = gaussian_posterior(op, sigma, prior)
    covariance = ula_stationary_covariance(exact, result.step_size)
    z_mean, z_var = _z_scores(result, exact.mean(data), covariance)
    assert np.max(np.abs(z_mean)) < 4.5
    assert np.max(np.abs(z_var)) < 4.5
    # negative control: 3 x the score (a prior three times sharper) is caught
    sharp = prior.scaled(3.0)
    wrong = _run(
        key, op, prior, sigma, data, score_fn=sharp.score, score_lipschitz=sharp.score_lipschitz
    )
    _, z_wrong = _z_scores(wrong, exact.mean(data), covariance)
    assert np.min(z_wrong) < -6


@pytest.mark.slow
def test_mala_targets_the_exact_posterior(key):
    op, prior, sigma, data = _problem()
    result = _run(key, op, prior, sigma, data, method="mala", potential_fn=prior.potential)
    assert 0.5 < result.acceptance_rate <= 1.0
    exact = gaussian_posterior(op, sigma, prior)
    z_mean, z_var = _z_scores(result, exact.mean(data), exact.covariance)
    assert np.max(np.abs(z_mean)) < 4.5
    assert np.max(np.abs(z_var)) < 4.5


def test_same_key_same_draws(key):
    op, prior, sigma, data = _problem()
    first = _run(key, op, prior, sigma, data)
    second = _run(key, op, prior, sigma, data)
    np.testing.assert_array_equal(np.asarray(first.summaries), np.asarray(second.summaries))


@pytest.mark.slow
def test_batch_equals_single(key):
    op, prior, sigma, data = _problem()
    short = dict(num_samples=20, num_warmup=10, thinning=2, num_chains=2)
    batch = pnp_ula_batch(
        key,
        op,
        jnp.stack([data, 2 * data]),
        sigma,
        prior.score,
        jnp.zeros(SHAPE),
        score_lipschitz=prior.score_lipschitz,
        **short,
    )
    assert len(batch) == 2
    assert batch[1].summaries.shape == (2, 20, 16)
    # data set i of a batch is the single run with key fold_in(key, i)
    alone = _run(jax.random.fold_in(key, 1), op, prior, sigma, 2 * data, **short)
    np.testing.assert_allclose(
        np.asarray(batch[1].summaries), np.asarray(alone.summaries), rtol=1e-4, atol=1e-5
    )


def test_step_rule_and_step_statuses(key):
    op, prior, sigma, data = _problem()
    likelihood = op.norm() ** 2 / sigma**2
    bound = pnp_step_size(likelihood, prior.score_lipschitz)
    result = _run(key, op, prior, sigma, data)
    assert result.step_size == pytest.approx(bound)
    above = _run(key, op, prior, sigma, data, step_size=1.5 * bound)
    assert above.status is PnPStatus.STEP_ABOVE_BOUND
    too_large = 2.5 / (likelihood + prior.score_lipschitz)
    unstable = _run(key, op, prior, sigma, data, step_size=too_large)
    assert unstable.status is PnPStatus.STEP_TOO_LARGE
    with pytest.raises(UnreliableResultError, match="STEP_TOO_LARGE"):
        _run(key, op, prior, sigma, data, step_size=too_large, throw=True)


def test_non_finite_score_and_diverging_chain_are_failures(key):
    op, prior, sigma, data = _problem()
    result = _run(key, op, prior, sigma, data, score_fn=lambda x: x / 0.0 * 0.0)
    assert result.status is PnPStatus.NON_FINITE_SCORE
    assert result.num_score_evaluations == 0
    with pytest.raises(UnreliableResultError, match="NON_FINITE_SCORE"):
        _run(key, op, prior, sigma, data, score_fn=lambda x: jnp.nan * x, throw=True)
    # a repulsive "score" (the prior with a negative spectrum) drives the chains to overflow
    repulsive = prior.scaled(-20.0)
    blowup = _run(key, op, prior, sigma, data, score_fn=repulsive.score, score_lipschitz=5.0)
    assert blowup.status is PnPStatus.NOT_FINITE
    diverged = _run(key, op, prior, sigma, data, divergence_bound=1e-3)
    assert diverged.status is PnPStatus.DIVERGED


def test_box_pulls_chains_towards_the_set(key):
    op, prior, sigma, data = _problem()
    free = np.asarray(_run(key, op, prior, sigma, data).summaries)
    boxed = _run(key, op, prior, sigma, data, box=(0.0, None), smoothing=1e-3)
    assert boxed.smoothing == pytest.approx(1e-3)
    assert boxed.step_size < 1e-3 / 3  # 1 / lam enters the Lipschitz constant
    draws = np.asarray(boxed.summaries)
    assert np.mean(free < -0.1) > 0.1
    assert np.mean(draws < -0.1) < 0.01


def test_score_lipschitz_estimate_of_a_gaussian_score():
    prior = power_law_prior(SHAPE)
    estimate = score_lipschitz_estimate(prior.score, prior.sample(jax.random.key(0), 1))
    np.testing.assert_allclose(estimate, prior.score_lipschitz, rtol=1e-3)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"method": "nuts"}, ValueError, "method must be"),
        ({"method": "mala"}, ValueError, "needs potential_fn"),
        ({"num_chains": 1.5}, TypeError, "num_chains must be an integer"),
        ({"box": (1.0, 0.0)}, ValueError, "low < high"),
        ({"box": 0.0}, ValueError, "box must be a pair"),
        ({"score_lipschitz": -1.0}, ValueError, "score_lipschitz must be a positive"),
        ({"alpha": "1"}, TypeError, "alpha must be a number"),
    ],
)
def test_bad_settings_are_rejected(key, change, error, match):
    op, prior, sigma, data = _problem()
    with pytest.raises(error, match=match):
        _run(key, op, prior, sigma, data, **change)


def test_bad_inputs_are_rejected(key):
    op, prior, sigma, data = _problem()
    with pytest.raises(ValueError, match="visibilities must have shape"):
        _run(key, op, prior, sigma, data[:3])
    with pytest.raises(ValueError, match="visibilities must have shape"):
        pnp_ula_batch(key, op, data, sigma, prior.score, jnp.zeros(SHAPE), score_lipschitz=1.0)
    with pytest.raises(ValueError, match="initial_image must have shape"):
        pnp_ula(key, op, data, sigma, prior.score, jnp.zeros((3, 3)), score_lipschitz=1.0)
    with pytest.raises(TypeError, match="score_fn must be callable"):
        pnp_ula(key, op, data, sigma, 1.0, jnp.zeros(SHAPE), score_lipschitz=1.0)
    with pytest.raises(TypeError, match="operator must be a MeasurementOperator"):
        pnp_ula(key, None, data, sigma, prior.score, jnp.zeros(SHAPE), score_lipschitz=1.0)
    with pytest.raises(TypeError, match="PRNG key"):
        pnp_ula(0, op, data, sigma, prior.score, jnp.zeros(SHAPE), score_lipschitz=1.0)


@pytest.mark.slow
def test_nufft_operator_chains_match_the_ula_stationary_law(key):
    """The NUFFT path (no vmap: chains run with lax.map) samples the same exact law."""
    from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases

    rng = np.random.default_rng(0)
    op = nufft_operator_from_pixel_phases(rng.uniform(-np.pi, np.pi, (12, 2)), image_shape=SHAPE)
    prior = power_law_prior(SHAPE, slope=2.0, knee=1.0)
    sigma = 0.5
    data = op(prior.sample(jax.random.key(3), 1)[0])
    result = _run(key, op, prior, sigma, data)
    exact = gaussian_posterior(op, sigma, prior)
    covariance = ula_stationary_covariance(exact, result.step_size)
    z_mean, z_var = _z_scores(result, exact.mean(data), covariance)
    assert np.max(np.abs(z_mean)) < 4.5
    assert np.max(np.abs(z_var)) < 4.5
