"""Bayesian PINN for Lane–Emden n = 1 by NUTS: a measurement of its calibration.

B-PINN after Yang, Meng & Karniadakis 2021 (arXiv:2003.06097). A measurement, not a
library feature.

Network: ``LaneEmdenPINN`` (boundary conditions by construction), small (``--width``, one
hidden layer). Likelihood: the PINN residual at ``--points`` fixed collocation radii is
N(0, σ²) with log σ sampled (uniform prior on [-16, 0]); weights have N(0, ``--prior``²)
priors. Chains start at members of a PINN ensemble trained by
``train_lane_emden_ensemble`` (one per chain) and run ``astrobayes.sampling.run_nuts``.
Prints R-hat, the posterior-mean error against sin ξ/ξ and the coverage of the exact
solution by the posterior's central 68% / 95% intervals of θ(ξ) on 200 radii.

Run:
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/physics_bpinn_nuts.py
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from astrobayes._training import TrainingConfig  # noqa: E402
from astrobayes.physics.pinn import (  # noqa: E402
    LaneEmdenConfig,
    lane_emden_exact,
    lane_emden_residual,
    train_lane_emden_ensemble,
)
from astrobayes.sampling import NUTSConfig, run_nuts  # noqa: E402


def main() -> None:
    """Pretrain, sample, measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--prior", type=float, default=3.0)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start, cpu = time.perf_counter(), time.process_time()
    config = LaneEmdenConfig(
        n=1.0,
        width=args.width,
        depth=1,
        num_members=args.chains,
        training=TrainingConfig(
            learning_rate=3e-3,
            batch_size=64,
            max_epochs=400,
            patience=60,
            schedule="cosine",
            cosine_final_fraction=0.01,
            clip_max_norm=None,
        ),
    )
    ensemble = train_lane_emden_ensemble(jax.random.key(args.seed), config)
    params0, static = eqx.partition(ensemble.members[0], eqx.is_inexact_array)
    flat0, unravel = ravel_pytree(params0)
    starts = []
    for member in ensemble.members:
        flat, _ = ravel_pytree(eqx.partition(member, eqx.is_inexact_array)[0])
        residual = jax.vmap(lambda x, m=member: lane_emden_residual(m, x))(
            jnp.linspace(0.0, np.pi, args.points)
        )
        starts.append(jnp.concatenate([flat, jnp.log(jnp.sqrt(jnp.mean(residual**2)))[None]]))
    starts = jnp.stack(starts)
    pretrain = (time.perf_counter() - start, time.process_time() - cpu)
    colloc = jnp.linspace(0.0, np.pi, args.points)

    def logdensity(theta):
        weights, log_sigma = theta[:-1], theta[-1]
        pinn = eqx.combine(unravel(weights), static)
        residual = jax.vmap(lambda x: lane_emden_residual(pinn, x))(colloc)
        loglike = -0.5 * jnp.sum(residual**2) * jnp.exp(-2 * log_sigma) - args.points * log_sigma
        logprior = -0.5 * jnp.sum(weights**2) / args.prior**2
        inside = (log_sigma > -16.0) & (log_sigma < 0.0)
        return jnp.where(inside, loglike + logprior, -jnp.inf)

    result = run_nuts(
        jax.random.key(args.seed + 1),
        logdensity,
        starts,
        config=NUTSConfig(num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples),
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    draws = result.samples.reshape(-1, result.samples.shape[-1])[:: max(1, args.samples // 100)]
    xi = jnp.linspace(0.0, np.pi, 201)[1:]
    exact = np.asarray(lane_emden_exact(1, xi))

    def curve(theta):
        pinn = eqx.combine(unravel(theta[:-1]), static)
        return jax.vmap(pinn)(xi)

    curves = np.asarray(jax.lax.map(curve, jnp.asarray(draws)))
    mean = curves.mean(axis=0)
    start_curves = np.stack([np.asarray(jax.vmap(m)(xi)) for m in ensemble.members])
    print(
        f"pretrained ensemble (the chains' starts): max|mean - exact| = "
        f"{np.max(np.abs(start_curves.mean(axis=0) - exact)):.2e}"
    )
    print(
        f"status {result.status.name}; R-hat max {np.max(result.rhat):.3f}; ESS min "
        f"{np.min(result.ess):.0f}; divergent {int(np.sum(result.num_divergent))}; "
        f"sigma posterior median {np.exp(np.median(draws[:, -1])):.2e}"
    )
    print(
        f"pretrain {pretrain[0]:.0f} s wall / {pretrain[1]:.0f} s CPU; total {wall:.0f} s "
        f"wall / {cpu:.0f} s CPU"
    )
    print(
        f"posterior-mean error max|mean - exact| = {np.max(np.abs(mean - exact)):.2e}; "
        f"posterior std (mean over radii) {curves.std(axis=0).mean():.2e}"
    )
    per_chain = result.samples[:, :, :-1]
    for level in (0.68, 0.95):
        low, high = np.quantile(curves, [0.5 - level / 2, 0.5 + level / 2], axis=0)
        print(
            f"coverage of the exact solution, central {level:.0%}: "
            f"{np.mean((exact >= low) & (exact <= high)):.3f} (200 radii, one problem)"
        )
    print(
        f"chains' weight means differ by up to {np.ptp(per_chain.mean(axis=1), axis=0).max():.2e}"
    )


if __name__ == "__main__":
    main()
