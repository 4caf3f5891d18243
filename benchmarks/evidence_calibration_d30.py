"""Calibration of the evidence estimators at d = 30: learned harmonic mean vs bridge sampling.

Independent replicas of exact posterior draws (no MCMC error) of problems with a known
ln z (``astrobayes.models.problems``):

* ``skewed_gumbel``: mixed Gumbel variables, one-sided directions like the d = 30
  cosmic-shear posterior's (the harmonic mean's ratios are heavy-tailed there);
* ``gaussian_gaussian_prior``: neighbour-correlated Gaussian likelihood, Gaussian prior.

Each replica gets ``--chains`` x ``--samples`` draws; both estimators use the default
RQ-spline target fitted on the same half of the chains. Prints per estimator: the pulls
``(ln z - truth) / sigma`` (mean, standard deviation, share within 2 and 3 sigma), the
statuses, the median sigma and CPU seconds. Calibrated error bars give pulls of mean 0
and standard deviation 1 (with ``n`` replicas, the sd's own error is ~``1/sqrt(2n)``).

Usage: .venv/bin/python benchmarks/evidence_calibration_d30.py [--replicas 20]
       [--chains 8] [--samples 1000] [--dim 30] [--problems skewed_gumbel gaussian]
"""

from __future__ import annotations

import argparse
import collections
import time

import jax
import numpy as np

from astrobayes.evidence import bridge_estimate, estimate
from astrobayes.models.problems import gaussian_gaussian_prior, skewed_gumbel


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=30)
    parser.add_argument(
        "--problems",
        nargs="+",
        default=["skewed_gumbel", "gaussian"],
        choices=["skewed_gumbel", "gaussian"],
    )
    args = parser.parse_args(argv)
    makers = {
        "skewed_gumbel": lambda: skewed_gumbel(args.dim),
        "gaussian": lambda: gaussian_gaussian_prior(args.dim),
    }
    for name in args.problems:
        problem = makers[name]()
        truth = problem.log_evidence
        print(
            f"{problem.name}: exact ln z {truth:.4f}; {args.replicas} replicas of "
            f"{args.chains} x {args.samples} exact draws",
            flush=True,
        )
        rows = collections.defaultdict(list)
        for replica in range(args.replicas):
            key = jax.random.key(replica)
            chains = problem.sample_chains(jax.random.fold_in(key, 1), args.chains, args.samples)
            for method, run in (
                ("harmonic", lambda k, c=chains: estimate(k, c)),
                ("bridge", lambda k, c=chains, f=problem.logdensity_fn: bridge_estimate(k, c, f)),
            ):
                cpu = time.process_time()
                result = run(key)
                cpu = time.process_time() - cpu
                pull = (result.log_evidence - truth) / result.log_evidence_std
                rows[method].append((pull, result.log_evidence_std, result.status.name, cpu))
                print(
                    f"  replica {replica:2d} {method:<8} {result.log_evidence:9.4f} ± "
                    f"{result.log_evidence_std:.4f}  pull {pull:+6.2f}  "
                    f"{result.status.name.lower():<22} {cpu:5.1f} CPU-s",
                    flush=True,
                )
        for method, values in rows.items():
            pulls = np.array([v[0] for v in values])
            finite = pulls[np.isfinite(pulls)]
            statuses = collections.Counter(v[2].lower() for v in values)
            print(
                f"{problem.name} {method:<8}: pulls mean {finite.mean():+.2f}, sd "
                f"{finite.std(ddof=1):.2f} (±{1 / np.sqrt(2 * finite.size):.2f}), within 2σ "
                f"{np.mean(np.abs(finite) < 2):.2f}, within 3σ {np.mean(np.abs(finite) < 3):.2f}; "
                f"median σ {np.median([v[1] for v in values]):.4f}; mean "
                f"{np.mean([v[3] for v in values]):.1f} CPU-s; statuses {dict(statuses)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
