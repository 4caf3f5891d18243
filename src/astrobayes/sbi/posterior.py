"""Drawing posterior samples from a trained estimator for one observation.

* NPE: direct draws from the flow (exact for the learned density).
* NLE / NRE: NUTS (:func:`astrobayes.sbi.mcmc.nuts_chains` on the package's NUTS kernel) in
  the prior's unconstrained space on the learned unnormalised log posterior, chains
  started from a sampling-importance-resampling draw from the prior; or importance
  sampling from the prior (``method="importance"``), whose effective sample size is
  reported; or adaptive tempered SMC (``method="smc"``,
  :func:`astrobayes.sbi.smc.tempered_smc`), which weighs separated modes correctly.
* NLE / NRE, multimodal posteriors: the sampling module's flow-enhanced samplers on the
  same unconstrained log posterior, with the prior's support handled by the same map
  (``prior.to_unconstrained`` / ``to_constrained``) as NUTS: flow MCMC
  (``method="flow_mcmc"``, :func:`astrobayes.sampling.run_flow_mcmc`: MALA plus global
  proposals from a flow trained on the fly, chains started from prior draws) and
  preconditioned SMC (``method="preconditioned_smc"``, :func:`astrobayes.sampling.run_smc`:
  prior draws tempered through the learned likelihood, moves in a flow's latent space).

Every result carries a :class:`PosteriorStatus`: divergences, poor mixing (split R-hat
from :mod:`astrobayes.diagnostics`), a low importance ESS or a low SMC acceptance are
warnings; non-finite draws are a failure, which ``throw=True`` raises. A warning of flow
MCMC or preconditioned SMC (R-hat, ESS, rare global moves, capped moves, ...) is
``SAMPLER_WARNING`` and a failure of theirs ``SAMPLER_FAILURE``, with the sampler's own
status and messages in ``diagnostics["sampler_status"]`` / ``["sampler_messages"]``.

References:
    Hoffman & Gelman 2014, arXiv:1111.4246 (NUTS); Del Moral, Doucet & Jasra 2006,
    doi:10.1111/j.1467-9868.2006.00553.x (SMC samplers); Gabrié, Rotskoff &
    Vanden-Eijnden 2022, arXiv:2105.12603 (flow-enhanced MCMC); Karamanis et al. 2022,
    arXiv:2207.05652 (preconditioned SMC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_fraction, check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes.diagnostics import effective_sample_size, kish_effective_sample_size, split_rhat
from astrobayes.sampling import FlowMCMCConfig, SMCConfig, run_flow_mcmc, run_smc
from astrobayes.sbi.estimators import NPE, AbstractEstimator
from astrobayes.sbi.importance import initial_positions
from astrobayes.sbi.mcmc import estimator_logdensity, nuts_chains
from astrobayes.sbi.smc import tempered_smc

__all__ = ["MCMCConfig", "PosteriorSamples", "PosteriorStatus", "sample_posterior"]

_METHODS = ("direct", "nuts", "importance", "smc", "flow_mcmc", "preconditioned_smc")


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
    SAMPLER_WARNING = (
        Severity.WARNING,
        "the sampler (flow MCMC or preconditioned SMC) raised a warning; its status and "
        "messages are in diagnostics['sampler_status'] and diagnostics['sampler_messages']",
    )
    SAMPLER_FAILURE = (
        Severity.FAILURE,
        "the sampler (flow MCMC or preconditioned SMC) failed, so the draws must not be "
        "used; its status and messages are in diagnostics['sampler_status'] and "
        "diagnostics['sampler_messages']",
    )
    NON_FINITE = (
        Severity.FAILURE,
        "posterior draws or their log densities are not finite (NaN or +inf); the "
        "estimator is broken for this observation",
    )


@dataclass(frozen=True)
class MCMCConfig:
    """Sampler settings for NLE / NRE posteriors (NUTS, SMC, flow MCMC, preconditioned SMC).

    In TOML (``astrobayes sbi``) this is the ``[mcmc]`` table; the two optional samplers'
    settings are its sub-tables ``[mcmc.flow_mcmc]`` and ``[mcmc.preconditioned_smc]``.

    Attributes:
        num_chains: Parallel chains (NUTS).
        num_warmup: Window-adaptation steps per chain (at least 10).
        num_initial: Prior draws for the importance-resampled starting points.
        smc_moves: SMC mutation sweeps per intermediate temperature.
        smc_final_moves: SMC mutation sweeps at the posterior (temperature 1).
        smc_ess_fraction: Target effective-sample-size fraction that sets each SMC
            temperature increment.
        flow_mcmc: :class:`~astrobayes.sampling.FlowMCMCConfig` of ``method="flow_mcmc"``
            (its defaults when ``None``); it must keep at least ``num_samples`` draws,
            ``num_chains * num_loops_production * (num_local_steps + num_global_steps)``.
        preconditioned_smc: :class:`~astrobayes.sampling.SMCConfig` of
            ``method="preconditioned_smc"``; when ``None``, its defaults with
            ``max(num_samples, 2000)`` particles. ``num_particles`` must be at least
            ``num_samples``.

    Example:
        >>> from astrobayes.sampling import FlowMCMCConfig
        >>> MCMCConfig(flow_mcmc=FlowMCMCConfig(num_chains=16)).flow_mcmc.num_chains
        16

    """

    num_chains: int = 20
    num_warmup: int = 300
    num_initial: int = 10_000
    smc_moves: int = 5
    smc_final_moves: int = 30
    smc_ess_fraction: float = 0.5
    flow_mcmc: FlowMCMCConfig | None = None
    preconditioned_smc: SMCConfig | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.num_chains, "num_chains")
        check_positive_int(self.num_warmup, "num_warmup", minimum=10)
        check_positive_int(self.num_initial, "num_initial")
        check_positive_int(self.smc_moves, "smc_moves", minimum=0)
        check_positive_int(self.smc_final_moves, "smc_final_moves", minimum=0)
        check_fraction(self.smc_ess_fraction, "smc_ess_fraction")
        if self.flow_mcmc is not None and not isinstance(self.flow_mcmc, FlowMCMCConfig):
            raise TypeError(
                f"flow_mcmc must be a FlowMCMCConfig or None; got {type(self.flow_mcmc).__name__}"
            )
        if self.preconditioned_smc is not None and not isinstance(
            self.preconditioned_smc, SMCConfig
        ):
            raise TypeError(
                "preconditioned_smc must be an SMCConfig or None; got "
                f"{type(self.preconditioned_smc).__name__}"
            )


class PosteriorSamples(NamedTuple):
    """Posterior draws for one observation.

    Attributes:
        samples: Draws in the original parameter space, ``(num_samples, dim)``.
        log_posterior: Learned log posterior of each draw (unnormalised for NLE/NRE),
            ``(num_samples,)``.
        names: Parameter names.
        method: ``"direct"``, ``"nuts"``, ``"importance"``, ``"smc"``, ``"flow_mcmc"`` or
            ``"preconditioned_smc"``.
        diagnostics: Method-specific numbers (acceptance rate, divergences, R-hat, ESS;
            for SMC the temperatures, acceptance per temperature and the log evidence
            of the learned posterior's unnormalised density; for flow MCMC R-hat, ESS,
            local and global acceptance and the flow's importance-sampling log evidence;
            for preconditioned SMC the log evidence with its error; for the last two the
            sampler's own ``sampler_status`` and ``sampler_messages``).
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


def _from_sampler(status: Status) -> PosteriorStatus:
    """A flow-MCMC / preconditioned-SMC status by its severity (its message is kept apart)."""
    if status.is_failure:
        return PosteriorStatus.SAMPLER_FAILURE
    if status.is_warning:
        return PosteriorStatus.SAMPLER_WARNING
    return PosteriorStatus.SUCCESS


def _estimator_log_likelihood(
    params: tuple[AbstractEstimator, Array], u: Float[Array, " dim"]
) -> Float[Array, ""]:
    """Learned log likelihood (NLE) or log ratio (NRE) of unconstrained ``u``.

    The log posterior of :func:`~astrobayes.sbi.mcmc.estimator_logdensity` minus the log
    prior density in the unconstrained space.
    """
    estimator, _ = params
    return estimator_logdensity(params, u) - estimator.prior.log_prob_unconstrained(u)


def _flow_mcmc_settings(config: MCMCConfig, num_samples: int) -> FlowMCMCConfig:
    settings = FlowMCMCConfig() if config.flow_mcmc is None else config.flow_mcmc
    num_kept = (
        settings.num_chains
        * settings.num_loops_production
        * (settings.num_local_steps + settings.num_global_steps)
    )
    if num_samples > num_kept:
        raise ValueError(
            f"num_samples = {num_samples} exceeds the {num_kept} draws flow MCMC keeps "
            "(num_chains * num_loops_production * (num_local_steps + num_global_steps)); "
            "raise mcmc_config.flow_mcmc.num_loops_production or ask for fewer samples"
        )
    return settings


def _smc_settings(config: MCMCConfig, num_samples: int) -> SMCConfig:
    if config.preconditioned_smc is None:
        return SMCConfig(num_particles=max(num_samples, SMCConfig().num_particles))
    settings = config.preconditioned_smc
    if settings.num_particles < num_samples:
        raise ValueError(
            f"num_samples = {num_samples} exceeds mcmc_config.preconditioned_smc.num_particles "
            f"= {settings.num_particles}; raise num_particles or ask for fewer samples"
        )
    return settings


def _flow_mcmc_posterior(
    key_init, key_run, estimator, x_obs, num_samples, settings: FlowMCMCConfig
) -> PosteriorSamples:
    prior = estimator.prior
    start = prior.to_unconstrained(prior.sample(key_init, settings.num_chains))
    # A PyTree (estimator and x_obs are traced arguments), so the compiled blocks are reused.
    logdensity_fn = eqx.Partial(estimator_logdensity, (estimator, x_obs))
    run = run_flow_mcmc(key_run, logdensity_fn, start, config=settings, names=prior.names)
    num_chains, num_steps, dim = run.samples.shape
    # Evenly spaced in chain-major order: every chain gives num_samples / num_chains draws
    # (+-1), spread over its production steps.
    index = np.round(np.linspace(0, num_chains * num_steps - 1, num_samples)).astype(int)
    flat_u = jnp.asarray(run.samples.reshape(-1, dim)[index], jnp.result_type(float))
    log_post = run.logdensity.reshape(-1)[index] - np.asarray(
        prior.log_abs_det_jacobian(flat_u), np.float64
    )
    diagnostics = {
        "split_rhat_max": float(np.max(run.rhat)),
        "effective_sample_size_min": float(np.min(run.ess)),
        "acceptance_rate": float(np.mean(run.local_acceptance)),
        "global_acceptance_rate": float(np.mean(run.global_acceptance)),
        "num_chains": num_chains,
        "num_draws": num_chains * num_steps,
        "num_logdensity_evaluations": run.num_logdensity_evaluations,
        "log_evidence": run.flow_log_evidence,
        "log_evidence_std": run.flow_log_evidence_std,
        "flow_pareto_k": run.flow_pareto_k,
        "sampler_status": run.status,
        "sampler_messages": [status.value for status in run.messages if not status.is_ok],
    }
    theta = prior.to_constrained(flat_u)
    status = _from_sampler(run.status)
    return _result(theta, log_post, prior.names, "flow_mcmc", diagnostics, status)


def _preconditioned_smc_posterior(
    key_init, key_run, estimator, x_obs, num_samples, settings: SMCConfig
) -> PosteriorSamples:
    prior = estimator.prior
    start = prior.to_unconstrained(prior.sample(key_init, settings.num_particles))
    run = run_smc(
        key_run,
        eqx.Partial(_estimator_log_likelihood, (estimator, x_obs)),
        prior.log_prob_unconstrained,
        start,
        config=settings,
        names=prior.names,
    )
    # The particles are shuffled at every resampling: the first num_samples are a random subset.
    u = jnp.asarray(run.samples[:num_samples], jnp.result_type(float))
    log_post = run.log_likelihood[:num_samples] + np.asarray(
        prior.log_prob_unconstrained(u) - prior.log_abs_det_jacobian(u), np.float64
    )
    diagnostics = {
        "num_temperatures": len(run.temperatures) - 1,
        "temperatures": run.temperatures[1:].tolist(),
        "acceptance_rates": run.acceptance.tolist(),
        "acceptance_rate": float(run.acceptance[-1]) if run.acceptance.size else float("nan"),
        "num_mcmc_steps": run.num_mcmc_steps.tolist(),
        "log_evidence": run.log_evidence,
        "log_evidence_std": run.log_evidence_std,
        "num_particles": settings.num_particles,
        "num_ancestors": run.num_ancestors,
        "num_logdensity_evaluations": run.num_logdensity_evaluations,
        "sampler_status": run.status,
        "sampler_messages": [status.value for status in run.messages if not status.is_ok],
    }
    theta = prior.to_constrained(u)
    status = _from_sampler(run.status)
    return _result(theta, log_post, prior.names, "preconditioned_smc", diagnostics, status)


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
    return jnp.asarray(x_obs.reshape(estimator.x_shift.shape), jnp.result_type(float))


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
            ``"nuts"``, ``"importance"``, ``"smc"`` (tempered SMC with as many
            particles as ``num_samples``, rounded up to even; prefer it for multimodal
            posteriors of a few parameters), ``"flow_mcmc"`` (flow-enhanced MCMC from
            prior draws; draws evenly thinned over chains and production steps) or
            ``"preconditioned_smc"`` (flow-preconditioned tempered SMC from prior draws;
            the first ``num_samples`` of its shuffled particles). The last two suit
            multimodal posteriors and report ``log_evidence`` with an error.
        mcmc_config: NUTS, SMC, flow-MCMC and preconditioned-SMC settings.
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        :class:`PosteriorSamples`.

    Raises:
        TypeError: If ``estimator`` is not an estimator or ``mcmc_config`` not an
            :class:`MCMCConfig`.
        ValueError: If ``x_obs`` has the wrong shape or is not finite, ``method`` is
            unknown or ``"direct"`` for a non-NPE estimator, or ``num_samples`` exceeds
            the draws flow MCMC keeps / the preconditioned SMC's particles.
        UnreliableResultError: With ``throw=True``, on a failure status.

    Example:
        >>> import jax
        >>> from astrobayes.sbi.estimators import AbstractEstimator
        >>> from astrobayes.sbi.priors import Prior
        >>> class Bimodal(AbstractEstimator):  # a "learned" likelihood N(x; |theta|, 0.3^2)
        ...     prior: Prior
        ...     u_shift: Array
        ...     u_scale: Array
        ...     x_shift: Array
        ...     x_scale: Array
        ...     def __init__(self):
        ...         self.prior = Prior.uniform([-3.0], [3.0])
        ...         self.u_shift, self.u_scale = jnp.zeros(1), jnp.ones(1)
        ...         self.x_shift, self.x_scale = jnp.zeros(1), jnp.ones(1)
        ...     def log_posterior_unconstrained(self, u, x):
        ...         theta = self.prior.to_constrained(u)
        ...         log_l = -0.5 * jnp.sum((x - jnp.abs(theta)) ** 2) / 0.09
        ...         return log_l + self.prior.log_prob_unconstrained(u)
        >>> config = MCMCConfig(preconditioned_smc=SMCConfig(num_particles=200,
        ...     preconditioner="diagonal"))
        >>> draws = sample_posterior(jax.random.key(0), Bimodal(), [1.5], 200,
        ...     method="preconditioned_smc", mcmc_config=config)
        >>> draws.samples.shape, bool(0.3 < (draws.samples < 0).mean() < 0.7)
        ((200, 1), True)

    """
    check_key(key)
    if not isinstance(estimator, AbstractEstimator):
        raise TypeError(f"estimator must be an NPE, NLE or NRE; got {type(estimator).__name__}")
    if not isinstance(mcmc_config, MCMCConfig):
        raise TypeError(f"mcmc_config must be an MCMCConfig; got {type(mcmc_config).__name__}")
    num_samples = check_positive_int(num_samples, "num_samples")
    x_obs = _check_observation(estimator, x_obs)
    if method == "auto":
        method = "direct" if isinstance(estimator, NPE) else "nuts"
    if method not in _METHODS:
        choices = ", ".join(repr(m) for m in ("auto", *_METHODS))
        raise ValueError(f"method must be one of {choices}; got {method!r}")
    if method == "direct":
        if not isinstance(estimator, NPE):
            raise ValueError("method='direct' needs an NPE estimator; use 'nuts' or 'importance'")
        theta, log_q = eqx.filter_jit(_direct)(estimator, key, x_obs, num_samples)
        result = _result(theta, log_q, estimator.prior.names, "direct", {}, PosteriorStatus.SUCCESS)
        return check(result, throw)
    key_init, key_run = jax.random.split(key)
    if method == "flow_mcmc":
        settings = _flow_mcmc_settings(mcmc_config, num_samples)
        result = _flow_mcmc_posterior(key_init, key_run, estimator, x_obs, num_samples, settings)
    elif method == "preconditioned_smc":
        settings = _smc_settings(mcmc_config, num_samples)
        result = _preconditioned_smc_posterior(
            key_init, key_run, estimator, x_obs, num_samples, settings
        )
    elif method == "smc":
        result = _smc_posterior(key_run, estimator, x_obs, num_samples, mcmc_config)
    elif method == "importance":
        result = _importance_posterior(key_init, estimator, x_obs, num_samples, mcmc_config)
    else:
        result = _nuts_posterior(key_init, key_run, estimator, x_obs, num_samples, mcmc_config)
    return check(result, throw)
