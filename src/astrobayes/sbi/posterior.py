"""Drawing posterior samples from a trained estimator for one observation.

* NPE: direct draws from the flow (exact for the learned density).
* NLE / NRE: NUTS (blackjax, window adaptation, many chains ``vmap``-ed) in the prior's
  unconstrained space on the learned unnormalised log posterior, chains started from a
  sampling-importance-resampling draw from the prior; or importance sampling from the
  prior (``method="importance"``), whose effective sample size is reported; or an
  adaptive tempered sequential Monte Carlo sampler (``method="smc"``) that moves a
  population of particles from the prior to the posterior, reweighting and resampling
  between temperatures and mutating with differential-evolution Metropolis moves. SMC
  weighs separated modes correctly (NUTS chains keep the modes their starting points
  fell in), needs no gradients and evaluates the estimator in large batches.

References:
    Hoffman & Gelman 2014, arXiv:1111.4246 (NUTS); Del Moral, Doucet & Jasra 2006,
    doi:10.1111/j.1467-9868.2006.00553.x (SMC samplers); Jasra, Stephens, Doucet &
    Tsagaris 2011, doi:10.1111/j.1467-9469.2010.00723.x (adaptive tempering);
    ter Braak 2006, doi:10.1007/s11222-006-8769-1 (differential-evolution MCMC).
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

from astrobayes._checks import as_float_array, check_fraction, check_key, check_positive_int
from astrobayes.sbi.estimators import NPE, AbstractEstimator

__all__ = ["MCMCConfig", "PosteriorSamples", "PosteriorStatus", "sample_posterior"]


class PosteriorStatus(enum.Enum):
    """Outcome of posterior sampling; the value is the message."""

    SUCCESS = "posterior samples drawn"
    DIVERGENCES = "MCMC reported divergent transitions; check the samples"
    LOW_ACCEPTANCE = "SMC mutation moves accepted under 1% of proposals at the posterior"
    LOW_EFFECTIVE_SAMPLE_SIZE = "importance sampling effective sample size below 100"
    POOR_MIXING = "chains disagree (split R-hat > 1.05)"


@dataclass(frozen=True)
class MCMCConfig:
    """NUTS settings for NLE / NRE posteriors.

    Attributes:
        num_chains: Parallel chains.
        num_warmup: Window-adaptation steps per chain.
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
        check_positive_int(self.num_warmup, "num_warmup")
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


@eqx.filter_jit
def _log_weights(estimator, x_obs, u):
    """Importance log weights of prior draws ``u`` (unconstrained), evaluated in chunks."""

    def one(u_i):
        return estimator.log_posterior_unconstrained(u_i, x_obs)

    log_u = jax.lax.map(one, u, batch_size=min(4096, u.shape[0]))
    log_w = log_u - estimator.prior.log_prob_unconstrained(u)
    return jnp.where(jnp.isfinite(log_w), log_w, -jnp.inf)


def _resample(key, log_w, num):
    """Multinomial resampling by inverse CDF (memory ``O(len(log_w) + num)``).

    ``jax.random.categorical`` with a sample shape draws Gumbel noise of shape
    ``(num, len(log_w))``, which does not fit in memory for a million proposals.
    """
    cdf = jnp.cumsum(jax.nn.softmax(log_w))
    index = jnp.searchsorted(cdf, jax.random.uniform(key, (num,)) * cdf[-1])
    return jnp.minimum(index, log_w.shape[0] - 1)


def _initial_positions(key, estimator, x_obs, num_positions, num_initial):
    key_prior, key_choice = jax.random.split(key)
    theta = estimator.prior.sample(key_prior, num_initial)
    u = estimator.prior.to_unconstrained(theta)
    log_w = _log_weights(estimator, x_obs, u)
    index = _resample(key_choice, log_w, num_positions)
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


