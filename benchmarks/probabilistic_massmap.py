"""Variational mass mapping with a non-Gaussian (shifted lognormal) prior against NUTS.

The convergence is ``kappa = shift (exp(g - sigma^2 / 2) - 1)`` with ``g`` the Gaussian
power-law field of ``make_problem`` (amplitude ``--amplitude``; Hilbert et al. 2011,
arXiv:1105.3980; Clerkin et al. 2017, arXiv:1605.01056), observed through the same
Kaiser-Squires shear, central mask and Gaussian shape noise (``--noise``) as the Gaussian
case. There is no closed-form posterior: the reference is NUTS (``astrobayes.sampling.
run_nuts``, 4 chains) on the log density in whitened coordinates ``w`` (``g`` is the
symmetric square root of the prior covariance applied to ``w``), with its R-hat and ESS
checked. Mean-field, low-rank and flow families are fitted to the same log density and
their draws are pushed through ``w -> kappa``. The flow trains with Adam step 1e-3
(``--flow-lr``): at the default 1e-2 a first few steps move all weights of its 288-wide
conditioner layers together, a draw lands where ``exp(g)`` overflows and the ELBO
becomes non-finite (measured).

Printed per family (on the convergence, per pixel): RMS(mean_VI - mean_NUTS) in units
of the NUTS posterior std, with NUTS's own Monte Carlo error (``sqrt(mean(1 / ESS))``)
and the VI run-to-run error (two seeds, first realization); the mean std ratio; the
NUTS posterior mass inside the VI central 68% / 90% intervals (from NUTS draws); the
coverage of the true map by those intervals over ``--realizations`` data sets; CPU and
wall seconds. Writes FITS maps (NUTS mean/std/truth and each family's) and a PNG.

Usage: OMP_NUM_THREADS=1 python benchmarks/probabilistic_dl.py --task massmap --prior
lognormal [--size 12] [--realizations 2] [--out /tmp/massmap_lognormal]
(or ``python benchmarks/probabilistic_massmap.py`` with the same options).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from timing import Stopwatch

from astrobayes.diagnostics import effective_sample_size
from astrobayes.sampling import NUTSConfig, run_nuts
from astrobayes.variational import (
    FlowFamily,
    LowRankGaussian,
    MeanFieldGaussian,
    VIConfig,
    fit_variational,
    lognormal_convergence,
    lognormal_logdensity,
    make_problem,
    simulate_lognormal_shear,
)

LEVELS = (0.68, 0.90)


def _intervals(draws: np.ndarray) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Central intervals per pixel from ``(num, pixels)`` draws."""
    return {
        level: tuple(np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2], axis=0))
        for level in LEVELS
    }


def _inside(values: np.ndarray, interval) -> np.ndarray:
    low, high = interval
    return (values >= low) & (values <= high)


def families(size: int, rank: int, flow_layers: int) -> dict:
    """The variational families on the whitened field (prior ``N(0, I)``)."""
    pixels = size * size
    return {
        "mean-field": lambda k: MeanFieldGaussian.init(jnp.zeros(pixels), 1.0),
        f"low-rank (rank {rank})": lambda k: LowRankGaussian.init(
            k, jnp.zeros(pixels), rank=rank, std=1.0
        ),
        f"flow (IAF, {flow_layers} layers)": lambda k: FlowFamily.init(
            k, jnp.zeros(pixels), std=1.0, flow_layers=flow_layers
        ),
    }


