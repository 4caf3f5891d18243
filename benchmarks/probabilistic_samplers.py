"""Flow-enhanced MCMC, preconditioned SMC, NUTS and peers on posteriors with known truth.

The sampler section of ``benchmarks/probabilistic_dl.py`` (``--task mixture``, ``banana``,
``dualmoon`` there run this file). Every method runs in ONE process, side by side, on the
same likelihood and the same prior ``N(0, s^2 I)``:

* astrobayes ``run_flow_mcmc`` (MALA + flow proposals, chains started from prior draws,
  ``FlowMCMCConfig`` defaults unless overridden), with ``ln z`` by the learned harmonic mean
  on its chains (``evidence.estimate``, default flow target and
  ``evidence.GaussianMixtureTarget``) and by importance sampling with the production flow;
* astrobayes ``run_smc`` (flow-preconditioned tempered SMC, defaults: 2,000 particles);
* NUTS alone (``run_nuts``, chains from the same prior draws): the negative control;
* peers, each skipped with a message when it does not import: dynesty static
  (``NestedSampler`` defaults, ``nlive=500``), nautilus (``Sampler`` defaults) and pocoMC
  (``Sampler`` defaults). pocoMC is GPL-3 and torch-based: it is installed by hand for this
  comparison only (``pip install --no-deps torch==2.13.0 pocomc zuko multiprocess filelock``)
  and is deliberately NOT in any ``pyproject.toml`` extra: astrobayes never depends on GPL code.

Targets (``--task``), with truths computed independently of any sampler:

* ``mixture``: ``--dim``-d likelihood made of three isotropic Gaussians with weights
  0.5 / 0.3 / 0.2 and scales ``--scales``, modes at (-4, ..., -4), (4, ..., 4) and
  (4, -4, 4, ...), prior ``N(0, 6^2 I)``: the posterior is a Gaussian mixture, so its mode
  weights and ``ln z`` are analytic;
* ``banana``: the Rosenbrock-type likelihood ``-[(1 - x)^2 + 100 (y - x^2)^2] / 20`` under
  ``N(0, 3^2 I)``; ``ln z``, the posterior means and standard deviations by 2-d quadrature
  (trapezoid rule in ``(x, u = y - x^2)``, unit Jacobian; checked by halving the grid);
* ``dualmoon``: a ring of radius 2 and width 0.1 times two bumps along ``x`` at -2 / +2
  with weights 0.7 / 0.3 and width 0.5 (a ~8-nat barrier along the ring between them),
  under ``N(0, 3^2 I)``; ``ln z`` and the mode weights (``x < 0`` / ``x > 0``) by quadrature
  in polar coordinates.

Likelihood calls are counted the same way for every method: the JAX log likelihood is
wrapped by :class:`CountingLikelihood`, whose host callback adds the number of points of
every *executed* evaluation (a value-and-gradient counts as one; NUTS's vmapped trees also
evaluate the masked lanes of chains whose trajectory already ended, so its count is what
was computed, not what a one-chain NUTS would need). For each method the script prints the
summaries (mode weights or posterior means) against the truth, max split R-hat where
defined, ``ln z`` with its error and pull, likelihood calls, wall and CPU seconds, the
status, and the ratios of calls and CPU seconds to flow MCMC + learned harmonic mean.

Usage: OMP_NUM_THREADS=1 python benchmarks/probabilistic_dl.py [--task mixture|banana|
dualmoon] [--dim 10] [--scales 1,1,1] [--seed 0] [--methods flow,smc,nuts]
[--peers dynesty,nautilus,pocomc] [--local-steps N] [--global-steps N]
[--production-loops N] [--training-loops N] [--burnin N] [--chains 64]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp, ndtri
from timing import Stopwatch

from astrobayes.evidence import GaussianMixtureTarget, PretrainedFlowTarget, estimate
from astrobayes.sampling import (
    FlowMCMCConfig,
    NUTSConfig,
    SMCConfig,
    run_flow_mcmc,
    run_nuts,
    run_smc,
)

MIXTURE_PRIOR_SCALE = 6.0
WEIGHTS = np.array([0.5, 0.3, 0.2])
#: Accepted relative error of a mode weight (issue 18's acceptance line).
WEIGHT_TOLERANCE = 0.05


class Target(NamedTuple):
    """A posterior with independently known ``ln z`` and summaries.

    ``summary_fn`` maps draws ``(..., dim)`` to per-draw values ``(..., k)`` whose posterior
    means are the summaries (mode indicators for weights, coordinates for means); errors are
    divided by ``error_scale`` (the truth for weights: relative errors; the posterior
    standard deviation for means).
    """

    name: str
    dim: int
    log_likelihood: Callable
    prior_scale: float
    log_z: float
    summary_names: tuple[str, ...]
    summary_fn: Callable
    truth: np.ndarray
    error_scale: np.ndarray
    error_label: str
    tolerance: float


class CountingLikelihood:
    """A JAX log likelihood that counts its executed evaluations on the host.

    ``jax.pure_callback`` (``vmap_method="expand_dims"``: one host call per batch) adds the
    number of points evaluated; its zero output is added to the value so that it is never
    removed, and its input is ``stop_gradient``-ed so gradients pass through the likelihood
    only. A gradient-only evaluation (no value used) is not counted; every sampler here
    evaluates value and gradient together.
    """

    def __init__(self, fn: Callable):
        self.fn = fn
        self.calls = 0

    def _bump(self, x):
        self.calls += int(np.prod(np.shape(x)[:-1]))
        return np.zeros(np.shape(x)[:-1], np.float32)

    def __call__(self, x):
        value = self.fn(x)
        zero = jax.pure_callback(
            self._bump,
            jax.ShapeDtypeStruct(jnp.shape(value), jnp.float32),
            jax.lax.stop_gradient(x),
            vmap_method="expand_dims",
        )
        return value + zero.astype(value.dtype)


def gaussian_log_prior(scale: float) -> Callable:
    """Normalised log density of ``N(0, scale^2 I)``."""

    def log_prior(x):
        return -0.5 * jnp.sum(x**2) / scale**2 - x.shape[-1] * (
            np.log(scale) + 0.5 * np.log(2 * np.pi)
        )

    return log_prior


def mixture(dim: int, scales: np.ndarray):
    """Means, log likelihood, log prior, analytic posterior weights and ln z."""
    means = np.zeros((3, dim))
    means[0], means[1] = -4.0, 4.0
    means[2] = np.tile([4.0, -4.0], dim)[:dim]
    m, w, s = jnp.asarray(means), jnp.asarray(WEIGHTS), jnp.asarray(scales)

    def log_likelihood(x):
        d2 = jnp.sum((x[None, :] - m) ** 2, axis=-1)
        terms = jnp.log(w) - 0.5 * d2 / s**2 - dim * jnp.log(s) - 0.5 * dim * np.log(2 * np.pi)
        return logsumexp(terms)

    variance = scales**2 + MIXTURE_PRIOR_SCALE**2
    log_z_k = (
        np.log(WEIGHTS)
        - 0.5 * np.sum(means**2, axis=1) / variance
        - 0.5 * dim * np.log(2 * np.pi * variance)
    )
    log_z = float(np.logaddexp.reduce(log_z_k))
    return (
        means,
        log_likelihood,
        gaussian_log_prior(MIXTURE_PRIOR_SCALE),
        np.exp(log_z_k - log_z),
        log_z,
    )


def mixture_target(dim: int, scales: np.ndarray) -> Target:
    """The 10-20-d three-mode mixture with analytic weights and ``ln z``."""
    means, log_likelihood, _, weights, log_z = mixture(dim, scales)

    def nearest_mode(x):
        label = np.argmin(((np.asarray(x)[..., None, :] - means) ** 2).sum(-1), axis=-1)
        return (label[..., None] == np.arange(len(means))).astype(np.float64)

    return Target(
        f"{dim}-d three-mode mixture (scales {scales.tolist()})",
        dim,
        log_likelihood,
        MIXTURE_PRIOR_SCALE,
        log_z,
        ("w1", "w2", "w3"),
        nearest_mode,
        weights,
        weights,
        "relative errors",
        WEIGHT_TOLERANCE,
    )


def _trapezoid_log_integral(log_f: np.ndarray, *steps: float) -> float:
    """ln of the trapezoid-rule integral of ``exp(log_f)`` over a regular grid (last axes)."""
    top = np.max(log_f)
    f = np.exp(log_f - top)
    for step in steps[::-1]:
        f = np.trapezoid(f, dx=step, axis=-1)
    return float(np.log(f) + top)


def banana_quadrature(step_x: float = 0.01, step_u: float = 0.004):
    """``ln z``, means and standard deviations of the banana posterior by quadrature.

    In ``(x, u = y - x^2)`` (unit Jacobian) the likelihood is ``-(1 - x)^2 / 20 - 5 u^2``:
    smooth and separable up to the prior, so the trapezoid rule on ``x in [-10, 10]``,
    ``u in [-3, 3]`` converges fast (the integrand is below e^-40 of its peak at the edges).
    """
    x = np.arange(-10.0, 10.0 + step_x / 2, step_x)[:, None]
    u = np.arange(-3.0, 3.0 + step_u / 2, step_u)[None, :]
    y = u + x**2
    scale = 3.0
    log_f = (
        -((1 - x) ** 2) / 20.0
        - 5.0 * u**2
        - 0.5 * (x**2 + y**2) / scale**2
        - 2 * np.log(scale)
        - np.log(2 * np.pi)
    )
    log_z = _trapezoid_log_integral(log_f, step_x, step_u)
    p = np.exp(log_f - log_z)

    def moment(g):
        return float(np.trapezoid(np.trapezoid(p * g, dx=step_u, axis=1), dx=step_x, axis=0))

    mean = np.array([moment(x + 0 * u), moment(y)])
    std = np.sqrt(np.array([moment((x + 0 * u) ** 2), moment(y**2)]) - mean**2)
    return log_z, mean, std


def banana_target() -> Target:
    """Rosenbrock-type banana under ``N(0, 3^2 I)``; truths by quadrature."""

    def log_likelihood(z):
        return -((1.0 - z[0]) ** 2 + 100.0 * (z[1] - z[0] ** 2) ** 2) / 20.0

    log_z, mean, std = banana_quadrature()
    check, _, _ = banana_quadrature(0.005, 0.002)
    print(f"banana quadrature: ln z {log_z:.6f} (half the grid steps: {check:.6f})")
    return Target(
        "2-d Rosenbrock banana",
        2,
        log_likelihood,
        3.0,
        log_z,
        ("E[x]", "E[y]"),
        lambda z: np.asarray(z, np.float64),
        mean,
        std,
        "errors / posterior std",
        0.1,
    )


#: Dual moon: ring radius and width, bump centres, widths and weights.
RING_RADIUS, RING_WIDTH, BUMP_WIDTH = 2.0, 0.1, 0.5
BUMP_WEIGHTS = np.array([0.7, 0.3])


def dual_moon_log_likelihood(z):
    """Ring of radius 2 (width 0.1) times bumps at x = -2 / +2 (weights 0.7 / 0.3)."""
    radius = jnp.sqrt(jnp.sum(z**2) + 1e-12)
    ring = -0.5 * ((radius - RING_RADIUS) / RING_WIDTH) ** 2
    bumps = jnp.logaddexp(
        np.log(BUMP_WEIGHTS[0]) - 0.5 * ((z[0] + RING_RADIUS) / BUMP_WIDTH) ** 2,
        np.log(BUMP_WEIGHTS[1]) - 0.5 * ((z[0] - RING_RADIUS) / BUMP_WIDTH) ** 2,
    )
    return ring + bumps


def dual_moon_quadrature(num_r: int = 2001, num_theta: int = 4096):
    """``ln z`` and the weights of ``x < 0`` / ``x > 0`` by quadrature in polar coordinates.

    ``r in [1, 3]`` (the ring factor is below e^-50 outside), ``theta`` on a periodic grid
    offset from the half-plane boundaries (the trapezoid rule is spectrally accurate for
    periodic integrands).
    """
    r = np.linspace(1.0, 3.0, num_r)[:, None]
    theta = (np.arange(num_theta) + 0.5) * 2 * np.pi / num_theta
    x, y = r * np.cos(theta)[None, :], r * np.sin(theta)[None, :]
    scale = 3.0
    ring = -0.5 * ((r - RING_RADIUS) / RING_WIDTH) ** 2
    bumps = np.logaddexp(
        np.log(BUMP_WEIGHTS[0]) - 0.5 * ((x + RING_RADIUS) / BUMP_WIDTH) ** 2,
        np.log(BUMP_WEIGHTS[1]) - 0.5 * ((x - RING_RADIUS) / BUMP_WIDTH) ** 2,
    )
    log_f = (
        ring
        + bumps
        - 0.5 * (x**2 + y**2) / scale**2
        - 2 * np.log(scale)
        - np.log(2 * np.pi)
        + np.log(r)
    )
    top = np.max(log_f)
    f = np.exp(log_f - top)
    dr, dtheta = r[1, 0] - r[0, 0], 2 * np.pi / num_theta
    left = np.trapezoid(np.sum(f * (x < 0), axis=1) * dtheta, dx=dr)
    right = np.trapezoid(np.sum(f * (x > 0), axis=1) * dtheta, dx=dr)
    log_z = float(np.log(left + right) + top)
    return log_z, np.array([left, right]) / (left + right)


def dual_moon_target() -> Target:
    """Dual moon with unequal bumps under ``N(0, 3^2 I)``; truths by quadrature."""
    log_z, weights = dual_moon_quadrature()
    check, check_w = dual_moon_quadrature(4001, 8192)
    print(
        f"dual-moon quadrature: ln z {log_z:.6f}, weights {weights.round(6)} "
        f"(double grid: {check:.6f}, {check_w.round(6)})"
    )

    def half_plane(z):
        x = np.asarray(z, np.float64)[..., 0]
        return np.stack([x < 0, x >= 0], axis=-1).astype(np.float64)

    return Target(
        "2-d dual moon (bump weights 0.7 / 0.3)",
        2,
        dual_moon_log_likelihood,
        3.0,
        log_z,
        ("w(x<0)", "w(x>0)"),
        half_plane,
        weights,
        weights,
        "relative errors",
        WEIGHT_TOLERANCE,
    )


class Row(NamedTuple):
    """One method's line of the summary table."""

    method: str
    summaries: np.ndarray
    max_rhat: float
    log_z: float
    log_z_std: float
    calls: int
    wall: float
    cpu: float
    status: str


