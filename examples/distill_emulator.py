"""Distil the BAO distances that astrobayes emulates into equations, with their accuracy.

Issue 14, item 4(b). The quantity: D_M(z)/r_d and D_H(z)/r_d of flat LCDM at a fiducial
point of the box that ``examples/emulate_distances.py`` emulates (Omega_m = 0.3,
h r_d = 101.5 Mpc, w0 = -1, wa = 0), computed by ``astrobayes.cosmology.dm_over_rd`` /
``dh_over_rd`` (the reference the emulator is validated against), as a function of the
one input z over the emulator's redshift range 0.1 <= z <= 2.5.

Each curve is sampled on a fit grid (``--num-fit`` points) with a stated per-point
tolerance ``sigma = tolerance * y`` (default 5.3e-4: the median held-out relative error
of the emulator in docs/emulators.md; ``--tolerance 0.01`` is a ~1% BAO measurement),
the exhaustive symbolic search of ``astrobayes.interpret.symbolic_regression`` ranks
every expression up to ``--max-complexity`` nodes by evidence x ESR structure prior, and
the top equations are evaluated on a held-out grid of z (the midpoints of the fit grid
and a fine grid, none of them fitted) for their max and rms relative error. The
unique expressions are enumerated once and fitted to both curves.

With ``--source emulator`` the curves are instead the outputs of the BAO-distance
emulator itself, trained here as in ``examples/emulate_distances.py`` (same expensive
physics, box and settings; about 2 CPU-minutes), on its 0.01-step redshift grid; the
held-out error is then given against the emulator and against the cosmology.

Run:  OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python examples/distill_emulator.py
      [--source emulator]    (about 5 CPU-minutes at --max-complexity 7).
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.cosmology import Cosmology, dh_over_rd, dm_over_rd
from astrobayes.interpret import (
    SymbolicConfig,
    evaluate_expression,
    symbolic_regression,
    unique_expressions,
)

FIDUCIAL = Cosmology(omega_m=0.3, w0=-1.0, wa=0.0)
H_RD = 101.5  # Mpc, h * r_d (inside the emulator's box, near the DESI best fit)
Z_MIN, Z_MAX = 0.1, 2.5  # the emulator's redshift range (examples/emulate_distances.py)
CURVES = {
    "D_M/r_d": lambda z: dm_over_rd(FIDUCIAL, z, h_rd=H_RD),
    "D_H/r_d": lambda z: dh_over_rd(FIDUCIAL, z, h_rd=H_RD),
}


def grids(num_fit: int) -> tuple[np.ndarray, np.ndarray]:
    """The fit grid and the held-out grid (midpoints + a fine grid, no fitted z)."""
    z_fit = np.linspace(Z_MIN, Z_MAX, num_fit)
    mid = 0.5 * (z_fit[1:] + z_fit[:-1])
    fine = np.linspace(Z_MIN, Z_MAX, 241)
    fine = fine[np.min(np.abs(fine[:, None] - z_fit[None, :]), axis=1) > 1e-9]
    return z_fit, np.unique(np.concatenate([mid, fine]))


def accuracy(equation, z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Max and rms relative error of a fitted equation on ``(z, y)``."""
    prediction = np.asarray(
        evaluate_expression(equation.tree, jnp.asarray(equation.parameters), jnp.asarray(z))
    )
    relative = prediction / y - 1.0
    return float(np.max(np.abs(relative))), float(np.sqrt(np.mean(relative**2)))


def trained_emulator_curves(num_train: int, num_epochs: int, seed: int) -> dict:
    """Train the BAO-distance emulator of ``examples/emulate_distances.py`` (its
    expensive physics, box and settings) and return its D_M/r_d and D_H/r_d at the
    fiducial point as look-up functions on its redshift grid."""
    from emulate_distances import BOUNDS, REDSHIFT_GRID, expensive_distances

    from astrobayes.emulators import design, train_emulator

    design_key, train_key = jax.random.split(jax.random.key(seed))
    train_x = design(design_key, BOUNDS, num_train, method="sobol")
    train_y = np.stack([expensive_distances(t) for t in train_x])
    emulator, info = train_emulator(
        train_key,
        train_x,
        train_y,
        pca_components=24,
        hidden=(128, 128, 128),
        log_outputs=True,
        num_epochs=num_epochs,
        batch_size=128,
        learning_rate=2e-3,
        patience=200,
    )
    theta = np.array([FIDUCIAL.omega_m, H_RD, FIDUCIAL.w0, FIDUCIAL.wa])
    outputs = np.asarray(emulator(jnp.asarray(theta)), np.float64)
    exact = expensive_distances(theta)
    n = REDSHIFT_GRID.size
    print(
        f"emulator: {num_train} training points, {info.num_epochs} epochs; at the fiducial "
        f"point its max relative error against the expensive physics is "
        f"{np.max(np.abs(outputs[:n] / exact[:n] - 1)):.2e} (D_M/r_d), "
        f"{np.max(np.abs(outputs[n:] / exact[n:] - 1)):.2e} (D_H/r_d)"
    )

    def lookup(values):
        def curve(z):
            index = np.rint((np.asarray(z) - REDSHIFT_GRID[0]) / 0.01).astype(int)
            if not np.allclose(REDSHIFT_GRID[index], z):
                raise ValueError("the emulator is only evaluated on its redshift grid")
            return values[index]

        return curve

    return {"D_M/r_d": lookup(outputs[:n]), "D_H/r_d": lookup(outputs[n:])}


