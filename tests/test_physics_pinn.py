"""Lane–Emden PINN: boundary conditions by construction, residual, solver, ensemble."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._training import TrainingConfig
from astrobayes.physics.pinn import (
    LaneEmdenConfig,
    LaneEmdenPINN,
    ensemble_coverage,
    ensemble_predict,
    lane_emden_exact,
    lane_emden_residual,
    solve_lane_emden,
    train_lane_emden_ensemble,
)


def _constant_correction(pinn: LaneEmdenPINN, value: float) -> LaneEmdenPINN:
    """The same network with N(xi) = value (last layer zero weights, bias = value)."""
    last = pinn.network.layers[-1]
    pinn = eqx.tree_at(lambda p: p.network.layers[-1].weight, pinn, jnp.zeros_like(last.weight))
    return eqx.tree_at(lambda p: p.network.layers[-1].bias, pinn, jnp.full_like(last.bias, value))


def test_boundary_conditions_hold_by_construction(key):
    pinn = LaneEmdenPINN(key, n=1.0, extent=3.0, width=8, depth=2)
    assert float(pinn.correction(0.0)) != 0.0  # the network itself is not zero there
    assert float(pinn(0.0)) == 1.0
    assert float(jax.grad(pinn)(0.0)) == 0.0


def test_residual_vanishes_on_the_exact_n0_solution_only(key):
    pinn = LaneEmdenPINN(key, n=0.0, extent=2.0, width=8, depth=1)
    exact = _constant_correction(pinn, -1.0 / 6.0)  # theta = 1 - xi^2 / 6
    xi = jnp.linspace(0.0, 2.4, 7)
    residual = jax.vmap(lambda x: lane_emden_residual(exact, x))(xi)
    np.testing.assert_allclose(residual, 0.0, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(exact)(xi), lane_emden_exact(0, xi), atol=1e-6)
    wrong = _constant_correction(pinn, -0.2)  # negative control
    residual = jax.vmap(lambda x: lane_emden_residual(wrong, x))(xi)
    np.testing.assert_allclose(residual, -0.2, atol=1e-6)


def test_conventional_solver_matches_closed_forms():
    xi = jnp.array([0.5, 1.0, 2.0, 3.0])
    for n in (1.0, 5.0):
        theta = solve_lane_emden(n, xi, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(theta, lane_emden_exact(n, xi), atol=2e-5)


@pytest.mark.slow  # four fits, each compiled: ~20 s idle, much more under load
def test_ensemble_training_runs_and_reports_max_epochs(key):
    config = LaneEmdenConfig(
        n=0.0,
        num_members=2,
        num_rounds=1,
        num_collocation=32,
        num_added=8,
        num_candidates=64,
        num_validation=17,
        width=8,
        depth=1,
        training=TrainingConfig(batch_size=32, max_epochs=2, learning_rate=1e-2),
    )
    out = train_lane_emden_ensemble(key, config)
    assert len(out.members) == 2
    assert all(points.shape == (40,) for points in out.collocation)  # 32 + one RAR round
    assert out.status.name == "MAX_EPOCHS"
    mean, std = ensemble_predict(out, jnp.linspace(0, 2, 5))
    assert mean.shape == std.shape == (5,)
    np.testing.assert_allclose(mean[0], 1.0)  # the centre condition holds for the ensemble


def test_coverage_and_validation():
    truth = np.zeros(1000)
    rng = np.random.default_rng(0)
    mean = rng.normal(size=1000)
    coverage = ensemble_coverage(mean, np.ones(1000), truth)
    # Binomial errors with 1000 points: 0.015 and 0.007; tolerances are > 3 sigma.
    assert abs(coverage[0.68] - 0.68) < 0.05
    assert abs(coverage[0.95] - 0.95) < 0.03
    # Negative control: an interval half as wide under-covers.
    assert ensemble_coverage(mean, 0.5 * np.ones(1000), truth)[0.68] < 0.45
    with pytest.raises(ValueError, match="at least 2 members"):
        ensemble_predict((LaneEmdenPINN(jax.random.key(0), n=1.0, extent=1.0),), [0.1])
    with pytest.raises(ValueError, match="extent must be given"):
        LaneEmdenConfig(n=1.5)
    with pytest.raises(ValueError, match="n must be"):
        LaneEmdenConfig(n=-1.0)
    with pytest.raises(ValueError, match="n must be 0, 1 or 5"):
        lane_emden_exact(2, 1.0)