def chain_summaries(target: Target, samples: np.ndarray):
    """Summaries of ``(chains, draws, dim)`` samples with per-chain batch-means errors."""
    per_chain = target.summary_fn(samples).mean(axis=1)
    return per_chain.mean(0), per_chain.std(0, ddof=1) / np.sqrt(per_chain.shape[0])


def weighted_summaries(target: Target, samples: np.ndarray, log_weights: np.ndarray):
    """Summaries of importance-weighted draws (nested samplers, pocoMC)."""
    w = np.exp(np.asarray(log_weights, np.float64) - np.max(log_weights))
    return (w[:, None] * target.summary_fn(samples)).sum(0) / w.sum()


def describe(target: Target, label: str, summaries, errors=None) -> str:
    """Summaries, their errors against the truth, and whether all are within tolerance."""
    scaled = np.abs(np.asarray(summaries) - target.truth) / target.error_scale
    within = "within" if np.all(scaled < target.tolerance) else "NOT within"
    spread = "" if errors is None else f" +- {np.round(errors, 4)}"
    return (
        f"  {label} {np.round(summaries, 4)}{spread}; {target.error_label} "
        f"{np.round(scaled, 4)} ({within} {target.tolerance})"
    )


def describe_log_z(target: Target, log_z: float, std: float | None) -> str:
    """``ln z`` with its error and pull against the truth."""
    if std is None or not np.isfinite(std) or std <= 0:
        return f"ln z {log_z:.4f} (no error; off by {log_z - target.log_z:+.4f})"
    return f"ln z {log_z:.4f} +- {std:.4f} (pull {(log_z - target.log_z) / std:+.2f})"


