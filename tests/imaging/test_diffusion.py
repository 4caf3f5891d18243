"""Diffusion priors and their posterior samplers (annealed Langevin, DPS) against exact answers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.imaging.denoisers import DenoiserSettings, init_denoiser, tweedie_score
from astrobayes.imaging.diffusion import (
    DiffusionState,
    DiffusionStatus,
    NoiseSchedule,
    diffusion_posterior,
    diffusion_posterior_batch,
    diffusion_score,
    train_diffusion_prior,
)
from astrobayes.imaging.operators import fourier_mask_operator
from astrobayes.imaging.prior_calibration import (
    StationaryGaussianPrior,
    gaussian_posterior,
    power_law_prior,
    ula_stationary_covariance,
)

SHAPE = (8, 8)
SCHEDULE = NoiseSchedule(0.1, 5.0, 10)


class ScaledScore(eqx.Module):
    """``factor`` times the exact noise-conditional score (one compiled program for all)."""

    prior: StationaryGaussianPrior
    factor: jax.Array

    def __call__(self, x, sigma):
        return self.factor * self.prior.noisy_score(x, sigma)


def _problem(sigma=0.3):
    rng = np.random.default_rng(1)
    mask = rng.random(SHAPE) < 0.5
    mask[0, 0] = True
    op, prior = fourier_mask_operator(mask), power_law_prior(SHAPE)
    truth = prior.sample(jax.random.key(3), 1)[0]
    noise = sigma * (
        jax.random.normal(jax.random.key(4), (op.num_visibilities,))
        + 1j * jax.random.normal(jax.random.key(5), (op.num_visibilities,))
    )
    return op, sigma, prior, op(truth) + noise


def _score(prior, factor=1.0):
    return ScaledScore(prior=prior, factor=jnp.asarray(factor, jnp.zeros(()).dtype))


def test_schedule_is_geometric_and_validated():
    sigmas = NoiseSchedule(0.01, 10.0, 4).sigmas()
    np.testing.assert_allclose(sigmas, [10.0, 1.0, 0.1, 0.01])
    with pytest.raises(ValueError, match="sigma_min must be < sigma_max"):
        NoiseSchedule(1.0, 0.5, 4)
    with pytest.raises(ValueError, match="num_levels must be >= 2"):
        NoiseSchedule(0.1, 1.0, 1)
    with pytest.raises(ValueError, match="sigma_min must be a positive"):
        NoiseSchedule(-0.1, 1.0, 3)


def test_annealed_langevin_mean_is_the_analytic_posterior_mean_and_sharpened_score_is_not(key):
    """Exact score: the draws' mean is the exact posterior mean within its Monte Carlo error.

    The chain at sigma_min targets the Gaussian posterior of the prior smoothed by
    sigma_min^2 with the likelihood variance s_y^2 + sigma_min^2 (ULA keeps a Gaussian
    target's mean exactly). Negative control: 3 x the score, a prior three times too
    confident, whose posterior mean shrinks towards zero.
    """
    op, sigma, prior, y = _problem()
    smin = SCHEDULE.sigma_min
    target = gaussian_posterior(op, float(np.sqrt(sigma**2 + smin**2)), prior.smoothed(smin**2))
    exact_mean = target.mean(np.asarray(y))
    exact_sd = np.sqrt(np.diag(target.covariance))
    stats = {}
    for factor in (1.0, 3.0):
        result = diffusion_posterior(
            key, op, y, sigma, _score(prior, factor), SCHEDULE, num_chains=32,
            steps_per_level=10, num_warmup=100, num_samples=100, thinning=4,
        )  # fmt: skip
        assert result.summaries.shape == (32, 100, 64)
        assert not result.status.is_failure
        chain_means = np.asarray(result.summaries, np.float64).mean(axis=1)
        error = chain_means.mean(axis=0) - exact_mean
        standard_error = chain_means.std(axis=0, ddof=1) / np.sqrt(32)
        sd = np.sqrt(np.asarray(result.variance, np.float64).reshape(-1))
        stats[factor] = (np.mean((error / standard_error) ** 2), np.mean(sd / exact_sd))
        np.testing.assert_allclose(
            np.asarray(result.mean).reshape(-1), chain_means.mean(axis=0), atol=1e-5
        )
    # t_31 statistics averaged over 64 (correlated) pixels: E = 1.07
    assert stats[1.0][0] < 2.0
    assert 0.9 < stats[1.0][1] < 1.15  # ULA's small variance inflation at this step
    assert stats[3.0][0] > 4.0
    assert stats[3.0][1] < 0.8


def test_chain_after_the_annealing_targets_the_plain_likelihood_with_final_inflation_zero(key):
    """``final_likelihood_inflation=0``: the continued chain is PnP-ULA's target.

    The annealing keeps its widened likelihood (``c = 1``); after it the chain targets the
    exact posterior of the smoothed prior with the *plain* likelihood variance ``s_y^2``:
    its spread on the measured Fourier modes matches that posterior's, and its mean is the
    posterior mean. Negative control: the widened target ``s_y^2 + sigma_min^2`` (the
    default's; 12 times the variance at ``s_y = 0.03``) has a spread the draws miss.
    """
    op, sigma, prior, y = _problem(sigma=0.03)
    smin = SCHEDULE.sigma_min
    smoothed = prior.smoothed(smin**2)
    targets = {
        c: gaussian_posterior(op, float(np.sqrt(sigma**2 + c * smin**2)), smoothed) for c in (0, 1)
    }
    result = diffusion_posterior(
        key, op, y, sigma, _score(prior), SCHEDULE, num_chains=32, steps_per_level=10,
        num_warmup=100, num_samples=100, thinning=4, final_likelihood_inflation=0.0,
    )  # fmt: skip
    assert not result.status.is_failure
    assert result.final_noise_variance == pytest.approx(sigma**2)
    widened = diffusion_posterior(
        key, op, y, sigma, _score(prior), SCHEDULE, num_chains=2, steps_per_level=2,
        num_warmup=0, num_samples=4, thinning=1,
    )  # fmt: skip
    assert widened.final_noise_variance == pytest.approx(sigma**2 + smin**2)
    assert result.final_step_size < widened.final_step_size
    # the measured modes (real and imaginary parts of Phi x), where the two targets differ
    basis = np.eye(64).reshape(64, *SHAPE)
    phi = np.stack([np.asarray(op(b)) for b in basis], axis=1)  # (M, 64)
    real = np.concatenate([phi.real, phi.imag])
    draws = np.asarray(result.summaries, np.float64).reshape(-1, 64) @ real.T
    # ULA's stationary law at the final step, on each target (its variance inflation
    # 1 / (1 - delta q / 2) is ~1.2 on the data-dominated modes at this step)
    laws = {c: ula_stationary_covariance(t, result.final_step_size) for c, t in targets.items()}
    exact = {c: np.diag(real @ law @ real.T) for c, law in laws.items()}
    kept = exact[0] > 1e-12  # e.g. the imaginary part of the zero frequency is 0
    ratio = {c: np.mean(draws.var(axis=0)[kept] / v[kept]) for c, v in exact.items()}
    # 3200 correlated draws per mode, ~60 modes: Monte Carlo error of the mean ratio ~0.01
    assert 0.93 < ratio[0] < 1.07, ratio
    assert ratio[1] < 0.5, ratio
    chain_means = np.asarray(result.summaries, np.float64).mean(axis=1)
    standard_error = chain_means.std(axis=0, ddof=1) / np.sqrt(32)
    error = chain_means.mean(axis=0) - targets[0].mean(np.asarray(y))
    assert np.mean((error / standard_error) ** 2) < 2.0  # t_31 over 64 pixels: E = 1.07


def test_batch_equals_single_and_a_resumed_run_equals_an_uninterrupted_one(key):
    op, sigma, prior, y = _problem()
    data = jnp.stack([y, 0.5 * y])
    # 32 chains, as in the test above: the single-data-set program is compiled once
    settings = dict(num_chains=32, steps_per_level=3, num_warmup=4, num_samples=6, thinning=2)
    score = _score(prior)
    batch = diffusion_posterior_batch(key, op, data, sigma, score, SCHEDULE, **settings)
    assert len(batch) == 2
    single = diffusion_posterior(
        jax.random.fold_in(key, 1), op, data[1], sigma, score, SCHEDULE, **settings
    )
    np.testing.assert_allclose(batch[1].summaries, single.summaries, rtol=1e-5, atol=1e-6)
    saved = []
    diffusion_posterior(
        jax.random.fold_in(key, 1), op, data[1], sigma, score, SCHEDULE,
        checkpoint_fn=saved.append, checkpoint_every=38, **settings,
    )  # fmt: skip
    assert isinstance(saved[0], DiffusionState)
    assert saved[0].step == 38
    assert saved[0].count == 2  # 30 annealing + 4 warm-up steps, then every 2nd step kept
    resumed = diffusion_posterior(
        jax.random.fold_in(key, 1), op, data[1], sigma, score, SCHEDULE, state=saved[0], **settings
    )
    np.testing.assert_allclose(resumed.summaries, single.summaries, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.mean, single.mean, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="state does not belong"):
        diffusion_posterior(
            key, op, y, sigma, score, SCHEDULE, state=saved[0]._replace(count=5), **settings
        )


def test_dps_gives_one_draw_per_chain_near_the_posterior(key):
    op, sigma, prior, y = _problem()
    schedule = NoiseSchedule(0.02, 5.0, 100)
    result = diffusion_posterior(
        key, op, y, sigma, _score(prior), schedule, method="dps", num_chains=16
    )
    assert result.summaries.shape == (16, 1, 64)
    assert result.status is DiffusionStatus.INDEPENDENT_DRAWS
    np.testing.assert_array_equal(result.ess, 16.0)
    exact = gaussian_posterior(op, sigma, prior).mean(np.asarray(y))
    # far closer to the posterior mean than the prior mean (zero) is: the data were used
    gap = np.linalg.norm(np.asarray(result.mean).reshape(-1) - exact)
    assert gap < 0.5 * np.linalg.norm(exact)
    with pytest.raises(ValueError, match="num_samples must be 1"):
        diffusion_posterior(key, op, y, sigma, _score(prior), schedule, method="dps", num_samples=5)


def test_failures_non_finite_score_diverging_chain_and_too_large_step(key):
    op, sigma, prior, y = _problem()
    settings = dict(num_chains=32, steps_per_level=3, num_samples=4, thinning=1)
    result = diffusion_posterior(key, op, y, sigma, lambda x, s: x * jnp.nan, SCHEDULE, **settings)
    assert result.status is DiffusionStatus.NON_FINITE_SCORE
    assert result.num_steps == 0
    assert np.all(np.isnan(result.summaries))
    with pytest.raises(UnreliableResultError, match="non-finite"):
        diffusion_posterior(
            key, op, y, sigma, lambda x, s: x * jnp.nan, SCHEDULE, throw=True, **settings
        )
    # a score pushing away from the origin: the chains blow up and the run stops early
    exploding = diffusion_posterior(
        key, op, y, sigma, lambda x, s: 50.0 * x / s**2, SCHEDULE, **settings
    )
    assert exploding.status in (DiffusionStatus.DIVERGED, DiffusionStatus.NOT_FINITE)
    assert exploding.status.is_failure
    assert exploding.num_steps < 30 + 4
    too_large = diffusion_posterior(
        key, op, y, sigma, _score(prior), SCHEDULE, step_fraction=7.0, **settings
    )
    assert too_large.status is DiffusionStatus.STEP_TOO_LARGE
    assert too_large.num_steps == 0
    above = diffusion_posterior(
        key, op, y, sigma, _score(prior), SCHEDULE, step_fraction=1.5, **settings
    )
    assert above.status is DiffusionStatus.STEP_ABOVE_BOUND


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(method="ddpm"), ValueError, "method must be one of"),
        (dict(num_chains=0), ValueError, "num_chains must be >= 1"),
        (dict(steps_per_level=2.5), TypeError, "steps_per_level must be an integer"),
        (dict(likelihood_inflation=-1.0), ValueError, "likelihood_inflation must be >= 0"),
        (dict(final_likelihood_inflation=-1.0), ValueError, "final_likelihood_inflation must be"),
        (dict(final_likelihood_inflation="0"), TypeError, "final_likelihood_inflation must be a"),
        (dict(step_fraction=0.0), ValueError, "step_fraction must be a positive"),
        (dict(initial_image=np.zeros((4, 4))), ValueError, "initial_image must have shape"),
        (dict(state=(0, 1)), TypeError, "state must be a DiffusionState"),
    ],
)
def test_bad_settings_are_rejected(key, change, error, match):
    op, sigma, prior, y = _problem()
    with pytest.raises(error, match=match):
        diffusion_posterior(key, op, y, sigma, _score(prior), SCHEDULE, **change)


def test_bad_inputs_are_rejected(key):
    op, sigma, prior, y = _problem()
    score = _score(prior)
    with pytest.raises(ValueError, match="visibilities must have shape"):
        diffusion_posterior(key, op, y[:-1], sigma, score, SCHEDULE)
    with pytest.raises(ValueError, match="visibilities must have shape"):
        diffusion_posterior_batch(key, op, y, sigma, score, SCHEDULE)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        diffusion_posterior(key, op, y, -1.0, score, SCHEDULE)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        diffusion_posterior(key, op, y, sigma, score, (0.1, 5.0))
    with pytest.raises(TypeError, match="score_fn must be callable"):
        diffusion_posterior(key, op, y, sigma, 3.0, SCHEDULE)
    with pytest.raises(TypeError, match="operator must be a MeasurementOperator"):
        diffusion_posterior(key, "fft", y, sigma, score, SCHEDULE)
    with pytest.raises(ValueError, match="visibilities must be finite"):
        diffusion_posterior(key, op, y * jnp.nan, sigma, score, SCHEDULE)


def test_denoiser_score_is_tweedie_and_blind_denoisers_are_refused():
    settings = DenoiserSettings("dncnn", width=4, depth=2, sigma_min=0.1, sigma_max=2.0)
    denoiser = init_denoiser(jax.random.key(0), settings)
    x = jax.random.normal(jax.random.key(1), SHAPE)
    np.testing.assert_allclose(
        diffusion_score(denoiser)(x, 0.3), tweedie_score(denoiser, x, 0.3), rtol=1e-5
    )
    blind = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, noise_input=False))
    with pytest.raises(ValueError, match="noise-conditional"):
        diffusion_score(blind)
    with pytest.raises(TypeError, match="denoiser must be a Denoiser"):
        diffusion_score(lambda x, s: x)
    with pytest.raises(ValueError, match="must cover the schedule"):
        train_diffusion_prior(
            jax.random.key(0), x[None], x[None], NoiseSchedule(0.01, 5.0, 3), denoiser=denoiser
        )


@pytest.mark.slow
def test_trained_diffusion_prior_learns_the_gaussian_noisy_score():
    """DSM across the schedule through ``_training.fit`` on i.i.d. N(0, 1) pixels.

    The exact noise-conditional score is ``-x / (1 + sigma^2)``. The trained network's
    relative score error must be below 0.5 at sigma >= 0.2 and below 1.0 at sigma = 0.1
    (the Tweedie score divides the denoiser's error by sigma^2, so the smallest level is
    the hardest); the untrained network (the negative control) fails both at every level
    (1.05-1.87). The bounds come from the spread over training keys, measured 2026-12-06
    (stop 50, validation on fixed draws) with keys 1 and 3-9 at sigma = 3 / 1.28 / 0.55 /
    0.23 / 0.1: largest 0.406 / 0.203 / 0.222 / 0.242 / 0.891, at 0.1 mean 0.78 and
    standard deviation 0.07 (this test's key 1: 0.372 / 0.198 / 0.222 / 0.221 / 0.787).
    Earlier bounds were set from one key: 0.2 at every level (never met at any commit),
    then 0.75 (the sigma = 0.1 error exceeded it for 6 of the 8 keys). This 8-wide
    network after 15 epochs learns the score, not to 20%.
    """
    from astrobayes._training import TrainingConfig

    schedule = NoiseSchedule(0.1, 3.0, 5)
    images = jax.random.normal(jax.random.key(0), (1200, 8, 8))
    settings = DenoiserSettings("dncnn", width=8, depth=3, use_bias=False, padding_mode="CIRCULAR")
    config = TrainingConfig(learning_rate=3e-3, batch_size=64, max_epochs=15, epoch_loop="python")
    denoiser, info = train_diffusion_prior(
        jax.random.key(1), images[:1000], images[1000:], schedule, settings=settings, config=config
    )
    untrained = init_denoiser(jax.random.key(1), denoiser.settings)
    probe = jax.random.normal(jax.random.key(2), (16, 8, 8))
    for s in schedule.sigmas():
        noisy = probe * np.sqrt(1 + s**2)
        exact = -noisy / (1 + s**2)
        errors = [
            float(jnp.linalg.norm(diffusion_score(d)(noisy, s) - exact) / jnp.linalg.norm(exact))
            for d in (denoiser, untrained)
        ]
        bound = 1.0 if s < 0.2 else 0.5
        assert errors[0] < bound, (s, errors)
        assert errors[1] > bound, (s, errors)  # the untrained control fails it


@pytest.mark.slow
def test_annealed_langevin_calibration_on_the_gaussian_problem_and_the_control_is_flagged(key):
    """Harness: 100 truths, 8x8; coverage near its exact prediction; the 3x score flagged."""
    from astrobayes.imaging.prior_calibration import calibrate_sampler, predicted_coverage
    from astrobayes.validation.coverage import CalibrationStatus

    op, sigma, prior, _ = _problem()
    smin = SCHEDULE.sigma_min
    target = gaussian_posterior(op, float(np.sqrt(sigma**2 + smin**2)), prior.smoothed(smin**2))
    outcomes = {}
    for factor in (1.0, 3.0):

        def sampler(k, data, factor=factor):
            return diffusion_posterior_batch(
                k, op, data, sigma, _score(prior, factor), SCHEDULE, num_chains=4,
                steps_per_level=20, num_warmup=200, num_samples=200, thinning=10,
            )  # fmt: skip

        outcomes[factor] = calibrate_sampler(
            key, sampler, op, sigma, prior, num_truths=100, batch_size=50
        )
    good, bad = outcomes[1.0], outcomes[3.0]
    predicted = predicted_coverage(prior, op, sigma, target)
    assert abs(good.pixel_coverage - predicted) < 3 * good.pixel_error + 0.01
    assert good.pixel_status is not CalibrationStatus.OVERCONFIDENT
    assert bad.pixel_status is CalibrationStatus.OVERCONFIDENT
    assert bad.status.is_failure
