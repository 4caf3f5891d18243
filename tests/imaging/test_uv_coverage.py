import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.nufft import nufft_operator, nufft_operator_from_pixel_phases
from astrobayes.imaging.operators import noise_sigma_from_isnr
from astrobayes.imaging.toeplitz import NormalOperator, toeplitz_normal_operator_from_points
from astrobayes.imaging.uv_coverage import (
    direct_toeplitz_spectrum,
    earth_rotation_uv,
    pixel_phases,
    random_antenna_layout,
    random_array_coverage,
    random_track_coverage,
    rotate_uv,
    simulate_observations,
    simulate_observations_direct,
    simulate_training_set,
    track_baseline_subset,
    track_time_range,
    uniform_density_weights,
)


def _track(num_times=5, num_baselines=7, seed=0):
    """A time-major synthetic track whose rows encode (time, baseline)."""
    times, baselines = np.meshgrid(np.arange(num_times), np.arange(num_baselines), indexing="ij")
    return np.stack([times.ravel(), baselines.ravel()], axis=1).astype(float)


def test_track_selections_are_exact():
    track = _track()
    window = track_time_range(track, num_times=5, start=1, stop=3)
    np.testing.assert_array_equal(np.unique(window[:, 0]), [1, 2])
    assert window.shape == (14, 2)
    subset = track_baseline_subset(track, num_times=5, baselines=np.array([0, 6]))
    np.testing.assert_array_equal(subset[:4], [[0, 0], [0, 6], [1, 0], [1, 6]])


def test_rotate_uv_keeps_radii_and_drops_outside():
    rng = np.random.default_rng(0)
    points = rng.uniform(-math.pi, math.pi, size=(200, 2))
    rotated = rotate_uv(points, 0.7, limit=None)
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=1), np.linalg.norm(points, axis=1))
    kept = rotate_uv(points, 0.7)
    assert kept.shape[0] < 200
    assert np.abs(kept).max() <= math.pi
    inside_disc = np.linalg.norm(points, axis=1) <= math.pi
    assert kept.shape[0] >= inside_disc.sum()


def test_random_track_coverage_is_a_deterministic_subset(key):
    track = _track(num_times=10, num_baselines=30) / 40.0
    first = random_track_coverage(key, track, num_times=10, rotate=False)
    np.testing.assert_array_equal(
        first, random_track_coverage(key, track, num_times=10, rotate=False)
    )
    assert 0 < first.shape[0] <= track.shape[0]
    # every point is a row of the track, times contiguous
    rows = {tuple(r) for r in track}
    assert all(tuple(r) in rows for r in first)
    times = np.unique(first[:, 0] * 40)
    np.testing.assert_array_equal(np.diff(times), 1)
    other = random_track_coverage(jax.random.fold_in(key, 1), track, num_times=10)
    assert other.shape != first.shape or not np.array_equal(other, first)


def test_earth_rotation_tracks_are_ellipses():
    """An east-west baseline traces u^2 + (v / sin dec)^2 = (L / lambda)^2 (TMS 2017, 4.4)."""
    antennas = np.array([[0.0, 0.0, 0.0], [300.0, 0.0, 0.0]])
    hours = np.linspace(-1.0, 1.0, 25)
    for dec in (-60.0, -20.0):
        uv = earth_rotation_uv(
            antennas, latitude_deg=-30.7, declination_deg=dec, hour_angles=hours, wavelength_m=0.2
        )
        radius = np.hypot(uv[:, 0], uv[:, 1] / math.sin(math.radians(dec)))
        np.testing.assert_allclose(radius, 1500.0, rtol=1e-12)
        # negative control: the other declination's ellipse does not fit
        wrong = np.hypot(uv[:, 0], uv[:, 1] / math.sin(math.radians(-80.0 - dec)))
        assert np.max(np.abs(wrong - 1500.0)) > 10.0
    # time-major: 3 antennas -> 3 baselines per time
    three = random_antenna_layout(jax.random.key(0), 3)
    uv = earth_rotation_uv(three, latitude_deg=-30.7, declination_deg=-40.0,
                           hour_angles=hours[:4], wavelength_m=0.2)  # fmt: skip
    assert uv.shape == (12, 2)
    # the baseline length bounds |uv| at every time
    lengths = np.linalg.norm(three[[1, 2, 2]] - three[[0, 0, 1]], axis=1) / 0.2
    assert np.all(np.linalg.norm(uv.reshape(4, 3, 2), axis=2) <= lengths * (1 + 1e-12))


