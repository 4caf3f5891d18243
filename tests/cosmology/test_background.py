import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM, LambdaCDM, w0waCDM, wCDM

from astrobayes.cosmology import (
    Cosmology,
    angular_diameter_distance,
    comoving_distance,
    dh_over_rd,
    distance_modulus,
    dm_over_rd,
    dv,
    dv_over_rd,
    efunc,
    hubble,
    hubble_distance,
    luminosity_distance,
    transverse_comoving_distance,
)

REDSHIFTS = np.linspace(0.001, 3.0, 61)


def _astropy_cases():
    radiation = FlatLambdaCDM(70.0, 0.3, Tcmb0=2.7255, Neff=3.046, m_nu=0.0)
    radiation_curved = LambdaCDM(68.0, 0.31, 0.72, Tcmb0=2.7255, Neff=3.046, m_nu=0.0)
    return [
        ("flat", FlatLambdaCDM(70.0, 0.3, Tcmb0=0.0), dict(h=0.7, omega_m=0.3)),
        ("closed", LambdaCDM(70.0, 0.3, 0.8, Tcmb0=0.0), dict(h=0.7, omega_m=0.3, omega_k=-0.1)),
        ("open", LambdaCDM(65.0, 0.25, 0.5, Tcmb0=0.0), dict(h=0.65, omega_m=0.25, omega_k=0.25)),
        ("wcdm", wCDM(68.0, 0.31, 0.69, w0=-0.8, Tcmb0=0.0), dict(h=0.68, omega_m=0.31, w0=-0.8)),
        (
            "w0wacdm",
            w0waCDM(67.0, 0.32, 0.70, w0=-0.7, wa=-1.0, Tcmb0=0.0),
            dict(h=0.67, omega_m=0.32, omega_k=-0.02, w0=-0.7, wa=-1.0),
        ),
        (
            "radiation",
            radiation,
            dict(h=0.7, omega_m=0.3, omega_r=float(radiation.Ogamma0 + radiation.Onu0)),
        ),
        (
            "radiation_curved",
            radiation_curved,
            dict(
                h=0.68,
                omega_m=0.31,
                omega_k=float(radiation_curved.Ok0),
                omega_r=float(radiation_curved.Ogamma0 + radiation_curved.Onu0),
            ),
        ),
    ]


@pytest.mark.parametrize("x64", [True, False], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("label", "reference", "parameters"),
    _astropy_cases(),
    ids=lambda c: c if isinstance(c, str) else "",
)
def test_matches_astropy(label, reference, parameters, x64):
    # float64 agrees to ~1e-13; float32 to its rounding level (a few 1e-7).
    rtol = 1e-10 if x64 else 1e-6
    with jax.enable_x64(x64):
        cosmology = Cosmology(**parameters)
        pairs = [
            (efunc, reference.efunc(REDSHIFTS)),
            (hubble, reference.H(REDSHIFTS).value),
            (comoving_distance, reference.comoving_distance(REDSHIFTS).value),
            (transverse_comoving_distance, reference.comoving_transverse_distance(REDSHIFTS).value),
            (angular_diameter_distance, reference.angular_diameter_distance(REDSHIFTS).value),
            (luminosity_distance, reference.luminosity_distance(REDSHIFTS).value),
        ]
        for function, expected in pairs:
            np.testing.assert_allclose(
                np.asarray(function(cosmology, REDSHIFTS)),
                expected,
                rtol=rtol,
                err_msg=function.__name__,
            )
        np.testing.assert_allclose(
            np.asarray(distance_modulus(cosmology, REDSHIFTS)),
            reference.distmod(REDSHIFTS).value,
            atol=10 * rtol,
        )


def test_radiation_analytic():
    # Radiation only (omega_m = 0, omega_de = 0): E = (1+z)^2, chi = z/(1+z).
    with jax.enable_x64(True):
        cosmology = Cosmology(h=1.0, omega_m=0.0, omega_r=1.0)
        z = np.array([0.1, 1.0, 10.0, 1000.0])
        np.testing.assert_allclose(efunc(cosmology, z), (1 + z) ** 2, rtol=1e-14)
        chi = comoving_distance(cosmology, z) / hubble_distance(cosmology)
        np.testing.assert_allclose(chi, z / (1 + z), rtol=1e-12)
        # Matter + radiation: chi = 2 (sqrt(Om (1+z) + Or) - sqrt(Om + Or)) ... / Om for Om+Or=1
        om, orad = 0.7, 0.3
        cosmology = Cosmology(h=1.0, omega_m=om, omega_r=orad)
        a = 1 / (1 + z)
        exact = 2.0 / om * (np.sqrt(om + orad) - np.sqrt(om * a + orad))
        np.testing.assert_allclose(
            comoving_distance(cosmology, z) / hubble_distance(cosmology), exact, rtol=1e-12
        )