@eqx.filter_jit
def _nuts(key, estimator, x_obs, initial, num_warmup: int, num_samples_per_chain: int):
    """NUTS chains on ``estimator``'s log posterior; jitted on the estimator as an argument.

    Passing the estimator (rather than closing over it) lets retrained estimators of the
    same architecture, as in sequential rounds, reuse the compiled program.
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
    return jax.vmap(one_chain)(keys, initial)


@eqx.filter_jit
def _log_likelihood_batch(estimator, x_obs, u):
    """``log_posterior_unconstrained - log_prior`` for each row of ``u``, in chunks."""

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
        log_l_proposal = _log_likelihood_batch(estimator, x_obs, proposal)
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


def _ess_fraction(log_w: np.ndarray) -> float:
    w = np.exp(log_w - np.max(log_w))
    return float(w.sum() ** 2 / (w**2).sum() / w.size)


def _smc(key, estimator, x_obs, num_particles, config: MCMCConfig):
    """Adaptive tempered SMC from the prior to the learned posterior.

    The next inverse temperature is the largest one keeping the effective sample size of
    the incremental weights at ``smc_ess_fraction`` of the particles (bisection);
    particles are then resampled (systematic) and mutated by :func:`_de_sweeps`.

    Returns:
        ``(u, log_likelihood, diagnostics)``.
    """
    key_prior, key_loop = jax.random.split(key)
    u = estimator.prior.to_unconstrained(estimator.prior.sample(key_prior, num_particles))
    log_l = _log_likelihood_batch(estimator, x_obs, u)
    beta, log_evidence = 0.0, 0.0
    betas, acceptance = [], []
    while beta < 1.0:
        key_loop, key_resample, key_shuffle, key_move = jax.random.split(key_loop, 4)
        ell = np.asarray(log_l, dtype=float)
        if not np.any(np.isfinite(ell)):
            raise ValueError("the learned log posterior is -inf or NaN at every prior draw")
        if _ess_fraction((1.0 - beta) * ell) >= config.smc_ess_fraction:
            step = 1.0 - beta
        else:
            low, high = 0.0, 1.0 - beta
            for _ in range(60):
                middle = 0.5 * (low + high)
                low, high = (
                    (middle, high)
                    if _ess_fraction(middle * ell) >= config.smc_ess_fraction
                    else (low, middle)
                )
            step = max(low, 1e-12)
        beta = 1.0 if step >= 1.0 - beta else beta + step
        log_w = np.where(np.isfinite(ell), step * ell, -np.inf)
        top = np.max(log_w)
        log_evidence += top + float(np.log(np.mean(np.exp(log_w - top))))
        cdf = np.cumsum(np.exp(log_w - top))
        uniform = float(jax.random.uniform(key_resample))
        index = np.searchsorted(cdf, (uniform + np.arange(num_particles)) / num_particles * cdf[-1])
        index = np.minimum(index, num_particles - 1)
        # Shuffle, so that the two halves of the population mix modes and ancestors.
        index = np.asarray(jax.random.permutation(key_shuffle, index))
        u, log_l = u[index], log_l[index]
        sweeps = config.smc_final_moves if beta >= 1.0 else config.smc_moves
        if sweeps > 0:
            u, log_l, rate = _de_sweeps(
                key_move, estimator, x_obs, u, log_l, jnp.float32(beta), jnp.int32(sweeps)
            )
            acceptance.append(float(rate))
        betas.append(beta)
    diagnostics = {
        "num_temperatures": len(betas),
        "temperatures": betas,
        "acceptance_rates": acceptance,
        "acceptance_rate": acceptance[-1] if acceptance else float("nan"),
        "log_evidence": log_evidence,
        "num_particles": num_particles,
    }
    return u, log_l, diagnostics


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
            ``"nuts"``, ``"importance"`` or ``"smc"`` (tempered SMC with as many
            particles as ``num_samples``, rounded up to even; prefer it for multimodal
            posteriors of a few parameters).
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
    if method not in ("direct", "nuts", "importance", "smc"):
        raise ValueError(
            f"method must be 'auto', 'direct', 'nuts', 'importance' or 'smc'; got {method!r}"
        )
    names = estimator.prior.names
    if method == "direct":
        if not isinstance(estimator, NPE):
            raise ValueError("method='direct' needs an NPE estimator; use 'nuts' or 'importance'")
        theta, log_q = eqx.filter_jit(_direct)(estimator, key, x_obs, num_samples)
        return PosteriorSamples(
            np.asarray(theta), np.asarray(log_q), names, "direct", {}, PosteriorStatus.SUCCESS
        )
    key_init, key_run = jax.random.split(key)
    if method == "smc":
        num_particles = max(4, num_samples + num_samples % 2)
        u, log_l, diagnostics = _smc(key_run, estimator, x_obs, num_particles, mcmc_config)
        u, log_l = u[:num_samples], log_l[:num_samples]
        theta = estimator.prior.to_constrained(u)
        log_post = np.asarray(
            log_l
            + estimator.prior.log_prob_unconstrained(u)
            - estimator.prior.log_abs_det_jacobian(u)
        )
        status = (
            PosteriorStatus.LOW_ACCEPTANCE
            if diagnostics["acceptance_rate"] < 0.01
            else PosteriorStatus.SUCCESS
        )
        return PosteriorSamples(np.asarray(theta), log_post, names, "smc", diagnostics, status)
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

    positions, log_u, acceptance, divergent = _nuts(
        key_run, estimator, x_obs, initial, mcmc_config.num_warmup, per_chain
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
