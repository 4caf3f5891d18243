"""Drawing posterior samples from a trained estimator for one observation.

* NPE: direct draws from the flow (exact for the learned density).
* NLE / NRE: NUTS (blackjax, window adaptation, many chains ``vmap``-ed) in the prior's
  unconstrained space on the learned unnormalised log posterior, chains started from a
  sampling-importance-resampling draw from the prior; or importance sampling from the
  prior (``method="importance"``), whose effective sample size is reported.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes.sbi.estimators import NPE, AbstractEstimator

__all__ = ["MCMCConfig", "PosteriorSamples", "PosteriorStatus", "sample_posterior"]


class PosteriorStatus(enum.Enum):
    """Outcome of posterior sampling; the value is the message."""

    SUCCESS = "posterior samples drawn"
    DIVERGENCES = "MCMC reported divergent transitions; check the samples"
    LOW_EFFECTIVE_SAMPLE_SIZE = "importance sampling effective sample size below 100"
    POOR_MIXING = "chains disagree (split R-hat > 1.05)"


@dataclass(frozen=True)
class MCMCConfig:
    """NUTS settings for NLE / NRE posteriors.

    Attributes:
        num_chains: Parallel chains.
        num_warmup: Window-adaptation steps per chain.
        num_initial: Prior draws for the importance-resampled starting points.

    """

    num_chains: int = 20
    num_warmup: int = 300
    num_initial: int = 10_000

    def __post_init__(self) -> None:
        check_positive_int(self.num_chains, "num_chains")
        check_positive_int(self.num_warmup, "num_warmup")
        check_positive_int(self.num_initial, "num_initial")


class PosteriorSamples(NamedTuple):
    """Posterior draws for one observation.

    Attributes:
        samples: Draws in the original parameter space, ``(num_samples, dim)``.
        log_posterior: Learned log posterior of each draw (unnormalised for NLE/NRE),
            ``(num_samples,)``.
        names: Parameter names.
        method: ``"direct"``, ``"nuts"`` or ``"importance"``.
        diagnostics: Method-specific numbers (acceptance rate, divergences, R-hat, ESS).
        status: A :class:`PosteriorStatus`.

    """

    samples: np.ndarray
    log_posterior: np.ndarray
    names: tuple[str, ...]
    method: str
    diagnostics: dict
    status: PosteriorStatus


def _initial_positions(key, estimator, x_obs, num_positions, num_initial):
    key_prior, key_choice = jax.random.split(key)
    theta = estimator.prior.sample(key_prior, num_initial)
    u = estimator.prior.to_unconstrained(theta)
    log_u = jax.vmap(estimator.log_posterior_unconstrained, in_axes=(0, None))(u, x_obs)
    log_w = log_u - estimator.prior.log_prob_unconstrained(u)
    log_w = jnp.where(jnp.isfinite(log_w), log_w, -jnp.inf)
    index = jax.random.categorical(key_choice, log_w, shape=(num_positions,))
    return u, log_w, index


def _direct(estimator, key, x_obs, num_samples):
    return estimator.sample_and_log_prob(key, x_obs, num_samples)


def _split_rhat(chains: np.ndarray) -> float:
    num_chains, num_samples, _ = chains.shape
    half = num_samples // 2
    if half < 2:
        return float("nan")
    pieces = np.concatenate([chains[:, :half], chains[:, half : 2 * half]], axis=0)
    means = pieces.mean(axis=1)
    within = pieces.var(axis=1, ddof=1).mean(axis=0)
    between = half * means.var(axis=0, ddof=1)
    var = (half - 1) / half * within + between / half
    return float(np.max(np.sqrt(var / np.maximum(within, 1e-300))))


def _nuts(key, logdensity_fn, initial, num_warmup, num_samples_per_chain):
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
    return jax.jit(jax.vmap(one_chain))(keys, initial)


def sample_posterior(
    key: PRNGKeyArray,
    estimator: AbstractEstimator,
    x_obs,
    num_samples: int,
    *,
    method: str = "auto",
    mcmc_config: MCMCConfig = MCMCConfig(),
) -> PosteriorSamples:
    """Draw posterior samples for one observation from a trained estimator.

    Args:
        key: JAX PRNG key.
        estimator: A trained :class:`~astrobayes.sbi.estimators.NPE`, ``NLE`` or ``NRE``.
        x_obs: One observation, of the training data's shape (no batch axis).
        num_samples: Number of draws.
        method: ``"auto"`` (direct for NPE, NUTS otherwise), ``"direct"`` (NPE only),
            ``"nuts"`` or ``"importance"``.
        mcmc_config: NUTS settings.

    Returns:
        :class:`PosteriorSamples`.

    Raises:
        TypeError: If ``estimator`` is not an estimator.
        ValueError: If ``x_obs`` has the wrong shape or is not finite, or ``method`` is
            unknown or ``"direct"`` for a non-NPE estimator.

    """
    check_key(key)
    if not isinstance(estimator, AbstractEstimator):
        raise TypeError(f"estimator must be an NPE, NLE or NRE; got {type(estimator).__name__}")
    num_samples = check_positive_int(num_samples, "num_samples")
    x_obs = as_float_array(x_obs, "x_obs")
    expected = int(np.prod(estimator.x_shift.shape))
    if x_obs.size != expected:
        raise ValueError(
            f"x_obs must have the training data's shape {tuple(estimator.x_shift.shape)}; got {x_obs.shape}"
        )
    if not np.all(np.isfinite(x_obs)):
        raise ValueError("x_obs must be finite")
    x_obs = jnp.asarray(x_obs.reshape(estimator.x_shift.shape), jnp.float32)
    if method == "auto":
        method = "direct" if isinstance(estimator, NPE) else "nuts"
    if method not in ("direct", "nuts", "importance"):
        raise ValueError(f"method must be 'auto', 'direct', 'nuts' or 'importance'; got {method!r}")
    names = estimator.prior.names
    if method == "direct":
        if not isinstance(estimator, NPE):
            raise ValueError("method='direct' needs an NPE estimator; use 'nuts' or 'importance'")
        theta, log_q = eqx.filter_jit(_direct)(estimator, key, x_obs, num_samples)
        return PosteriorSamples(
            np.asarray(theta), np.asarray(log_q), names, "direct", {}, PosteriorStatus.SUCCESS
        )
    key_init, key_run = jax.random.split(key)
    if method == "importance":
        num_initial = max(mcmc_config.num_initial, 10 * num_samples)
        u, log_w, index = _initial_positions(key_init, estimator, x_obs, num_samples, num_initial)
        log_w = np.asarray(log_w, dtype=float)
        w = np.exp(log_w - log_w.max())
        ess = float(w.sum() ** 2 / (w**2).sum())
        u_draw = u[np.asarray(index)]
        theta = estimator.prior.to_constrained(u_draw)
        log_post = estimator.log_posterior(theta, x_obs)
        status = (
            PosteriorStatus.SUCCESS if ess >= 100 else PosteriorStatus.LOW_EFFECTIVE_SAMPLE_SIZE
        )
        return PosteriorSamples(
            np.asarray(theta),
            np.asarray(log_post),
            names,
            "importance",
            {"effective_sample_size": ess, "num_proposals": num_initial},
            status,
        )
    num_chains = mcmc_config.num_chains
    per_chain = -(-num_samples // num_chains)
    u, _, index = _initial_positions(
        key_init, estimator, x_obs, num_chains, mcmc_config.num_initial
    )
    initial = u[np.asarray(index)]

    def logdensity_fn(u):
        return estimator.log_posterior_unconstrained(u, x_obs)

    positions, log_u, acceptance, divergent = _nuts(
        key_run, logdensity_fn, initial, mcmc_config.num_warmup, per_chain
    )
    positions = np.asarray(positions)
    rhat = _split_rhat(positions)
    flat_u = positions.reshape(-1, positions.shape[-1])[:num_samples]
    theta = estimator.prior.to_constrained(jnp.asarray(flat_u))
    log_post = np.asarray(log_u).reshape(-1)[:num_samples] - np.asarray(
        estimator.prior.log_abs_det_jacobian(jnp.asarray(flat_u))
    )
    num_divergent = int(np.asarray(divergent).sum())
    if num_divergent > 0.01 * positions.shape[0] * positions.shape[1]:
        status = PosteriorStatus.DIVERGENCES
    elif rhat > 1.05:
        status = PosteriorStatus.POOR_MIXING
    else:
        status = PosteriorStatus.SUCCESS
    diagnostics = {
        "acceptance_rate": float(np.asarray(acceptance).mean()),
        "num_divergent": num_divergent,
        "split_rhat_max": rhat,
        "num_chains": num_chains,
    }
    return PosteriorSamples(np.asarray(theta), log_post, names, "nuts", diagnostics, status)
