"""Axisymmetric and directional wavelets and scattering covariances on the sphere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.sphere import (
    ScatteringCovariance,
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
from astrobayes.sphere.wavelets import (
    directional_analysis,
    directional_filters,
    directional_synthesis,
    orientations,
    steer,
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


@pytest.mark.parametrize("directions", [1, 3])
def test_gaussian_field_has_s1_over_sqrt_s2_of_two_over_pi(directions):
    """|W| / sqrt(<W^2>) of a Gaussian W has mean sqrt(2/pi); a lognormal field is sparser.

    With directional wavelets this holds at every orientation (W at fixed gamma is a
    Gaussian field too): checked on the per-orientation statistics.
    """
    rng = np.random.default_rng(1)
    grid = SphereGrid(32, "healpix", nside=16, iterations=2)
    filters = directional_filters(32, directions)
    isotropic = directions == 1
    with jax.enable_x64(True):
        gaussian = inverse(_gaussian_alm(rng, 32, (8,)), grid)
        stats = scattering_covariance(gaussian, grid, filters, isotropic=isotropic)
        ratio = np.asarray(stats.s1 / jnp.sqrt(stats.s2))[:, 3:]  # bands with >= 20 modes
        mean, error = ratio.mean(0), ratio.std(0, ddof=1) / np.sqrt(ratio.shape[0])
        assert np.all(np.abs(mean - np.sqrt(2 / np.pi)) < 4 * error + 0.01), (mean, error)
        lognormal = jnp.exp(1.5 * gaussian / jnp.std(gaussian, axis=-1, keepdims=True))
        stats = scattering_covariance(lognormal, grid, filters, isotropic=isotropic)
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


# ---------------------------------------------------------------------------------
# Directional (steerable) wavelets, N = 3.


def _rotation(alpha, beta, gamma):
    def rz(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    c, s = np.cos(beta), np.sin(beta)
    ry = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return rz(alpha) @ ry @ rz(gamma)


def _wavelet_at(filters, scale, theta, phi):
    """psi^j(theta, phi) = sum_{l n} sqrt((2l+1)/4pi) kappa_j(l) s_ln Y_ln, by scipy."""
    from scipy.special import sph_harm_y

    orders = np.arange(-filters.directions + 1, filters.directions, 2)
    value = np.zeros(np.shape(theta), complex)
    for ell in range(filters.scaling.shape[0]):
        radial = np.sqrt((2 * ell + 1) / (4 * np.pi)) * filters.wavelets[scale, ell]
        for n, s in zip(orders, filters.steerable[ell], strict=True):
            if s and abs(n) <= ell:
                value += radial * s * sph_harm_y(ell, n, theta, phi)
    return value


def test_directional_coefficients_are_correlations_with_rotated_wavelets():
    """W^j(alpha, beta, gamma) = <f, R psi^j> by brute-force quadrature with rotation matrices."""
    band_limit, scale = 8, 1
    grid = SphereGrid(band_limit, "gl")
    filters = directional_filters(band_limit, 3)
    rng = np.random.default_rng(3)
    f = inverse(_gaussian_alm(rng, band_limit, slope=0.0), grid)
    _, wavelets = directional_analysis(f, grid, filters)
    theta, phi = grid.coordinates()
    weights = grid.pixel_weights()
    points = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    for (ring, column), gamma in [((3, 5), 0.0), ((3, 5), 0.7), ((5, 11), 1.3), ((0, 0), 2.0)]:
        rotation = _rotation(phi[ring, column], theta[ring, column], gamma)
        local = points @ rotation  # R^{-1} x for every pixel x
        psi = _wavelet_at(
            filters,
            scale,
            np.arccos(np.clip(local[..., 2], -1, 1)),
            np.arctan2(local[..., 1], local[..., 0]),
        )
        assert np.max(np.abs(psi.imag)) < 1e-12  # the wavelet is real
        expected = float(np.sum(weights * np.asarray(f) * psi.real))
        steered = steer(wavelets[scale], gamma, filters, axis=0)[ring, column]
        np.testing.assert_allclose(float(steered), expected, rtol=1e-10, atol=1e-12)
        # negative control: the opposite orientation convention (gamma -> -gamma)
        flipped = steer(wavelets[scale], -gamma, filters, axis=0)[ring, column]
        if gamma:
            assert abs(float(flipped) - expected) > 1e-3 * abs(expected)


@pytest.mark.parametrize(
    ("grid", "tolerance"),
    [
        (SphereGrid(12, "gl"), 1e-8),
        (SphereGrid(12, "mw"), 1e-8),
        (SphereGrid(12, "healpix", nside=8), 1e-6),
    ],
    ids=["gl", "mw", "healpix"],
)
def test_directional_exact_reconstruction(grid, tolerance):
    rng = np.random.default_rng(4)
    filters = directional_filters(12, 3, dilation=1.7, min_scale=1)
    f = inverse(_gaussian_alm(rng, 12, (2,)), grid)
    scaling, wavelets = directional_analysis(f, grid, filters)
    assert wavelets.shape == (2, filters.wavelets.shape[0], 3, *grid.map_shape)
    back = directional_synthesis(scaling, wavelets, grid, filters)
    assert float(jnp.linalg.norm(back - f) / jnp.linalg.norm(f)) <= tolerance
    # negative control: one orientation of one scale dropped
    back = directional_synthesis(scaling, wavelets.at[:, 3, 1].set(0.0), grid, filters)
    assert float(jnp.linalg.norm(back - f) / jnp.linalg.norm(f)) > 1e-3


def test_one_direction_is_the_axisymmetric_transform():
    grid = SphereGrid(12, "mw")
    f = inverse(_gaussian_alm(np.random.default_rng(5), 12), grid)
    scaling, wavelets = wavelet_analysis(f, grid, axisymmetric_filters(12))
    filters = directional_filters(12, 1)
    np.testing.assert_array_equal(filters.wavelets, axisymmetric_filters(12).wavelets)
    d_scaling, d_wavelets = directional_analysis(f, grid, filters)
    assert d_wavelets.shape == (*wavelets.shape[:1], 1, *grid.map_shape)
    assert float(jnp.max(jnp.abs(d_wavelets[:, 0] - wavelets))) <= 1e-12
    assert float(jnp.max(jnp.abs(d_scaling - scaling))) <= 1e-12
    back = directional_synthesis(d_scaling, d_wavelets, grid, filters)
    expected = wavelet_synthesis(scaling, wavelets, grid, axisymmetric_filters(12))
    assert float(jnp.max(jnp.abs(back - expected))) <= 1e-12


def test_rotation_about_the_pole_steers_the_orientations():
    """At the south pole (MW's last ring) W(alpha, pi, gamma) depends on alpha - gamma only.

    Rotating f by delta about z therefore turns W(pi, gamma) into W(pi, gamma + delta):
    a cyclic shift of the orientations for delta = pi / 3, the steering formula otherwise.
    Away from the pole the same rotation shifts longitude (one MW pixel is exact).
    """
    band_limit = 8
    grid = SphereGrid(band_limit, "mw")
    filters = directional_filters(band_limit, 3)
    ells, ms = ell_m(band_limit)
    alm = _gaussian_alm(np.random.default_rng(6), band_limit, slope=0.0)
    _, wavelets = directional_analysis(inverse(alm, grid), grid, filters)
    gammas = orientations(3)
    for delta in (np.pi / 3, 0.4, 2 * np.pi / (2 * band_limit - 1)):
        rotated = inverse(alm * np.exp(-1j * ms * delta), grid)
        _, turned = directional_analysis(rotated, grid, filters)
        pole, turned_pole = wavelets[..., -1, :], turned[..., -1, :]  # (J, N, longitudes)
        expected = jnp.stack([steer(pole, gamma + delta, filters, axis=1) for gamma in gammas], 1)
        scale = float(jnp.max(jnp.abs(pole)))
        assert float(jnp.max(jnp.abs(turned_pole - expected))) < 1e-10 * scale
        wrong = jnp.stack([steer(pole, gamma - delta, filters, axis=1) for gamma in gammas], 1)
        assert float(jnp.max(jnp.abs(turned_pole - wrong))) > 1e-3 * scale
        if delta == np.pi / 3:  # a permutation of the sampled orientations
            np.testing.assert_allclose(turned_pole, jnp.roll(pole, -1, axis=1), atol=1e-10 * scale)
    # one pixel of longitude: W'(alpha, beta, gamma) = W(alpha - delta, beta, gamma)
    np.testing.assert_allclose(turned, jnp.roll(wavelets, 1, axis=-1), atol=1e-12)


def test_directional_synthesis_is_the_adjoint_of_analysis():
    grid = SphereGrid(8, "gl")
    filters = directional_filters(8, 3)
    rng = np.random.default_rng(7)
    # The weights stay NumPy float64 and the inner products are taken in NumPy: a full
    # sequential suite once turned jnp.asarray(weights) into float32 here (a 4e-9
    # residual) while the transforms' outputs were float64.
    weights = grid.pixel_weights()
    f = rng.normal(size=grid.map_shape)
    num_scales = filters.wavelets.shape[0]
    scaling = rng.normal(size=grid.map_shape)
    wavelets = rng.normal(size=(num_scales, 3, *grid.map_shape))
    a_scaling, a_wavelets = directional_analysis(jnp.asarray(f, jnp.float64), grid, filters)
    synthesised = directional_synthesis(
        jnp.asarray(scaling, jnp.float64), jnp.asarray(wavelets, jnp.float64), grid, filters
    )
    outputs = [a_scaling, a_wavelets, synthesised]
    assert all(x.dtype == jnp.float64 for x in outputs), [x.dtype for x in outputs]
    a_scaling, a_wavelets, synthesised = (np.asarray(x) for x in outputs)
    left = np.sum(weights * a_scaling * scaling) + np.sum(weights * a_wavelets * wavelets) / 3
    right = np.sum(weights * f * synthesised)
    assert abs(left - right) <= 1e-12 * abs(left)
    # Negative control: dropping the 1/N of the orientation average breaks the identity.
    wrong = np.sum(weights * a_scaling * scaling) + np.sum(weights * a_wavelets * wavelets)
    assert abs(wrong - right) > 1e-3 * abs(left)
    # and JAX's own transpose of the analysis agrees (the primitives' adjoints)
    _, vjp = jax.vjp(lambda x: directional_analysis(x, grid, filters), jnp.asarray(f, jnp.float64))
    (pulled,) = vjp(
        (jnp.asarray(weights * scaling, jnp.float64), jnp.asarray(weights * wavelets / 3))
    )
    np.testing.assert_allclose(np.asarray(pulled) / weights, synthesised, atol=1e-10)


def test_bad_directional_input_is_named():
    grid = SphereGrid(8)
    with pytest.raises(ValueError, match="directions must be one of"):
        directional_filters(8, 2)
    with pytest.raises(ValueError, match="directions must be one of"):
        directional_filters(8, True)
    filters = directional_filters(8, 3)
    with pytest.raises(ValueError, match="axisymmetric"):
        wavelet_analysis(jnp.zeros(grid.map_shape), grid, filters)
    with pytest.raises(TypeError, match="grid must be a SphereGrid"):
        directional_analysis(jnp.zeros(grid.map_shape), "gl", filters)
    with pytest.raises(ValueError, match="band_limit 8"):
        directional_analysis(jnp.zeros(grid.map_shape), grid, directional_filters(16, 3))
    with pytest.raises(ValueError, match=r"wavelets must have \(4, 3\)"):
        directional_synthesis(
            jnp.zeros(grid.map_shape), jnp.zeros((4, 1, *grid.map_shape)), grid, filters
        )
    with pytest.raises(ValueError, match="orientation axis of length 3"):
        steer(jnp.zeros((2, *grid.map_shape)), 0.1, filters, axis=-3)
    with pytest.raises(ValueError, match="axis must be an int"):
        steer(jnp.zeros((3, *grid.map_shape)), 0.1, filters, axis=3)


def test_directional_scattering_shapes_reductions_and_gradients():
    band_limit = 8
    grid = SphereGrid(band_limit, "gl")
    rng = np.random.default_rng(8)
    gaussian = inverse(_gaussian_alm(rng, band_limit), grid)
    f = jnp.exp(gaussian / jnp.std(gaussian))
    axisymmetric = scattering_covariance(f, grid, axisymmetric_filters(band_limit))
    # N = 1 through the directional filters is the axisymmetric computation
    same = scattering_covariance(f, grid, directional_filters(band_limit, 1), isotropic=False)
    for name in ScatteringCovariance._fields:
        np.testing.assert_array_equal(getattr(same, name), getattr(axisymmetric, name))
    filters = directional_filters(band_limit, 3)
    full = scattering_covariance(f, grid, filters, isotropic=False)
    num_scales = filters.wavelets.shape[0]
    num_pairs, num_triples = axisymmetric.s3.shape[-1], axisymmetric.s4.shape[-1]
    assert full.s1.shape == full.s2.shape == (num_scales, 3)
    assert full.s3.shape == (num_pairs, 3)
    assert full.s4.shape == (num_triples, 3, 3)
    # the orientation mean of <W_jk^2> is the band power (Parseval), as axisymmetric S2
    np.testing.assert_allclose(full.s2.mean(-1), axisymmetric.s2, rtol=1e-10)
    # ... while S1 differs: the directional envelope is another statistic
    assert float(jnp.max(jnp.abs(full.s1.mean(-1) / axisymmetric.s1 - 1))) > 1e-2
    isotropic = scattering_covariance(f, grid, filters)
    np.testing.assert_allclose(isotropic.s1, full.s1.mean(-1), rtol=1e-12)
    np.testing.assert_allclose(isotropic.s3, full.s3.mean(-1), rtol=1e-12)
    offsets = np.stack(
        [np.mean([full.s4[:, k, (k + d) % 3] for k in range(3)], axis=0) for d in range(3)], -1
    )
    np.testing.assert_allclose(isotropic.s4, offsets, rtol=1e-12)
    flat = flatten_statistics(normalise(isotropic, isotropic))
    assert flat.shape == (2 + 2 * num_scales + num_pairs + 3 * num_triples,)
    np.testing.assert_allclose(normalise(full, full).s2.mean(-1), 1.0, rtol=1e-12)

    def loss(x):
        stats = normalise(scattering_covariance(x, grid, filters), isotropic)
        return jnp.sum(flatten_statistics(stats) ** 2)

    direction = jnp.asarray(rng.normal(size=grid.map_shape))
    grad = jax.jit(jax.grad(loss))(f)
    h = 1e-6
    loss = jax.jit(loss)
    numeric = (loss(f + h * direction) - loss(f - h * direction)) / (2 * h)
    np.testing.assert_allclose(jnp.sum(grad * direction), numeric, rtol=1e-5)
    with pytest.raises(TypeError, match="isotropic must be a bool"):
        scattering_covariance(f, grid, filters, isotropic="yes")
