"""Probabilistic deep learning benchmarks (issue 18): samplers, mass mapping, BNNs.

``--task mixture`` (default), ``banana``, ``dualmoon``: flow-enhanced MCMC (+ learned
harmonic mean and flow importance sampling), preconditioned SMC, NUTS alone (negative
control), dynesty, nautilus and pocoMC side by side in one process on posteriors with
known ``ln z`` and mode weights / means, with counted likelihood calls, R-hat, wall and CPU
seconds: ``benchmarks/probabilistic_samplers.py`` (its options pass through).

``--task massmap``: variational mass mapping on a masked flat patch (Kaiser-Squires, shape
noise, power-law Gaussian prior) against the exact Wiener-filter posterior: for the
mean-field, low-rank and flow families, the map error in posterior-std units against the
run-to-run Monte Carlo error (two seeds), per-pixel coverage of 68% / 90% intervals over
several data realizations, and the variance ratio to the exact posterior; writes FITS
maps and a PNG to ``--out``. ``--task massmap --prior lognormal``: the shifted lognormal
prior against a NUTS reference, ``benchmarks/probabilistic_massmap.py`` (its options pass
through).

Usage: OMP_NUM_THREADS=1 python benchmarks/probabilistic_dl.py [--task mixture|banana|dualmoon]
       [--dim 10] [--peers dynesty,nautilus,pocomc] [--methods flow,smc,nuts] [--seed 0]
       OMP_NUM_THREADS=1 python benchmarks/probabilistic_dl.py --task massmap [--size 12]
       [--realizations 3] [--out /tmp/massmap] [--prior lognormal]
       OMP_NUM_THREADS=1 python benchmarks/probabilistic_dl.py --task bnn [--methods
       ensemble,dropout,bbb,laplace,sgld,nuts] [--train 500] [--width 16]
       (Bayesian neural networks on photo-z: benchmarks/probabilistic_bnn.py)
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from timing import Stopwatch


def massmap(args) -> None:
    """Variational families against the exact Wiener-filter posterior."""
    from pathlib import Path

    from scipy import stats

    from astrobayes.io import save_figure_atomic, write_massmap_fits
    from astrobayes.plots.probabilistic import massmap_figure
    from astrobayes.variational import (
        FlowFamily,
        LowRankGaussian,
        MeanFieldGaussian,
        VIConfig,
        fit_variational,
        make_problem,
        mass_map_logdensity,
        simulate_shear,
        wiener_posterior,
    )

    size, pixels = args.size, args.size**2
    problem = make_problem(size)
    families = {
        "mean-field": lambda k: MeanFieldGaussian.init(jnp.zeros(pixels), 0.3),
        f"low-rank (rank {args.rank})": lambda k: LowRankGaussian.init(
            k, jnp.zeros(pixels), rank=args.rank, std=0.3
        ),
        "flow (IAF, 2 layers)": lambda k: FlowFamily.init(k, jnp.zeros(pixels), std=0.3),
    }
    z68, z90 = stats.norm.ppf(0.84), stats.norm.ppf(0.95)
    hits = {name: [0, 0] for name in [*families, "exact"]}
    ratios = {name: [] for name in families}
    key = jax.random.key(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"mass mapping: {size}x{size} patch, {int(problem.mask.sum())} observed pixels, "
        f"noise {problem.noise_std}"
    )
    for r in range(args.realizations):
        data_key, fit_key = jax.random.split(jax.random.fold_in(key, r))
        kappa, data = simulate_shear(data_key, problem)
        exact = wiener_posterior(problem, np.asarray(data))
        sd = np.sqrt(np.diag(exact.covariance))
        truth = np.asarray(kappa, np.float64).ravel()
        logdensity = mass_map_logdensity(problem, data)
        pulls = {"exact": (truth - exact.mean) / sd}
        maps = {}
        for name, build in families.items():
            clock = Stopwatch()
            with clock():
                fits = [
                    fit_variational(
                        jax.random.fold_in(fit_key, s),
                        logdensity,
                        build(fit_key),
                        config=VIConfig(),
                    )
                    for s in range(2 if r == 0 else 1)
                ]
            fit = fits[0]
            pulls[name] = (truth - fit.mean) / fit.std
            ratios[name].append(np.mean(fit.std**2 / sd**2))
            maps[name] = (fit.mean.reshape(size, size), fit.std.reshape(size, size))
            if r == 0:
                mc = np.sqrt(np.mean(((fits[0].mean - fits[1].mean) / sd) ** 2 / 2))
                error = np.sqrt(
                    np.mean(((0.5 * (fits[0].mean + fits[1].mean) - exact.mean) / sd) ** 2)
                )
                print(
                    f"  {name}: RMS(mean of 2 runs - Wiener) = {error:.4f} posterior std; "
                    f"its Monte Carlo error {mc / np.sqrt(2):.4f} (ratio {error / (mc / np.sqrt(2)):.2f}); "
                    f"status {fit.status.name}; {clock.cpu:.0f} CPU-s, {clock.wall:.0f} s wall for 2 fits"
                )
                if name == "mean-field":
                    optimum = np.mean(fit.std**2 * np.diag(exact.precision))
                    print(
                        f"    mean-field variance / analytic mean-field optimum 1/Lambda_ii: {optimum:.4f}"
                    )
        for name, pull in pulls.items():
            hits[name][0] += int(np.sum(np.abs(pull) < z68))
            hits[name][1] += int(np.sum(np.abs(pull) < z90))
        if r == 0:
            write_massmap_fits(
                out / "wiener.fits",
                exact.mean.reshape(size, size),
                sd.reshape(size, size),
                truth=truth.reshape(size, size),
            )
            for name, (mean, std) in maps.items():
                write_massmap_fits(out / f"{name.split()[0]}.fits", mean, std)
            save_figure_atomic(
                out / "massmaps.png",
                massmap_figure(
                    truth.reshape(size, size),
                    exact.mean.reshape(size, size),
                    sd.reshape(size, size),
                    maps,
                ),
            )
    total = args.realizations * pixels
    print(
        f"\nper-pixel coverage over {args.realizations} realizations x {pixels} pixels "
        f"(binomial error ~{np.sqrt(0.68 * 0.32 / total):.3f}, pixels correlated):"
    )
    print("family | coverage 68% | coverage 90% | variance / exact")
    for name, (c68, c90) in hits.items():
        ratio = np.mean(ratios[name]) if name in ratios else 1.0
        print(f"{name} | {c68 / total:.3f} | {c90 / total:.3f} | {ratio:.3f}")
    print(f"FITS and PNG in {out}")


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task", choices=("mixture", "banana", "dualmoon", "massmap", "bnn"), default="mixture"
    )
    parser.add_argument("--size", type=int, default=12)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--realizations", type=int, default=None, help="3 (gaussian), 2")
    parser.add_argument("--prior", choices=("gaussian", "lognormal"), default="gaussian")
    parser.add_argument("--out", default="massmap_outputs")
    parser.add_argument("--seed", type=int, default=0)
    args, rest = parser.parse_known_args()
    if args.task == "bnn":  # the BNN section has its own options
        from probabilistic_bnn import main as bnn

        bnn([*rest, f"--seed={args.seed}"])
        return
    if args.task in ("mixture", "banana", "dualmoon"):  # the sampler section has its own
        from probabilistic_samplers import main as samplers

        samplers([*rest, f"--task={args.task}", f"--seed={args.seed}"])
        return
    if args.task == "massmap" and args.prior == "lognormal":  # its own options too
        from probabilistic_massmap import main as lognormal

        given = [] if args.realizations is None else [f"--realizations={args.realizations}"]
        lognormal(
            [*rest, *given, f"--size={args.size}", f"--rank={args.rank}", f"--seed={args.seed}"]
            + [f"--out={args.out}"]
        )
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.realizations = 3 if args.realizations is None else args.realizations
    massmap(args)


if __name__ == "__main__":
    main()