def flow_config(args) -> FlowMCMCConfig:
    """``FlowMCMCConfig`` defaults with the command line's overrides."""
    overrides = {
        "num_local_steps": args.local_steps,
        "num_global_steps": args.global_steps,
        "num_loops_production": args.production_loops,
        "num_loops_training": args.training_loops,
        "num_burnin_steps": args.burnin,
    }
    return FlowMCMCConfig(
        num_chains=args.chains, **{k: v for k, v in overrides.items() if v is not None}
    )


def run_flow(key, target: Target, init, args, rows: list) -> None:
    """Flow MCMC, the learned harmonic mean (two targets) and the flow's IS evidence."""
    flow_key, evidence_key = jax.random.split(key)
    counted = CountingLikelihood(target.log_likelihood)
    log_prior = gaussian_log_prior(target.prior_scale)
    config = flow_config(args)
    clock, flow_lhm, mixture_lhm, own_lhm = Stopwatch(), Stopwatch(), Stopwatch(), Stopwatch()
    with clock():
        result = run_flow_mcmc(flow_key, lambda x: counted(x) + log_prior(x), init, config=config)
    with flow_lhm():
        evidence = estimate(evidence_key, result.to_chains())
    with mixture_lhm():
        mixture_evidence = estimate(
            evidence_key, result.to_chains(), target=GaussianMixtureTarget()
        )
    with own_lhm():  # the sampler's own frozen flow as the target: no second training
        proposal = result.proposal
        own_evidence = estimate(
            evidence_key,
            result.to_chains(),
            target=PretrainedFlowTarget(
                proposal.flow, np.asarray(proposal.mean), np.asarray(proposal.scale)
            ),
        )
    shares, errors = chain_summaries(target, result.samples)
    rhat = float(np.max(result.rhat))
    status = "/".join(m.name for m in result.messages) or result.status.name
    print(
        f"\nflow MCMC ({config.num_burnin_steps} burn-in steps, {config.num_loops_training} training + {config.num_loops_production} "
        f"production loops of {config.num_local_steps} local + {config.num_global_steps} "
        f"global steps, {config.num_chains} chains): status {status}; max R-hat {rhat:.4f}, "
        f"min ESS {np.min(result.ess):.0f}; local/global acceptance "
        f"{result.local_acceptance.mean():.3f}/{result.global_acceptance.mean():.3f}; "
        f"{counted.calls} counted likelihood calls ({result.num_logdensity_evaluations} "
        f"log-density calls by its own count)"
    )
    print(describe(target, "summaries", shares, errors))
    for label, ev, extra in (
        ("learned harmonic mean, flow target", evidence, flow_lhm),
        ("learned harmonic mean, Gaussian-mixture target", mixture_evidence, mixture_lhm),
        ("learned harmonic mean, the sampler's flow as target", own_evidence, own_lhm),
    ):
        print(
            f"  {label}: {describe_log_z(target, ev.log_evidence, ev.log_evidence_std)}, status "
            f"{ev.status.name}, T {ev.temperature}, Pareto k {ev.pareto_k:.2f}, "
            f"{extra.cpu:.1f} CPU s"
        )
        rows.append(
            Row(
                f"flow MCMC + LHM ({label.split(', ')[1]})",
                shares,
                rhat,
                ev.log_evidence,
                ev.log_evidence_std,
                counted.calls,
                clock.wall + extra.wall,
                clock.cpu + extra.cpu,
                f"{status}; LHM {ev.status.name}",
            )
        )
    print(
        f"  flow importance sampling: "
        f"{describe_log_z(target, result.flow_log_evidence, result.flow_log_evidence_std)}, "
        f"Pareto k {result.flow_pareto_k:.2f}"
    )
    rows.append(
        Row(
            "flow MCMC, flow importance-sampling ln z",
            shares,
            rhat,
            result.flow_log_evidence,
            result.flow_log_evidence_std,
            counted.calls,
            clock.wall,
            clock.cpu,
            f"{status}; Pareto k {result.flow_pareto_k:.2f}",
        )
    )


