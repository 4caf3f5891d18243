"""Learned harmonic mean: astrobayes vs harmonic (PyPI) on the same chains, side by side.

For Gaussian likelihood + Gaussian prior problems with analytic evidence at d = 2, 8, 16, 32,
64, exact posterior draws (10 chains; 1e5 draws in total by default) go through harmonic's
RQSpline default (RQSplineModel with its default settings, temperature 0.8, standardised,
half the chains for training) and through ``astrobayes.evidence.estimate`` (defaults).
Prints |ln z_hat - ln z|, the reported sigma, the pull and the wall-time ratio.

Usage: python benchmarks/evidence_vs_harmonic.py [--dims 2,8,16,32,64] [--samples 10000]
Needs the bench extra (``pip install harmonic``).
"""

from __future__ import annotations

import argparse
import time

import jax

from astrobayes.evidence import estimate
from astrobayes.models import gaussian_gaussian_prior


def run_harmonic(chains, dim, seed):
    import harmonic as hm

    hchains = hm.Chains(dim)
    hchains.add_chains_3d(chains.samples, chains.log_posterior)
    train, infer = hm.utils.split_data(hchains, training_proportion=0.5)
    model = hm.model.RQSplineModel(dim, standardize=True, temperature=0.8)
    model.fit(train.samples, key=jax.random.PRNGKey(seed), verbose=False)
    ev = hm.Evidence(infer.nchains, model)
    ev.add_chains(infer)
    ln_z = -ev.ln_evidence_inv
    err_neg, err_pos = ev.compute_ln_inv_evidence_errors()
    return float(ln_z), float(0.5 * (abs(err_neg) + abs(err_pos)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", default="2,8,16,32,64")
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--samples", type=int, default=10000, help="draws per chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-harmonic", action="store_true")
    args = parser.parse_args()
    print(
        f"{'d':>3} | {'astrobayes dlnz':>15} {'sigma':>7} {'pull':>6} {'time':>7} {'status':<10}| "
        f"{'harmonic dlnz':>13} {'sigma':>7} {'pull':>6} {'time':>7} | time ratio (harmonic/astrobayes)"
    )
    for dim in (int(d) for d in args.dims.split(",")):
        problem = gaussian_gaussian_prior(dim)
        chains = problem.sample_chains(jax.random.key(args.seed + dim), args.chains, args.samples)
        start = time.perf_counter()
        ours = estimate(jax.random.key(args.seed), chains)
        t_ours = time.perf_counter() - start
        d_ours = ours.log_evidence - problem.log_evidence
        line = (
            f"{dim:>3} | {d_ours:>+15.4f} {ours.log_evidence_std:>7.4f} "
            f"{d_ours / ours.log_evidence_std:>+6.2f} {t_ours:>6.1f}s {ours.status.name.lower():<10}| "
        )
        if args.skip_harmonic:
            print(line + "(skipped)", flush=True)
            continue
        start = time.perf_counter()
        ln_z, sigma = run_harmonic(chains, dim, args.seed)
        t_h = time.perf_counter() - start
        d_h = ln_z - problem.log_evidence
        print(
            line
            + f"{d_h:>+13.4f} {sigma:>7.4f} {d_h / sigma:>+6.2f} {t_h:>6.1f}s | {t_h / t_ours:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
