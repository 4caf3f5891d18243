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

The algorithm has blackjax's shape: :func:`nested_init` builds a :class:`NestedState`,
:func:`build_nested_step` returns a pure ``step(state) -> state`` (one cycle of
``num_delete`` deletions and replacements) and :func:`nested_is_running` the stopping
rule, both usable under ``jit``; :func:`nested_finalise` turns the last state into a
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
from jaxtyping import Array, Float, Int

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check

__all__ = [
    "NestedResult",
    "NestedSettings",
    "NestedState",
    "NestedStatus",
    "ball_projection",
    "build_nested_step",
    "check_nested_settings",
    "nested_finalise",
    "nested_init",
    "nested_is_running",
    "proximal_nested_sampling",
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


class NestedState(NamedTuple):
    """State of a nested-sampling run between cycles (a pytree).

    Attributes:
        cycle: Cycles run (each deletes ``num_delete`` points).
        num_dead: Dead points so far.
        live: ``(num_live, dim)`` live points.
        live_log_likelihoods: Their ``ln L - offset``.
        log_evidence: ``ln`` of the dead-point sum so far.
        information: Running information ``H``.
        step_sizes: Langevin steps of the measured and free blocks, ``(2,)``.
        key: PRNG key of the next cycle.
        acceptance_sum: Sum over cycles of the acceptance rate.
        dead_log_likelihoods: ``(capacity,)`` buffer of dead ``ln L`` (``nan`` unused).
    """

    cycle: Int[Array, ""]
    num_dead: Int[Array, ""]
    live: Float[Array, "num_live dim"]
    live_log_likelihoods: Float[Array, " num_live"]
    log_evidence: Float[Array, ""]
    information: Float[Array, ""]
    step_sizes: Float[Array, " 2"]
    key: jax.Array
    acceptance_sum: Float[Array, ""]
    dead_log_likelihoods: Float[Array, " capacity"]


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


class NestedSettings(NamedTuple):
    """Validated run settings of :func:`proximal_nested_sampling` (see its Args)."""

    num_live: int
    num_mcmc_steps: int
    initial_step: float
    max_iterations: int
    remainder_fraction: float
    num_delete: int


def check_nested_settings(
    num_live: int,
    *,
    num_mcmc_steps: int = 40,
    initial_step: float = 0.1,
    max_iterations: int = 200_000,
    remainder_fraction: float = 1e-4,
    num_delete: int = 1,
) -> NestedSettings:
    """Validate the settings of a nested-sampling run, eagerly and in one place.

    Shared by :func:`proximal_nested_sampling` and its callers (e.g.
    :func:`~astrobayes.imaging.prior_evidence.prior_log_evidence`, which checks them
    before drawing its initial live points).

    Args:
        num_live: Number of live points (``>= 2``).
        num_mcmc_steps: Constrained moves per replacement (``>= 1``).
        initial_step: Initial Langevin step (positive, finite).
        max_iterations: Maximum number of dead points (``>= 1``).
        remainder_fraction: Stopping fraction, in ``(0, 1)``.
        num_delete: Live points deleted and replaced per iteration, in
            ``[1, num_live // 2]`` (so that each replacement starts from a different
            surviving point).

    Returns:
        :class:`NestedSettings`.

    Raises:
        ValueError: Naming the first setting out of range.
    """
    num_live = check_positive_int(num_live, "num_live", minimum=2)
    num_mcmc_steps = check_positive_int(num_mcmc_steps, "num_mcmc_steps")
    max_iterations = check_positive_int(max_iterations, "max_iterations")
    num_delete = check_positive_int(num_delete, "num_delete")
    if num_delete > num_live // 2:
        raise ValueError(
            f"num_delete must be at most num_live // 2 = {num_live // 2}; got {num_delete}"
        )
    initial_step = float(initial_step)
    if not (math.isfinite(initial_step) and initial_step > 0):
        raise ValueError(f"initial_step must be positive and finite; got {initial_step!r}")
    remainder_fraction = float(remainder_fraction)
    if not 0 < remainder_fraction < 1:
        raise ValueError(f"remainder_fraction must lie in (0, 1); got {remainder_fraction!r}")
    return NestedSettings(
        num_live=num_live,
        num_mcmc_steps=num_mcmc_steps,
        initial_step=initial_step,
        max_iterations=max_iterations,
        remainder_fraction=remainder_fraction,
        num_delete=num_delete,
    )


class _Shrinkage(NamedTuple):
    """Expected ``ln X`` decrements of one cycle (the order statistics of ``N - j``)."""

    cycle_shrink: float
    log_x_offsets: Float[Array, " num_delete"]
    log_shrinks: Float[Array, " num_delete"]
    shrink_variance: float


def _shrinkage(settings: NestedSettings) -> _Shrinkage:
    dtype = jnp.zeros(()).dtype
    # the j-th deleted point of a cycle is the lowest of N - j: E[d ln X] = -1 / (N - j)
    inverse_counts = 1.0 / (settings.num_live - np.arange(settings.num_delete, dtype=np.float64))
    cycle_shrink = float(inverse_counts.sum())
    return _Shrinkage(
        cycle_shrink=cycle_shrink,
        log_x_offsets=jnp.asarray(np.concatenate([[0.0], np.cumsum(inverse_counts)[:-1]]), dtype),
        log_shrinks=jnp.asarray(np.log1p(-np.exp(-inverse_counts)), dtype),
        shrink_variance=float(np.sum(inverse_counts**2) / cycle_shrink),
    )


def _capacity(settings: NestedSettings) -> int:
    """Length of the dead-point buffer: ``max_iterations`` (at most 10^6), whole cycles."""
    num_delete = settings.num_delete
    return -(-min(settings.max_iterations, 1_000_000) // num_delete) * num_delete


def nested_init(
    key: jax.Array,
    initial_live_points: Float[Array, "num_live dim"],
    log_likelihood_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    settings: NestedSettings,
) -> NestedState:
    """The state before the first cycle.

    Args:
        key: PRNG key of the run.
        initial_live_points: ``(num_live, dim)`` prior draws (validated by the caller).
        log_likelihood_fn: ``x -> ln L(x) - offset``.
        settings: From :func:`check_nested_settings`.

    Returns:
        :class:`NestedState`.
    """
    dtype = jnp.zeros(()).dtype
    live = jnp.asarray(initial_live_points, dtype)
    return NestedState(
        cycle=0,
        num_dead=0,
        live=live,
        live_log_likelihoods=jax.vmap(log_likelihood_fn)(live),
        log_evidence=jnp.asarray(-jnp.inf, dtype),
        information=jnp.asarray(0.0, dtype),
        step_sizes=jnp.full((2,), settings.initial_step, dtype),
        key=key,
        acceptance_sum=jnp.asarray(0.0, dtype),
        dead_log_likelihoods=jnp.full((_capacity(settings),), jnp.nan, dtype),
    )


def nested_is_running(state: NestedState, settings: NestedSettings) -> Array:
    """Stopping rule: ``max(L_live) X_i >= remainder_fraction * Z`` and iterations left."""
    cycle_shrink = _shrinkage(settings).cycle_shrink
    log_remaining = jnp.max(state.live_log_likelihoods) - state.cycle * cycle_shrink
    return (state.num_dead < settings.max_iterations) & (
        log_remaining - state.log_evidence > math.log(settings.remainder_fraction)
    )


def _accumulate(carry, dead_point):
    """Add one dead point (``ln X`` before it, its ``ln`` shrink factor, ``ln L``)."""
    log_z, information = carry
    log_x, log_shrink, level = dead_point
    log_weight = log_x + log_shrink + level
    log_z_new = jnp.logaddexp(log_z, log_weight)
    information = (
        jnp.exp(log_weight - log_z_new) * level
        + jnp.exp(log_z - log_z_new) * (information + log_z)
        - log_z_new
    )
    information = jnp.where(jnp.isfinite(information), information, 0.0)
    return (log_z_new, information), None


def _build_constrained_move(
    log_likelihood_fn, prior_value_and_grad, constraint_projection_fn, measured, *,
    has_subspace, smoothing, num_mcmc_steps,
):  # fmt: skip
    """``(key, x, level, steps) -> (x', acceptance (2,))``: MH-corrected proximal moves."""
    dtype = jnp.zeros(()).dtype

    def evaluate(x, level):
        """Cached terms at ``x``: potential, gradient, its measured part, ``x - proj(x)``."""
        value, gradient = prior_value_and_grad(x)
        return value, gradient, measured(gradient), x - constraint_projection_fn(x, level)

    def mala_measured(carry, k, level, step):
        """Metropolis-adjusted Langevin step in ``range(P)`` (everything when no ``P``)."""
        x, value, gradient, gradient_measured, outside = carry
        lam = step if smoothing is None else smoothing
        k_prop, k_acc = jax.random.split(k)
        forward = x - step * (gradient_measured + outside / lam)
        noise = measured(jax.random.normal(k_prop, x.shape, dtype))
        proposal = forward + jnp.sqrt(2 * step) * noise
        new = evaluate(proposal, level)
        backward = proposal - step * (new[2] + new[3] / lam)
        log_ratio = (
            value
            - new[0]
            - jnp.sum((x - backward) ** 2) / (4 * step)
            + jnp.sum((proposal - forward) ** 2) / (4 * step)
        )
        inside = log_likelihood_fn(proposal) > level
        accept = inside & (jnp.log(jax.random.uniform(k_acc, (), dtype)) < log_ratio)
        carry = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (proposal, *new), carry)
        return carry, accept

    def mala_free(carry, k, step):
        """Metropolis-adjusted Langevin step in the complement of ``range(P)`` (prior only)."""
        x, value, gradient, gradient_measured, outside = carry
        k_prop, k_acc = jax.random.split(k)
        forward = x - step * (gradient - gradient_measured)
        noise = jax.random.normal(k_prop, x.shape, dtype)
        proposal = forward + jnp.sqrt(2 * step) * (noise - measured(noise))
        new_value, new_gradient = prior_value_and_grad(proposal)
        new_measured = measured(new_gradient)
        backward = proposal - step * (new_gradient - new_measured)
        log_ratio = (
            value
            - new_value
            - jnp.sum((x - backward) ** 2) / (4 * step)
            + jnp.sum((proposal - forward) ** 2) / (4 * step)
        )
        # ln L(x) = ln L(P x) and proj(x) - x depends on P x only: both are unchanged
        accept = jnp.log(jax.random.uniform(k_acc, (), dtype)) < log_ratio
        new = (proposal, new_value, new_gradient, new_measured, outside)
        carry = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, carry)
        return carry, accept

    def constrained_move(key, x, level, steps):
        def one(carry, k):
            state, accepted = carry
            if not has_subspace:
                state, accept = mala_measured(state, k, level, steps[0])
                return (state, accepted + jnp.stack([accept, accept])), None
            k_measured, k_free = jax.random.split(k)
            state, accept_measured = mala_measured(state, k_measured, level, steps[0])
            state, accept_free = mala_free(state, k_free, steps[1])
            return (state, accepted + jnp.stack([accept_measured, accept_free])), None

        start = (x, *evaluate(x, level))
        (state, accepted), _ = jax.lax.scan(
            one, (start, jnp.zeros(2, dtype)), jax.random.split(key, num_mcmc_steps)
        )
        return state[0], accepted / num_mcmc_steps

    return constrained_move