def test_random_array_coverage(key):
    points = random_array_coverage(key, num_antennas_range=(6, 10), num_times_range=(4, 6))
    extent = np.abs(points).max()
    assert 0.6 * math.pi * (1 - 1e-9) <= extent <= math.pi * (1 + 1e-9)
    num_antennas = [
        n for n in range(6, 11) for t in range(4, 7) if n * (n - 1) // 2 * t == points.shape[0]
    ]
    assert num_antennas
    np.testing.assert_array_equal(
        points, random_array_coverage(key, num_antennas_range=(6, 10), num_times_range=(4, 6))
    )


def test_pixel_phases_match_the_nufft_operator():
    uv = np.array([[100.0, -40.0], [-250.0, 30.0]])
    phases = pixel_phases(uv, pixel_size_arcsec=60.0)
    op = nufft_operator(uv, image_shape=(8, 8), pixel_size_arcsec=60.0)
    np.testing.assert_allclose(phases[:, 0], op.points_cols, rtol=1e-6)
    np.testing.assert_allclose(phases[:, 1], op.points_rows, rtol=1e-6)
    per_axis = pixel_phases(uv, extent=math.pi, per_axis=True)
    np.testing.assert_allclose(np.abs(per_axis).max(axis=0), [math.pi, math.pi])


def test_uniform_density_weights():
    cell = 2 * math.pi / 8
    points = np.array([[0.0, 0.0], [0.1 * cell, 0.0], [0.2 * cell, 0.1 * cell], [3 * cell, cell]])
    weights = uniform_density_weights(points, image_shape=(8, 8))
    # three points share a cell (1/3 each), one is alone (1); normalised to mean one
    np.testing.assert_allclose(weights, [2 / 3, 2 / 3, 2 / 3, 2.0])


def test_simulate_observations_noise_is_the_backprojected_noise(key):
    """``Phi^H y - Phi^H Phi x`` has covariance ``sigma^2 kappa`` (PSF-correlated)."""
    rng = np.random.default_rng(1)
    points = rng.uniform(-math.pi, math.pi, size=(30, 2))
    shape = (8, 8)
    sky = np.zeros(shape, np.float32)
    sky[3, 4] = 1.0
    skies = np.repeat(sky[None], 96, axis=0)
    obs = simulate_observations(key, skies, points, isnr_db=10.0)
    op = nufft_operator_from_pixel_phases(points, image_shape=shape)
    np.testing.assert_allclose(
        obs.sigma, noise_sigma_from_isnr(op(jnp.asarray(sky)), 10.0), rtol=1e-6
    )
    noise = np.asarray(obs.backprojection - jax.vmap(obs.normal)(jnp.asarray(skies)), np.float64)
    kernel = np.asarray(obs.normal.kernel(), np.float64)
    sigma2 = obs.sigma[0] ** 2
    for lag, expected in (((0, 0), kernel[0, 0]), ((0, 1), kernel[0, 1]), ((1, 2), kernel[1, 2])):
        products = noise[:, : shape[0] - lag[0], : shape[1] - lag[1]] * noise[:, lag[0] :, lag[1] :]
        per_sky = products.mean(axis=(1, 2)) / sigma2
        mean, error = per_sky.mean(), per_sky.std(ddof=1) / np.sqrt(len(per_sky))
        assert abs(mean - expected) < 4 * error, (lag, mean, expected, error)
        if lag != (0, 0):
            # negative control: white (uncorrelated) noise would give zero here
            assert abs(expected) > 4 * error, (lag, expected, error)


def test_simulate_training_set_pairs_match_their_operator(key):
    rng = np.random.default_rng(2)
    coverages = [rng.uniform(-3.0, 3.0, size=(30, 2)), rng.uniform(-1.0, 1.0, size=(30, 2))]
    skies = rng.uniform(0.0, 1.0, size=(4, 8, 8)).astype(np.float32)
    calls = []
    ts = simulate_training_set(
        key, skies, coverages, isnr_db_range=(150.0, 160.0),
        progress_fn=lambda *args: calls.append(args),
    )  # fmt: skip
    assert calls[-1] == ("observe", 2, 2)
    np.testing.assert_array_equal(ts.coverage_index, [0, 1, 0, 1])
    np.testing.assert_array_equal(ts.num_visibilities, [30, 30])
    assert np.all((ts.isnr_db >= 150) & (ts.isnr_db <= 160))
    for i in range(4):
        normal = jax.tree.map(lambda s, i=i: s[ts.coverage_index[i]], ts.normal)
        clean = normal(jnp.asarray(skies[i]))
        rel = jnp.linalg.norm(ts.backprojection[i] - clean) / jnp.linalg.norm(clean)
        assert float(rel) < 1e-4
        # negative control: the other coverage's operator does not explain the data
        other = jax.tree.map(lambda s, i=i: s[1 - ts.coverage_index[i]], ts.normal)
        wrong = jnp.linalg.norm(ts.backprojection[i] - other(jnp.asarray(skies[i])))
        assert float(wrong / jnp.linalg.norm(clean)) > 0.1


