"""The truthfulness harness: exact Gaussian posteriors, predicted coverage, and the flag."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.imaging.operators import fourier_mask_operator
from astrobayes.imaging.prior_calibration import (
    SamplerRunsStatus,
    calibrate_sampler,
    gaussian_posterior,
    power_law_prior,
    predicted_coverage,
    ula_stationary_covariance,
)
from astrobayes.validation.coverage import CalibrationStatus

SHAPE = (8, 8)


def _problem(fraction=0.5, sigma=0.3):
    rng = np.random.default_rng(1)
    mask = rng.random(SHAPE) < fraction
    mask[0, 0] = True
    return fourier_mask_operator(mask), sigma, power_law_prior(SHAPE)


def test_dense_posterior_matches_the_fourier_closed_form():
    op, sigma, prior = _problem()
    posterior = gaussian_posterior(op, sigma, prior)
    mask = np.asarray(op.mask(), float)
    mirrored = np.roll(mask[::-1, ::-1], shift=(1, 1), axis=(0, 1))
    precision = 1 / np.asarray(prior.spectrum, np.float64) + (mask + mirrored) / (2 * sigma**2)
    # a circulant covariance F^H diag(1 / q) F has the constant diagonal mean(1 / q)
    np.testing.assert_allclose(np.diag(posterior.covariance), np.mean(1 / precision), rtol=1e-6)
    np.testing.assert_allclose(posterior.covariance @ posterior.precision, np.eye(64), atol=1e-6)
    x = np.asarray(prior.sample(jax.random.key(0), 1)[0], np.float64)
    y = np.asarray(op(jnp.asarray(x)))
    mean = (
        np.real(
            np.fft.ifft2(
                np.fft.fft2(np.asarray(op.adjoint(jnp.asarray(y))), norm="ortho") / precision,
                norm="ortho",
            )
        )
        / sigma**2
    )
    np.testing.assert_allclose(posterior.mean(y), mean.reshape(-1), atol=1e-4)


def test_predicted_coverage_and_ula_stationary_law():
    op, sigma, prior = _problem()
    exact = gaussian_posterior(op, sigma, prior)
    assert predicted_coverage(prior, op, sigma, exact) == pytest.approx(0.9, abs=1e-9)
    assert predicted_coverage(prior, op, sigma, exact, superpixel=4) == pytest.approx(0.9)
    # a smoothed prior is wider: intervals over-cover; a sharper one under-covers
    smoothed = gaussian_posterior(op, sigma, prior.smoothed(0.1))
    assert predicted_coverage(prior, op, sigma, smoothed) > 0.9
    sharp = gaussian_posterior(op, sigma, prior.scaled(3.0))
    assert predicted_coverage(prior, op, sigma, sharp) < 0.8
    # ULA's stationary covariance solves S = (I - d Q) S (I - d Q) + 2 d I
    step = 0.5 / np.linalg.eigvalsh(exact.precision).max()
    s = ula_stationary_covariance(exact, step)
    m = np.eye(64) - step * exact.precision
    np.testing.assert_allclose(s, m @ s @ m + 2 * step * np.eye(64), atol=1e-8)
    with pytest.raises(ValueError, match="no stationary law"):
        ula_stationary_covariance(exact, 3.0 / np.linalg.eigvalsh(exact.precision).max())


class _Draws:
    def __init__(self, summaries, status):
        self.summaries = summaries
        self.status = status


def _exact_sampler(op, sigma, prior, shrink=1.0):
    posterior = gaussian_posterior(op, sigma, prior)
    factor = np.linalg.cholesky(posterior.covariance) * shrink

    def sampler(key, data):
        results = []
        for index, y in enumerate(np.asarray(data)):
            seed = int(jax.random.randint(jax.random.fold_in(key, index), (), 0, 2**30))
            white = np.random.default_rng(seed).normal(size=(2, 300, 64))
            draws = posterior.mean(y) + white @ factor.T
            results.append(_Draws(draws, SamplerRunsStatus.ALL_OK))
        return results

    return sampler


def test_exact_sampler_is_calibrated_and_a_shrunk_one_is_flagged(key):
    op, sigma, prior = _problem()
    good = calibrate_sampler(
        key, _exact_sampler(op, sigma, prior), op, sigma, prior, num_truths=60, batch_size=30
    )
    assert good.pixel_status is CalibrationStatus.CALIBRATED
    assert good.superpixel_status is CalibrationStatus.CALIBRATED
    assert abs(good.pixel_coverage - 0.9) < 3 * good.pixel_error
    assert abs(good.mmse_gap_db) < 0.1
    assert 0.95 < good.sd_ratio < 1.05
    assert good.sampler_status is SamplerRunsStatus.ALL_OK
    assert not good.status.is_failure
    # negative control: intervals 30% too narrow; throw=True raises with the result
    with pytest.raises(UnreliableResultError, match="OVERCONFIDENT") as raised:
        calibrate_sampler(
            key,
            _exact_sampler(op, sigma, prior, shrink=0.7),
            op,
            sigma,
            prior,
            num_truths=60,
            batch_size=30,
            throw=True,
        )
    bad = raised.value.result
    assert bad.pixel_status is CalibrationStatus.OVERCONFIDENT
    assert bad.pixel_coverage < 0.9 - 3 * bad.pixel_error
    assert bad.sd_ratio < 0.75


def test_harness_validates_its_input(key):
    op, sigma, prior = _problem()
    sampler = _exact_sampler(op, sigma, prior)
    with pytest.raises(ValueError, match="superpixel 3 must divide"):
        calibrate_sampler(key, sampler, op, sigma, prior, num_truths=60, superpixel=3)
    with pytest.raises(ValueError, match="one result per data set"):
        calibrate_sampler(key, lambda k, d: [], op, sigma, prior, num_truths=60)
    with pytest.raises(ValueError, match="summaries must have shape"):
        calibrate_sampler(
            key,
            lambda k, d: [_Draws(np.zeros((2, 5, 3)), SamplerRunsStatus.ALL_OK)] * len(d),
            op,
            sigma,
            prior,
            num_truths=60,
        )
    with pytest.raises(ValueError, match="must match the operator"):
        gaussian_posterior(op, sigma, power_law_prior((4, 4)))
    with pytest.raises(ValueError, match="slope must be"):
        power_law_prior(SHAPE, slope=-1.0)


@pytest.mark.slow
def test_pnp_ula_covers_on_the_gaussian_problem_and_the_sharpened_score_is_flagged(key):
    """Acceptance: 90% +- 3% per pixel over 100 truths at the recommended settings.

    16x16, the benchmark's problem (benchmarks/imaging_priors.py); ~2 x 2 min CPU.
    """
    from astrobayes.imaging.pnp import pnp_step_size, pnp_ula_batch

    rng = np.random.default_rng(0)
    mask = rng.random((16, 16)) < 0.5
    mask[0, 0] = True
    op, sigma, prior = fourier_mask_operator(mask), 0.3, power_law_prior((16, 16))
    epsilon = 0.02
    outcomes = {}
    for factor in (1.0, 3.0):
        model = prior.smoothed(epsilon).scaled(factor)

        def sampler(k, data, model=model):
            return pnp_ula_batch(
                k,
                op,
                data,
                sigma,
                model.score,
                jnp.zeros((16, 16)),
                score_lipschitz=model.score_lipschitz,
                num_samples=400,
                num_warmup=2000,
                thinning=20,
            )

        result = calibrate_sampler(key, sampler, op, sigma, prior, num_truths=100, batch_size=50)
        target = gaussian_posterior(op, sigma, model)
        step = pnp_step_size(op.norm() ** 2 / sigma**2, model.score_lipschitz)
        predicted = predicted_coverage(
            prior, op, sigma, target, covariance=ula_stationary_covariance(target, step)
        )
        outcomes[factor] = (result, predicted)
    good, predicted = outcomes[1.0]
    assert abs(good.pixel_coverage - 0.9) <= 0.03
    assert good.pixel_status is CalibrationStatus.CALIBRATED
    # finite-ESS quantiles cover slightly less than the stationary law's exact intervals
    assert abs(good.pixel_coverage - predicted) < 3 * good.pixel_error + 0.01
    assert abs(good.mmse_gap_db) < 0.1
    bad, predicted = outcomes[3.0]
    assert bad.pixel_status is CalibrationStatus.OVERCONFIDENT
    assert bad.status.is_failure
    assert abs(bad.pixel_coverage - predicted) < 3 * bad.pixel_error + 0.01


def test_benchmark_fourier_recorder_on_exact_draws_and_a_measured_mode_collapse():
    """``benchmarks/imaging_priors.py --fourier``: exact draws give sd ratios 1 on both mode
    groups; draws shrunk on the data-constrained modes only (DPS's failure) are seen there."""
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from imaging_priors import FourierRecorder

    op, sigma, prior = _problem()
    exact = gaussian_posterior(op, sigma, prior)
    factor = np.linalg.cholesky(exact.covariance)
    rng = np.random.default_rng(2)
    truths = np.asarray(prior.sample(jax.random.key(3), 3), np.float64)
    data = np.stack([np.asarray(op(jnp.asarray(x, jnp.float32))) for x in truths])

    def sampler(shrink):
        def run(key, visibilities):
            del key
            results = []
            for y in np.asarray(visibilities):
                mean = exact.mean(y).reshape(-1)
                noise = (rng.normal(size=(4000, 64)) @ factor.T).reshape(-1, *SHAPE)
                modes = np.fft.fft2(noise, norm="ortho") * np.where(
                    recorder.measured, shrink, 1.0
                ).reshape(SHAPE)
                draws = mean + np.real(np.fft.ifft2(modes, norm="ortho")).reshape(-1, 64)
                results.append(SimpleNamespace(summaries=draws.reshape(4, 1000, 64)))
            return results

        return run

    for shrink, expected in ((1.0, 1.0), (0.3, 0.3)):
        recorder = FourierRecorder(None, op, sigma, prior, exact)
        recorder.sampler = sampler(shrink)
        recorder(None, data)
        summary = recorder.summary()
        assert summary["fourier_modes_measured"] + summary["fourier_modes_unmeasured"] == 64
        assert 0 < summary["fourier_modes_unmeasured"] < 64
        # sd of a mode from 4000 draws: relative error ~1%; 3 data sets, averaged over modes
        assert summary["fourier_sd_ratio_measured"] == pytest.approx(expected, abs=0.03)
        assert summary["fourier_sd_ratio_unmeasured"] == pytest.approx(1.0, abs=0.03)
        # mean error ~ 1 / sqrt(4000) = 0.016 exact sds
        assert summary["fourier_mean_error_measured"] < 0.05
        assert summary["fourier_mean_error_unmeasured"] < 0.05
