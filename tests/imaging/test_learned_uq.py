import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError, worst
from astrobayes.imaging.learned_uq import (
    ConformalCalibrator,
    calibrate_conformal,
    evaluate_intervals,
    learned_hypothesis_test,
    learned_uncertainty,
    reconstruct_set,
    superpixel_means,
    tikhonov_reconstruction,
)
from astrobayes.imaging.uv_coverage import simulate_training_set
from astrobayes.validation.coverage import CalibrationStatus

SHAPE = (16, 16)


def _skies(rng, num):
    """Smooth positive skies: a few Gaussian blobs each (NumPy, cheap)."""
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    skies = np.zeros((num, *SHAPE))
    for i in range(num):
        for _ in range(3):
            r, c = rng.uniform(3, 13, size=2)
            width = rng.uniform(1.0, 3.0)
            skies[i] += rng.uniform(0.2, 1.0) * np.exp(
                -((rows - r) ** 2 + (cols - c) ** 2) / (2 * width**2)
            )
        skies[i] /= skies[i].max()
    return skies.astype(np.float32)


def _data_sets(key, isnr_test=(20.0, 30.0), num=96):
    rng = np.random.default_rng(0)
    coverages = [rng.uniform(-2.5, 2.5, size=(120, 2)) for _ in range(3)]
    key_cal, key_test = jax.random.split(key)
    calibration = simulate_training_set(
        key_cal, _skies(rng, num), coverages, isnr_db_range=(20.0, 30.0)
    )
    test = simulate_training_set(key_test, _skies(rng, num), coverages, isnr_db_range=isnr_test)
    return calibration, test


@jax.jit
def _tikhonov(backprojection, normal):
    return tikhonov_reconstruction(backprojection, normal, 0.05 * normal.psf_peak())


@jax.jit
def _ensemble(backprojection, normal):
    strengths = normal.psf_peak() * jnp.array([0.025, 0.05, 0.1])
    return jax.vmap(lambda s: tikhonov_reconstruction(backprojection, normal, s))(strengths)


def test_conformal_intervals_cover_at_pixel_and_superpixel_level(key):
    calibration, test = _data_sets(key)
    result = learned_uncertainty(_tikhonov, calibration, test, superpixel_sizes=(1, 4, 8))
    assert result.status is CalibrationStatus.CALIBRATED
    assert len(result.coverages) == 6
    for row in result.coverages:
        cov = row.coverage
        # within 3 standard errors (cluster-robust over the 96 test images) and 3%
        assert abs(cov.fraction - row.level) < 3 * cov.error + 0.03, row
        assert cov.groups == 96
    assert float(np.median(result.test_snr_db)) > 5.0
    # negative control: the same intervals at half width are flagged overconfident
    half = eqx.tree_at(lambda c: c.quantiles, result.calibrator, result.calibrator.quantiles * 0.5)
    estimates = reconstruct_set(_tikhonov, test)
    rows = evaluate_intervals(half, np.asarray(test.truth), estimates)
    assert worst(row.status for row in rows) is CalibrationStatus.OVERCONFIDENT
    pixel_rows = [row for row in rows if row.superpixel_size == 1]
    assert all(row.status is CalibrationStatus.OVERCONFIDENT for row in pixel_rows)
    for good, bad in zip(result.coverages, rows, strict=True):
        assert bad.coverage.fraction < good.coverage.fraction


def test_distribution_shift_is_flagged(key):
    calibration, test = _data_sets(key, isnr_test=(8.0, 10.0))
    # negative control: calibrated at 20-30 dB, tested at 8-10 dB (more noise than
    # calibrated for): the plain residual intervals are flagged, and throw raises
    with pytest.raises(UnreliableResultError) as info:
        learned_uncertainty(_tikhonov, calibration, test, superpixel_sizes=(1, 4), throw=True)
    result = info.value.result
    assert not result.calibrator.normalised
    assert result.status is CalibrationStatus.OVERCONFIDENT
    assert result.coverages[0].coverage.fraction < 0.5


@pytest.mark.slow
def test_ensemble_normalised_intervals(key):
    """In distribution, ensemble-normalised intervals are calibrated and vary in width."""
    calibration2, test2 = _data_sets(jax.random.fold_in(key, 1))
    cal_estimates = reconstruct_set(_ensemble, calibration2)
    assert cal_estimates.shape == (96, 3, *SHAPE)
    calibrator = calibrate_conformal(
        np.asarray(calibration2.truth), cal_estimates, superpixel_sizes=(1, 4)
    )
    test_estimates = reconstruct_set(_ensemble, test2)
    # vmapped batches (last one padded) give the same reconstructions
    batched = reconstruct_set(_ensemble, test2, batch_size=40)
    np.testing.assert_allclose(batched, test_estimates, rtol=1e-3, atol=1e-4)  # float32 CG
    rows = evaluate_intervals(calibrator, np.asarray(test2.truth), test_estimates)
    assert all(row.status is CalibrationStatus.CALIBRATED for row in rows), rows
    lower, upper = calibrator.intervals(test_estimates[0], 1, 0.9)
    width = upper - lower
    assert width.shape == SHAPE
    assert float(width.max() / width.min()) > 1.5


