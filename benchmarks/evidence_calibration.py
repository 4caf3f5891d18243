"""Calibration of the evidence error bar on autocorrelated NUTS chains.

One vectorised NUTS run draws ``repeats x chains`` chains from the posterior of a d = 16
Gaussian problem with analytic evidence; each group of chains is one independent repeat
through ``astrobayes.evidence.estimate`` (default RQ-spline flow). Prints the fraction of
repeats whose 1-sigma (and 2-sigma) interval covers the truth, with its binomial error,
and the same for a naive iid error (std of the ratios / sqrt(n)) as a negative control.

Usage: python benchmarks/evidence_calibration.py [--repeats 50] [--dim 16] [--target rqspline]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from astrobayes.chains import Chains
from astrobayes.evidence import GaussianTarget, RealNVPFlow, RQSplineFlow, estimate
from astrobayes.models import gaussian_gaussian_prior
from astrobayes.sampling import NUTSConfig, run_nuts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--target", choices=["rqspline", "realnvp", "gaussian"], default="rqspline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    target = {"rqspline": RQSplineFlow, "realnvp": RealNVPFlow, "gaussian": GaussianTarget}[
        args.target
    ]()
    problem = gaussian_gaussian_prior(args.dim)
    total = args.repeats * args.chains
    key = jax.random.key(args.seed)
    start = time.perf_counter()
    init = jax.random.normal(jax.random.fold_in(key, 1), (total, args.dim))
    run = run_nuts(
        jax.random.fold_in(key, 2),
        problem.logdensity_fn,
        init,
        config=NUTSConfig(total, 500, args.samples, checkpoint_every=args.samples),
    )
    print(
        f"NUTS: {total} chains x {args.samples} draws in {time.perf_counter() - start:.0f} s; "
        f"R-hat max {np.nanmax(run.rhat):.3f}"
    )
    # Recompute the log posterior in float64 from the draws.
    samples = run.samples
    log_post = problem.log_posterior_fn(samples)
    pulls, naive_pulls, taus = [], [], []
    start = time.perf_counter()
    for r in range(args.repeats):
        sl = slice(r * args.chains, (r + 1) * args.chains)
        chains = Chains(samples[sl], log_post[sl])
        res = estimate(jax.random.fold_in(key, 100 + r), chains, target=target)
        pull = (res.log_evidence - problem.log_evidence) / res.log_evidence_std
        pulls.append(pull)
        taus.append(res.autocorrelation_time)
        # Naive iid error: relative std of the ratios / sqrt(n) (ignores autocorrelation).
        # Kish ESS of the importance terms: the error if the draws were independent.
        # relative variance of a mean of n iid ratios = (n / ESS - 1) / n.
        naive_sigma = np.sqrt(
            max(1.0 / res.effective_sample_size - 1.0 / res.num_inference_samples, 1e-300)
        )
        naive_pulls.append((res.log_evidence - problem.log_evidence) / naive_sigma)
        print(
            f"repeat {r:3d}: dlnz = {res.log_evidence - problem.log_evidence:+.4f}, "
            f"sigma = {res.log_evidence_std:.4f}, pull = {pull:+.2f}, tau = {res.autocorrelation_time:.1f}, "
            f"T = {res.temperature}, status = {res.status.name.lower()}",
            flush=True,
        )
    pulls, naive_pulls = np.asarray(pulls), np.asarray(naive_pulls)
    n = len(pulls)

    def frac(mask):
        p = mask.mean()
        return f"{p:.2f} ± {np.sqrt(p * (1 - p) / n):.2f}"

    print(
        f"\nestimator time {time.perf_counter() - start:.0f} s for {n} repeats; mean tau of the ratios {np.mean(taus):.1f}"
    )
    print(
        f"astrobayes sigma: 1-sigma coverage {frac(np.abs(pulls) <= 1)} (nominal 0.68), "
        f"2-sigma {frac(np.abs(pulls) <= 2)} (nominal 0.95); pull mean {pulls.mean():+.2f}, std {pulls.std():.2f}"
    )
    print(
        f"naive iid sigma (negative control): 1-sigma coverage {frac(np.abs(naive_pulls) <= 1)}, "
        f"pull std {naive_pulls.std():.2f}"
    )


if __name__ == "__main__":
    main()
