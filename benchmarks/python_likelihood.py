"""A slow Python (non-JAX) likelihood: astrobayes SMC on 1 and 2 workers against dynesty.

A stand-in for a likelihood that calls a Boltzmann code: a parabola ``y = a + b x + c x^2``
fitted to 24 points with Gaussian noise (sigma 0.3), priors N(0, 2^2) on a, b and c, so
ln z is known in closed form; each call first burns ``--cost-ms`` milliseconds of CPU (a
busy loop, which threads cannot share, as compiled code holding the GIL).

Runs, one after another in this process:

* astrobayes (``compare`` with ``SMCConfig(num_particles=--particles)``) on a
  :class:`~astrobayes.models.PythonLikelihood` in this process, on a 2-process pool and on
  a 2-worker Dask ``LocalCluster`` (the same numbers on all three, bit for bit);
* dynesty's static ``NestedSampler`` (defaults: 500 live points) in this process and with
  a 2-process pool (``queue_size = 2``).

Prints wall and CPU seconds (this process plus its reaped worker processes), likelihood
calls, ln z with its error and its pull against the closed form, and the ratios. Also
calls times ln z variance (the work for a given precision, computed from the runs, not
measured at equal precision).

Usage: .venv/bin/python benchmarks/python_likelihood.py [--cost-ms 1.0] [--particles 500]
    [--no-dask] [--no-dynesty]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import time

import numpy as np

X = np.linspace(-1.0, 1.0, 24)
Y = 0.4 + 1.1 * X - 0.7 * X**2 + 0.3 * np.random.default_rng(11).standard_normal(X.size)
SIGMA, PRIOR_SCALE = 0.3, 2.0


def log_likelihood(params, cost_s: float):
    """``ln L`` of the parabola, after ``cost_s`` seconds of busy CPU."""
    end = time.perf_counter() + cost_s
    while time.perf_counter() < end:
        pass
    residual = (Y - params["a"] - params["b"] * X - params["c"] * X**2) / SIGMA
    return float(-0.5 * residual @ residual - X.size * math.log(math.sqrt(2 * math.pi) * SIGMA))


class Costly:
    """``log_likelihood`` with its cost carried along (picklable for worker processes)."""

    def __init__(self, cost_s: float):
        self.cost_s = cost_s

    def __call__(self, params):
        return log_likelihood(params, self.cost_s)


class DynestyLikelihood:
    def __init__(self, cost_s: float):
        self.cost_s = cost_s

    def __call__(self, theta):
        return log_likelihood({"a": theta[0], "b": theta[1], "c": theta[2]}, self.cost_s)


def prior_transform(u):
    from scipy import stats

    return stats.norm.ppf(u) * PRIOR_SCALE


def closed_form_log_evidence() -> float:
    design = np.stack([np.ones_like(X), X, X**2], axis=1)
    cov = SIGMA**2 * np.eye(X.size) + PRIOR_SCALE**2 * design @ design.T
    _, logdet = np.linalg.slogdet(2 * np.pi * cov)
    return float(-0.5 * Y @ np.linalg.solve(cov, Y) - 0.5 * logdet)


def _cpu() -> float:
    own = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + children.ru_utime + children.ru_stime


def run_astrobayes(executor_config, cost_s: float, particles: int) -> dict:
    import jax
    import numpyro.distributions as dist

    from astrobayes.comparison import compare
    from astrobayes.models import Model, PythonLikelihood
    from astrobayes.sampling import SMCConfig

    wall, cpu = time.perf_counter(), _cpu()
    executor = None if executor_config is None else executor_config.make()
    try:
        likelihood = PythonLikelihood(Costly(cost_s), executor=executor, name="parabola")
        priors = {k: dist.Normal(0.0, PRIOR_SCALE) for k in ("a", "b", "c")}
        model = Model.from_priors("parabola", likelihood, priors)
        report = compare(
            jax.random.key(0), [model], sampling=SMCConfig(num_particles=particles)
        ).models["parabola"]
    finally:
        if executor is not None:
            executor.shutdown()
    return {
        "wall": time.perf_counter() - wall,
        "cpu": _cpu() - cpu,
        "calls": likelihood.evaluations,
        "log_z": report.log_evidence,
        "log_z_std": report.log_evidence_std,
        "status": report.status.name.lower(),
    }


def run_dynesty(cost_s: float, workers: int) -> dict:
    import dynesty

    wall, cpu = time.perf_counter(), _cpu()
    rstate = np.random.default_rng(0)
    if workers == 1:
        sampler = dynesty.NestedSampler(
            DynestyLikelihood(cost_s), prior_transform, 3, rstate=rstate
        )
        sampler.run_nested(print_progress=False)
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers) as pool:
            sampler = dynesty.NestedSampler(
                DynestyLikelihood(cost_s),
                prior_transform,
                3,
                rstate=rstate,
                pool=pool,
                queue_size=workers,
            )
            sampler.run_nested(print_progress=False)
    results = sampler.results
    return {
        "wall": time.perf_counter() - wall,
        "cpu": _cpu() - cpu,
        "calls": int(np.sum(results.ncall)),
        "log_z": float(results.logz[-1]),
        "log_z_std": float(results.logzerr[-1]),
        "status": "-",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-ms", type=float, default=1.0, help="CPU ms per call (1.0)")
    parser.add_argument("--particles", type=int, default=500, help="SMC particles (500)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster run")
    parser.add_argument("--no-dynesty", action="store_true", help="skip dynesty")
    args = parser.parse_args()
    from astrobayes.sbi.executors import ExecutorConfig

    cost_s = args.cost_ms / 1000.0
    truth = closed_form_log_evidence()
    print(
        f"parabola, 24 points, 3 parameters; closed-form ln z = {truth:.4f}; {args.cost_ms} ms CPU per call"
    )
    runs = {
        "astrobayes SMC, this process": lambda: run_astrobayes(None, cost_s, args.particles),
        "astrobayes SMC, 2 processes": lambda: run_astrobayes(
            ExecutorConfig("process", num_workers=2), cost_s, args.particles
        ),
    }
    if not args.no_dask:
        runs["astrobayes SMC, Dask 2 workers"] = lambda: run_astrobayes(
            ExecutorConfig("dask", num_workers=2), cost_s, args.particles
        )
    if not args.no_dynesty:
        runs["dynesty, this process"] = lambda: run_dynesty(cost_s, 1)
        runs["dynesty, 2 processes"] = lambda: run_dynesty(cost_s, 2)
    results = {}
    header = f"{'run':34s} {'wall s':>8s} {'CPU s':>8s} {'calls':>8s} {'ln z':>18s} {'pull':>6s}  calls x var"
    print(header)
    for name, run in runs.items():
        r = run()
        results[name] = r
        pull = (r["log_z"] - truth) / r["log_z_std"]
        work = r["calls"] * r["log_z_std"] ** 2
        print(
            f"{name:34s} {r['wall']:8.1f} {r['cpu']:8.1f} {r['calls']:8d} "
            f"{r['log_z']:9.3f} ± {r['log_z_std']:.3f} {pull:+6.2f}  {work:9.1f}  {r['status']}",
            flush=True,
        )
    ours = [r for n, r in results.items() if n.startswith("astrobayes")]
    if len({(r["log_z"], r["log_z_std"]) for r in ours}) == 1:
        print("astrobayes: the same ln z and error on every executor, bit for bit")
    else:
        print("astrobayes: the executors gave DIFFERENT numbers")
    base = results["astrobayes SMC, this process"]["wall"]
    two = results["astrobayes SMC, 2 processes"]["wall"]
    print(f"astrobayes speed-up with 2 processes: {base / two:.2f}x (wall)")
    if not args.no_dynesty:
        for workers in ("this process", "2 processes"):
            ours_r = results[f"astrobayes SMC, {workers}"]
            theirs = results[f"dynesty, {workers}"]
            print(
                f"{workers}: dynesty / astrobayes wall {theirs['wall'] / ours_r['wall']:.2f}x, "
                f"CPU {theirs['cpu'] / ours_r['cpu']:.2f}x, calls {theirs['calls'] / ours_r['calls']:.2f}x, "
                f"calls x variance {theirs['calls'] * theirs['log_z_std'] ** 2 / (ours_r['calls'] * ours_r['log_z_std'] ** 2):.2f}x"
            )


if __name__ == "__main__":
    main()