def test_superpixel_means_and_calibrator_api():
    images = np.arange(2 * 6 * 6, dtype=float).reshape(2, 6, 6)
    means = superpixel_means(images, 3)
    np.testing.assert_allclose(means[0, 0, 0], images[0, :3, :3].mean())
    assert superpixel_means(images, 4).shape == (2, 1, 1)
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(30, 8, 8))
    estimate = truth + 0.2 * rng.normal(size=truth.shape)
    cal = calibrate_conformal(truth, estimate, levels=(0.5,), superpixel_sizes=(1, 2))
    assert isinstance(cal, ConformalCalibrator)
    # the quantile is the ceil((n + 1) level)-th smallest pooled score
    scores = np.sort(np.abs(truth - estimate).ravel())
    np.testing.assert_allclose(
        cal.quantiles[0, 0], scores[int(np.ceil((scores.size + 1) * 0.5)) - 1]
    )
    lower, upper = cal.intervals(estimate[0], 2, 0.5)
    assert lower.shape == (4, 4)
    with pytest.raises(ValueError, match="size must be one of"):
        cal.intervals(estimate, 3, 0.5)
    with pytest.raises(ValueError, match="level must be one of"):
        cal.intervals(estimate, 1, 0.9)


def test_bad_inputs():
    truth = np.zeros((4, 8, 8))
    with pytest.raises(ValueError, match="levels must be"):
        calibrate_conformal(truth, truth, levels=(1.2,))
    with pytest.raises(ValueError, match="superpixel_sizes must be"):
        calibrate_conformal(truth, truth, superpixel_sizes=(0,))
    with pytest.raises(ValueError, match=r"estimates must have shape \(N, H, W\) or"):
        calibrate_conformal(truth, np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="at least 2 members"):
        calibrate_conformal(truth, np.zeros((4, 1, 8, 8)))
    with pytest.raises(ValueError, match="truth must be finite"):
        calibrate_conformal(np.full((4, 8, 8), np.nan), truth)
    with pytest.raises(ValueError, match="need at least"):
        calibrate_conformal(
            truth[:1, :1, :1], truth[:1, :1, :1], levels=(0.9,), superpixel_sizes=(1,)
        )
    with pytest.raises(ValueError, match="size must be a positive integer"):
        superpixel_means(truth, 0)
    with pytest.raises(ValueError, match="exceeds the image"):
        superpixel_means(truth, 9)
    with pytest.raises(ValueError, match="batch_size must be"):
        reconstruct_set(lambda b, n: b, None, batch_size=0)
    with pytest.raises(TypeError, match="must be a TrainingSet"):
        reconstruct_set(lambda b, n: b, {"truth": truth})
    with pytest.raises(TypeError, match="must be a ConformalCalibrator"):
        evaluate_intervals(None, truth, truth)
    cal = calibrate_conformal(truth, truth + 1.0, levels=(0.5,), superpixel_sizes=(1,))
    ensemble_cal = calibrate_conformal(truth, np.stack([truth, truth + 1.0], axis=1),
                                       levels=(0.5,), superpixel_sizes=(1,))  # fmt: skip
    with pytest.raises(ValueError, match="normalised by an ensemble"):
        ensemble_cal.intervals(truth[0], 1, 0.5)
    with pytest.raises(ValueError, match="without an ensemble"):
        cal.intervals(np.stack([truth, truth], axis=1), 1, 0.5)
    assert cal.intervals(truth[0], 1, 0.5)[0].shape == (8, 8)


@pytest.mark.slow  # ~120 small eager compilations (~9 s CPU)
def test_learned_hypothesis_test_rejects_structure_not_background():
    from astrobayes.imaging.operators import (
        add_complex_noise,
        fourier_mask_operator,
        noise_sigma_from_isnr,
    )
    from astrobayes.imaging.posterior import imaging_posterior
    from astrobayes.imaging.priors import WaveletSparsityPrior
    from astrobayes.imaging.problem import demo_sky
    from astrobayes.imaging.toeplitz import mask_normal_operator
    from astrobayes.imaging.wavelets import WaveletTransform

    sky = jnp.asarray(demo_sky(32), jnp.float32)
    rng = np.random.default_rng(5)
    mask = rng.random((32, 32)) < 0.5
    mask[0, 0] = True
    op = fourier_mask_operator(mask)
    clean = op(sky)
    sigma = noise_sigma_from_isnr(clean, 30.0)
    data = add_complex_noise(jax.random.key(3), clean, sigma)
    prior = WaveletSparsityPrior(1.0 / sigma, WaveletTransform(order=2, levels=2))
    posterior = imaging_posterior(op, data, sigma, prior, positivity=True)
    normal = mask_normal_operator(op)
    estimate = tikhonov_reconstruction(op.adjoint(data), normal, 0.05)
    with pytest.raises(ValueError, match="outside the posterior's support"):
        learned_hypothesis_test(posterior, estimate.at[0, 0].set(-1.0), np.ones((32, 32), bool))
    estimate = jnp.maximum(estimate, 0.0)
    peak = np.unravel_index(int(jnp.argmax(sky)), sky.shape)
    structure = np.zeros((32, 32), bool)
    structure[peak[0] - 2 : peak[0] + 3, peak[1] - 2 : peak[1] + 3] = True
    background = np.zeros((32, 32), bool)
    background[1:6, 1:6] = True  # a dark corner of the demo sky
    assert float(sky[background].max()) < 0.05 * float(sky.max())
    real = learned_hypothesis_test(posterior, estimate, structure)
    assert real.reject_null, real.message
    artefact = learned_hypothesis_test(posterior, estimate, background)
    assert not artefact.reject_null, artefact.message
