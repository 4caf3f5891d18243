"""NUTS chains on an estimator's learned log posterior, ``vmap``-ed over chains.

Each chain runs blackjax's window adaptation and then NUTS in the prior's unconstrained
space. The program is compiled with the estimator as an *argument*, so retrained
estimators of the same architecture (sequential rounds, ensembles) reuse it.

References:
    Hoffman & Gelman 2014, arXiv:1111.4246 (NUTS).
"""

from __future__ import annotations

from typing import NamedTuple

import blackjax
import equinox as eqx
import jax
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from astrobayes.sbi.estimators import AbstractEstimator

__all__ = ["NUTSChains", "nuts_chains"]


class NUTSChains(NamedTuple):
    """Draws of :func:`nuts_chains`, each with leading axes ``(num_chains, num_samples)``.

    Attributes:
        positions: Unconstrained positions, ``(num_chains, num_samples, dim)``.
        log_density: Learned unnormalised log posterior of each position.
        acceptance_rate: Mean acceptance probability of each transition.
        is_divergent: Whether each transition diverged.

    """

    positions: Float[Array, "num_chains num_samples dim"]
    log_density: Float[Array, "num_chains num_samples"]
    acceptance_rate: Float[Array, "num_chains num_samples"]
    is_divergent: Bool[Array, "num_chains num_samples"]


@eqx.filter_jit
def nuts_chains(
    key: PRNGKeyArray,
    estimator: AbstractEstimator,
    x_obs: Array,
    initial: Float[Array, "num_chains dim"],
    num_warmup: int,
    num_samples_per_chain: int,
) -> NUTSChains:
    """Run one NUTS chain from each row of ``initial`` on ``estimator``'s log posterior.

    Args:
        key: JAX PRNG key (split over chains; each splits into warm-up and sampling).
        estimator: A trained estimator; its ``log_posterior_unconstrained`` is the target.
        x_obs: One observation, of the training data's shape.
        initial: Unconstrained starting points, one per chain.
        num_warmup: Window-adaptation steps (static).
        num_samples_per_chain: Draws kept per chain (static).

    Returns:
        :class:`NUTSChains`.

    """

    def logdensity_fn(u):
        return estimator.log_posterior_unconstrained(u, x_obs)

    def one_chain(key, position):
        key_warmup, key_sample = jax.random.split(key)
        warmup = blackjax.window_adaptation(blackjax.nuts, logdensity_fn)
        (state, parameters), _ = warmup.run(key_warmup, position, num_steps=num_warmup)
        kernel = blackjax.nuts(logdensity_fn, **parameters).step

        def step(state, k):
            state, info = kernel(k, state)
            return state, (
                state.position,
                state.logdensity,
                info.acceptance_rate,
                info.is_divergent,
            )

        _, out = jax.lax.scan(step, state, jax.random.split(key_sample, num_samples_per_chain))
        return out

    keys = jax.random.split(key, initial.shape[0])
    return NUTSChains(*jax.vmap(one_chain)(keys, initial))
