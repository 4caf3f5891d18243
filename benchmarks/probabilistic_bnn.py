"""Bayesian neural networks on simulated photometric redshifts: one calibration table.

The BNN section of ``benchmarks/probabilistic_dl.py`` (``--task bnn`` there runs this
module's ``main``); it also runs on its own.

Data (``astrobayes.bayesnn.simulate_photometry``, offline analytic templates through
ugriz): ``--train`` galaxies with ``z < 2`` to fit, a calibration split of ``--calib``
galaxies (recalibration is fitted there, never on test points), an in-distribution test
set of ``--test`` galaxies (``z < 2``) and an out-of-distribution set of ``--ood``
galaxies at ``2 < z < 3`` (a redshift range, and with it a colour region, excluded from
training). Network: one tanh hidden layer of ``--width`` units with a heteroscedastic
Gaussian output (130 weights at width 16), the same for every method. The defaults
(500 training galaxies, width 16, NUTS with 4 chains x (300 warm-up + 300 draws)) are
sized so that the NUTS reference runs in under 15 minutes on 2 shared CPU cores.

Prints per method: wall and CPU seconds of the fit, the status, and NLL, CRPS, quantile
calibration error (ECE) and 68% / 90% coverage in- and out-of-distribution, raw and
after isotonic recalibration (Kuleshov et al. 2018, arXiv:1807.00263).

Usage: OMP_NUM_THREADS=1 python benchmarks/probabilistic_bnn.py [--methods
ensemble,dropout,bbb,laplace,sgld,nuts] [--train 500] [--width 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys

import jax
from timing import Stopwatch

from astrobayes.bayesnn import (
    NUTS,
    SGLD,
    BayesByBackprop,
    DeepEnsemble,
    HeteroscedasticMLP,
    LastLayerLaplace,
    MCDropout,
    evaluate,
    fit,
    fit_recalibration,
    simulate_photometry,
)
from astrobayes.sampling import NUTSConfig

METHODS = {
    "ensemble": lambda: DeepEnsemble(num_members=5),
    "dropout": lambda: MCDropout(rate=0.1, num_samples=100),
    "bbb": lambda: BayesByBackprop(num_samples=100),
    "laplace": lambda: LastLayerLaplace(num_samples=100),
    "sgld": lambda: SGLD(num_chains=4, num_steps=4000, num_burnin=1000, num_samples=100),
    "nuts": lambda: NUTS(
        sampling=NUTSConfig(num_chains=4, num_warmup=300, num_samples=300), num_samples=200
    ),
}


def _row(name, split, kind, m):
    return (
        f"| {name} | {split} | {kind} | {m.nll:.3f} | {m.crps:.4f} | {m.ece:.3f} | "
        f"{m.coverage_68:.3f} | {m.coverage_90:.3f} |"
    )


def main(argv: list[str] | None = None) -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--calib", type=int, default=1000)
    parser.add_argument("--test", type=int, default=4000)
    parser.add_argument("--ood", type=int, default=1000)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {sorted(METHODS)}")
    keys = jax.random.split(jax.random.key(args.seed), 6)
    train = simulate_photometry(keys[0], args.train)
    calib = simulate_photometry(keys[1], args.calib)
    test = simulate_photometry(keys[2], args.test)
    ood = simulate_photometry(keys[3], args.ood, redshift_range=(2.0, 3.0))
    net = HeteroscedasticMLP(5, width=args.width, key=keys[4])
    print(
        f"photo-z: {args.train} training galaxies (z < 2), {args.calib} calibration, "
        f"{args.test} test (z < 2), {args.ood} out-of-distribution (2 < z < 3); network "
        f"5-{args.width}-2 ({net.num_parameters} weights)"
    )
    summary, rows = [], []
    for i, name in enumerate(names):
        method = METHODS[name]()
        clock = Stopwatch()
        with clock():
            pred = fit(
                jax.random.fold_in(keys[5], i), method, net, (train.features, train.redshift)
            )
        recal = fit_recalibration(pred(calib.features), calib.redshift)
        scores = {}
        for split, data in (("ID", test), ("OOD", ood)):
            mix = pred(data.features)
            scores[split, "raw"] = evaluate(mix, data.redshift)
            scores[split, "recal"] = evaluate(mix, data.redshift, recalibration=recal)
        diag = {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in pred.diagnostics.items()
            if k not in ("step_size", "best_validation_loss")
        }
        print(
            f"\n{pred.method}: {clock.wall:.1f} s wall, {clock.cpu:.1f} s CPU; status "
            f"{[s.name for s in pred.messages]}; {diag}",
            flush=True,
        )
        for (split, kind), m in scores.items():
            print("  " + _row(pred.method, split, kind, m))
            rows.append(_row(pred.method, split, kind, m))
        summary.append((pred.method, clock.wall, clock.cpu, pred.status.name))
    print("\n| method | set | predictive | NLL | CRPS | ECE | cov. 68% | cov. 90% |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\n| method | wall s | CPU s | status |\n|---|---|---|---|")
    for name, wall, cpu, status in summary:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {status} |")


if __name__ == "__main__":
    main(sys.argv[1:])