def run_smc_method(key, target: Target, rows: list) -> None:
    """Flow-preconditioned tempered SMC with its defaults."""
    config = SMCConfig()
    counted = CountingLikelihood(target.log_likelihood)
    init_key, smc_key = jax.random.split(key)
    init = target.prior_scale * jax.random.normal(init_key, (config.num_particles, target.dim))
    clock = Stopwatch()
    with clock():
        smc = run_smc(smc_key, counted, gaussian_log_prior(target.prior_scale), init, config=config)
    shares = target.summary_fn(smc.samples).mean(0)
    status = "/".join(m.name for m in smc.messages)
    print(
        f"\npreconditioned SMC ({config.num_particles} particles, {config.preconditioner} "
        f"preconditioner): status {status}; {len(smc.temperatures) - 1} temperatures; "
        f"{counted.calls} counted calls ({smc.num_logdensity_evaluations} by its own count)"
    )
    print(describe(target, "summaries", shares))
    print(f"  {describe_log_z(target, smc.log_evidence, smc.log_evidence_std)}")
    rows.append(
        Row(
            "preconditioned SMC (run_smc)",
            shares,
            float("nan"),
            smc.log_evidence,
            smc.log_evidence_std,
            counted.calls,
            clock.wall,
            clock.cpu,
            status,
        )
    )


