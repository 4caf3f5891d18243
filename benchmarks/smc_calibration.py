"""Calibration of SMC's ln z error bar over repeated runs, against analytic evidences.

Each seed is one independent ``run_smc`` (its own prior draws and key) on a problem whose
ln z is known in closed form; the pull ``(ln z - truth) / sigma`` over seeds should have
standard deviation ~1 and ~68% of its values within 1 if SMC's error bar is right.
Printed per decorrelation threshold (``SMCConfig.correlation_threshold``): the pulls' mean
and standard deviation with their standard errors, the fraction within 1 sigma with its
binomial error, the same fraction for half the reported error (a negative control: an
error bar too small by 2 must show), the spread of ln z itself against the mean reported
error, and the likelihood calls.

Problems:

* ``line``: y = a + b x + N(0, 0.3^2) at 12 points, a, b ~ N(0, 2^2) (the line of the
  Python-likelihood tests), 400 particles, diagonal preconditioner;
* ``gauss4``: a correlated 4-d Gaussian likelihood under a N(0, 3^2 I) prior, 2000
  particles, flow preconditioner (the default).

Measured 2026-12-07 (docs/run.md, "With 1000 runs per setting"): on ``line`` with 1000
seeds the pulls' standard deviation was 1.08, 1.07 and 1.06 at thresholds 0.1 (the
default), 0.05 and 0.03 (+-0.02 each), for 1x, 1.65x and 2.7x the calls: no bias, an
error bar ~7% small, and nothing bought by stricter decorrelation. With 120 seeds the sd's
own error is +-0.07, too coarse for such comparisons. On ``gauss4`` (flow preconditioner)
at 0.1, 60 seeds: pulls' mean -0.53 +- 0.16, sd 1.27 +- 0.12 (error bar ~27% small, and
a small bias); 0.05 with as many seeds was not measured (docs/run.md).

Usage: python benchmarks/smc_calibration.py [--problem line|gauss4] [--seeds 1000]
       [--thresholds 0.1,0.05]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm
from timing import Stopwatch

from astrobayes.sampling import SMCConfig, run_smc


def line_problem():
    """``(log_likelihood, log_prior, draw_prior, truth, config kwargs)`` of the line."""
    x = np.linspace(-1.0, 1.0, 12)
    y = 0.4 + 1.1 * x + 0.3 * np.random.default_rng(7).standard_normal(12)
    sigma, prior_scale = 0.3, 2.0
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = sigma**2 * np.eye(x.size) + prior_scale**2 * design @ design.T
    truth = float(-0.5 * y @ np.linalg.solve(cov, y) - 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1])
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)

    def log_likelihood(theta):
        return jnp.sum(norm.logpdf(yj, theta[0] + theta[1] * xj, sigma))

    def log_prior(theta):
        return jnp.sum(norm.logpdf(theta, scale=prior_scale))

    def draw(key, num):
        return prior_scale * jax.random.normal(key, (num, 2))

    return (
        log_likelihood,
        log_prior,
        draw,
        truth,
        {"num_particles": 400, "preconditioner": "diagonal"},
    )


def gauss4_problem():
    """The correlated 4-d Gaussian likelihood (unnormalised) under N(0, 3^2 I)."""
    dim, prior_scale = 4, 3.0
    a = np.random.default_rng(123).normal(size=(dim, dim))
    cov = a @ a.T / dim * 0.05 + 0.01 * np.eye(dim)
    mu = np.array([0.5, -0.3, 1.0, 0.2])
    # z = (2 pi)^{d/2} |cov|^{1/2} N(mu | 0, cov + 9 I) for L = exp(-(x - mu)^T cov^-1 (x - mu) / 2)
    total = cov + prior_scale**2 * np.eye(dim)
    truth = float(
        0.5 * np.linalg.slogdet(cov)[1]
        - 0.5 * np.linalg.slogdet(total)[1]
        - 0.5 * mu @ np.linalg.solve(total, mu)
    )
    precision, centre = jnp.asarray(np.linalg.inv(cov), jnp.float32), jnp.asarray(mu, jnp.float32)

    def log_likelihood(theta):
        return -0.5 * (theta - centre) @ precision @ (theta - centre)

    def log_prior(theta):
        return jnp.sum(norm.logpdf(theta, scale=prior_scale))

    def draw(key, num):
        return prior_scale * jax.random.normal(key, (num, dim))

    return log_likelihood, log_prior, draw, truth, {"num_particles": 2000}


PROBLEMS = {"line": line_problem, "gauss4": gauss4_problem}


def main(argv: list[str] | None = None) -> None:  # noqa: D103
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problem", choices=sorted(PROBLEMS), default="line")
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--thresholds", default="0.1,0.05")
    args = parser.parse_args(argv)
    log_likelihood, log_prior, draw, truth, settings = PROBLEMS[args.problem]()
    print(f"{args.problem}: analytic ln z = {truth:.4f}; {args.seeds} seeds per threshold")
    header = (
        f"{'threshold':>9} {'pulls mean':>14} {'pulls sd':>12} {'within 1 sigma':>16} "
        f"{'(sigma / 2)':>11} {'ln z sd / mean sigma':>22} {'calls':>8} {'CPU s':>7}"
    )
    print(header)
    for threshold in (float(t) for t in args.thresholds.split(",")):
        config = SMCConfig(correlation_threshold=threshold, **settings)
        estimates, errors, calls = [], [], []
        clock = Stopwatch()
        for seed in range(args.seeds):
            prior_key, run_key = jax.random.split(jax.random.key(seed))
            with clock():
                result = run_smc(
                    run_key,
                    log_likelihood,
                    log_prior,
                    draw(prior_key, config.num_particles),
                    config=config,
                )
            estimates.append(result.log_evidence)
            errors.append(result.log_evidence_std)
            calls.append(result.num_logdensity_evaluations)
            # each flow-preconditioned run compiles programs of its own; without this a
            # long run meets vm.max_map_count (docs/scale.md): on 2026-12-07 gauss4 failed
            # with "LLVM compilation error: Cannot allocate memory" after ~90 runs. Every
            # 25 runs, since clearing after each made the line's runs 35x slower
            if (seed + 1) % 25 == 0:
                jax.clear_caches()
        estimates, errors = np.asarray(estimates), np.asarray(errors)
        pulls = (estimates - truth) / errors
        num = pulls.size
        inside = np.mean(np.abs(pulls) <= 1.0)
        print(
            f"{threshold:>9.3f} {pulls.mean():>+7.2f} ± {pulls.std(ddof=1) / np.sqrt(num):.2f}"
            f" {pulls.std(ddof=1):>5.2f} ± {pulls.std(ddof=1) / np.sqrt(2 * (num - 1)):.2f}"
            f" {inside:>9.2f} ± {np.sqrt(inside * (1 - inside) / num):.2f}"
            f" {np.mean(np.abs(2 * pulls) <= 1.0):>11.2f}"
            f" {estimates.std(ddof=1):>10.4f} / {errors.mean():.4f}"
            f" {np.mean(calls):>8.0f} {clock.cpu:>7.1f}"
        )
    print("expected for a right error bar: pulls sd 1, 0.68 within 1 sigma (0.38 at sigma / 2)")


if __name__ == "__main__":
    main()
