"""Adaptive tempered sequential Monte Carlo on an estimator's learned posterior.

A population of particles moves from the prior (inverse temperature 0) to the learned
posterior (1): at each step the next temperature keeps the Kish effective sample size of
the incremental weights at a target fraction, particles are resampled (systematic) and
mutated by differential-evolution Metropolis sweeps. SMC weighs separated modes
correctly (NUTS chains keep the modes their starting points fell in), needs no gradients
and evaluates the estimator in large batches. The product of the mean incremental
weights estimates the evidence of the learned unnormalised density.

References:
    Del Moral, Doucet & Jasra 2006, doi:10.1111/j.1467-9868.2006.00553.x (SMC samplers);
    Jasra, Stephens, Doucet & Tsagaris 2011, doi:10.1111/j.1467-9469.2010.00723.x
    (adaptive tempering); ter Braak 2006, doi:10.1007/s11222-006-8769-1
    (differential-evolution MCMC).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes.sampling.smc import next_temperature, systematic_resample
from astrobayes.sbi.estimators import AbstractEstimator

__all__ = ["TemperedSMC", "log_likelihood_batch", "tempered_smc"]


class TemperedSMC(NamedTuple):
    """Final population and history of :func:`tempered_smc`.

    Attributes:
        positions: Unconstrained particles at temperature 1, ``(num_particles, dim)``.
        log_likelihood: Learned log posterior minus log prior of each particle.
        temperatures: Inverse temperatures visited (the last is 1).
        acceptance_rates: Mean acceptance of the mutation sweeps at each temperature.
        log_evidence: Log of the normalising constant of the learned unnormalised density.

    """

    positions: Float[Array, "num_particles dim"]
    log_likelihood: Float[Array, " num_particles"]
    temperatures: list[float]
    acceptance_rates: list[float]
    log_evidence: float


@eqx.filter_jit
def log_likelihood_batch(
    estimator: AbstractEstimator, x_obs: Array, u: Float[Array, "num dim"]
) -> Float[Array, " num"]:
    """``log_posterior_unconstrained - log_prior`` for each row of ``u``, in chunks.

    Args:
        estimator: A trained estimator.
        x_obs: One observation.
        u: Unconstrained positions.

    Returns:
        The learned log likelihood (or log ratio) of each row; NaN becomes ``-inf``.

    """

    def one(u_i):
        return estimator.log_posterior_unconstrained(
            u_i, x_obs
        ) - estimator.prior.log_prob_unconstrained(u_i)

    log_l = jax.lax.map(one, u, batch_size=min(4096, u.shape[0]))
    return jnp.where(jnp.isnan(log_l), -jnp.inf, log_l)


@eqx.filter_jit
def _de_sweeps(key, estimator, x_obs, u, log_l, beta, num_sweeps):
    """Differential-evolution Metropolis sweeps at inverse temperature ``beta``.

    The population is split in halves; each half moves with proposals
    ``u + gamma (u_a - u_b) + noise`` built from the other (fixed) half, so the product of
    the tempered targets is invariant (ter Braak 2006). ``gamma = 2.38 / sqrt(2 dim)``,
    or 1 with probability 0.1 to jump between modes.
    """
    num, dim = u.shape
    half = num // 2
    gamma_0 = 2.38 / np.sqrt(2.0 * dim)

    def log_target(position, log_likelihood):
        return estimator.prior.log_prob_unconstrained(position) + beta * log_likelihood

    def move(key, active, log_l_active, other):
        k_a, k_b, k_gamma, k_noise, k_accept = jax.random.split(key, 5)
        num_active, num_other = active.shape[0], other.shape[0]
        a = jax.random.randint(k_a, (num_active,), 0, num_other)
        b = (a + jax.random.randint(k_b, (num_active,), 1, num_other)) % num_other
        gamma = jnp.where(jax.random.uniform(k_gamma, (num_active,)) < 0.1, 1.0, gamma_0)
        noise = 1e-3 * jnp.std(other, axis=0) * jax.random.normal(k_noise, active.shape)
        proposal = active + gamma[:, None] * (other[a] - other[b]) + noise
        log_l_proposal = log_likelihood_batch(estimator, x_obs, proposal)
        log_ratio = log_target(proposal, log_l_proposal) - log_target(active, log_l_active)
        accept = jnp.log(jax.random.uniform(k_accept, (num_active,))) < log_ratio
        accept = accept & jnp.isfinite(log_l_proposal)
        return (
            jnp.where(accept[:, None], proposal, active),
            jnp.where(accept, log_l_proposal, log_l_active),
            accept.mean(),
        )

    def sweep(i, carry):
        u, log_l, accepted = carry
        k_first, k_second = jax.random.split(jax.random.fold_in(key, i))
        first, log_l_first, accept_first = move(k_first, u[:half], log_l[:half], u[half:])
        second, log_l_second, accept_second = move(k_second, u[half:], log_l[half:], first)
        u = jnp.concatenate([first, second])
        log_l = jnp.concatenate([log_l_first, log_l_second])
        return u, log_l, accepted + 0.5 * (accept_first + accept_second)

    # A traced number of sweeps: one compilation serves every temperature.
    u, log_l, accepted = jax.lax.fori_loop(0, num_sweeps, sweep, (u, log_l, jnp.zeros(())))
    return u, log_l, accepted / jnp.maximum(num_sweeps, 1)


def tempered_smc(
    key: PRNGKeyArray,
    estimator: AbstractEstimator,
    x_obs: Array,
    num_particles: int,
    *,
    num_moves: int = 5,
    num_final_moves: int = 30,
    ess_fraction: float = 0.5,
) -> TemperedSMC:
    """Adaptive tempered SMC from the prior to the learned posterior.

    Args:
        key: JAX PRNG key.
        estimator: A trained estimator.
        x_obs: One observation, of the training data's shape.
        num_particles: Particles (even).
        num_moves: Mutation sweeps per intermediate temperature.
        num_final_moves: Mutation sweeps at temperature 1.
        ess_fraction: Target effective-sample-size fraction of each increment.

    Returns:
        :class:`TemperedSMC`.

    Raises:
        ValueError: If the learned log posterior is not finite at any prior draw.

    """
    key_prior, key_loop = jax.random.split(key)
    u = estimator.prior.to_unconstrained(estimator.prior.sample(key_prior, num_particles))
    log_l = log_likelihood_batch(estimator, x_obs, u)
    beta, log_evidence = 0.0, 0.0
    betas, acceptance = [], []
    while beta < 1.0:
        key_loop, key_resample, key_shuffle, key_move = jax.random.split(key_loop, 4)
        ell = np.asarray(log_l, dtype=float)
        if not np.any(np.isfinite(ell)):
            raise ValueError("the learned log posterior is -inf or NaN at every prior draw")
        step = next_temperature(ell, beta, ess_fraction)
        beta = 1.0 if step >= 1.0 - beta else beta + step
        log_w = np.where(np.isfinite(ell), step * ell, -np.inf)
        top = np.max(log_w)
        log_evidence += top + float(np.log(np.mean(np.exp(log_w - top))))
        index = systematic_resample(float(jax.random.uniform(key_resample)), log_w)
        # Shuffle, so that the two halves of the population mix modes and ancestors.
        index = np.asarray(jax.random.permutation(key_shuffle, index))
        u, log_l = u[index], log_l[index]
        sweeps = num_final_moves if beta >= 1.0 else num_moves
        if sweeps > 0:
            u, log_l, rate = _de_sweeps(
                key_move,
                estimator,
                x_obs,
                u,
                log_l,
                jnp.asarray(beta, jnp.result_type(float)),
                jnp.int32(sweeps),
            )
            acceptance.append(float(rate))
        betas.append(beta)
    return TemperedSMC(
        positions=u,
        log_likelihood=log_l,
        temperatures=betas,
        acceptance_rates=acceptance,
        log_evidence=log_evidence,
    )