def run_nuts_control(key, target: Target, init, rows: list) -> None:
    """NUTS alone from the same starting points: the negative control."""
    counted = CountingLikelihood(target.log_likelihood)
    log_prior = gaussian_log_prior(target.prior_scale)
    clock = Stopwatch()
    with clock():
        nuts = run_nuts(
            key,
            lambda x: counted(x) + log_prior(x),
            init,
            config=NUTSConfig(num_chains=init.shape[0], num_warmup=300, num_samples=500),
        )
    shares, errors = chain_summaries(target, nuts.samples)
    status = "/".join(m.name for m in nuts.messages)
    print(
        f"\nNUTS alone (negative control; {init.shape[0]} chains, 300 warm-up + 500 draws): "
        f"status {status} ({nuts.status.message}); max R-hat {np.max(nuts.rhat):.3f}"
    )
    print(describe(target, "summaries", shares, errors))
    rows.append(
        Row(
            "NUTS alone (negative control)",
            shares,
            float(np.max(nuts.rhat)),
            float("nan"),
            float("nan"),
            counted.calls,
            clock.wall,
            clock.cpu,
            status,
        )
    )


def prior_transform_fn(target: Target) -> Callable:
    """Unit cube to ``N(0, s^2 I)``."""

    def transform(u):
        return target.prior_scale * ndtri(jnp.clip(u, 1e-12, 1 - 1e-12))

    return transform