def build_nested_step(
    log_likelihood_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    prior_potential_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    constraint_projection_fn: Callable[[Float[Array, " dim"], Array], Float[Array, " dim"]],
    settings: NestedSettings,
    *,
    prior_gradient_fn: Callable[[Float[Array, " dim"]], Float[Array, " dim"]] | None = None,
    subspace_projection_fn: Callable[[Float[Array, " dim"]], Float[Array, " dim"]] | None = None,
    smoothing: float | None = None,
) -> Callable[[NestedState], NestedState]:
    """A pure ``step(state) -> state``: one cycle of ``num_delete`` deletions.

    The ``num_delete`` lowest live points are added to the evidence sum and replaced,
    in parallel (``vmap``), by constrained moves started from distinct survivors; the
    Langevin steps adapt towards 50% acceptance. Arguments as in
    :func:`proximal_nested_sampling`.

    Returns:
        The step function (pure; ``jit``-able).
    """
    num_live, num_mcmc_steps, initial_step, _, _, num_delete = settings
    shrinkage = _shrinkage(settings)
    max_step = 1e6 * initial_step  # an always-accepted (empty) block must not blow up
    has_subspace = subspace_projection_fn is not None
    if prior_gradient_fn is None:
        prior_value_and_grad = jax.value_and_grad(prior_potential_fn)
    else:

        def prior_value_and_grad(x):
            return prior_potential_fn(x), prior_gradient_fn(x)

    measured = subspace_projection_fn if has_subspace else (lambda v: v)
    constrained_move = _build_constrained_move(
        log_likelihood_fn,
        prior_value_and_grad,
        constraint_projection_fn,
        measured,
        has_subspace=has_subspace,
        smoothing=smoothing,
        num_mcmc_steps=num_mcmc_steps,
    )

    def step(state: NestedState) -> NestedState:
        live, live_log_l, step_sizes = state.live, state.live_log_likelihoods, state.step_sizes
        key, k_pick, k_move = jax.random.split(state.key, 3)
        order = jnp.argsort(live_log_l)
        worst, survivors = order[:num_delete], order[num_delete:]
        levels = live_log_l[worst]  # ascending
        log_x = -state.cycle * shrinkage.cycle_shrink - shrinkage.log_x_offsets
        (log_z, information), _ = jax.lax.scan(
            _accumulate,
            (state.log_evidence, state.information),
            (log_x, shrinkage.log_shrinks, levels),
        )
        level = levels[-1]  # the live set is now N - k draws constrained by L > level
        # each replacement starts from a different survivor (uniform, without replacement)
        picks = jax.random.permutation(k_pick, num_live - num_delete)[:num_delete]
        starts = live[survivors[picks]]
        new, rates = jax.vmap(constrained_move, in_axes=(0, 0, None, None))(
            jax.random.split(k_move, num_delete), starts, level, step_sizes
        )
        rates = jnp.mean(rates, axis=0)
        step_sizes = jnp.minimum(step_sizes * jnp.exp(jnp.clip(rates - 0.5, -0.5, 0.5)), max_step)
        rate = jnp.mean(rates) if has_subspace else rates[0]
        dead = state.dead_log_likelihoods
        return NestedState(
            cycle=state.cycle + 1,
            num_dead=state.num_dead + num_delete,
            live=live.at[worst].set(new),
            live_log_likelihoods=live_log_l.at[worst].set(jax.vmap(log_likelihood_fn)(new)),
            log_evidence=log_z,
            information=information,
            step_sizes=step_sizes,
            key=key,
            acceptance_sum=state.acceptance_sum + rate,
            dead_log_likelihoods=jax.lax.dynamic_update_slice(
                dead, levels, (jnp.minimum(state.num_dead, dead.shape[0] - num_delete),)
            ),
        )

    return step


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
    shrinkage = _shrinkage(settings)
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
    prior_potential_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
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

    The driver of :func:`nested_init`, :func:`build_nested_step`,
    :func:`nested_is_running` and :func:`nested_finalise`.

    Args:
        key: JAX PRNG key.
        log_likelihood_fn: ``x -> ln L(x) - log_likelihood_offset`` (unnormalised).
        prior_potential_fn: ``x -> -ln pi(x)`` up to a constant (convex).
        constraint_projection_fn: ``(x, level) -> projection of x onto
            {ln L - offset >= level}`` (exact for Gaussian likelihoods with an identity
            or unitary operator, e.g. :func:`ball_projection`).
        initial_live_points: ``(N, d)`` independent draws from the prior.
        log_likelihood_offset: Constant added to ``log_likelihood_fn`` to normalise it.
        prior_gradient_fn: Gradient of the prior potential (default: autodiff, which
            for ``|.|`` gives a subgradient; the Metropolis step keeps it exact).
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
            ``N >= 2``, or a setting is out of range (:func:`check_nested_settings`).
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
    live = np.asarray(initial_live_points)
    if live.ndim != 2 or live.shape[0] < 2:
        raise ValueError(f"initial_live_points must have shape (N >= 2, d); got {live.shape}")
    if not np.all(np.isfinite(live)):
        raise ValueError("initial_live_points must be finite")
    settings = check_nested_settings(
        live.shape[0],
        num_mcmc_steps=num_mcmc_steps,
        initial_step=initial_step,
        max_iterations=max_iterations,
        remainder_fraction=remainder_fraction,
        num_delete=num_delete,
    )
    state = nested_init(key, live, log_likelihood_fn, settings)
    step = build_nested_step(
        log_likelihood_fn,
        prior_potential_fn,
        constraint_projection_fn,
        settings,
        prior_gradient_fn=prior_gradient_fn,
        subspace_projection_fn=subspace_projection_fn,
        smoothing=smoothing,
    )
    state = jax.jit(
        lambda s: jax.lax.while_loop(lambda s: nested_is_running(s, settings), step, s)
    )(state)
    result = nested_finalise(state, settings, log_likelihood_offset=log_likelihood_offset)
    return check(result, throw)