def test_simulate_observations_filter_weights(key):
    rng = np.random.default_rng(3)
    points = rng.uniform(-3.0, 3.0, size=(30, 2))
    weights = uniform_density_weights(points, image_shape=(8, 8))
    sky = rng.uniform(size=(2, 8, 8)).astype(np.float32)  # shapes as above: reuses compilations
    obs = simulate_observations(key, sky, points, isnr_db=200.0, filter_weights=weights)
    expected = toeplitz_normal_operator_from_points(points, image_shape=(8, 8), weights=weights)
    clean = expected(jnp.asarray(sky[0]))
    rel = jnp.linalg.norm(obs.filtered_backprojection[0] - clean) / jnp.linalg.norm(clean)
    assert float(rel) < 1e-4
    np.testing.assert_allclose(
        obs.filtered_normal.spectrum, expected.spectrum, rtol=1e-5, atol=1e-4
    )
    # padding with zero-weight points (the default) changes nothing but the compiled sizes
    exact = simulate_observations(key, sky, points, isnr_db=200.0, filter_weights=weights,
                                  pad_multiple=None)  # fmt: skip
    np.testing.assert_allclose(exact.sigma, obs.sigma, rtol=1e-6)
    np.testing.assert_allclose(exact.normal.spectrum, obs.normal.spectrum, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(exact.backprojection, obs.backprojection, rtol=1e-4, atol=1e-4)


def test_bad_inputs(key):
    track = _track()
    with pytest.raises(ValueError, match="not a multiple of num_times"):
        track_time_range(track, num_times=4, start=0, stop=1)
    with pytest.raises(ValueError, match="start < stop"):
        track_time_range(track, num_times=5, start=3, stop=3)
    with pytest.raises(ValueError, match="baselines must lie in"):
        track_baseline_subset(track, num_times=5, baselines=np.array([7]))
    with pytest.raises(ValueError, match="points must have shape"):
        rotate_uv(np.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError, match="duration_range"):
        random_track_coverage(key, track, num_times=5, duration_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="latitude_deg"):
        earth_rotation_uv(np.zeros((2, 3)), latitude_deg=100.0, declination_deg=0.0,
                          hour_angles=np.zeros(1), wavelength_m=0.2)  # fmt: skip
    with pytest.raises(ValueError, match="exactly one of"):
        pixel_phases(np.ones((2, 2)))
    with pytest.raises(ValueError, match="Nyquist"):
        pixel_phases(np.array([[1e9, 0.0]]), pixel_size_arcsec=1.0)
    with pytest.raises(ValueError, match="num_antennas must be"):
        random_antenna_layout(key, 1)
    with pytest.raises(ValueError, match="skies must have shape"):
        simulate_observations(key, np.zeros(5), np.ones((2, 2)), isnr_db=30.0)
    with pytest.raises(ValueError, match="skies must be finite"):
        simulate_observations(key, np.full((8, 8), np.nan), np.ones((2, 2)), isnr_db=30.0)
    with pytest.raises(ValueError, match="isnr_db must be"):
        simulate_observations(key, np.ones((8, 8)), np.ones((2, 2)), isnr_db=-1.0)
    with pytest.raises(ValueError, match="filter_weights must have shape"):
        simulate_observations(key, np.ones((8, 8)), np.ones((2, 2)), isnr_db=30.0,
                              filter_weights=np.ones(3))  # fmt: skip
    with pytest.raises(ValueError, match="pad_multiple must be"):
        simulate_observations(key, np.ones((8, 8)), np.ones((2, 2)), isnr_db=30.0, pad_multiple=0)
    with pytest.raises(ValueError, match="need C <= N"):
        simulate_training_set(key, np.ones((1, 8, 8)), [np.ones((2, 2))] * 2)


def test_direct_toeplitz_spectrum_matches_finufft():
    """The exact-sum spectrum (the GPU path) is finufft's, in float32 as trained."""
    rng = np.random.default_rng(4)
    points = rng.uniform(-math.pi, math.pi, size=(200, 2)).astype(np.float32)
    weights = rng.uniform(0.0, 2.0, size=200).astype(np.float32)
    expected = toeplitz_normal_operator_from_points(points, image_shape=(8, 12), weights=weights)
    got = direct_toeplitz_spectrum(jnp.asarray(points), jnp.asarray(weights), (8, 12))
    scale = float(jnp.linalg.norm(expected.spectrum))
    assert float(jnp.linalg.norm(got - expected.spectrum)) < 1e-5 * scale
    # negative control: u and v exchanged is another coverage's operator
    swapped = direct_toeplitz_spectrum(jnp.asarray(points[:, ::-1]), jnp.asarray(weights), (8, 12))
    assert float(jnp.linalg.norm(swapped - expected.spectrum)) > 0.05 * scale


def test_simulate_observations_direct_is_the_observation_model(key):
    """Dirty = ``Phi^H Phi x`` + back-projected noise of variance ``sigma^2 kappa(0)``.

    Padding points are ignored (the sigma and the kernel of the real points), and the
    noise variance per pixel matches ``sigma^2 sum_m w_m`` within 4 Monte Carlo errors;
    the variance of ``split_complex=True``'s convention (half) fails the same check.
    """
    rng = np.random.default_rng(5)
    shape, count = (8, 8), 30
    points = np.zeros((2, 40, 2), np.float32)
    points[:, :count] = rng.uniform(-3.0, 3.0, size=(2, count, 2))
    points[:, count:] = rng.uniform(-3.0, 3.0, size=(2, 10, 2))  # padding: must not count
    skies = rng.uniform(0.0, 1.0, size=(2, 64, *shape)).astype(np.float32)
    isnr = np.full((2, 64), 10.0)
    dirty, spectrum, sigma = simulate_observations_direct(
        key, skies, points, np.array([count, count]), isnr
    )
    for c in range(2):
        op = nufft_operator_from_pixel_phases(points[c, :count], image_shape=shape)
        expected = np.array([noise_sigma_from_isnr(op(jnp.asarray(x)), 10.0) for x in skies[c, :4]])
        np.testing.assert_allclose(sigma[c, :4], expected, rtol=1e-4)
        normal = NormalOperator(spectrum=spectrum[c], shape=shape, padded_shape=(16, 16))
        reference = toeplitz_normal_operator_from_points(points[c, :count], image_shape=shape)
        np.testing.assert_allclose(spectrum[c], reference.spectrum, rtol=1e-4, atol=1e-3)
        noise = np.asarray(dirty[c] - jax.vmap(normal)(jnp.asarray(skies[c])), np.float64)
        per_sky = np.mean(noise**2, axis=(1, 2)) / np.asarray(sigma[c], np.float64) ** 2
        mean, error = per_sky.mean(), per_sky.std(ddof=1) / np.sqrt(len(per_sky))
        assert abs(mean - count) < 4 * error, (mean, count, error)
        assert abs(mean - count / 2) > 4 * error  # negative control: the other convention
    # noise-free: the clean dirty image, exactly the NUFFT's adjoint(forward(x))
    quiet, _, _ = simulate_observations_direct(
        key, skies[:, :2], points, np.array([count, count]), np.full((2, 2), 300.0)
    )
    op = nufft_operator_from_pixel_phases(points[1, :count], image_shape=shape)
    clean = op.adjoint(op(jnp.asarray(skies[1, 1])))
    assert float(jnp.linalg.norm(quiet[1, 1] - clean) / jnp.linalg.norm(clean)) < 1e-5


def test_simulate_observations_direct_bad_inputs(key):
    skies = np.zeros((2, 3, 8, 8), np.float32)
    points = np.zeros((2, 5, 2), np.float32)
    isnr = np.full((2, 3), 30.0)
    with pytest.raises(ValueError, match="skies must have shape"):
        simulate_observations_direct(key, skies[0], points, np.array([3, 3]), isnr)
    with pytest.raises(ValueError, match="points must have shape"):
        simulate_observations_direct(key, skies, points[:1], np.array([3, 3]), isnr)
    with pytest.raises(ValueError, match=r"points must lie in \[-pi, pi\]"):
        simulate_observations_direct(key, skies, points + 4.0, np.array([3, 3]), isnr)
    with pytest.raises(ValueError, match="num_points must be 2 integers in"):
        simulate_observations_direct(key, skies, points, np.array([3, 6]), isnr)
    with pytest.raises(ValueError, match="isnr_db must be finite positive"):
        simulate_observations_direct(key, skies, points, np.array([3, 3]), -isnr)
    with pytest.raises(ValueError, match="skies must be finite"):
        simulate_observations_direct(key, skies * np.nan, points, np.array([3, 3]), isnr)
