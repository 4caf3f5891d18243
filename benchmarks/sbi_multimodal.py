"""SBI posterior samplers on a bimodal posterior with known mode weights and ln z.

The estimator is an NLE whose learned likelihood is the exact likelihood of the sign-flip
simulator (``x_0 = s * theta_0 + noise``, ``x_1 = theta_1 + noise``, ``s = +1`` with
probability 0.7, noise ``N(0, 0.25^2)``; prior ``theta_0 ~ U(-4, 4)``,
``theta_1 ~ N(0, 2^2)``), as in ``tests/sbi/test_flow_samplers.py``. For ``x = (2, 1)`` the
posterior has modes at ``theta_0 = +2`` and ``-2`` with weights 0.7 / 0.3 and
``ln z = -ln 8 + ln N(1; 0, 4.0625) = -3.8224``. Each method of
``astrobayes.sbi.sample_posterior`` runs once at its defaults (``--methods`` to choose),
in one process; the line gives the positive-mode weight, ln z (where the method gives it),
the status, the log-density calls and the wall and CPU seconds (compilation included).
With ``--trained N`` the estimator is instead an NLE trained on N simulations of that
simulator (``train_nle`` defaults); its posterior approximates the same truth.

Run: ``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/sbi_multimodal.py``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from scipy.stats import norm

from astrobayes.sbi import Prior, sample_posterior, simulate_for_prior, train_nle
from astrobayes.sbi.estimators import AbstractEstimator

NOISE = 0.25
WEIGHT = 0.7
X_OBS = np.array([2.0, 1.0])
LOG_Z = float(-np.log(8.0) + norm.logpdf(X_OBS[1], 0.0, np.sqrt(4.0 + NOISE**2)))


def _log_normal(x, mean):
    return -0.5 * ((x - mean) / NOISE) ** 2 - jnp.log(NOISE * jnp.sqrt(2.0 * jnp.pi))


class SignFlipLikelihood(AbstractEstimator):
    """An NLE whose learned likelihood is the sign-flip simulator's exact likelihood."""

    prior: Prior
    u_shift: jax.Array
    u_scale: jax.Array
    x_shift: jax.Array
    x_scale: jax.Array

    def __init__(self):
        self.prior = Prior([-4.0, 0.0], [4.0, 2.0], is_bounded=[True, False], names=("a", "b"))
        self.u_shift, self.u_scale = jnp.zeros(2), jnp.ones(2)
        self.x_shift, self.x_scale = jnp.zeros(2), jnp.ones(2)

    def log_posterior_unconstrained(self, u, x):
        theta = self.prior.to_constrained(u)
        sign = logsumexp(
            jnp.stack(
                [
                    jnp.log(WEIGHT) + _log_normal(x[0], theta[0]),
                    jnp.log(1.0 - WEIGHT) + _log_normal(x[0], -theta[0]),
                ]
            )
        )
        log_likelihood = sign + _log_normal(x[1], theta[1])
        return log_likelihood + self.prior.log_prob_unconstrained(u)


def simulate(key, theta):
    """The sign-flip simulator: ``x = (s * theta_0, theta_1) + N(0, 0.25^2 I)``."""
    k_sign, k_noise = jax.random.split(key)
    sign = jnp.where(jax.random.uniform(k_sign) < WEIGHT, 1.0, -1.0)
    return jnp.stack([sign * theta[0], theta[1]]) + NOISE * jax.random.normal(k_noise, (2,))


def trained_estimator(key, num_simulations):
    """An NLE trained on ``num_simulations`` draws from the prior (``train_nle`` defaults)."""
    prior = SignFlipLikelihood().prior
    k_sim, k_train = jax.random.split(key)
    wall = time.perf_counter()
    sims = simulate_for_prior(k_sim, prior, simulate, num_simulations)
    nle, info = train_nle(k_train, prior, sims.theta, sims.x)
    print(
        f"NLE: {num_simulations} simulations, {info.num_epochs} epochs, "
        f"{time.perf_counter() - wall:.1f} s wall, status {info.status.name}",
        flush=True,
    )
    return nle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", nargs="+", default=["smc", "flow_mcmc", "preconditioned_smc", "nuts"]
    )
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trained", type=int, default=0, help="train an NLE on N simulations")
    args = parser.parse_args()
    print(
        f"truth: weight {WEIGHT}, ln z {LOG_Z:.4f}; {args.num_samples} draws, seed {args.seed}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    estimator = (
        trained_estimator(jax.random.key(args.seed + 1), args.trained)
        if args.trained
        else SignFlipLikelihood()
    )
    for method in args.methods:
        key = jax.random.key(args.seed)
        wall, cpu = time.perf_counter(), time.process_time()
        posterior = sample_posterior(key, estimator, X_OBS, args.num_samples, method=method)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        d = posterior.diagnostics
        weight = float(np.mean(posterior.samples[:, 0] > 0))
        line = f"{method:>19}: weight {weight:.3f} (error {weight - WEIGHT:+.3f})"
        if "log_evidence" in d:
            std = d.get("log_evidence_std", float("nan"))
            line += f", ln z {d['log_evidence']:.4f} ± {std:.4f} (pull {(d['log_evidence'] - LOG_Z) / std:+.2f})"
        if "split_rhat_max" in d:
            line += f", R-hat {d['split_rhat_max']:.3f}, ESS {d['effective_sample_size_min']:.0f}"
        if "global_acceptance_rate" in d:
            line += f", global acc. {d['global_acceptance_rate']:.2f}"
            line += f", Pareto k {d['flow_pareto_k']:.2f}"
        if "num_logdensity_evaluations" in d:
            line += f", {d['num_logdensity_evaluations']} calls"
        line += f", status {posterior.status.name}"
        if d.get("sampler_messages"):
            line += f" ({', '.join(m[:60] for m in d['sampler_messages'])})"
        line += f"; {wall:.1f} s wall, {cpu:.1f} s CPU, load {os.getloadavg()[0]:.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
