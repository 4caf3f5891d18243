import jax
import jax.numpy as jnp
import numpy as np
import pytest
from imaging_helpers import small_problem

from astrobayes._status import UnreliableResultError
from astrobayes.imaging.intervals import IntervalStatus, local_credible_intervals
from astrobayes.imaging.map import MapStatus, discrepancy_strength, map_estimate, snr_db
from astrobayes.imaging.pipeline import ImagingConfig, run_imaging
from astrobayes.imaging.posterior import imaging_posterior
from astrobayes.imaging.priors import WaveletSparsityPrior
from astrobayes.imaging.uq import (
    blur_region,
    hpd_threshold,
    hypothesis_test,
    inpaint_region,
)
from astrobayes.imaging.wavelets import WaveletTransform


def _posterior(key, positivity=False, strength=20.0):
    truth, op, data, sigma = small_problem(key)
    prior = WaveletSparsityPrior(strength, WaveletTransform(order=4, levels=2))
    return truth, imaging_posterior(op, data, sigma, prior, positivity=positivity)


@pytest.mark.parametrize("positivity", [False, True])
def test_map_converges_and_beats_dirty(key, positivity):
    truth, post = _posterior(key, positivity)
    result = map_estimate(post)
    assert result.status.name == "CONVERGED"
    dirty = post.operator.adjoint(post.visibilities)
    assert snr_db(truth, result.image) > snr_db(truth, dirty) + 5
    # optimality: no descent along random directions
    for k in range(3):
        direction = 1e-3 * jax.random.normal(jax.random.key(k), truth.shape)
        candidate = result.image + direction
        if positivity:
            candidate = jnp.maximum(candidate, 0)
        assert float(post.potential(candidate)) >= result.potential - 1e-3 * abs(result.potential)
    if positivity:
        assert float(jnp.min(result.image)) >= 0


def test_discrepancy_rule_hits_noise_level(key):
    _, post = _posterior(key, strength=1.0)
    result = discrepancy_strength(post, relative_tolerance=0.02)
    assert result.status.name == "CONVERGED"
    np.testing.assert_allclose(result.discrepancy_ratio, 1.0, atol=0.02)


def test_hpd_threshold_and_validation():
    hpd = hpd_threshold(10.0, 400, 0.01)
    np.testing.assert_allclose(hpd.tau_alpha, np.sqrt(16 * np.log(300)))
    np.testing.assert_allclose(hpd.gamma_alpha, 10 + 20 * hpd.tau_alpha + 400)
    with pytest.raises(ValueError, match="alpha must lie in"):
        hpd_threshold(0.0, 400, 1.5)
    with pytest.raises(ValueError, match="alpha must lie in"):
        hpd_threshold(0.0, 3, 0.5)  # 4 exp(-1) > 0.5 is outside the valid range
    with pytest.raises(ValueError, match="potential_at_map must be finite"):
        hpd_threshold(float("nan"), 400, 0.1)


@pytest.mark.parametrize("positivity", [False, True])
def test_lci_bounds_lie_on_the_hpd_boundary(key, positivity):
    truth, post = _posterior(key, positivity)
    result = map_estimate(post)
    hpd = hpd_threshold(result.potential, truth.size, 0.05)
    lci = local_credible_intervals(post, result.image, hpd, 8)
    assert lci.num_unbounded == 0
    assert np.all(np.asarray(lci.length) > 0)
    increment = hpd.increment
    for i, j in [(0, 0), (1, 2), (3, 3)]:
        block = np.zeros(truth.shape, np.float32)
        block[8 * i : 8 * i + 8, 8 * j : 8 * j + 8] = 1
        up = float(lci.upper[i, j] - lci.map_mean[i, j])
        at_bound = float(post.potential(result.image + up * block)) - result.potential
        beyond = float(post.potential(result.image + 1.02 * up * block)) - result.potential
        np.testing.assert_allclose(at_bound, increment, rtol=2e-3)
        assert beyond > increment
        down = float(lci.lower[i, j] - lci.map_mean[i, j])
        if lci.lower_status[i, j] == IntervalStatus.CONVERGED:
            value = float(post.potential(result.image + down * block)) - result.potential
            np.testing.assert_allclose(value, increment, rtol=2e-3)
        else:
            assert positivity
            assert lci.lower_status[i, j] == IntervalStatus.AT_CONSTRAINT


