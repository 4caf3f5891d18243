"""Axisymmetric wavelets and scattering covariances on the sphere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.sphere import (
    SphereGrid,
    axisymmetric_filters,
    ell_m,
    flatten_statistics,
    inverse,
    normalise,
    num_alm,
    scattering_covariance,
    wavelet_analysis,
    wavelet_synthesis,
)

pytestmark = pytest.mark.usefixtures("global_x64")


def _gaussian_alm(rng, band_limit, batch=(), slope=-1.0):
    """Gaussian a_lm with C_l proportional to (l + 1)^slope (no monopole)."""
    ells, ms = ell_m(band_limit)
    shape = (*batch, num_alm(band_limit))
    scale = np.sqrt((ells + 1.0) ** slope) * (ells > 0)
    real = rng.normal(size=shape)
    imag = np.where(ms == 0, 0.0, rng.normal(size=shape))
    factor = np.where(ms == 0, 1.0, np.sqrt(0.5))
    return jnp.asarray(scale * factor * (real + 1j * imag))


@pytest.mark.parametrize(
    ("grid", "tolerance"),
    [
        (SphereGrid(16, "gl"), 1e-8),
        (SphereGrid(16, "mw"), 1e-8),
        (SphereGrid(16, "healpix", nside=8), 1e-6),
    ],
    ids=["gl", "mw", "healpix"],
)
def test_exact_reconstruction(grid, tolerance):
    rng = np.random.default_rng(0)
    filters = axisymmetric_filters(16, dilation=1.7, min_scale=1)
    with jax.enable_x64(True):
        f = inverse(_gaussian_alm(rng, 16), grid)
        scaling, wavelets = wavelet_analysis(f, grid, filters)
        assert wavelets.shape == (filters.wavelets.shape[0], *grid.map_shape)
        back = wavelet_synthesis(scaling, wavelets, grid, filters)
        error = float(jnp.linalg.norm(back - f) / jnp.linalg.norm(f))
        assert error <= tolerance
        # negative control: dropping one scale loses the reconstruction
        back = wavelet_synthesis(scaling, wavelets.at[2].set(0.0), grid, filters)
        assert float(jnp.linalg.norm(back - f) / jnp.linalg.norm(f)) > 1e-3


def test_filters_tile_harmonic_space():
    for dilation in (1.5, 2.0, 3.0):
        filters = axisymmetric_filters(64, dilation=dilation)
        total = filters.scaling**2 + (filters.wavelets**2).sum(0)
        np.testing.assert_allclose(total, 1.0, atol=1e-14)
        assert np.all(filters.wavelets >= 0)
        # each wavelet is supported on lambda^(j-1) < ell < lambda^(j+1)
        ells = np.arange(64)
        for j, profile in enumerate(filters.wavelets):
            outside = (ells <= dilation ** (j - 1)) | (ells >= dilation ** (j + 1))
            assert np.all(profile[outside] < 1e-12)


def test_gaussian_field_has_s1_over_sqrt_s2_of_two_over_pi():
    """|W| / sqrt(<W^2>) of a Gaussian W has mean sqrt(2/pi); a lognormal field is sparser."""
    rng = np.random.default_rng(1)
    grid = SphereGrid(32, "healpix", nside=16, iterations=2)
    filters = axisymmetric_filters(32)
    with jax.enable_x64(True):
        gaussian = inverse(_gaussian_alm(rng, 32, (8,)), grid)
        stats = scattering_covariance(gaussian, grid, filters)
        ratio = np.asarray(stats.s1 / jnp.sqrt(stats.s2))[:, 3:]  # bands with >= 20 modes
        mean, error = ratio.mean(0), ratio.std(0, ddof=1) / np.sqrt(ratio.shape[0])
        assert np.all(np.abs(mean - np.sqrt(2 / np.pi)) < 4 * error + 0.01), (mean, error)
        lognormal = jnp.exp(1.5 * gaussian / jnp.std(gaussian, axis=-1, keepdims=True))
        stats = scattering_covariance(lognormal, grid, filters)
        ratio = np.asarray(stats.s1 / jnp.sqrt(stats.s2))[:, 3:]
        assert np.all(ratio.mean(0) < np.sqrt(2 / np.pi) - 0.05)


def test_s2_is_the_filtered_power_spectrum_and_gradients_match():
    rng = np.random.default_rng(2)
    grid = SphereGrid(16, "gl")
    filters = axisymmetric_filters(16)
    with jax.enable_x64(True):
        alm = _gaussian_alm(rng, 16)
        f = inverse(alm, grid)
        stats = scattering_covariance(f, grid, filters)
        ells, ms = ell_m(16)
        power = np.zeros(16)
        np.add.at(power, ells, np.abs(np.asarray(alm)) ** 2 * np.where(ms == 0, 1, 2))
        expected = (filters.wavelets**2 * power).sum(1) / (4 * np.pi)
        np.testing.assert_allclose(stats.s2, expected, rtol=1e-10)
        np.testing.assert_allclose(normalise(stats, stats).s2, 1.0)
        # the pixel variance of a zero-monopole field is the total power / 4 pi
        np.testing.assert_allclose(stats.variance, power.sum() / (4 * np.pi), rtol=1e-10)

        def loss(x):
            return jnp.sum(
                flatten_statistics(normalise(scattering_covariance(x, grid, filters), stats)) ** 2
            )

        direction = jnp.asarray(rng.normal(size=grid.map_shape))
        grad = jax.jit(jax.grad(loss))(f)
        h = 1e-6
        loss = jax.jit(loss)
        numeric = (loss(f + h * direction) - loss(f - h * direction)) / (2 * h)
        np.testing.assert_allclose(jnp.sum(grad * direction), numeric, rtol=1e-5)


def test_bad_filters_are_named():
    grid = SphereGrid(8)
    with pytest.raises(ValueError, match="dilation must be > 1"):
        axisymmetric_filters(8, dilation=1.0)
    with pytest.raises(ValueError, match="min_scale"):
        axisymmetric_filters(8, min_scale=9)
    with pytest.raises(ValueError, match="band_limit 8"):
        wavelet_analysis(jnp.zeros(grid.map_shape), grid, axisymmetric_filters(16))
    with pytest.raises(TypeError, match="WaveletFilters"):
        scattering_covariance(jnp.zeros(grid.map_shape), grid, np.ones(8))
