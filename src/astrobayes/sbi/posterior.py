"""Drawing posterior samples from a trained estimator for one observation.

* NPE: direct draws from the flow (exact for the learned density).
* NLE / NRE: NUTS (:func:`astrobayes.sbi.mcmc.nuts_chains` on the package's NUTS kernel) in
  the prior's unconstrained space on the learned unnormalised log posterior, chains
  started from a sampling-importance-resampling draw from the prior; or importance
  sampling from the prior (``method="importance"``), whose effective sample size is
  reported; or adaptive tempered SMC (``method="smc"``,
  :func:`astrobayes.sbi.smc.tempered_smc`), which weighs separated modes correctly.

Every result carries a :class:`PosteriorStatus`: divergences, poor mixing (split R-hat
from :mod:`astrobayes.diagnostics`), a low importance ESS or a low SMC acceptance are
warnings; non-finite draws are a failure, which ``throw=True`` raises.

References:
    Hoffman & Gelman 2014, arXiv:1111.4246 (NUTS); Del Moral, Doucet & Jasra 2006,
    doi:10.1111/j.1467-9868.2006.00553.x (SMC samplers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from astrobayes._checks import as_float_array, check_fraction, check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes.diagnostics import effective_sample_size, kish_effective_sample_size, split_rhat
from astrobayes.sbi.estimators import NPE, AbstractEstimator
from astrobayes.sbi.importance import initial_positions
from astrobayes.sbi.mcmc import nuts_chains
from astrobayes.sbi.smc import tempered_smc

__all__ = ["MCMCConfig", "PosteriorSamples", "PosteriorStatus", "sample_posterior"]

_METHODS = ("direct", "nuts", "importance", "smc")


class PosteriorStatus(Status):
    """Outcome of posterior sampling; the value is the message."""

    SUCCESS = (Severity.OK, "posterior samples drawn")
    DIVERGENCES = (Severity.WARNING, "MCMC reported divergent transitions; check the samples")
    LOW_ACCEPTANCE = (
        Severity.WARNING,
        "SMC mutation moves accepted under 1% of proposals at the posterior",
    )
    LOW_EFFECTIVE_SAMPLE_SIZE = (
        Severity.WARNING,
        "importance sampling effective sample size below 100",
    )
    POOR_MIXING = (Severity.WARNING, "chains disagree (split R-hat > 1.05)")
    NON_FINITE = (
        Severity.FAILURE,
        "posterior draws or their log densities are not finite (NaN or +inf); the "
        "estimator is broken for this observation",
    )


@dataclass(frozen=True)
class MCMCConfig:
    """NUTS settings for NLE / NRE posteriors.

    Attributes:
        num_chains: Parallel chains.
        num_warmup: Window-adaptation steps per chain (at least 10).
        num_initial: Prior draws for the importance-resampled starting points.
        smc_moves: SMC mutation sweeps per intermediate temperature.
        smc_final_moves: SMC mutation sweeps at the posterior (temperature 1).
        smc_ess_fraction: Target effective-sample-size fraction that sets each SMC
            temperature increment.

    """

    num_chains: int = 20
    num_warmup: int = 300
    num_initial: int = 10_000
    smc_moves: int = 5
    smc_final_moves: int = 30
    smc_ess_fraction: float = 0.5

    def __post_init__(self) -> None:
        check_positive_int(self.num_chains, "num_chains")
        check_positive_int(self.num_warmup, "num_warmup", minimum=10)
        check_positive_int(self.num_initial, "num_initial")
        check_positive_int(self.smc_moves, "smc_moves", minimum=0)
        check_positive_int(self.smc_final_moves, "smc_final_moves", minimum=0)
        check_fraction(self.smc_ess_fraction, "smc_ess_fraction")


class PosteriorSamples(NamedTuple):
    """Posterior draws for one observation.

    Attributes:
        samples: Draws in the original parameter space, ``(num_samples, dim)``.
        log_posterior: Learned log posterior of each draw (unnormalised for NLE/NRE),
            ``(num_samples,)``.
        names: Parameter names.
        method: ``"direct"``, ``"nuts"``, ``"importance"`` or ``"smc"``.
        diagnostics: Method-specific numbers (acceptance rate, divergences, R-hat, ESS;
            for SMC the temperatures, acceptance per temperature and the log evidence
            of the learned posterior's unnormalised density).
        status: A :class:`PosteriorStatus`.

    """

    samples: np.ndarray
    log_posterior: np.ndarray
    names: tuple[str, ...]
    method: str
    diagnostics: dict
    status: PosteriorStatus


def _direct(estimator, key, x_obs, num_samples):
    return estimator.sample_and_log_prob(key, x_obs, num_samples)


def _result(
    samples, log_posterior, names, method, diagnostics, status: PosteriorStatus
) -> PosteriorSamples:
    """Build the result; non-finite draws or (+inf / NaN) log densities are a failure."""
    samples = np.asarray(samples)
    log_posterior = np.asarray(log_posterior)
    is_broken = (
        not np.all(np.isfinite(samples))
        or np.any(np.isnan(log_posterior))
        or np.any(np.isposinf(log_posterior))
    )
    if is_broken:
        status = PosteriorStatus.NON_FINITE
    return PosteriorSamples(
        samples=samples,
        log_posterior=log_posterior,
        names=names,
        method=method,
        diagnostics=diagnostics,
        status=status,
    )


def _smc_posterior(key, estimator, x_obs, num_samples, config: MCMCConfig) -> PosteriorSamples:
    num_particles = max(4, num_samples + num_samples % 2)
    run = tempered_smc(
        key,
        estimator,
        x_obs,
        num_particles,
        num_moves=config.smc_moves,
        num_final_moves=config.smc_final_moves,
        ess_fraction=config.smc_ess_fraction,
    )
    u, log_l = run.positions[:num_samples], run.log_likelihood[:num_samples]
    theta = estimator.prior.to_constrained(u)
    log_post = (
        log_l + estimator.prior.log_prob_unconstrained(u) - estimator.prior.log_abs_det_jacobian(u)
    )
    acceptance_rate = run.acceptance_rates[-1] if run.acceptance_rates else float("nan")
    diagnostics = {
        "num_temperatures": len(run.temperatures),
        "temperatures": run.temperatures,
        "acceptance_rates": run.acceptance_rates,
        "acceptance_rate": acceptance_rate,
        "log_evidence": run.log_evidence,
        "num_particles": num_particles,
    }
    status = PosteriorStatus.LOW_ACCEPTANCE if acceptance_rate < 0.01 else PosteriorStatus.SUCCESS
    return _result(theta, log_post, estimator.prior.names, "smc", diagnostics, status)


def _importance_posterior(
    key, estimator, x_obs, num_samples, config: MCMCConfig
) -> PosteriorSamples:
    num_initial = max(config.num_initial, 10 * num_samples)
    u, log_w, index = initial_positions(key, estimator, x_obs, num_samples, num_initial)
    log_w = np.asarray(log_w, dtype=float)
    ess = kish_effective_sample_size(np.exp(log_w - log_w.max()))
    theta = estimator.prior.to_constrained(u[np.asarray(index)])
    log_post = estimator.log_posterior(theta, x_obs)
    status = PosteriorStatus.SUCCESS if ess >= 100 else PosteriorStatus.LOW_EFFECTIVE_SAMPLE_SIZE
    diagnostics = {"effective_sample_size": ess, "num_proposals": num_initial}
    return _result(theta, log_post, estimator.prior.names, "importance", diagnostics, status)


def _nuts_posterior(
    key_init, key_run, estimator, x_obs, num_samples, config: MCMCConfig
) -> PosteriorSamples:
    num_chains = config.num_chains
    per_chain = -(-num_samples // num_chains)
    u, _, index = initial_positions(key_init, estimator, x_obs, num_chains, config.num_initial)
    chains = nuts_chains(
        key_run, estimator, x_obs, u[np.asarray(index)], config.num_warmup, per_chain
    )
    positions = np.asarray(chains.samples)
    rhat = float(np.max(split_rhat(positions)))
    ess = float(np.min(effective_sample_size(positions))) if per_chain >= 4 else float("nan")
    flat_u = jnp.asarray(positions.reshape(-1, positions.shape[-1])[:num_samples])
    theta = estimator.prior.to_constrained(flat_u)
    log_post = np.asarray(chains.logdensity).reshape(-1)[:num_samples] - np.asarray(
        estimator.prior.log_abs_det_jacobian(flat_u)
    )
    num_divergent = int(np.asarray(chains.is_divergent).sum())
    if num_divergent > 0.01 * positions.shape[0] * positions.shape[1]:
        status = PosteriorStatus.DIVERGENCES
    elif rhat > 1.05:
        status = PosteriorStatus.POOR_MIXING
    else:
        status = PosteriorStatus.SUCCESS
    diagnostics = {
        "acceptance_rate": float(np.asarray(chains.acceptance_rate).mean()),
        "num_divergent": num_divergent,
        "split_rhat_max": rhat,
        "effective_sample_size_min": ess,
        "num_chains": num_chains,
    }
    return _result(theta, log_post, estimator.prior.names, "nuts", diagnostics, status)


def _check_observation(estimator: AbstractEstimator, x_obs: Any) -> Array:
    x_obs = as_float_array(x_obs, "x_obs")
    expected = int(np.prod(estimator.x_shift.shape))
    if x_obs.size != expected:
        raise ValueError(
            f"x_obs must have the training data's shape {tuple(estimator.x_shift.shape)}; "
            f"got {x_obs.shape}"
        )
    if not np.all(np.isfinite(x_obs)):
        raise ValueError("x_obs must be finite")
    return jnp.asarray(x_obs.reshape(estimator.x_shift.shape), jnp.float32)


def sample_posterior(
    key: PRNGKeyArray,
    estimator: AbstractEstimator,
    x_obs: Array | np.ndarray,
    num_samples: int,
    *,
    method: str = "auto",
    mcmc_config: MCMCConfig = MCMCConfig(),
    throw: bool = False,
) -> PosteriorSamples:
    """Draw posterior samples for one observation from a trained estimator.

    Args:
        key: JAX PRNG key.
        estimator: A trained :class:`~astrobayes.sbi.estimators.NPE`, ``NLE`` or ``NRE``.
        x_obs: One observation, of the training data's shape (no batch axis).
        num_samples: Number of draws.
        method: ``"auto"`` (direct for NPE, NUTS otherwise), ``"direct"`` (NPE only),
            ``"nuts"``, ``"importance"`` or ``"smc"`` (tempered SMC with as many
            particles as ``num_samples``, rounded up to even; prefer it for multimodal
            posteriors of a few parameters).
        mcmc_config: NUTS and SMC settings.
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        :class:`PosteriorSamples`.

    Raises:
        TypeError: If ``estimator`` is not an estimator.
        ValueError: If ``x_obs`` has the wrong shape or is not finite, or ``method`` is
            unknown or ``"direct"`` for a non-NPE estimator.
        UnreliableResultError: With ``throw=True``, on a failure status.

    """
    check_key(key)
    if not isinstance(estimator, AbstractEstimator):
        raise TypeError(f"estimator must be an NPE, NLE or NRE; got {type(estimator).__name__}")
    num_samples = check_positive_int(num_samples, "num_samples")
    x_obs = _check_observation(estimator, x_obs)
    if method == "auto":
        method = "direct" if isinstance(estimator, NPE) else "nuts"
    if method not in _METHODS:
        raise ValueError(
            f"method must be 'auto', 'direct', 'nuts', 'importance' or 'smc'; got {method!r}"
        )
    if method == "direct":
        if not isinstance(estimator, NPE):
            raise ValueError("method='direct' needs an NPE estimator; use 'nuts' or 'importance'")
        theta, log_q = eqx.filter_jit(_direct)(estimator, key, x_obs, num_samples)
        result = _result(theta, log_q, estimator.prior.names, "direct", {}, PosteriorStatus.SUCCESS)
        return check(result, throw)
    key_init, key_run = jax.random.split(key)
    if method == "smc":
        result = _smc_posterior(key_run, estimator, x_obs, num_samples, mcmc_config)
    elif method == "importance":
        result = _importance_posterior(key_init, estimator, x_obs, num_samples, mcmc_config)
    else:
        result = _nuts_posterior(key_init, key_run, estimator, x_obs, num_samples, mcmc_config)
    return check(result, throw)
