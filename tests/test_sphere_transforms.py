"""Spherical harmonic transforms: round trips, adjoint identity, derivatives, validation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.sphere import SphereGrid, ell_m, forward, inverse, num_alm

GRIDS = [
    SphereGrid(8, "gl"),
    SphereGrid(8, "mw"),
    SphereGrid(16, "healpix", nside=8),
]


pytestmark = pytest.mark.usefixtures("global_x64")


def _random_alm(rng, band_limit, spin, batch=()):
    ells, ms = ell_m(band_limit)
    comps = () if spin == 0 else (2,)
    shape = (*batch, *comps, num_alm(band_limit))
    alm = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    alm = np.where(ms == 0, alm.real, alm)
    if spin:
        alm = np.where(ells < spin, 0.0, alm)
    return jnp.asarray(alm)


@pytest.mark.parametrize("spin", [0, 2])
@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g.sampling}{g.band_limit}")
def test_round_trip_and_adjoint_identity(grid, spin):
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        alm = _random_alm(rng, grid.band_limit, spin, (2,))
        maps = inverse(alm, grid, spin=spin)
        back = forward(maps, grid, spin=spin)
        error = float(jnp.linalg.norm(back - alm) / jnp.linalg.norm(alm))
        assert error <= (1e-6 if grid.sampling == "healpix" else 1e-10), error
        # <A x, y> = <x, A^T y> in the real inner product, for analysis and synthesis.
        # JAX pairs a complex cotangent without conjugation, hence conj(c).
        g = jnp.asarray(rng.normal(size=maps.shape))
        c = _random_alm(rng, grid.band_limit, spin, (2,))
        y, vjp = jax.vjp(lambda x: forward(x, grid, spin=spin), g)
        (g_t,) = vjp(jnp.conj(c))
        lhs, rhs = jnp.sum(jnp.real(y * jnp.conj(c))), jnp.sum(g * g_t)
        assert abs(float(lhs - rhs)) <= 1e-10 * abs(float(lhs)) + 1e-12
        y, vjp = jax.vjp(lambda x: inverse(x, grid, spin=spin), c)
        (c_t,) = vjp(g)
        lhs, rhs = jnp.sum(y * g), jnp.sum(jnp.real(c * c_t))
        assert abs(float(lhs - rhs)) <= 1e-10 * abs(float(lhs)) + 1e-12
        # Forward mode of a linear map is the map itself; jit and vmap agree with eager.
        tangent = jax.jvp(lambda x: forward(x, grid, spin=spin), (g,), (g,))[1]
        np.testing.assert_allclose(tangent, forward(g, grid, spin=spin), atol=1e-13)
        np.testing.assert_allclose(jax.jit(lambda x: inverse(x, grid, spin=spin))(c), y, atol=1e-13)
        np.testing.assert_allclose(
            jax.vmap(lambda x: inverse(x, grid, spin=spin))(c), y, atol=1e-13
        )


def test_healpix_refinement_is_what_reaches_1e_6():
    """Negative control: without iterations HEALPix analysis is only ~1e-2 accurate."""
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        alm = _random_alm(rng, 16, 0)
        errors = {}
        for iterations in (0, 8):
            grid = SphereGrid(16, "healpix", nside=8, iterations=iterations)
            back = forward(inverse(alm, grid), grid)
            errors[iterations] = float(jnp.linalg.norm(back - alm) / jnp.linalg.norm(alm))
    assert errors[0] > 1e-3
    assert errors[8] < 1e-6


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    grid = SphereGrid(8, "healpix", nside=4)
    with jax.enable_x64(True):
        f = jnp.asarray(rng.normal(size=grid.map_shape))
        direction = jnp.asarray(rng.normal(size=grid.map_shape))

        def loss(x):
            alm = forward(x, grid)
            return jnp.sum(jnp.abs(alm) ** 4) + jnp.sum(inverse(alm * alm, grid) ** 2)

        grad_fn = jax.jit(jax.grad(loss))
        h = 1e-5
        numeric = (loss(f + h * direction) - loss(f - h * direction)) / (2 * h)
        np.testing.assert_allclose(jnp.sum(grad_fn(f) * direction), numeric, rtol=1e-7)
        # second derivatives transpose the transposes
        hvp = jax.jit(lambda x, v: jax.jvp(grad_fn, (x,), (v,))[1])(f, direction)
        numeric = (grad_fn(f + h * direction) - grad_fn(f - h * direction)) / (2 * h)
        np.testing.assert_allclose(hvp, numeric, rtol=1e-5, atol=1e-6 * float(jnp.abs(hvp).max()))


def test_float32_keeps_its_dtype():
    grid = SphereGrid(8, "gl")
    f = jnp.ones(grid.map_shape, jnp.float32)
    alm = forward(f, grid)
    assert alm.dtype == jnp.complex64
    assert inverse(alm, grid).dtype == jnp.float32
    np.testing.assert_allclose(alm[0].real, np.sqrt(4 * np.pi), rtol=1e-5)


def test_weights_and_coordinates():
    for grid in GRIDS:
        weights = grid.pixel_weights()
        theta, phi = grid.coordinates()
        assert weights.shape == theta.shape == phi.shape == grid.map_shape
        np.testing.assert_allclose(weights.sum(), 4 * np.pi, rtol=1e-12)
        # cos(theta)^2 integrates to 4 pi / 3 (exact on GL/MW, close on HEALPix)
        np.testing.assert_allclose(
            np.sum(weights * np.cos(theta) ** 2),
            4 * np.pi / 3,
            rtol=1e-12 if grid.sampling != "healpix" else 2e-2,
        )


def test_spin2_matches_healpy():
    healpy = pytest.importorskip("healpy")
    rng = np.random.default_rng(6)
    grid = SphereGrid(16, "healpix", nside=8, iterations=0)
    with jax.enable_x64(True):
        eb = _random_alm(rng, 16, 2)
        qu = inverse(eb, grid, spin=2)
        t = np.zeros(num_alm(16), complex)
        reference = healpy.alm2map([t, *np.asarray(eb)], nside=8, lmax=15, pol=True)
        np.testing.assert_allclose(qu, reference[1:], atol=1e-10)
        ours = forward(qu, grid, spin=2)
        theirs = healpy.map2alm(reference, lmax=15, iter=0, pol=True)[1:]
        np.testing.assert_allclose(ours, theirs, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["gl", "mw", "healpix"])
def test_pure_jax_path_agrees_with_ducc(sampling):
    rng = np.random.default_rng(7)
    nside = 4 if sampling == "healpix" else None
    grid = SphereGrid(8, sampling, nside=nside, iterations=3)
    with jax.enable_x64(True):
        alm = _random_alm(rng, 8, 0)
        pure = dataclasses.replace(grid, method="jax")
        np.testing.assert_allclose(inverse(alm, pure), inverse(alm, grid), atol=1e-12)
        f = inverse(alm, grid)
        np.testing.assert_allclose(forward(f, pure), forward(f, grid), atol=1e-12)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="band_limit"):
        SphereGrid(1)
    with pytest.raises(ValueError, match="sampling"):
        SphereGrid(8, "equiangular")
    with pytest.raises(ValueError, match="nside must be a power of two"):
        SphereGrid(8, "healpix", nside=6)
    with pytest.raises(ValueError, match="3 \\* nside"):
        SphereGrid(32, "healpix", nside=4)
    with pytest.raises(ValueError, match="nside is only used"):
        SphereGrid(8, "gl", nside=4)
    with pytest.raises(ValueError, match="method"):
        SphereGrid(8, method="torch")
    grid = SphereGrid(8)
    with pytest.raises(ValueError, match="f must end with shape"):
        forward(jnp.zeros((8, 8)), grid)
    with pytest.raises(ValueError, match="alm must end with shape"):
        inverse(jnp.zeros(5, jnp.complex64), grid)
    with pytest.raises(ValueError, match="spin must be 0 or 2"):
        forward(jnp.zeros(grid.map_shape), grid, spin=1)
    with pytest.raises(TypeError, match="grid must be a SphereGrid"):
        forward(jnp.zeros(grid.map_shape), 8)
    with pytest.raises(ValueError, match="spin 0 only"):
        forward(jnp.zeros((2, *grid.map_shape)), dataclasses.replace(grid, method="jax"), spin=2)


def test_empty_thread_variable_is_refused_by_name(monkeypatch):
    # ducc0 aborts deep inside a JAX callback on OMP_NUM_THREADS="" (measured); the
    # grid refuses it up front, naming the variable.
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS is set but empty"):
        SphereGrid(8, "gl")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("DUCC0_NUM_THREADS", " ")
    with pytest.raises(ValueError, match="DUCC0_NUM_THREADS is set but empty"):
        SphereGrid(8, "gl")
    monkeypatch.delenv("DUCC0_NUM_THREADS")
    assert SphereGrid(8, "gl").map_shape == (8, 15)  # control: a number is fine


def test_pixel_weights_follow_the_float64_switch():
    """Weights handed to JAX in float32 mode come back float64 once x64 is on.

    JAX caches the device copy of a NumPy array by object, so a cached weights array
    converted under float32 would stay float32 (the bug: 3e-9 errors in float64
    scattering statistics in a long test session).
    """
    grid = SphereGrid(8, "gl")
    previous = jax.config.jax_enable_x64
    try:
        jax.config.update("jax_enable_x64", False)
        assert jnp.asarray(grid.pixel_weights()).dtype == jnp.float32
        jax.config.update("jax_enable_x64", True)
        assert jnp.asarray(grid.pixel_weights()).dtype == jnp.float64
        theta, _ = grid.coordinates()
        assert jnp.asarray(theta).dtype == jnp.float64
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_an_eager_transform_compiles_one_program_per_shape():
    """``forward``/``inverse`` called outside ``jit`` compile one program for a new shape
    (their array operations one by one would compile ~5), and none when called again."""
    grid = SphereGrid(6, "gl")
    compiled = []

    def listener(event, duration, **kwargs):
        if event.endswith("backend_compile_duration"):
            compiled.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        maps = jnp.ones((3, *grid.map_shape))  # a batch shape no other test uses
        jax.block_until_ready(maps)
        compiled.clear()
        alm = forward(maps, grid)
        assert len(compiled) == 1, compiled
        forward(maps, grid)
        assert len(compiled) == 1, compiled
        compiled.clear()
        inverse(alm, grid)
        assert len(compiled) == 1, compiled
        # the primitive applied to concrete arrays runs ducc0 directly: nothing compiled
        from astrobayes.sphere.transforms import _PRIMITIVES

        x = jax.block_until_ready(maps[:, None])
        compiled.clear()
        pairs = _PRIMITIVES["analysis"].bind(x, grid=grid, spin=0)
        assert compiled == [], compiled
        np.testing.assert_allclose(pairs[..., 0, 0, :], jnp.real(alm), atol=1e-5)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
