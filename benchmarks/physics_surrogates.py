"""Physics benchmarks: the stiff network (diffrax vs scipy) and the PINN vs a solver.

1. Stiff primordial-chemistry network (``astrobayes.physics.chemistry``): our vmapped
   diffrax Kvaerno5 solve of ``--batch`` trajectories against scipy's ``solve_ivp``
   (Radau, the peer; same right-hand side and Jacobian through JAX, one trajectory at a
   time) on the first ``--peer-batch`` of them. Prints wall and CPU seconds per
   trajectory, their ratio, the agreement of the final abundances (species above 1e-15)
   and the conservation error of our solve.
2. PINN ensemble (``astrobayes.physics.pinn``): Lane–Emden (``--index`` n = 0, 1 or 5) or,
   with ``--pinn-problem friedmann``, the flat-ΛCDM Friedmann equation (``--index`` Ωm),
   against the Dopri8 solution of the same problem: error against the closed form,
   coverage of the Gaussian, Student-t and (with ``--pinn-scales`` from
   ``scripts/physics_pinn_calibration.py``) conformal intervals, training cost / solver cost.

3. Learned surrogates of the network (``astrobayes.physics.surrogates``; with
   ``--surrogates DIR``, the weights of ``scripts/physics_train_surrogates.py``): the
   Kvaerno5 solve of ``--surrogate-batch`` (1024) fresh initial conditions at the training
   grid's 32 times against each ensemble (all members, and one member) in the same
   process; wall and CPU seconds, ratios, and the ensemble mean's errors against that
   solve (abundances above 1e-20 per H).

Usage: OMP_NUM_THREADS=1 python benchmarks/physics_surrogates.py [--batch 64]
       [--peer-batch 8] [--members 5] [--index 1] [--pinn-problem lane-emden|friedmann]
       [--pinn-scales 0.68:s1,0.95:s2] [--skip-pinn] [--skip-network]
       [--surrogates DIR] [--surrogate-batch 1024]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

from astrobayes.physics.chemistry import (  # noqa: E402
    ConditionBox,
    conserved_quantities,
    initial_state,
    network_rhs,
    sample_conditions,
    simulate_trajectories,
)
from astrobayes.physics.pinn import (  # noqa: E402
    FriedmannConfig,
    LaneEmdenConfig,
    ensemble_coverage,
    ensemble_predict,
    friedmann_exact,
    lane_emden_exact,
    solve_friedmann,
    solve_lane_emden,
    student_t_scales,
    train_friedmann_ensemble,
    train_lane_emden_ensemble,
)
from astrobayes.physics.surrogates import (  # noqa: E402
    predict_members,
    surrogate_data,
    surrogate_errors,
)


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def network(batch: int, peer_batch: int) -> None:
    """Section 1: diffrax Kvaerno5 (vmapped) vs scipy Radau on the same network."""
    times = np.geomspace(1e8, 3e15, 16)
    conditions = np.asarray(sample_conditions(jax.random.key(1), range(batch), ConditionBox()))
    simulate_trajectories(conditions, times).states.block_until_ready()  # compile
    start = _clock()
    ours = simulate_trajectories(conditions, times)
    ours.states.block_until_ready()
    wall, cpu = _since(start)
    states = np.asarray(ours.states)
    invariants = np.asarray(conserved_quantities(ours.states))
    initial = invariants[:, :1, :]
    nuclei_error = np.max(np.abs(invariants[..., :2] / initial[..., :2] - 1))
    charge_error = np.max(np.abs(invariants[..., 2]) / states[:, :1, 8])
    print(
        f"[network] diffrax Kvaerno5, batch {batch}: {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"({1e3 * wall / batch:.1f} ms/trajectory); successful "
        f"{int(np.sum(ours.is_successful))}/{batch}; median steps "
        f"{int(np.median(ours.num_steps))}"
    )
    print(
        f"[network] conservation: max |nuclei/initial - 1| = {nuclei_error:.2e}, "
        f"max |charge| / x_e = {charge_error:.2e}"
    )

    rhs = jax.jit(network_rhs)
    jac = jax.jit(jax.jacfwd(network_rhs, argnums=1))
    peer_wall = peer_cpu = 0.0
    worst = 0.0
    for row, state in zip(conditions[:peer_batch], states[:peer_batch], strict=True):
        density, temperature, ionised, molecular, j21 = 10.0**row
        y0 = np.asarray(
            initial_state(ionised, molecular, temperature, helium_ionised_fraction=ionised / 10.0)
        )
        args = (density, j21, 0.0, False)
        rhs(0.0, jnp.asarray(y0), args)
        jac(0.0, jnp.asarray(y0), args)
        start = _clock()
        solution = solve_ivp(
            lambda t, y, a=args: np.asarray(rhs(t, jnp.asarray(y), a)),
            (0.0, times[-1]),
            y0,
            method="Radau",
            t_eval=times,
            rtol=1e-8,
            atol=1e-20,
            jac=lambda t, y, a=args: np.asarray(jac(t, jnp.asarray(y), a)),
        )
        w, c = _since(start)
        peer_wall += w
        peer_cpu += c
        final = solution.y[:, -1]
        mask = np.abs(final[:9]) > 1e-15
        worst = max(worst, float(np.max(np.abs(state[-1, :9][mask] / final[:9][mask] - 1))))
    per_peer = peer_wall / peer_batch
    per_ours = wall / batch
    print(
        f"[network] scipy Radau (peer), {peer_batch} trajectories one by one: "
        f"{per_peer * 1e3:.1f} ms wall, {peer_cpu / peer_batch * 1e3:.1f} ms CPU per trajectory"
    )
    print(
        f"[network] ratio peer/ours per trajectory: wall {per_peer / per_ours:.2f}x, "
        f"CPU {(peer_cpu / peer_batch) / (cpu / batch):.2f}x; max relative difference of "
        f"final abundances > 1e-15: {worst:.2e}"
    )


def _pinn_scales(text: str | None) -> dict | None:
    """``"0.68:1.9,0.95:4.1"`` -> ``{0.68: 1.9, 0.95: 4.1}`` (conformal scales)."""
    if not text:
        return None
    return {float(k): float(v) for k, v in (item.split(":") for item in text.split(","))}


def pinn(members: int, index: float, problem: str = "lane-emden", scales_text=None) -> None:
    """Section 2: a PINN ensemble against the exact solution and a Dopri8 solve.

    Prints the error, the coverage of three interval rules and the cost ratio.

    ``index`` is the Lane–Emden n (0, 1, 5) or, with ``problem="friedmann"``, Ωm. Conformal
    scales come from ``scripts/physics_pinn_calibration.py`` (fitted on other problems).
    """
    if problem == "friedmann":
        config = FriedmannConfig(omega_m=index, num_members=members)
        train, exact_fn, solve = train_friedmann_ensemble, friedmann_exact, solve_friedmann
        label = f"Friedmann Ωm={index:g}"
    else:
        config = LaneEmdenConfig(n=index, num_members=members)
        train, exact_fn, solve = train_lane_emden_ensemble, lane_emden_exact, solve_lane_emden
        label = f"Lane-Emden n={index:g}"
    start = _clock()
    ensemble = train(jax.random.key(0), config)
    train_wall, train_cpu = _since(start)
    xi = jnp.linspace(0.0, config.domain, 1001)
    mean, std = ensemble_predict(ensemble, xi)
    exact = exact_fn(index, xi)
    error = float(jnp.max(jnp.abs(mean - exact)) / jnp.max(jnp.abs(exact)))
    members_error = [float(jnp.max(jnp.abs(jax.vmap(m)(xi) - exact))) for m in ensemble.members]
    rules = {"Gaussian": None, "Student-t": student_t_scales(members)}
    if scales_text:
        rules["conformal (given)"] = _pinn_scales(scales_text)
    coverage = {
        name: ensemble_coverage(mean[1:], std[1:], exact[1:], scales=scales)
        for name, scales in rules.items()
    }  # the centre / Big Bang (exact by construction) is left out
    grid = xi[1:]
    solve(index, grid)  # compile
    start = _clock()
    solved = solve(index, grid)
    solved.block_until_ready()
    solve_wall, solve_cpu = _since(start)
    solver_error = float(jnp.max(jnp.abs(solved - exact[1:])))
    print(
        f"[pinn] {label}, {members} members, status {ensemble.status.name}: train "
        f"{train_wall:.1f} s wall / {train_cpu:.1f} s CPU"
    )
    print(
        f"[pinn] max |mean - exact| / max|exact| = {error:.2e}; members "
        f"{', '.join(f'{e:.1e}' for e in members_error)}; mean ensemble std {float(std.mean()):.2e}"
    )
    for name, values in coverage.items():
        print(
            f"[pinn] coverage of the exact solution, {name}: 68% -> {values[0.68]:.3f}, "
            f"95% -> {values[0.95]:.3f} (1000 points along one solution: correlated; see "
            "scripts/physics_pinn_calibration.py for coverage over problems and seeds)"
        )
    print(
        f"[pinn] Dopri8 (rtol 1e-10): {solve_wall * 1e3:.2f} ms wall / {solve_cpu * 1e3:.2f} ms "
        f"CPU, error {solver_error:.1e}; training/solve cost ratio {train_wall / solve_wall:.0f}x "
        f"wall, {train_cpu / max(solve_cpu, 1e-9):.0f}x CPU"
    )


def surrogates(directory: str, batch: int) -> None:
    """Section 3: surrogate ensembles vs the Kvaerno5 solve at one batch, same process."""
    from pathlib import Path

    import equinox as eqx

    from astrobayes.io.surrogates import load_surrogate_ensemble

    times = np.geomspace(1e8, 3e15, 32)  # the grid of scripts/physics_chemistry_trajectories.py
    # fresh draws: the training file used key 0, this uses key 7
    conditions = np.asarray(sample_conditions(jax.random.key(7), range(batch), ConditionBox()))
    # surrogate inputs need only the conditions (states are filled in after the solve)
    inputs = surrogate_data(conditions, times, np.zeros((batch, times.size, 10)))
    timings, predictions = {}, {}
    for kind in ("mlp", "deeponet", "latent_ode"):
        path = Path(directory) / f"{kind}.eqx"
        if not path.exists():
            print(f"[surrogates] {kind}: no weights at {path}; skipped")
            continue
        members, _ = load_surrogate_ensemble(path)
        one = jax.tree_util.tree_map(lambda a: a[:1] if eqx.is_array(a) else a, members)
        for label, model in (("ensemble", members), ("1 member", one)):
            predict_members(model, inputs.initial, inputs.log_times).block_until_ready()  # compile
            start = _clock()
            values = predict_members(model, inputs.initial, inputs.log_times)
            values.block_until_ready()
            timings[kind, label, values.shape[0]] = _since(start)
        predictions[kind] = np.asarray(predict_members(members, inputs.initial, inputs.log_times))
    simulate_trajectories(conditions, times).states.block_until_ready()  # compile (same shapes)
    start = _clock()
    solved = simulate_trajectories(conditions, times)
    solved.states.block_until_ready()
    solver_wall, solver_cpu = _since(start)
    ok = np.asarray(solved.is_successful)
    print(
        f"[surrogates] Kvaerno5 solve, batch {batch} x {times.size} times: {solver_wall:.2f} s "
        f"wall, {solver_cpu:.2f} s CPU; successful {int(ok.sum())}/{batch}"
    )
    for (kind, label, count), (wall, cpu) in timings.items():
        print(
            f"[surrogates] {kind} {label} ({count}): {wall * 1e3:.1f} ms wall, "
            f"{cpu * 1e3:.1f} ms CPU; solver/surrogate: wall {solver_wall / wall:.0f}x, "
            f"CPU {solver_cpu / max(cpu, 1e-9):.0f}x"
        )
    truth = np.asarray(surrogate_data(conditions, times, np.asarray(solved.states)).targets)
    for kind, values in predictions.items():
        errors = surrogate_errors(values.mean(axis=0)[ok], truth[ok], floor_dex=-20.0)
        print(
            f"[surrogates] {kind} ensemble mean vs solve ({int(ok.sum())} fresh ICs, all times,"
            f" abundances > 1e-20): median relative {errors.overall_median_relative:.2e}, "
            f"99th percentile {errors.overall_p99_relative:.2e}; per-species median "
            + ", ".join(f"{e:.1e}" for e in errors.median_relative)
        )


def main() -> None:
    """Run both sections."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--peer-batch", type=int, default=8)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument(
        "--index", type=float, default=1.0, help="Lane-Emden n: 0, 1 or 5 (Friedmann: Ωm)"
    )
    parser.add_argument("--pinn-problem", choices=("lane-emden", "friedmann"), default="lane-emden")
    parser.add_argument(
        "--pinn-scales", default=None, help="conformal scales '0.68:s1,0.95:s2' (calibration run)"
    )
    parser.add_argument("--skip-pinn", action="store_true")
    parser.add_argument("--skip-network", action="store_true")
    parser.add_argument("--surrogates", default=None, help="weights directory (section 3)")
    parser.add_argument("--surrogate-batch", type=int, default=1024)
    args = parser.parse_args()
    if not args.skip_network:
        network(args.batch, args.peer_batch)
    if not args.skip_pinn:
        pinn(args.members, args.index, args.pinn_problem, args.pinn_scales)
    if args.surrogates is not None:
        surrogates(args.surrogates, args.surrogate_batch)


if __name__ == "__main__":
    main()
