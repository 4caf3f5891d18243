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

Run:  OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python examples/distill_emulator.py
(about 2-3 CPU-minutes at --max-complexity 7).
"""

from __future__ import annotations

import argparse
import resource
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from astrobayes.cosmology import Cosmology, dh_over_rd, dm_over_rd  # noqa: E402
from astrobayes.interpret import (  # noqa: E402
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


def distil(key, name, z_fit, z_test, expressions, config, tolerance, top):
    """Fit all expressions to one curve; return (result, rows of the top equations)."""
    y_fit = np.asarray(CURVES[name](jnp.asarray(z_fit)))
    y_test = np.asarray(CURVES[name](jnp.asarray(z_test)))
    result = symbolic_regression(
        key, z_fit, y_fit, tolerance * y_fit, config=config, expressions=expressions
    )
    rows = []
    for rank, equation in enumerate(result.equations[:top], start=1):
        max_fit, _ = accuracy(equation, z_fit, y_fit)
        max_test, rms_test = accuracy(equation, z_test, y_test)
        rows.append((rank, equation, max_fit, max_test, rms_test))
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
    args = parser.parse_args()

    config = SymbolicConfig(
        max_complexity=args.max_complexity,
        num_starts=args.num_starts,
        num_iterations=args.num_iterations,
    )
    z_fit, z_test = grids(args.num_fit)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    expressions, num_enumerated = unique_expressions(z_fit, config=config)
    print(
        f"operators {config.operators}, complexity <= {config.max_complexity}: "
        f"{num_enumerated} trees -> {len(expressions)} unique; fit on {z_fit.size} z in "
        f"[{Z_MIN}, {Z_MAX}], held out {z_test.size} z; sigma = {args.tolerance:g} * y"
    )
    keys = jax.random.split(jax.random.key(args.seed), len(CURVES))
    for key, name in zip(keys, CURVES, strict=True):
        result, rows = distil(
            key, name, z_fit, z_test, expressions, config, args.tolerance, args.top
        )
        print(f"\n{name}: {len(result.equations)} valid fits, status {result.status.name}")
        print(
            "rank | expression | k | ln Z + prior | chi2/n | max rel. err fit | held-out max | rms"
        )
        for rank, eq, max_fit, max_test, rms_test in rows:
            params = ", ".join(f"{p:.5g}" for p in eq.parameters)
            print(
                f"{rank} | {eq.expression} ({params}) | {eq.complexity} | "
                f"{eq.log_posterior:.2f} | {eq.chi2 / z_fit.size:.3g} | {max_fit:.2e} | "
                f"{max_test:.2e} | {rms_test:.2e}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nCPU {time.process_time() - cpu0:.0f} s, wall {time.perf_counter() - wall0:.0f} s, "
        f"peak memory {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
