"""NUTS chains on an estimator's learned log posterior, on the package's one NUTS kernel.

The chains run :func:`astrobayes.sampling.sample_nuts` (Stan's windowed adaptation, many
chains in one compiled call) in the prior's unconstrained space. The density parameters
are ``(estimator, x_obs)``, an *argument* of the compiled program, so retrained
estimators of the same architecture (sequential rounds, ensembles) and new observations
reuse it.

References:
    Hoffman & Gelman 2014, arXiv:1111.4246 (NUTS).
"""

from __future__ import annotations

from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes.sampling import NUTSDraws, sample_nuts
from astrobayes.sbi.estimators import AbstractEstimator

__all__ = ["estimator_logdensity", "nuts_chains"]


def estimator_logdensity(
    params: tuple[AbstractEstimator, Array], u: Float[Array, " dim"]
) -> Float[Array, ""]:
    """``logdensity_fn(params, u)`` of the NUTS kernel: the learned log posterior of ``u``.

    Args:
        params: ``(estimator, x_obs)``.
        u: One unconstrained parameter vector.

    Returns:
        ``estimator.log_posterior_unconstrained(u, x_obs)`` (unnormalised for NLE / NRE).

    """
    estimator, x_obs = params
    return estimator.log_posterior_unconstrained(u, x_obs)


def nuts_chains(
    key: PRNGKeyArray,
    estimator: AbstractEstimator,
    x_obs: Array,
    initial: Float[Array, "num_chains dim"],
    num_warmup: int,
    num_samples_per_chain: int,
) -> NUTSDraws:
    """Run one NUTS chain from each row of ``initial`` on ``estimator``'s log posterior.

    Args:
        key: JAX PRNG key.
        estimator: A trained estimator; its ``log_posterior_unconstrained`` is the target.
        x_obs: One observation, of the training data's shape.
        initial: Unconstrained starting points, one per chain.
        num_warmup: Window-adaptation steps (at least 10).
        num_samples_per_chain: Draws kept per chain.

    Returns:
        :class:`astrobayes.sampling.NUTSDraws` (samples ``(num_chains, num_samples,
        dim)``, log densities, divergences, acceptance, adapted step sizes).

    """
    return sample_nuts(
        key,
        estimator_logdensity,
        (estimator, x_obs),
        initial,
        num_warmup=num_warmup,
        num_samples=num_samples_per_chain,
    )