def test_lci_generic_path_equals_shift_covariant_path(key):
    truth, post = _posterior(key)
    result = map_estimate(post)
    hpd = hpd_threshold(result.potential, truth.size, 0.05)
    fast = local_credible_intervals(post, result.image, hpd, 8)

    class Generic(WaveletSparsityPrior):
        @property
        def shift_period(self):
            return 1

        def shift_indices(self, flat_indices, image_shape, row_shift, col_shift):
            return None

    generic_post = imaging_posterior(
        post.operator,
        post.visibilities,
        post.sigma,
        Generic(post.prior.strength, post.prior.transform),
    )
    slow = local_credible_intervals(generic_post, result.image, hpd, 8)
    np.testing.assert_allclose(fast.length, slow.length, rtol=1e-4)


def test_lci_reports_unbounded_instead_of_zero(key):
    truth, post = _posterior(key)
    result = map_estimate(post)
    hpd = hpd_threshold(result.potential, truth.size, 0.05)
    lci = local_credible_intervals(
        post, result.image, hpd, 8, initial_bracket=1e-6, max_widenings=2
    )
    assert lci.num_unbounded > 0
    assert np.all(np.asarray(lci.upper_status) == IntervalStatus.UNBOUNDED)


def test_lci_validation(key):
    truth, post = _posterior(key)
    hpd = hpd_threshold(0.0, truth.size, 0.05)
    with pytest.raises(ValueError, match="must divide the image sides"):
        local_credible_intervals(post, truth, hpd, 7)
    with pytest.raises(ValueError, match="map_image must be finite"):
        local_credible_intervals(post, np.full(truth.shape, np.nan), hpd, 8)


def test_hypothesis_test_detects_real_structure_and_not_noise(key):
    truth, post = _posterior(key, strength=10.0)
    result = map_estimate(post)
    hpd = hpd_threshold(result.potential, truth.size, 0.01)
    region = np.zeros(truth.shape, bool)
    region[8:20, 10:16] = True  # the bright real source
    surrogate = inpaint_region(result.image, region)
    test = hypothesis_test(post, surrogate, hpd)
    assert test.reject_null
    assert "physical" in test.message
    # negative control: a region of empty sky
    empty = np.zeros(truth.shape, bool)
    empty[0:4, 0:4] = True
    control = hypothesis_test(post, blur_region(result.image, empty), hpd)
    assert not control.reject_null


def test_wavelet_scale_tests(key):
    from astrobayes.imaging.uq import wavelet_scale_tests

    truth, post = _posterior(key, strength=10.0)
    result = map_estimate(post)
    hpd = hpd_threshold(result.potential, truth.size, 0.01)
    tests = wavelet_scale_tests(post, result.image, hpd, post.prior.transform)
    assert len(tests) == 2
    assert tests[-1].reject_null  # the coarse scale carries the sources


def test_region_validation():
    with pytest.raises(ValueError, match="region is empty"):
        inpaint_region(np.zeros((4, 4)), np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="region must have the image's shape"):
        blur_region(np.zeros((4, 4)), np.ones((3, 3), bool))