def run_nautilus(log_likelihood, prior_transform, dim, seed):
    """nautilus ``Sampler`` with its defaults; returns (ln z, draws, log weights)."""
    from nautilus import Sampler

    loglike = jax.jit(jax.vmap(log_likelihood))
    transform = jax.jit(jax.vmap(prior_transform))
    sampler = Sampler(
        lambda u: np.asarray(transform(jnp.asarray(u, jnp.float32)), np.float64),
        lambda x: np.asarray(loglike(jnp.asarray(x, jnp.float32)), np.float64),
        n_dim=dim,
        vectorized=True,
        pass_dict=False,
        seed=seed,
    )
    sampler.run(verbose=False)
    points, log_w, _ = sampler.posterior()
    return float(sampler.log_z), points, log_w


def run_pocomc(log_likelihood, target: Target, seed):
    """pocoMC ``Sampler`` and ``run`` with their defaults; (ln z, error, draws, log weights).

    pocoMC (Karamanis et al. 2022, arXiv:2207.05652) is GPL-3: a peer run here, never a
    dependency (not in any extra).
    """
    import pocomc
    from scipy import stats

    loglike = jax.jit(jax.vmap(log_likelihood))
    prior = pocomc.Prior([stats.norm(0.0, target.prior_scale)] * target.dim)
    sampler = pocomc.Sampler(
        prior,
        lambda x: np.asarray(loglike(jnp.asarray(x, jnp.float32)), np.float64),
        n_dim=target.dim,
        vectorize=True,
        random_state=seed,
    )
    sampler.run(progress=False)
    samples, weights, _, _ = sampler.posterior()
    log_z, log_z_err = sampler.evidence()
    return float(log_z), float(log_z_err), samples, np.log(np.maximum(weights, 1e-300))


