import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.skies import (
    SkyConfig,
    gaussian_blobs,
    gaussian_random_field,
    point_sources,
    power_law_emission,
    radio_galaxy,
    random_sky,
)

GENERATORS = [point_sources, gaussian_blobs, power_law_emission, radio_galaxy, random_sky]


SHAPE = (24, 32)  # one shape throughout: the compiled generators are reused


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__)
def test_shape_positivity_peak_and_determinism(generator, key):
    shape = SHAPE
    sky = generator(key, shape)
    assert sky.shape == shape
    assert bool(jnp.all(jnp.isfinite(sky)))
    assert float(sky.min()) >= 0.0
    np.testing.assert_allclose(float(sky.max()), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(generator(key, shape), sky)
    other = generator(jax.random.fold_in(key, 1), shape)
    assert float(jnp.max(jnp.abs(other - sky))) > 1e-3


@pytest.mark.slow
def test_random_sky_vmap_matches_loop(key):
    keys = jax.random.split(key, 3)
    batched = jax.jit(jax.vmap(lambda k: random_sky(k, SHAPE)))(keys)
    assert batched.shape == (3, *SHAPE)
    for k, sky in zip(keys, batched, strict=True):
        np.testing.assert_allclose(sky, random_sky(k, SHAPE), rtol=1e-5, atol=1e-6)


def test_random_sky_config_switches_components(key):
    only_points = SkyConfig(
        point_probability=1.0, blob_probability=0.0, extended_probability=0.0,
        galaxy_probability=0.0,
    )  # fmt: skip
    sky = random_sky(key, SHAPE, only_points)
    assert 1 <= int(jnp.sum(sky > 0)) <= only_points.num_point_sources
    # nothing drawn: falls back to extended emission, never an empty sky
    nothing = SkyConfig(0.0, 0.0, 0.0, 0.0)
    sky = random_sky(key, SHAPE, nothing)
    assert int(jnp.sum(sky > 1e-3)) > 50


def _spectral_slope(field):
    """Least-squares slope of log |F_k|^2 on log |k| over independent complex modes.

    Columns 1..W/2-1 of the rfft hold independent complex Gaussian modes, for which
    ``E log |F_k|^2 = log P(k) - gamma``: the offset is constant, so the slope is unbiased.
    """
    height, width = field.shape
    spectrum = np.abs(np.fft.rfft2(np.asarray(field, np.float64))) ** 2
    k_rows = np.fft.fftfreq(height) * height
    k_cols = np.fft.rfftfreq(width) * width
    radius = np.sqrt(k_rows[:, None] ** 2 + k_cols[None, :] ** 2)
    keep = np.zeros_like(radius, dtype=bool)
    keep[:, 1 : width // 2] = True
    keep &= (radius >= 2) & (radius <= width / 4)
    return np.polyfit(np.log(radius[keep]), np.log(spectrum[keep]), 1)[0]


def test_gaussian_random_field_spectral_slope(key):
    beta = 3.0
    keys = jax.random.split(key, 24)
    fields = np.stack([gaussian_random_field(k, (64, 64), beta) for k in keys])
    slopes = np.array([_spectral_slope(f) for f in fields])
    mean, error = slopes.mean(), slopes.std(ddof=1) / np.sqrt(len(slopes))
    assert abs(mean + beta) < 4 * error, (mean, error)
    # negative control: a slope 0.3 away is rejected at this Monte Carlo error
    assert abs(mean + beta + 0.3) > 4 * error, (mean, error)
    np.testing.assert_allclose(fields.std(axis=(1, 2)), 1.0, rtol=1e-5)


def test_bad_inputs(key):
    with pytest.raises(ValueError, match="shape must be two integers >= 8"):
        random_sky(key, (4, 32))
    with pytest.raises(ValueError, match="shape must be"):
        point_sources(key, 32)
    with pytest.raises(TypeError, match="config must be a SkyConfig"):
        random_sky(key, (32, 32), {"point_probability": 1.0})
    with pytest.raises(ValueError, match="point_probability must be a probability"):
        SkyConfig(point_probability=1.5)
    with pytest.raises(ValueError, match="num_blobs must be a positive integer"):
        SkyConfig(num_blobs=0)
    with pytest.raises(ValueError, match="point_flux_range"):
        SkyConfig(point_flux_range=(0.5, 0.1))
    with pytest.raises((TypeError, ValueError), match="key"):
        random_sky(0, (32, 32))