def test_posterior_validation(key):
    truth, op, data, sigma = small_problem(key)
    prior = WaveletSparsityPrior(1.0, WaveletTransform(order=2, levels=1))
    with pytest.raises(ValueError, match="visibilities must have shape"):
        imaging_posterior(op, data[:-1], sigma, prior)
    with pytest.raises(ValueError, match="visibilities must be finite"):
        imaging_posterior(op, data.at[0].set(jnp.nan), sigma, prior)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        imaging_posterior(op, data, -1.0, prior)
    with pytest.raises(TypeError, match="prior must be an ImagingPrior"):
        imaging_posterior(op, data, sigma, "wavelets")
    with pytest.raises(ValueError, match="strength must be positive"):
        WaveletSparsityPrior(-1.0, WaveletTransform(order=2, levels=1))


def test_lci_with_nufft_operator(key):
    from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
    from astrobayes.imaging.operators import add_complex_noise, noise_sigma_from_isnr

    rng = np.random.default_rng(0)
    truth = np.zeros((16, 16), np.float32)
    truth[4:10, 6:12] = 1.0
    op = nufft_operator_from_pixel_phases(
        rng.uniform(-np.pi, np.pi, (200, 2)), image_shape=(16, 16)
    )
    clean = op(jnp.asarray(truth))
    sigma = noise_sigma_from_isnr(clean, 20.0)
    post = imaging_posterior(
        op,
        add_complex_noise(key, clean, sigma),
        sigma,
        WaveletSparsityPrior(5.0, WaveletTransform(2, 1)),
    )
    result = map_estimate(post)
    hpd = hpd_threshold(result.potential, truth.size, 0.05)
    lci = local_credible_intervals(post, result.image, hpd, 8)
    assert lci.num_unbounded == 0
    block = np.zeros(truth.shape, np.float32)
    block[:8, 8:] = 1
    up = float(lci.upper[0, 1] - lci.map_mean[0, 1])
    value = float(post.potential(result.image + up * block)) - result.potential
    np.testing.assert_allclose(value, hpd.increment, rtol=5e-3)


def _overflowing_posterior(key):
    """Data so large that the data term overflows: the objective is non-finite."""
    _, op, data, sigma = small_problem(key, size=16)
    scale = 100 * float(np.sqrt(jnp.finfo(jnp.zeros(()).dtype).max))  # finite; its square not
    data = np.asarray(data, np.complex128) * scale
    prior = WaveletSparsityPrior(1.0, WaveletTransform(order=2, levels=1))
    return op, data, sigma, imaging_posterior(op, data, sigma, prior)


def test_map_failure_status_and_throw(key):
    _, _, _, post = _overflowing_posterior(key)
    result = map_estimate(post, max_iterations=20)
    assert result.status is MapStatus.NOT_FINITE
    with pytest.raises(UnreliableResultError, match="MapStatus.NOT_FINITE") as error:
        map_estimate(post, max_iterations=20, throw=True)
    assert error.value.result.status is MapStatus.NOT_FINITE
    with pytest.raises(UnreliableResultError, match="MAP_FAILED") as error:
        discrepancy_strength(post, max_solves=2, max_iterations=5, throw=True)
    assert error.value.result.map_result.status.is_failure


def test_run_imaging_failure_returns_partial_result_and_throws(key):
    op, data, sigma, _ = _overflowing_posterior(key)
    config = ImagingConfig(
        wavelet_order=2, wavelet_levels=1, strength=1.0, superpixel_sizes=(8,), max_iterations=20
    )
    result = run_imaging(config, op, data, sigma)
    assert result.status is MapStatus.NOT_FINITE
    assert result.hpd is None
    assert result.intervals == ()
    with pytest.raises(UnreliableResultError, match="NOT_FINITE") as error:
        run_imaging(config, op, data, sigma, throw=True)
    assert error.value.result.map_result.status.is_failure


def test_run_imaging_crr_needs_weights(key):
    _, op, data, sigma = small_problem(key, size=16)
    with pytest.raises(ValueError, match="prior 'crr' needs crr="):
        run_imaging(ImagingConfig(prior="crr", superpixel_sizes=(8,)), op, data, sigma)