def run_peers(target: Target, peers: list[str], seed: int, rows: list) -> None:
    """dynesty, nautilus and pocoMC at their defaults, each skipped when absent."""
    transform = prior_transform_fn(target)
    if "dynesty" in peers:
        try:
            from nested_peers import run_dynesty
        except ImportError as error:
            print(f"\ndynesty skipped: {error} (pip install dynesty)")
        else:
            counted, clock = CountingLikelihood(target.log_likelihood), Stopwatch()
            with clock():
                peer = run_dynesty(counted, transform, target.dim, seed=seed)
            shares = weighted_summaries(target, peer.samples, peer.log_weights)
            print(
                f"\n{peer.name}: {describe_log_z(target, peer.log_evidence, peer.log_evidence_std)}; "
                f"{counted.calls} counted calls ({peer.num_likelihood_calls} by its own count)"
            )
            print(describe(target, "summaries", shares))
            rows.append(
                Row(
                    peer.name,
                    shares,
                    float("nan"),
                    peer.log_evidence,
                    peer.log_evidence_std,
                    counted.calls,
                    clock.wall,
                    clock.cpu,
                    "-",
                )
            )
    if "nautilus" in peers:
        try:
            import nautilus  # noqa: F401
        except ImportError as error:
            print(f"\nnautilus skipped: {error} (pip install nautilus-sampler)")
        else:
            counted, clock = CountingLikelihood(target.log_likelihood), Stopwatch()
            with clock():
                log_z, points, log_w = run_nautilus(counted, transform, target.dim, seed)
            shares = weighted_summaries(target, points, log_w)
            print(
                f"\nnautilus {nautilus.__version__} (defaults): {describe_log_z(target, log_z, None)} "
                f"(its API gives no error); {counted.calls} counted calls"
            )
            print(describe(target, "summaries", shares))
            rows.append(
                Row(
                    "nautilus (defaults)",
                    shares,
                    float("nan"),
                    log_z,
                    float("nan"),
                    counted.calls,
                    clock.wall,
                    clock.cpu,
                    "-",
                )
            )
    if "pocomc" in peers:
        try:
            import pocomc
        except ImportError as error:
            print(
                f"\npocoMC skipped: {error} (GPL-3, torch: install by hand, never as an extra: "
                "pip install --no-deps torch==2.13.0 pocomc zuko multiprocess filelock)"
            )
        else:
            counted, clock = CountingLikelihood(target.log_likelihood), Stopwatch()
            with clock():
                log_z, log_z_err, samples, log_w = run_pocomc(counted, target, seed)
            shares = weighted_summaries(target, samples, log_w)
            print(
                f"\npocoMC {pocomc.__version__} (defaults): "
                f"{describe_log_z(target, log_z, log_z_err)}; {counted.calls} counted calls"
            )
            print(describe(target, "summaries", shares))
            rows.append(
                Row(
                    "pocoMC (defaults)",
                    shares,
                    float("nan"),
                    log_z,
                    log_z_err,
                    counted.calls,
                    clock.wall,
                    clock.cpu,
                    "-",
                )
            )


