"""Importance sampling from the prior: log weights, resampling, starting points.

The learned (unnormalised) log posterior of an estimator divided by the prior gives the
importance log weights of prior draws. They serve three users: the ``"importance"``
posterior sampler, the starting points of MCMC chains (sampling-importance-resampling)
and the batched calibration draws. Everything works in the prior's unconstrained space.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from astrobayes.sbi.estimators import AbstractEstimator

__all__ = ["initial_positions", "log_importance_weights", "resample"]


@eqx.filter_jit
def log_importance_weights(
    estimator: AbstractEstimator, x_obs: Array, u: Float[Array, "num dim"]
) -> Float[Array, " num"]:
    """Importance log weights of prior draws ``u`` (unconstrained), evaluated in chunks.

    Args:
        estimator: A trained estimator.
        x_obs: One observation, of the training data's shape.
        u: Prior draws mapped to the unconstrained space.

    Returns:
        ``log_posterior_unconstrained(u, x_obs) - log_prior_unconstrained(u)``, with
        ``-inf`` where that is not finite.

    """

    def one(u_i):
        return estimator.log_posterior_unconstrained(u_i, x_obs)

    log_u = jax.lax.map(one, u, batch_size=min(4096, u.shape[0]))
    log_w = log_u - estimator.prior.log_prob_unconstrained(u)
    return jnp.where(jnp.isfinite(log_w), log_w, -jnp.inf)


def resample(key: PRNGKeyArray, log_w: Float[Array, " num"], num: int) -> Int[Array, " draws"]:
    """Multinomial resampling by inverse CDF (memory ``O(len(log_w) + num)``).

    ``jax.random.categorical`` with a sample shape draws Gumbel noise of shape
    ``(num, len(log_w))``, which does not fit in memory for a million proposals.

    Args:
        key: JAX PRNG key.
        log_w: Log weights (``-inf`` for none).
        num: Number of indices drawn (static under ``jit``).

    Returns:
        Indices into ``log_w``, shape ``(num,)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> resample(jax.random.key(0), jnp.log(jnp.array([0.0, 1.0, 0.0])), 4).tolist()
        [1, 1, 1, 1]

    """
    cdf = jnp.cumsum(jax.nn.softmax(log_w))
    index = jnp.searchsorted(cdf, jax.random.uniform(key, (num,)) * cdf[-1])
    return jnp.minimum(index, log_w.shape[0] - 1)


def initial_positions(
    key: PRNGKeyArray,
    estimator: AbstractEstimator,
    x_obs: Array,
    num_positions: int,
    num_initial: int,
) -> tuple[Float[Array, "num_initial dim"], Float[Array, " num_initial"], Int[Array, " num"]]:
    """Sampling-importance-resampling from the prior: proposals, weights, chosen indices.

    Args:
        key: JAX PRNG key.
        estimator: A trained estimator.
        x_obs: One observation, of the training data's shape.
        num_positions: Indices drawn.
        num_initial: Prior proposals.

    Returns:
        ``(u, log_w, index)``: the unconstrained proposals, their importance log weights
        (:func:`log_importance_weights`) and ``num_positions`` resampled indices.

    """
    key_prior, key_choice = jax.random.split(key)
    theta = estimator.prior.sample(key_prior, num_initial)
    u = estimator.prior.to_unconstrained(theta)
    log_w = log_importance_weights(estimator, x_obs, u)
    index = resample(key_choice, log_w, num_positions)
    return u, log_w, index
