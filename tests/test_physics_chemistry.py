"""Primordial chemistry network: invariants, rates, equilibrium, the stiff solver."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.physics.chemistry import (
    HELIUM_PER_HYDROGEN,
    REACTIONS,
    SPECIES,
    STOICHIOMETRY,
    conserved_quantities,
    cooling_rate,
    equilibrium_abundances,
    initial_state,
    network_rhs,
    rate_coefficients,
    solve_network,
)

_CHARGE = {"H": 0, "H+": 1, "H-": -1, "H2": 0, "H2+": 1, "He": 0, "He+": 1, "He++": 2, "e-": -1}
_H_NUCLEI = {"H": 1, "H+": 1, "H-": 1, "H2": 2, "H2+": 2}
_HE_NUCLEI = {"He": 1, "He+": 1, "He++": 1}


def test_every_reaction_conserves_nuclei_and_charge():
    for reactants, products in REACTIONS:
        for table in (_CHARGE, _H_NUCLEI, _HE_NUCLEI):
            before = sum(table.get(name, 0) for name in reactants)
            after = sum(table.get(name, 0) for name in products)
            assert before == after, (reactants, products)
    # The matrix is built from the same list: every column sums to zero against each law.
    laws = np.array([[t.get(s, 0) for s in SPECIES] for t in (_CHARGE, _H_NUCLEI, _HE_NUCLEI)])
    np.testing.assert_array_equal(laws @ STOICHIOMETRY, 0.0)


def test_rhs_conserves_invariants_and_is_jittable():
    with jax.enable_x64(True):
        rhs = jax.jit(network_rhs)
        rng = np.random.default_rng(3)
        for _ in range(5):
            y = initial_state(rng.uniform(1e-4, 0.5), rng.uniform(0, 1e-3), rng.uniform(50, 3e4))
            y = y.at[2].set(1e-9).at[4].set(1e-11).at[8].add(1e-11 - 1e-9)  # H-, H2+, charge 0
            dy = rhs(0.0, y, (rng.uniform(0.1, 1e3), 0.3, 5.0, False))
            scale = np.abs(np.asarray(STOICHIOMETRY)).sum() * np.max(np.abs(np.asarray(dy[:9])))
            np.testing.assert_allclose(conserved_quantities(dy), 0.0, atol=1e-14 * scale)
            assert np.all(np.isfinite(np.asarray(dy)))


def test_rate_coefficients_spot_values_and_continuity():
    with jax.enable_x64(True):
        k = np.asarray(rate_coefficients(1e4, 1.0))
        # Case-A recombination and collisional ionisation of H at 10^4 K, by hand.
        np.testing.assert_allclose(k[1], 8.4e-11 / 100.0 * 10.0**-0.2 / (1 + 0.01**0.7), rtol=1e-12)
        np.testing.assert_allclose(
            k[0], 5.85e-11 * 100.0 * np.exp(-15.78091) / (1 + np.sqrt(0.1)), rtol=1e-12
        )
        np.testing.assert_allclose(k[17], 1.38e-12, rtol=1e-12)
        # The piecewise fits join: k16 and k17 to 2%; the two published branches of k9
        # differ by 10% at 6700 K (a typo in an exponent would give orders of magnitude).
        for index, temperature, jump in (
            (8, 6700.0, 0.12),
            (15, 617.0, 0.02),
            (14, 1.719 * 11604.5, 0.02),
        ):
            below = float(rate_coefficients(temperature * (1 - 1e-9))[index])
            above = float(rate_coefficients(temperature * (1 + 1e-9))[index])
            assert abs(above / below - 1) < jump, (index, below, above)
    assert np.all(k >= 0)


def test_cooling_sign_and_compton_heating():
    with jax.enable_x64(True):
        x = initial_state(0.1, 1e-4, 1e4)[:9]
        assert float(cooling_rate(x, 1e4, 1.0)) > 0
        # Below the CMB temperature at z = 20 (57 K), Compton scattering heats.
        ionised = initial_state(0.5, 0.0, 20.0)[:9]
        compton_only = cooling_rate(ionised, 20.0, 1e-4, redshift=20.0)
        assert float(compton_only) < 0


def test_solve_network_refuses_float32():
    with jax.enable_x64(False), pytest.raises(ValueError, match="float64"):
        solve_network(initial_state(0.1, 0.0, 1e4), jnp.array([1.0]), density=1.0)


def test_equilibrium_root_satisfies_invariants():
    with jax.enable_x64(True):
        x = equilibrium_abundances(2e4, 100.0)
        invariants = np.asarray(conserved_quantities(x))
    np.testing.assert_allclose(invariants, [1.0, HELIUM_PER_HYDROGEN, 0.0], atol=1e-13)
    assert 0.8 < x[1] < 0.95  # mostly ionised at 2e4 K


@pytest.mark.slow
def test_cooling_run_conserves_to_1e_8():
    with jax.enable_x64(True):
        y0 = initial_state(1e-2, 1e-6, 3000.0, helium_ionised_fraction=1e-3)
        out = solve_network(y0, jnp.logspace(8, 16, 17), density=100.0, j21=0.01)
        invariants = np.asarray(conserved_quantities(out.states))
        initial = np.asarray(conserved_quantities(y0))
        electrons = float(y0[8])
    assert bool(out.is_successful)
    assert np.max(np.abs(invariants[:, :2] / initial[:2] - 1)) <= 1e-8
    print("nuclei", np.max(np.abs(invariants[:, :2] / initial[:2] - 1)))
    print("charge / x_e", np.max(np.abs(invariants[:, 2])) / electrons)
    assert np.max(np.abs(invariants[:, 2])) <= 1e-8 * electrons
    assert float(out.states[-1, 9]) < np.log(3000.0)  # it cooled


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1e4, 2e4])
def test_long_integration_reaches_the_root_equilibrium(temperature):
    with jax.enable_x64(True):
        root = equilibrium_abundances(temperature, 100.0)
        out = solve_network(
            initial_state(0.5, 0.0, temperature),
            jnp.array([1e17, 1e18]),
            density=100.0,
            is_isothermal=True,
            rtol=1e-11,
            atol=1e-24,
            max_steps=50_000,
        )
    assert bool(out.is_successful)
    final = np.asarray(out.states[-1, :9])
    resolved = root > 1e-18  # below ~atol the integration does not control the value
    np.testing.assert_allclose(final[resolved], root[resolved], rtol=1e-6)
    # Negative control: the state at 1e8 s is not yet in equilibrium.
    with jax.enable_x64(True):
        early = solve_network(
            initial_state(0.5, 0.0, temperature),
            jnp.array([1e8]),
            density=100.0,
            is_isothermal=True,
            rtol=1e-11,
            atol=1e-24,
        )
    assert np.max(np.abs(np.asarray(early.states[-1, :9])[resolved] / root[resolved] - 1)) > 1e-3