def print_table(target: Target, rows: list[Row]) -> None:
    """The one-run table (Markdown), ratios to the first row (flow MCMC + LHM)."""
    print(
        f"\n{target.name}: truth {dict(zip(target.summary_names, np.round(target.truth, 4), strict=True))}, "
        f"ln z {target.log_z:.4f}"
    )
    print(
        f"| method | {' / '.join(target.summary_names)} | max {target.error_label} | max R-hat | "
        "ln z (pull) | likelihood calls | calls / ours | wall s | CPU s | CPU / ours | status |"
    )
    print("|---" * 11 + "|")
    base_calls, base_cpu = rows[0].calls, rows[0].cpu
    for row in rows:
        scaled = np.max(np.abs(row.summaries - target.truth) / target.error_scale)
        rhat = "-" if not np.isfinite(row.max_rhat) else f"{row.max_rhat:.4f}"
        if np.isfinite(row.log_z_std) and row.log_z_std > 0:
            log_z = (
                f"{row.log_z:.3f} ± {row.log_z_std:.3f} "
                f"({(row.log_z - target.log_z) / row.log_z_std:+.1f})"
            )
        elif np.isfinite(row.log_z):
            log_z = f"{row.log_z:.3f} (no error; {row.log_z - target.log_z:+.3f})"
        else:
            log_z = "-"
        print(
            f"| {row.method} | {' / '.join(f'{v:.3f}' for v in row.summaries)} | "
            f"{scaled:.3f} | {rhat} | {log_z} | {row.calls:,} | {row.calls / base_calls:.2f} | "
            f"{row.wall:.0f} | {row.cpu:.0f} | {row.cpu / base_cpu:.2f} | {row.status} |"
        )


def main(argv: list[str] | None = None) -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("mixture", "banana", "dualmoon"), default="mixture")
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--scales", default="1,1,1")
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="flow,smc,nuts", help="of flow,smc,nuts")
    parser.add_argument("--peers", default="dynesty,nautilus,pocomc")
    parser.add_argument("--local-steps", type=int, default=None)
    parser.add_argument("--global-steps", type=int, default=None)
    parser.add_argument("--production-loops", type=int, default=None)
    parser.add_argument("--training-loops", type=int, default=None)
    parser.add_argument("--burnin", type=int, default=None)
    args = parser.parse_args(argv)
    if args.task == "mixture":
        scales = np.array([float(v) for v in args.scales.split(",")])
        target = mixture_target(args.dim, scales)
    elif args.task == "banana":
        target = banana_target()
    else:
        target = dual_moon_target()
    print(
        f"{target.name}: truth {dict(zip(target.summary_names, np.round(target.truth, 4), strict=True))}, "
        f"ln z = {target.log_z:.4f}"
    )
    methods = [m for m in args.methods.split(",") if m]
    key = jax.random.key(args.seed)
    init_key, flow_key, nuts_key, smc_key = jax.random.split(key, 4)
    init = target.prior_scale * jax.random.normal(init_key, (args.chains, target.dim))
    rows: list[Row] = []
    if "flow" in methods:
        run_flow(flow_key, target, init, args, rows)
    if "smc" in methods:
        run_smc_method(smc_key, target, rows)
    if "nuts" in methods:
        run_nuts_control(nuts_key, target, init, rows)
    run_peers(target, [p for p in args.peers.split(",") if p], args.seed, rows)
    if rows:
        print_table(target, rows)


if __name__ == "__main__":
    main()