def test_einstein_de_sitter_float32_accuracy():
    cosmology = Cosmology(h=1.0, omega_m=1.0)
    z = jnp.linspace(0.01, 3.0, 50, dtype=jnp.float32)
    chi = comoving_distance(cosmology, z) / hubble_distance(cosmology)
    exact = 2.0 * (1.0 - 1.0 / np.sqrt(1.0 + np.asarray(z, dtype=np.float64)))
    assert chi.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(chi, dtype=np.float64), exact, rtol=1e-6)


def test_curvature_continuous_through_zero():
    with jax.enable_x64(True):
        z = 2.0
        distance_fn = jax.jit(lambda k: transverse_comoving_distance(Cosmology(omega_k=k), z))
        values = [distance_fn(k) for k in (-1e-9, 0.0, 1e-9)]
        np.testing.assert_allclose(values, values[1], rtol=1e-8)
        # Series branch (|omega_k chi^2| < 1e-2) vs the closed forms, across the switch.
        from astrobayes.cosmology.background import _curvature_factor

        x = np.concatenate([np.linspace(-0.02, -1e-6, 50), np.linspace(1e-6, 0.02, 50)])
        root = np.sqrt(np.abs(x))
        exact = np.where(x > 0, np.sinh(root) / root, np.sin(root) / root)
        np.testing.assert_allclose(
            _curvature_factor(jnp.asarray(x), jnp.ones_like(x)), exact, rtol=1e-14
        )
        gradient = jax.grad(distance_fn)(0.0)
        step = 1e-5
        finite = (distance_fn(step) - distance_fn(-step)) / (2 * step)
        np.testing.assert_allclose(gradient, finite, rtol=1e-7)


@pytest.mark.parametrize("field", ["h", "omega_m", "omega_k", "omega_r", "w0", "wa"])
def test_gradients_match_finite_differences(field):
    base = dict(h=0.68, omega_m=0.31, omega_k=0.05, omega_r=1e-4, w0=-0.9, wa=0.2)
    z = 1.3

    def observable(value):
        cosmology = Cosmology(**{**base, field: value})
        return luminosity_distance(cosmology, z) + dv(cosmology, z) + hubble(cosmology, z)

    with jax.enable_x64(True):
        x0 = base[field]
        step = 1e-6
        finite = (observable(x0 + step) - observable(x0 - step)) / (2 * step)
        np.testing.assert_allclose(jax.grad(observable)(x0), finite, rtol=1e-6, atol=1e-6)


def test_gradient_in_redshift():
    with jax.enable_x64(True):
        cosmology = Cosmology(h=0.7, omega_m=0.3)
        # d chi / dz = c / H(z)
        gradient = jax.vmap(jax.grad(lambda z: comoving_distance(cosmology, z)))(
            jnp.array([0.3, 1.0, 2.5])
        )
        expected = 299792.458 / hubble(cosmology, jnp.array([0.3, 1.0, 2.5]))
        np.testing.assert_allclose(gradient, expected, rtol=1e-10)


def test_jit_equals_eager_and_vmap_equals_loop():
    cosmology = Cosmology(h=0.7, omega_m=0.3, w0=-0.9, wa=0.1, omega_k=0.02)
    z = jnp.array([0.1, 0.5, 1.0, 2.0])
    eager = luminosity_distance(cosmology, z)
    jitted = jax.jit(luminosity_distance)(cosmology, z)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    scalar_fn = jax.jit(luminosity_distance)
    looped = jnp.stack([scalar_fn(cosmology, zi) for zi in z])
    mapped = jax.vmap(luminosity_distance, in_axes=(None, 0))(cosmology, z)
    np.testing.assert_allclose(mapped, looped, rtol=1e-6)
    # vmap over parameters too
    omega_m = jnp.array([0.2, 0.3, 0.4])
    dv_fn = jax.jit(lambda om: dv(Cosmology(omega_m=om), 0.5))
    batched = jax.vmap(dv_fn)(omega_m)
    np.testing.assert_allclose(batched, [dv_fn(om) for om in omega_m], rtol=1e-6)


def test_shapes_broadcast():
    cosmology = Cosmology()
    z = jnp.ones((3, 4))
    assert comoving_distance(cosmology, z).shape == (3, 4)
    assert efunc(cosmology, 1.0).shape == ()


def test_bao_ratios_definitions():
    with jax.enable_x64(True):
        cosmology = Cosmology(h=0.68, omega_m=0.3, w0=-0.9)
        rd = 147.0
        z = np.array([0.3, 1.0, 2.33])
        dh = 299792.458 / hubble(cosmology, z)
        dm = transverse_comoving_distance(cosmology, z)
        np.testing.assert_allclose(dm_over_rd(cosmology, z, rd=rd), dm / rd, rtol=1e-12)
        np.testing.assert_allclose(dh_over_rd(cosmology, z, rd=rd), dh / rd, rtol=1e-12)
        np.testing.assert_allclose(
            dv_over_rd(cosmology, z, rd=rd), (z * dm**2 * dh) ** (1 / 3) / rd, rtol=1e-12
        )
        np.testing.assert_allclose(dv(cosmology, z), (z * dm**2 * dh) ** (1 / 3), rtol=1e-12)
        # h_rd parameterisation ignores h.
        other_h = Cosmology(h=0.5, omega_m=0.3, w0=-0.9)
        np.testing.assert_allclose(dm_over_rd(other_h, z, h_rd=0.68 * rd), dm / rd, rtol=1e-12)


