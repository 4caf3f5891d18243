"""PINNs (Lane–Emden, Friedmann): boundary conditions, residuals, solvers, ensembles,
interval rules (Gaussian, Student-t, conformal) and the residual-based error estimate."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._training import TrainingConfig, fit
from astrobayes.physics.pinn import (
    FriedmannConfig,
    FriedmannPINN,
    LaneEmdenConfig,
    LaneEmdenPINN,
    conformal_scales,
    ensemble_coverage,
    ensemble_predict,
    friedmann_age,
    friedmann_error_estimate,
    friedmann_exact,
    friedmann_residual,
    lane_emden_error_estimate,
    lane_emden_exact,
    lane_emden_residual,
    screened_conformal_scales,
    solve_friedmann,
    solve_lane_emden,
    student_t_scales,
    train_friedmann_ensemble,
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


def test_friedmann_boundary_condition_residual_and_solvers(key):
    pinn = FriedmannPINN(key, omega_m=0.3, extent=1.0, width=8, depth=1)
    assert float(pinn(0.0)) == 0.0
    assert float(pinn.network(0.0)) != 0.0
    c = 0.8  # N = c: y = c t, y' = c
    line = _constant_correction(pinn, c)
    t = jnp.linspace(0.0, 1.0, 6)
    residual = jax.vmap(lambda v: friedmann_residual(line, v))(t)
    np.testing.assert_allclose(residual, c - 1.5 * jnp.sqrt(0.3 + 0.7 * (c * t) ** 2), atol=1e-6)
    assert float(jnp.max(jnp.abs(residual))) > 0.1  # negative control: y = c t is not a solution
    # Closed form: a = 1 at the age; Dopri8 agrees with it; the matter era a ~ t^(2/3).
    np.testing.assert_allclose(friedmann_exact(0.3, friedmann_age(0.3)), 1.0, rtol=1e-6)
    t = jnp.array([0.01, 0.3, 0.7, 0.96])
    np.testing.assert_allclose(
        solve_friedmann(0.3, t, rtol=1e-8, atol=1e-10), friedmann_exact(0.3, t), rtol=1e-5
    )
    np.testing.assert_allclose(
        friedmann_exact(0.3, 1e-4), (1.5 * 0.3**0.5 * 1e-4) ** (2 / 3), rtol=1e-6
    )
    with pytest.raises(ValueError, match="omega_m must be"):
        FriedmannConfig(omega_m=1.2)
    with pytest.raises(TypeError, match="FriedmannConfig"):
        train_friedmann_ensemble(key, LaneEmdenConfig())


def test_residual_error_estimates_track_the_true_error(key):
    # Lane–Emden n = 1 is linear: the estimate is exact up to the RK4 quadrature.
    pinn = LaneEmdenPINN(key, n=1.0, extent=3.0, width=8, depth=1)
    xi = jnp.linspace(0.0, 3.0, 31)
    error = jax.vmap(pinn)(xi) - lane_emden_exact(1, xi)
    estimate = lane_emden_error_estimate(pinn, xi)
    assert float(jnp.max(jnp.abs(estimate - error))) < 1e-5 * float(jnp.max(jnp.abs(error)))
    # Negative control: dropping the theta^(n-1) coupling (the n = 0 operator) misses.
    wrong = lane_emden_error_estimate(LaneEmdenPINN(key, n=0.0, extent=3.0, width=8, depth=1), xi)
    assert float(jnp.max(jnp.abs(wrong - error))) > 0.1 * float(jnp.max(jnp.abs(error)))
    # Friedmann (nonlinear, first order in the error): y = c t near the early-time slope.
    line = _constant_correction(
        FriedmannPINN(key, omega_m=0.3, extent=1.0, width=8, depth=1), 1.5 * 0.3**0.5 * 1.02
    )
    t = jnp.linspace(0.0, 0.5, 26)
    error = jax.vmap(line)(t) - friedmann_exact(0.3, t)
    estimate = friedmann_error_estimate(line, t)
    size = float(jnp.max(jnp.abs(error)))
    assert size > 1e-3
    assert float(jnp.max(jnp.abs(estimate - error))) < 0.05 * size


@pytest.mark.slow  # two compiled fits: ~67 s at load ~19 on 2 cores
def test_vmapped_member_trains_exactly_as_alone(key, global_x64):
    """The ensemble trains vmapped; member 0 must follow the trajectory of a solo fit."""
    # No gradient clipping: a global-norm clip would see the joint norm of all members.
    training = TrainingConfig(
        batch_size=16, max_epochs=3, learning_rate=1e-3, patience=10, clip_max_norm=None
    )
    config = LaneEmdenConfig(
        n=1.0,
        extent=3.0,
        num_members=3,
        num_rounds=0,
        num_collocation=32,
        num_validation=9,
        width=8,
        depth=1,
        training=training,
    )
    out = train_lane_emden_ensemble(key, config)
    init_key, points_key, _ = jax.random.split(jax.random.fold_in(key, 0), 3)
    fit_key = jax.random.split(jax.random.fold_in(key, 3), 3)[0]
    alone = LaneEmdenPINN(init_key, n=1.0, extent=3.0, width=8, depth=1)
    points = jax.random.uniform(points_key, (32,), maxval=3.0)
    np.testing.assert_allclose(out.collocation[0], points)

    def loss(p, batch, _k):
        return jnp.mean(jax.vmap(lambda v: lane_emden_residual(p, v))(batch[0]) ** 2)

    grid = (jnp.linspace(0.0, 3.0, 9),)
    alone, info = fit(fit_key, alone, loss, (points,), grid, config=training)
    assert info.best_epoch == 2
    assert out.infos[0].best_epoch == 2
    xi = jnp.linspace(0.0, 3.0, 7)
    np.testing.assert_allclose(jax.vmap(out.members[0])(xi), jax.vmap(alone)(xi), rtol=1e-5)
    # Negative control: another member is a different network.
    assert float(jnp.max(jnp.abs(jax.vmap(out.members[1])(xi) - jax.vmap(alone)(xi)))) > 1e-3


def test_interval_rules_and_a_calibration_that_transfers():
    assert student_t_scales(5, (0.68, 0.95)) == pytest.approx(
        {0.68: 1.1344 * 1.2**0.5, 0.95: 2.7764 * 1.2**0.5}, rel=1e-3
    )
    # Synthetic ensembles whose std is half the true error scale (overconfident by 2x).
    rng = np.random.default_rng(1)
    num = 4000
    std = rng.uniform(0.5, 2.0, size=(2, num))
    truth = 2.0 * std * rng.normal(size=(2, num))
    mean = np.zeros((2, num))
    scales = conformal_scales(mean[0], std[0], truth[0])  # calibration half
    np.testing.assert_allclose([scales[0.68], scales[0.95]], [2 * 0.994, 2 * 1.960], rtol=0.08)
    calibrated = ensemble_coverage(mean[1], std[1], truth[1], scales=scales)  # held-out half
    # Binomial + calibration-quantile errors with 4000 points: < 0.011; tolerance ~3 sigma.
    assert abs(calibrated[0.68] - 0.68) < 0.035
    assert abs(calibrated[0.95] - 0.95) < 0.02
    # Negative control: the overconfident Gaussian interval fails the same check.
    raw = ensemble_coverage(mean[1], std[1], truth[1])
    assert raw[0.68] < 0.45
    assert raw[0.95] < 0.75
    with pytest.raises(ValueError, match="calibration scores"):
        conformal_scales([0.0] * 5, [1.0] * 5, [1.0] * 5, levels=(0.95,))
    with pytest.raises(ValueError, match="scales must hold"):
        ensemble_coverage([0.0], [1.0], [0.0], (0.68, 0.95), scales={0.68: 1.0})


def _synthetic_problem(rng, num, error_per_std, std_scale):
    """(mean, std, truth, estimate) of a synthetic ensemble with |error|/std ~ |N(0, c^2)|."""
    mean = 1.0 + 0.1 * rng.uniform(size=num)
    std = std_scale * rng.uniform(0.5, 2.0, size=num)
    error = error_per_std * std * rng.normal(size=num)
    return mean, std, mean - error, error  # the estimate is the error (a linear problem)


def test_screened_conformal_drops_failed_fits_and_is_nominal_on_held_out_problems():
    rng = np.random.default_rng(3)
    # Good fits: error ~ 2 std, relative error ~1e-4. Failed fits: a spread close to a large
    # error (error ~ 0.3 std, relative error ~5e-2), as Lane–Emden n = 3 in docs/physics.md.
    good = [_synthetic_problem(rng, 200, 2.0, 5e-5) for _ in range(10)]
    failed = [_synthetic_problem(rng, 200, 0.3, 5e-2) for _ in range(5)]
    held_out = [_synthetic_problem(rng, 200, 2.0, 5e-5) for _ in range(25)]
    result = screened_conformal_scales(good + failed)
    assert result.kept == (True,) * 10 + (False,) * 5
    assert max(result.estimated_relative_error[:10]) < 1e-3
    assert min(result.estimated_relative_error[10:]) > 1e-2

    def coverage(scales):
        return ensemble_coverage(
            np.concatenate([p[0] for p in held_out]),
            np.concatenate([p[1] for p in held_out]),
            np.concatenate([p[2] for p in held_out]),
            scales=scales,
        )

    screened = coverage(result.scales)
    # Points are independent here: binomial error of 5000 test points plus that of the
    # 2000-point calibration quantile, sqrt(p(1-p)) * sqrt(1/5000 + 1/2000) = 0.012 at 68%,
    # 0.006 at 95%; tolerance 4 sigma.
    assert abs(screened[0.68] - 0.68) < 0.048
    assert abs(screened[0.95] - 0.95) < 0.024
    # Negative control: without the screen the failed fits pull the 68% multiplier down
    # (expected coverage ~0.52 on the good problems), and the same check fails.
    unscreened = conformal_scales(
        *(np.concatenate([p[j] for p in good + failed]) for j in range(3))
    )
    assert coverage(unscreened)[0.68] < 0.68 - 0.048
    with pytest.raises(ValueError, match="no calibration problem"):
        screened_conformal_scales(failed)
    with pytest.raises(ValueError, match="one shape"):
        screened_conformal_scales([(np.ones(3), np.ones(3), np.ones(3), np.ones(2))])