def distil(key, curve, truth, z_fit, z_test, expressions, config, tolerance, top):
    """Fit all expressions to one curve; return (result, rows of the top equations)
    with their max relative error on the fit grid, and max and rms on the held-out grid
    against ``curve`` and (max) against ``truth``."""
    y_fit = np.asarray(curve(z_fit))
    y_test = np.asarray(curve(z_test))
    y_true = np.asarray(truth(jnp.asarray(z_test)))
    result = symbolic_regression(
        key, z_fit, y_fit, tolerance * y_fit, config=config, expressions=expressions
    )
    rows = []
    for rank, equation in enumerate(result.equations[:top], start=1):
        max_fit, _ = accuracy(equation, z_fit, y_fit)
        max_test, rms_test = accuracy(equation, z_test, y_test)
        max_true, _ = accuracy(equation, z_test, y_true)
        rows.append((rank, equation, max_fit, max_test, rms_test, max_true))
    return result, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-complexity", type=int, default=7)
    parser.add_argument("--num-fit", type=int, default=25, help="fit-grid points in z")
    parser.add_argument("--tolerance", type=float, default=5.3e-4, help="relative sigma")
    parser.add_argument("--num-starts", type=int, default=4)
    parser.add_argument("--num-iterations", type=int, default=80)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--source",
        choices=("cosmology", "emulator"),
        default="cosmology",
        help="distil cosmology.dm_over_rd/dh_over_rd, or a freshly trained emulator of them",
    )
    parser.add_argument("--num-train", type=int, default=2048, help="emulator training points")
    parser.add_argument("--num-epochs", type=int, default=1500, help="emulator epochs")
    args = parser.parse_args()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    if args.source == "emulator":  # trained in float32, as in emulate_distances.py
        curves = trained_emulator_curves(args.num_train, args.num_epochs, args.seed)
    jax.config.update("jax_enable_x64", True)
    if args.source == "cosmology":
        curves = {name: (lambda z, f=f: f(jnp.asarray(z))) for name, f in CURVES.items()}

    config = SymbolicConfig(
        max_complexity=args.max_complexity,
        num_starts=args.num_starts,
        num_iterations=args.num_iterations,
    )
    z_fit, z_test = grids(args.num_fit)
    expressions, num_enumerated = unique_expressions(z_fit, config=config)
    print(
        f"operators {config.operators}, complexity <= {config.max_complexity}: "
        f"{num_enumerated} trees -> {len(expressions)} unique; fit on {z_fit.size} z in "
        f"[{Z_MIN}, {Z_MAX}], held out {z_test.size} z; sigma = {args.tolerance:g} * y"
    )
    keys = jax.random.split(jax.random.key(args.seed), len(CURVES))
    for key, name in zip(keys, CURVES, strict=True):
        result, rows = distil(
            key,
            curves[name],
            CURVES[name],
            z_fit,
            z_test,
            expressions,
            config,
            args.tolerance,
            args.top,
        )
        print(
            f"\n{name} ({args.source}): {len(result.equations)} valid fits, "
            f"status {result.status.name}"
        )
        print(
            "rank | expression | k | ln Z + prior | chi2/n | max rel. err fit | held-out max | rms"
            " | held-out max vs cosmology"
        )
        for rank, eq, max_fit, max_test, rms_test, max_true in rows:
            params = ", ".join(f"{p:.5g}" for p in eq.parameters)
            print(
                f"{rank} | {eq.expression} ({params}) | {eq.complexity} | "
                f"{eq.log_posterior:.2f} | {eq.chi2 / z_fit.size:.3g} | {max_fit:.2e} | "
                f"{max_test:.2e} | {rms_test:.2e} | {max_true:.2e}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nCPU {time.process_time() - cpu0:.0f} s, wall {time.perf_counter() - wall0:.0f} s, "
        f"peak memory {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
