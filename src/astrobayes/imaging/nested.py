"""Proximal nested sampling with an exact constrained-sampling step and an honest error.

Nested sampling (Skilling 2006) for ``Z = int L(x) pi(x) dx``: ``num_live`` points from
the prior; at iteration ``i`` the lowest likelihood ``L_i`` is removed with prior-volume
weight ``w_i = X_{i-1} - X_i``, ``X_i = exp(-i / N)``, and replaced by a prior draw
restricted to ``{L > L_i}``. The replacement follows proximal nested sampling (Cai,
McEwen & Pereyra 2022): Langevin moves whose drift is the prior's (sub)gradient plus
the Moreau-Yosida gradient of the likelihood constraint,
``-(x - proj_{L >= L_i}(x)) / lam``, so that the proposal is pushed back into the
constrained region. Unlike the unadjusted version, each move is Metropolis-Hastings
corrected against the exact constrained prior (``pi(x) 1{L(x) > L_i}``; proposals
outside are rejected), so the replacement has the right distribution given enough
moves; the step size adapts to the acceptance rate.

**Several deletions per iteration.** With ``num_delete = k > 1`` the ``k`` lowest live
points are removed at once and replaced in parallel (``vmap``), each from a different
surviving live point, all constrained by the highest removed likelihood. The ``j``-th
removed point (``j = 0..k-1``, increasing ``L``) is the lowest of ``N - j`` points, so
``E[ln X]`` falls by ``1 / (N - j)`` at it, with variance ``1 / (N - j)^2`` (the order
statistics of uniform prior volumes; Henderson & Goggans 2014). This is exact in law;
it only raises the variance of ``ln X`` slightly, which the error below includes. On a
CPU the batched moves amortise the per-operation overhead of small images; ``k = 1``
is the classic algorithm.

The estimate includes the live-set remainder ``X_final * mean(L_live)``; its error is
``sqrt(H v)`` with ``H`` the information and ``v = sum_j (N - j)^-2 / sum_j (N - j)^-1``
the variance of ``ln X`` per unit of expected shrinkage (``v = 1 / N`` for ``k = 1``:
Skilling 2006's ``sqrt(H / N)``), inflated by the remainder's share.

The algorithm has blackjax's shape: :func:`~astrobayes.imaging.nested_kernel.nested_init` builds a
:class:`~astrobayes.imaging.nested_kernel.NestedState`,
:func:`~astrobayes.imaging.nested_kernel.build_nested_step` returns a pure
``step(state) -> state`` (one cycle of ``num_delete`` deletions and replacements) and
:func:`~astrobayes.imaging.nested_kernel.nested_is_running` the stopping rule, both
usable under ``jit`` (all in :mod:`~astrobayes.imaging.nested_kernel`); :func:`nested_finalise` turns the last state into a
:class:`NestedResult`. :func:`proximal_nested_sampling` is the driver that validates its
input and runs ``while nested_is_running: step`` in one compiled ``lax.while_loop``.

References:
    Skilling 2006, Bayesian Analysis 1, 833, "Nested sampling for general Bayesian
    computation".
    Cai, McEwen & Pereyra 2022, Statistics and Computing 32, 87, "Proximal nested
    sampling for high-dimensional Bayesian model selection" (arXiv:2106.03646).
    Pereyra 2016, Statistics and Computing 26, 745, "Proximal Markov chain Monte Carlo
    algorithms" (arXiv:1306.0187): Moreau-Yosida-guided Metropolis proposals.
    Henderson & Goggans 2014, AIP Conference Proceedings 1636, 100, "Parallelized
    nested sampling" (doi:10.1063/1.4903717): deleting ``k`` points per iteration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._checks import check_key
from astrobayes._status import Severity, Status, check
from astrobayes.imaging.nested_kernel import (
    NestedSettings,
    NestedState,
    build_nested_step,
    check_nested_settings,
    nested_init,
    nested_is_running,
    nested_shrinkage,
)

__all__ = [
    "NestedResult",
    "NestedStatus",
    "ball_projection",
    "check_live_points",
    "nested_finalise",
    "nested_loop_program",
    "proximal_nested_sampling",
    "run_nested_program",
]


class NestedStatus(Status):
    """How the run ended; values are the messages."""

    CONVERGED = (
        Severity.OK,
        "the live set holds less than the requested fraction of the evidence",
    )
    MAX_ITERATIONS = (
        Severity.WARNING,
        "stopped at max_iterations; the remainder term may dominate",
    )
    LOW_ACCEPTANCE = (
        Severity.WARNING,
        "constrained moves were rarely accepted (< 5%): replacements may be correlated",
    )
    NOT_FINITE = (
        Severity.FAILURE,
        "failure: the evidence is not finite; check the log likelihood at the live points",
    )


class NestedResult(NamedTuple):
    """Output of :func:`proximal_nested_sampling`.

    Attributes:
        log_evidence: ``ln Z`` (dead points plus the live-set remainder).
        log_evidence_error: One-sigma error ``sqrt(H v)`` (``sqrt(H / N)`` with one
            deletion per iteration; inflated by the remainder's share).
        information: ``H``, the KL divergence from prior to posterior (nats).
        log_evidence_dead: ``ln`` of the dead-point sum alone.
        log_evidence_remainder: ``ln`` of the live-set remainder.
        num_iterations: Dead points.
        acceptance_rate: Mean Metropolis acceptance of the constrained moves.
        dead_log_likelihoods: ``ln L`` of the dead points in order.
        status: :class:`NestedStatus`.
    """

    log_evidence: float
    log_evidence_error: float
    information: float
    log_evidence_dead: float
    log_evidence_remainder: float
    num_iterations: int
    acceptance_rate: float
    dead_log_likelihoods: Float[np.ndarray, " num_iterations"]
    status: NestedStatus


def ball_projection(
    centre: Float[Array, " dim"], scale: float
) -> Callable[[Float[Array, " dim"], float], Float[Array, " dim"]]:
    """Projection onto ``{x : -||x - centre||^2 / (2 scale^2) >= level}`` for Gaussian likelihoods.

    Args:
        centre: Ball centre (the data, for a denoising likelihood).
        scale: Noise standard deviation.

    Returns:
        ``(x, level) -> projection`` where ``level`` is the threshold on the
        *unnormalised* log likelihood ``-||x - centre||^2 / (2 scale^2)``.
    """

    def project(x, level):
        radius = jnp.sqrt(jnp.maximum(-2.0 * scale**2 * level, 0.0))
        offset = x - centre
        norm = jnp.linalg.norm(offset)
        return centre + offset * jnp.minimum(1.0, radius / jnp.maximum(norm, 1e-30))

    return project


def nested_finalise(
    state: NestedState, settings: NestedSettings, *, log_likelihood_offset: float = 0.0
) -> NestedResult:
    """The evidence, its error and the status from the last state.

    Adds the live-set remainder ``X_final * mean(L_live)``; the error is ``sqrt(H v)``
    plus the remainder's share (see the module docstring).

    Args:
        state: The state after the last cycle.
        settings: The run's settings.
        log_likelihood_offset: Constant added back to every ``ln L``.

    Returns:
        :class:`NestedResult`.
    """
    shrinkage = nested_shrinkage(settings)
    cycle, num_dead = int(state.cycle), int(state.num_dead)
    log_z_dead = float(state.log_evidence)
    live_np = np.asarray(state.live_log_likelihoods, np.float64)
    with np.errstate(invalid="ignore"):  # a nan here is reported as NOT_FINITE below
        log_mean_live = float(np.logaddexp.reduce(live_np) - math.log(settings.num_live))
        log_remainder = -cycle * shrinkage.cycle_shrink + log_mean_live
        log_z_total = float(np.logaddexp(log_z_dead, log_remainder))
    h = max(float(state.information), 0.0)
    remainder_share = math.exp(log_remainder - log_z_total)
    error = math.sqrt(h * shrinkage.shrink_variance) + remainder_share
    acceptance = float(state.acceptance_sum) / max(cycle, 1)
    if not math.isfinite(log_z_total):
        status = NestedStatus.NOT_FINITE
    elif acceptance < 0.05:
        status = NestedStatus.LOW_ACCEPTANCE
    elif num_dead >= settings.max_iterations:
        status = NestedStatus.MAX_ITERATIONS
    else:
        status = NestedStatus.CONVERGED
    offset = float(log_likelihood_offset)
    capacity = state.dead_log_likelihoods.shape[0]
    return NestedResult(
        log_evidence=log_z_total + offset,
        log_evidence_error=error,
        information=h,
        log_evidence_dead=log_z_dead + offset,
        log_evidence_remainder=log_remainder + offset,
        num_iterations=num_dead,
        acceptance_rate=acceptance,
        dead_log_likelihoods=np.asarray(state.dead_log_likelihoods[: min(num_dead, capacity)])
        + offset,
        status=status,
    )


def proximal_nested_sampling(
    key: jax.Array,
    log_likelihood_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    prior_potential_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]] | None,
    constraint_projection_fn: Callable[[Float[Array, " dim"], Array], Float[Array, " dim"]],
    initial_live_points: Float[Array, "num_live dim"],
    *,
    log_likelihood_offset: float = 0.0,
    prior_gradient_fn: Callable[[Float[Array, " dim"]], Float[Array, " dim"]] | None = None,
    subspace_projection_fn: Callable[[Float[Array, " dim"]], Float[Array, " dim"]] | None = None,
    num_mcmc_steps: int = 40,
    initial_step: float = 0.1,
    smoothing: float | None = None,
    max_iterations: int = 200_000,
    remainder_fraction: float = 1e-4,
    num_delete: int = 1,
    throw: bool = False,
) -> NestedResult:
    """Proximal nested sampling with Metropolis-corrected constrained moves.

    The driver of :mod:`~astrobayes.imaging.nested_kernel`'s ``nested_init``,
    ``build_nested_step`` and ``nested_is_running``, and of :func:`nested_finalise`.

    Args:
        key: JAX PRNG key.
        log_likelihood_fn: ``x -> ln L(x) - log_likelihood_offset`` (unnormalised).
        prior_potential_fn: ``x -> -ln pi(x)`` up to a constant, or ``None`` for a
            prior known only through its score (a learned denoiser's Tweedie score,
            :func:`astrobayes.imaging.denoisers.score_function`): then
            ``prior_gradient_fn`` must be ``x -> -score(x)`` and the Metropolis ratio
            takes the potential difference by the trapezoid rule along each move (exact
            for Gaussian priors, third-order error otherwise). Nested sampling needs no
            normalising constant: the evidence is ``int L d pi`` for the prior whose
            score this is (for a denoiser at noise ``sigma``, the data distribution
            smoothed by ``N(0, sigma^2)``), and ``initial_live_points`` must be draws from
            it (e.g. held-out training images plus ``sigma`` noise).
        constraint_projection_fn: ``(x, level) -> projection of x onto
            {ln L - offset >= level}`` (exact for Gaussian likelihoods with an identity
            or unitary operator, e.g. :func:`ball_projection`).
        initial_live_points: ``(N, d)`` independent draws from the prior.
        log_likelihood_offset: Constant added to ``log_likelihood_fn`` to normalise it.
        prior_gradient_fn: Gradient of the prior potential (default: autodiff, which
            for ``|.|`` gives a subgradient; the Metropolis step keeps it exact);
            required when ``prior_potential_fn`` is ``None``.
        subspace_projection_fn: Optional orthogonal projector ``x -> P x`` onto the
            subspace on which the likelihood depends (``ln L(x) = ln L(P x)``, e.g. the
            measured Fourier modes of a masked FFT). When given, each move is two
            Metropolis-adjusted block updates, one in ``range(P)`` and one in its
            complement (where only the prior acts), each with its own adapted step: the
            complement then mixes at the prior's scale instead of the constraint's.
        num_mcmc_steps: Metropolis-adjusted Langevin moves per replacement.
        initial_step: Initial Langevin step (adapted towards 50% acceptance).
        smoothing: Moreau-Yosida parameter of the constraint; default ``step``.
        max_iterations: Maximum number of dead points.
        remainder_fraction: Stop when ``max(L_live) X_i < remainder_fraction * Z``.
        num_delete: Live points deleted per iteration and replaced in parallel
            (``1 <= num_delete <= N // 2``; see the module docstring).
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) when the status is a failure (a non-finite evidence).

    Returns:
        :class:`NestedResult`.

    Raises:
        ValueError: If the live points are not a finite ``(N, d)`` array with
            ``N >= 2``, or a setting is out of range (:func:`~astrobayes.imaging.nested_kernel.check_nested_settings`).
        UnreliableResultError: With ``throw=True`` on a failure status.

    Example:
        >>> y = jnp.zeros(2)
        >>> result = proximal_nested_sampling(
        ...     jax.random.key(0), lambda x: -jnp.sum((x - y) ** 2) / 2,
        ...     lambda x: jnp.sum(x**2) / 2, ball_projection(y, 1.0),
        ...     jax.random.normal(jax.random.key(1), (20, 2)), num_mcmc_steps=5)
        >>> result.status.name
        'CONVERGED'
    """
    check_key(key)
    if prior_potential_fn is None and prior_gradient_fn is None:
        raise ValueError(
            "prior_gradient_fn is required when prior_potential_fn is None (a prior known "
            "only through its score: pass x -> -score(x))"
        )
    live = check_live_points(initial_live_points)
    settings = check_nested_settings(
        live.shape[0],
        num_mcmc_steps=num_mcmc_steps,
        initial_step=initial_step,
        max_iterations=max_iterations,
        remainder_fraction=remainder_fraction,
        num_delete=num_delete,
    )
    step = build_nested_step(
        log_likelihood_fn,
        prior_potential_fn,
        constraint_projection_fn,
        settings,
        prior_gradient_fn=prior_gradient_fn,
        subspace_projection_fn=subspace_projection_fn,
        smoothing=smoothing,
    )
    return run_nested_program(
        key,
        live,
        log_likelihood_fn,
        settings,
        nested_loop_program(step, settings),
        log_likelihood_offset=log_likelihood_offset,
        throw=throw,
    )


def check_live_points(initial_live_points) -> np.ndarray:
    """``initial_live_points`` as a finite ``(N >= 2, d)`` NumPy array, else ``ValueError``."""
    live = np.asarray(initial_live_points)
    if live.ndim != 2 or live.shape[0] < 2:
        raise ValueError(f"initial_live_points must have shape (N >= 2, d); got {live.shape}")
    if not np.all(np.isfinite(live)):
        raise ValueError("initial_live_points must be finite")
    return live


def nested_loop_program(step: Callable, settings) -> Callable:
    """``state -> state``: ``while nested_is_running: step`` as one compiled program.

    A caller that runs the same ``step`` (the same functions, data and settings) several
    times can keep the program and pass it to :func:`run_nested_program` again, which
    then skips tracing and compiling (e.g. the repeats of
    :func:`~astrobayes.imaging.prior_evidence.compare_priors`).

    Example:
        >>> from astrobayes.imaging.nested_kernel import build_nested_step, check_nested_settings
        >>> y = jnp.zeros(2)
        >>> def log_likelihood(x):
        ...     return -jnp.sum((x - y) ** 2) / 2
        >>> settings = check_nested_settings(20, num_mcmc_steps=5, initial_step=0.1)
        >>> step = build_nested_step(
        ...     log_likelihood, lambda x: jnp.sum(x**2) / 2, ball_projection(y, 1.0), settings)
        >>> program = nested_loop_program(step, settings)
        >>> live = np.asarray(jax.random.normal(jax.random.key(1), (20, 2)))
        >>> runs = [  # one compilation, two runs
        ...     run_nested_program(jax.random.key(k), live, log_likelihood, settings, program,
        ...                        log_likelihood_offset=0.0, throw=False)
        ...     for k in range(2)]
        >>> [run.status.name for run in runs]
        ['CONVERGED', 'CONVERGED']
    """
    return jax.jit(lambda s: jax.lax.while_loop(lambda s: nested_is_running(s, settings), step, s))


def run_nested_program(
    key: jax.Array,
    live: np.ndarray,
    log_likelihood_fn: Callable,
    settings,
    program: Callable,
    *,
    log_likelihood_offset: float,
    throw: bool,
) -> NestedResult:
    """Initialise the live points, run ``program`` (:func:`nested_loop_program`), finalise.

    The driver's last three steps, for ``live`` points checked by
    :func:`check_live_points` and validated ``settings``.
    """
    state = nested_init(key, live, log_likelihood_fn, settings)
    state = program(state)
    result = nested_finalise(state, settings, log_likelihood_offset=log_likelihood_offset)
    return check(result, throw)