def run(args) -> None:
    """The lognormal comparison; prints the table and writes FITS and PNG."""
    from astrobayes.io import save_figure_atomic, write_massmap_fits
    from astrobayes.plots.probabilistic import massmap_figure

    size, pixels = args.size, args.size**2
    problem = make_problem(size, amplitude=args.amplitude, noise_std=args.noise)
    shift = args.shift
    sigma_g = float(np.sqrt(problem.power.mean()))
    print(
        f"lognormal mass mapping: {size}x{size} patch, {int(problem.mask.sum())} observed "
        f"pixels, noise {problem.noise_std}, sigma_g {sigma_g:.3f}, shift {shift}"
    )
    to_kappa = jax.jit(
        jax.vmap(lambda w: lognormal_convergence(w.reshape(size, size), problem.power, shift))
    )
    built = families(size, args.rank, args.flow_layers)
    names = [*built, "NUTS"]
    truth_hits = {name: np.zeros(len(LEVELS)) for name in names}
    rows = {name: {} for name in built}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(args.seed)
    nuts_config = NUTSConfig(num_chains=4, num_warmup=500, num_samples=args.nuts_samples)
    for r in range(args.realizations):
        data_key, nuts_key, init_key, fit_key = jax.random.split(jax.random.fold_in(key, r), 4)
        _, kappa, data = simulate_lognormal_shear(data_key, problem, shift)
        truth = np.asarray(kappa, np.float64).ravel()
        logdensity = lognormal_logdensity(problem, data, shift)

        clock = Stopwatch()
        with clock():
            init = 0.1 * jax.random.normal(init_key, (nuts_config.num_chains, pixels))
            nuts = run_nuts(nuts_key, logdensity, init, config=nuts_config)
        chains = np.asarray(
            to_kappa(jnp.asarray(nuts.samples.reshape(-1, pixels), jnp.float32)), np.float64
        ).reshape(nuts_config.num_chains, -1, pixels)
        ess = effective_sample_size(chains)
        reference = chains.reshape(-1, pixels)
        ref_mean, ref_std = reference.mean(0), reference.std(0, ddof=1)
        nuts_mc = float(np.sqrt(np.mean(1.0 / ess)))  # RMS MC error of the mean, std units
        print(
            f"\nrealization {r}: NUTS {nuts.status.name}, max R-hat {nuts.rhat.max():.4f}, "
            f"min ESS (w) {nuts.ess.min():.0f}, min ESS (kappa) {ess.min():.0f}, "
            f"divergences {int(nuts.num_divergent.sum())}; {clock.cpu:.1f} CPU-s, "
            f"{clock.wall:.1f} s wall; MC error of its mean {nuts_mc:.4f} posterior std"
        )
        for level, interval in zip(LEVELS, _intervals(reference).values(), strict=True):
            truth_hits["NUTS"][LEVELS.index(level)] += np.sum(_inside(truth, interval))
        maps = {}
        for name, build in built.items():
            clock = Stopwatch()
            fits = []
            for s in range(2 if r == 0 else 1):
                with clock():
                    fit = fit_variational(
                        jax.random.fold_in(fit_key, s),
                        logdensity,
                        build(jax.random.fold_in(fit_key, 100 + s)),
                        config=VIConfig(
                            max_epochs=args.epochs,
                            patience=args.epochs,
                            learning_rate=args.flow_lr if name.startswith("flow") else 1e-2,
                        ),
                    )
                    draws = np.asarray(
                        to_kappa(fit.family.sample(jax.random.fold_in(fit_key, 200 + s), 8192)),
                        np.float64,
                    ).reshape(-1, pixels)
                fits.append((fit, draws))
            fit, draws = fits[0]
            mean, std = draws.mean(0), draws.std(0, ddof=1)
            intervals = _intervals(draws)
            for i, interval in enumerate(intervals.values()):
                truth_hits[name][i] += np.sum(_inside(truth, interval))
            maps[name] = (mean.reshape(size, size), std.reshape(size, size))
            if r == 0:
                other = fits[1][1].mean(0)
                vi_mc = float(np.sqrt(np.mean(((mean - other) / ref_std) ** 2 / 2)))
                rows[name] = {
                    "rms": float(np.sqrt(np.mean(((mean - ref_mean) / ref_std) ** 2))),
                    "nuts_mc": nuts_mc,
                    "vi_mc": vi_mc,
                    "std_ratio": float(np.mean(std / ref_std)),
                    "mass": [
                        float(np.mean(_inside(reference, interval)))
                        for interval in intervals.values()
                    ],
                    "cpu": clock.cpu / 2,
                    "wall": clock.wall / 2,
                    "status": fit.status.name,
                }
        if r == 0:
            write_massmap_fits(
                out / "nuts.fits",
                ref_mean.reshape(size, size),
                ref_std.reshape(size, size),
                truth=truth.reshape(size, size),
                header={"PRIOR": "lognormal", "SHIFT": shift},
            )
            for name, (mean, std) in maps.items():
                write_massmap_fits(out / f"{name.split()[0]}.fits", mean, std)
            save_figure_atomic(
                out / "massmaps_lognormal.png",
                massmap_figure(
                    truth.reshape(size, size),
                    ref_mean.reshape(size, size),
                    ref_std.reshape(size, size),
                    maps,
                    reference="NUTS (reference)",
                ),
            )
    print(
        "\nfamily | RMS(mean - NUTS) / NUTS std | NUTS MC error | VI run-to-run error | "
        "std / NUTS std | NUTS mass in 68% | in 90% | CPU s | wall s | status"
    )
    for name, row in rows.items():
        print(
            f"{name} | {row['rms']:.4f} | {row['nuts_mc']:.4f} | {row['vi_mc']:.4f} | "
            f"{row['std_ratio']:.3f} | {row['mass'][0]:.3f} | {row['mass'][1]:.3f} | "
            f"{row['cpu']:.1f} | {row['wall']:.1f} | {row['status']}"
        )
    total = args.realizations * pixels
    print(
        f"\ncoverage of the true map over {args.realizations} realizations x {pixels} "
        f"pixels (correlated pixels; binomial error ~{np.sqrt(0.68 * 0.32 / total):.3f}):"
    )
    print("method | 68% | 90%")
    for name, hits in truth_hits.items():
        print(f"{name} | {hits[0] / total:.3f} | {hits[1] / total:.3f}")
    print(f"FITS and PNG in {out}")


def parser() -> argparse.ArgumentParser:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=12)
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--flow-layers", type=int, default=2)
    p.add_argument("--amplitude", type=float, default=15.0, help="prior power amplitude of g")
    p.add_argument("--shift", type=float, default=0.3)
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=60, help="VI epochs at most")
    p.add_argument(
        "--flow-lr",
        type=float,
        default=1e-3,
        help="Adam step of the flow (at 1e-2 its ELBO became non-finite: exp overflow)",
    )
    p.add_argument("--nuts-samples", type=int, default=2000)
    p.add_argument("--realizations", type=int, default=2)
    p.add_argument("--out", default="massmap_lognormal_outputs")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> None:  # noqa: D103
    run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
