"""NUTS metrics on a correlated Gaussian: diagonal, dense per chain, dense pooled over chains.

The peer is BlackJAX's own Stan-style window adaptation (``blackjax.window_adaptation``,
dense, one adaptation per chain, vmapped over chains) followed by BlackJAX NUTS; beside
it, astrobayes' :func:`~astrobayes.sampling.run_nuts` with a diagonal metric, a dense
one per chain, and a dense one pooled over all chains' warm-up windows
(``NUTSConfig(dense_mass=True, pooled_metric=True)``). All runs sample the same target
from the same starts with the same numbers of chains, warm-up steps and draws.

The target is a ``d``-dimensional Gaussian with a random rotation and eigenvalues
spread log-uniformly over three decades: a dense metric helps, and a dense covariance
must be estimated from the warm-up draws.

Printed per run: wall and CPU seconds (compilation included), density-and-gradient
evaluations (leapfrog steps, warm-up included), min ESS over the parameters, min ESS
per 1000 gradient evaluations, max split R-hat, and the largest error of the sample
covariance in whitened units, ``max |L^-1 C_hat L^-T - I|``. Its reference is the same
error of as many *independent* exact draws (mean ± sd over 50 sets): a sampler whose
error lies far above it has an unconverged covariance.

Run: ``python benchmarks/nuts_metrics.py [--dim 30] [--num-chains 4] [--num-warmup 250]
[--num-samples 500] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import time

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from astrobayes.diagnostics import effective_sample_size, split_rhat
from astrobayes.sampling import NUTSConfig, run_nuts


def _target(dim: int, seed: int):
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    variances = np.logspace(-2, 1, dim)
    covariance = rotation @ np.diag(variances) @ rotation.T
    precision = jnp.asarray(np.linalg.inv(covariance), jnp.float32)

    def logdensity(x):
        return -0.5 * x @ precision @ x

    return logdensity, covariance


def _blackjax_dense(key, logdensity, starts, num_warmup, num_samples):
    """BlackJAX: dense window adaptation per chain, then NUTS; returns draws, gradient count."""

    def one(key, start):
        warm_key, sample_key = jax.random.split(key)
        warmup = blackjax.window_adaptation(
            blackjax.nuts, logdensity, is_mass_matrix_diagonal=False
        )
        (state, parameters), info = warmup.run(warm_key, start, num_steps=num_warmup)
        kernel = blackjax.nuts(logdensity, **parameters).step

        def step(state, key):
            state, step_info = kernel(key, state)
            return state, (state.position, step_info.num_integration_steps)

        _, (draws, steps) = jax.lax.scan(step, state, jax.random.split(sample_key, num_samples))
        return draws, info.info.num_integration_steps.sum() + steps.sum()

    keys = jax.random.split(key, starts.shape[0])
    draws, steps = jax.jit(jax.vmap(one))(keys, starts)
    return np.asarray(draws), int(np.asarray(steps).sum())


def _covariance_error(draws, covariance):
    """``max |L^-1 C_hat L^-T - I|`` of draws ``(..., dim)``."""
    flat = draws.reshape(-1, draws.shape[-1]).astype(np.float64)
    chol = np.linalg.cholesky(covariance)
    whitened = np.linalg.solve(chol, np.linalg.solve(chol, np.cov(flat.T)).T)
    return np.abs(whitened - np.eye(len(covariance))).max()


def _row(name, draws, gradients, wall, cpu, covariance):
    error = _covariance_error(draws, covariance)
    ess = float(effective_sample_size(draws).min())
    rhat = float(split_rhat(draws).max())
    print(
        f"  {name:34s} {wall:7.1f} {cpu:7.1f} {gradients:10d} {ess:8.0f} "
        f"{1000 * ess / gradients:8.2f} {rhat:7.4f} {error:7.3f}",
        flush=True,
    )
    return wall, cpu, gradients, ess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=30)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-warmup", type=int, default=250)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    logdensity, covariance = _target(args.dim, args.seed)
    key = jax.random.key(args.seed)
    starts = 0.1 * jax.random.normal(jax.random.fold_in(key, 1), (args.num_chains, args.dim))
    print(
        f"Gaussian d = {args.dim}, condition number 1e3, {args.num_chains} chains x "
        f"({args.num_warmup} warm-up + {args.num_samples} draws)"
    )
    print(
        "  run                                   wall s   CPU s  gradients  min ESS "
        "ESS/1k grad   R-hat  cov err"
    )
    rows = {}
    start, cpu = time.perf_counter(), time.process_time()
    draws, gradients = _blackjax_dense(key, logdensity, starts, args.num_warmup, args.num_samples)
    rows["blackjax"] = _row(
        "blackjax window_adaptation, dense",
        draws,
        gradients,
        time.perf_counter() - start,
        time.process_time() - cpu,
        covariance,
    )
    for name, dense, pooled in (
        ("astrobayes diagonal", False, False),
        ("astrobayes dense, per chain", True, False),
        ("astrobayes dense, pooled over chains", True, True),
    ):
        config = NUTSConfig(
            args.num_chains,
            args.num_warmup,
            args.num_samples,
            dense_mass=dense,
            pooled_metric=pooled,
        )
        start, cpu = time.perf_counter(), time.process_time()
        run = run_nuts(key, logdensity, starts, config=config)
        rows[name] = _row(
            name,
            run.samples,
            int(np.sum(run.num_gradient_evaluations)),
            time.perf_counter() - start,
            time.process_time() - cpu,
            covariance,
        )
    rng = np.random.default_rng(args.seed + 1)
    chol = np.linalg.cholesky(covariance)
    exact = [
        _covariance_error(rng.normal(size=(draws.size // args.dim, args.dim)) @ chol.T, covariance)
        for _ in range(50)
    ]
    print(
        f"  cov err of as many independent exact draws: {np.mean(exact):.3f} ± {np.std(exact):.3f}"
    )
    pooled, peer = rows["astrobayes dense, pooled over chains"], rows["blackjax"]
    print(
        f"pooled dense against blackjax dense: gradient evaluations {peer[2] / pooled[2]:.2f}x "
        f"fewer, wall {peer[0] / pooled[0]:.2f}x, CPU {peer[1] / pooled[1]:.2f}x, "
        f"min ESS per gradient {pooled[3] / pooled[2] / (peer[3] / peer[2]):.2f}x"
    )


if __name__ == "__main__":
    main()