def test_bao_ratio_needs_exactly_one_scale():
    with pytest.raises(ValueError, match="exactly one of rd"):
        dm_over_rd(Cosmology(), 1.0)
    with pytest.raises(ValueError, match="exactly one of rd"):
        dh_over_rd(Cosmology(), 1.0, rd=147.0, h_rd=100.0)


def test_cosmology_validation():
    with pytest.raises(ValueError, match="Cosmology.h must be > 0"):
        Cosmology(h=0.0)
    with pytest.raises(ValueError, match="Cosmology.omega_m must be finite"):
        Cosmology(omega_m=float("nan"))
    assert float(Cosmology(omega_m=0.3, omega_k=0.1, omega_r=0.01).omega_de) == pytest.approx(0.59)


def _data_cosmologies():
    """Physical cosmologies across the demo's prior box, with curvature and radiation."""
    for omega_m in (0.05, 0.3, 0.9):
        for w0, wa in ((-1.0, 0.0), (-3.0, 2.0), (1.0, -3.0), (-0.5, -1.7), (0.5, -2.0)):
            for omega_k in (0.0, -0.05, 0.1):
                yield Cosmology(omega_m=omega_m, w0=w0, wa=wa, omega_k=omega_k, omega_r=9e-5)


def test_panel_quadrature_at_data_redshifts_equals_the_per_redshift_rule(monkeypatch):
    """The BAO/SN likelihoods' panel quadrature against the 64-node rule, in float64.

    Both are exact to float64 rounding on these cosmologies (checked once against
    scipy's adaptive ``quad`` at 1e-13: 1.9e-15 and 7.9e-16). Repeated and unsorted
    redshifts (DESI's 13 values at 7 redshifts; supernova-like sets, one with the narrow
    gaps of a catalogue) and the redshift 0 must come back in the data's order. Negative
    controls: a midpoint rule on the narrow panels, and a one-node (midpoint) rule on
    0.5-wide panels, must miss by far more than the tolerance.
    """
    from astrobayes.cosmology import background

    rng = np.random.default_rng(3)
    redshift_sets = [
        np.array(
            [0.295, 0.51, 0.51, 0.706, 0.706, 0.934, 0.934, 1.321, 1.321, 1.484, 1.484, 2.33, 2.33]
        ),
        rng.uniform(0.01, 2.3, 300),
        np.array([1.5, 0.0, 0.2, 1e-5, 4.0]),
        # catalogue-like: most gaps narrower than 1e-3 in ln(1+z) (2- and 3-node panels)
        np.concatenate([rng.uniform(0.01, 0.1, 1000), rng.uniform(0.1, 2.3, 1500)]),
    ]

    cosmologies = jax.tree.map(lambda *leaves: jnp.asarray(leaves), *_data_cosmologies())

    def worst_error():
        worst = 0.0
        for z in redshift_sets:
            exact, panels = jax.jit(
                jax.vmap(
                    lambda c, z=z: (
                        background._transverse_dimensionless(c, jnp.asarray(z)),
                        background._transverse_dimensionless_at_data(c, z),
                    )
                )
            )(cosmologies)
            assert panels.shape == (45, *z.shape)
            scale = np.maximum(np.abs(np.asarray(exact)), 1e-12)
            worst = max(worst, float(np.max(np.abs(np.asarray(panels) - exact) / scale)))
        return worst

    with jax.enable_x64(True):
        assert worst_error() < 1e-13
        # Control of the narrow panels' rules: a midpoint in each must miss.
        midpoint = {n: (np.full(n, 0.5), np.full(n, 1.0 / n)) for n in (2, 3)}
        with monkeypatch.context() as patch:
            patch.setattr(background, "_NARROW_PANEL_UNIT_RULES", midpoint)
            assert worst_error() > 1e-11
        monkeypatch.setattr(background, "_PANEL_WIDTH", 0.5)
        monkeypatch.setattr(background, "_PANEL_UNIT_NODES", np.array([0.5]))
        monkeypatch.setattr(background, "_PANEL_UNIT_WEIGHTS", np.array([1.0]))
        assert worst_error() > 1e-6


def test_panel_quadrature_under_jit_over_the_data():
    """Traced redshifts (data passed through ``jit``) take the per-redshift rule."""
    from astrobayes.cosmology import background

    cosmology = Cosmology(omega_m=0.3, w0=-0.8, wa=-0.5)
    z = np.array([0.3, 0.7, 0.7, 2.3])
    traced = jax.jit(lambda zz: background._transverse_dimensionless_at_data(cosmology, zz))(z)
    eager = background._transverse_dimensionless_at_data(cosmology, z)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(eager), rtol=2e-6)
