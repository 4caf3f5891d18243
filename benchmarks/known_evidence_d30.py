"""Known evidence at d = 30: astrobayes (NUTS + learned harmonic mean) vs blackjax.nss.

The check behind the d = 30 cosmic-shear disagreement (docs/cosmic_shear.md): the two
samplers on problems whose ln z is exact (``astrobayes.models.problems``), with the same
settings as ``benchmarks/shear_vs_nested.py`` (astrobayes ``compare`` with 8 chains x
(500 + 1000); ``blackjax.nss`` with 500 live points and its defaults, through
``benchmarks/nested_peers.py``):

* ``uniform``: diagonal Gaussian likelihood in a uniform box ``[-10, 10]^30``;
* ``correlated``: Gaussian likelihood with neighbour correlation 0.5 and a N(0, 3^2) prior
  per parameter (``gaussian_gaussian_prior``).

Prints, per problem and seed, each ln z ± sigma, its error against the exact value,
wall and CPU seconds (and likelihood calls of the nested sampler).

Usage: .venv/bin/python benchmarks/known_evidence_d30.py [--seeds 0 1] [--dim 30]
       [--evidence-method bridge_sampling] [--skip-nss]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nested_peers import run_blackjax_ns  # noqa: E402

from astrobayes.comparison import compare  # noqa: E402
from astrobayes.models.model import Model  # noqa: E402
from astrobayes.models.problems import (  # noqa: E402
    gaussian_gaussian_prior,
    gaussian_uniform_prior,
)
from astrobayes.sampling import NUTSConfig  # noqa: E402

HALF_WIDTH, PRIOR_STD = 10.0, 3.0


def problems(dim: int):
    """``(name, problem, ln L(theta), numpyro prior, unit-cube transform)`` per problem."""
    uniform = gaussian_uniform_prior(dim, half_width=HALF_WIDTH, seed=0)
    correlated = gaussian_gaussian_prior(dim, prior_std=PRIOR_STD, correlation=0.5, seed=0)

    def uniform_log_likelihood(theta):  # the problem's log posterior minus its flat prior
        return uniform.log_posterior_fn(theta, xp=jnp) + dim * np.log(2 * HALF_WIDTH)

    def correlated_log_likelihood(theta):
        prior = jnp.sum(jax.scipy.stats.norm.logpdf(theta, 0.0, PRIOR_STD))
        return correlated.log_posterior_fn(theta, xp=jnp) - prior

    return [
        (
            "uniform",
            uniform,
            uniform_log_likelihood,
            dist.Uniform(-HALF_WIDTH, HALF_WIDTH),
            lambda u: -HALF_WIDTH + 2 * HALF_WIDTH * u,
        ),
        (
            "correlated",
            correlated,
            correlated_log_likelihood,
            dist.Normal(0.0, PRIOR_STD),
            lambda u: PRIOR_STD * jax.scipy.special.ndtri(u),
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--evidence-method",
        choices=["learned_harmonic_mean", "bridge_sampling"],
        default="learned_harmonic_mean",
    )
    parser.add_argument("--skip-nss", action="store_true", help="astrobayes only")
    args = parser.parse_args(argv)
    config = NUTSConfig(num_chains=8, num_warmup=500, num_samples=1000)
    for name, problem, log_likelihood, prior, transform in problems(args.dim):
        names = problem.names

        def named(p, log_likelihood=log_likelihood, names=names):
            return log_likelihood(jnp.stack([p[n] for n in names]))

        model = Model.from_priors(name, named, {n: prior for n in names})
        exact = problem.log_evidence
        print(f"{name} (d = {args.dim}): exact ln z {exact:.3f}", flush=True)
        for seed in args.seeds:
            wall, cpu = time.perf_counter(), time.process_time()
            report = compare(
                jax.random.key(seed),
                [model],
                sampling=config,
                evidence_method=args.evidence_method,
            ).models[name]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            error = report.log_evidence - exact
            print(
                f"  astrobayes   seed {seed}: {report.log_evidence:.3f} ± "
                f"{report.log_evidence_std:.3f} (error {error:+.3f}, "
                f"{error / report.log_evidence_std:+.1f} sigma), {wall:.0f} s wall, "
                f"{cpu:.0f} CPU-s; status {report.status.name.lower()} (Pareto k "
                f"{report.evidence.pareto_k:.2f})",
                flush=True,
            )
            if args.skip_nss:
                continue
            res = run_blackjax_ns(jax.random.key(100 + seed), log_likelihood, transform, args.dim)
            error = res.log_evidence - exact
            print(
                f"  blackjax.nss seed {seed}: {res.log_evidence:.3f} ± {res.log_evidence_std:.3f} "
                f"(error {error:+.3f}, {error / res.log_evidence_std:+.1f} sigma), "
                f"{res.wall_s:.0f} s wall, {res.cpu_s:.0f} CPU-s, {res.num_likelihood_calls} calls",
                flush=True,
            )


if __name__ == "__main__":
    main()
