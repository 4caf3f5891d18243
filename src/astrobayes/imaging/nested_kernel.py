"""The nested-sampling kernel: settings, state, ``init``, ``step`` and the stopping rule.

Pure functions over an explicit :class:`NestedState`, in blackjax's shape:
:func:`nested_init` builds the state, :func:`build_nested_step` returns
``step(state) -> state`` (one cycle: ``num_delete`` deletions and their
Metropolis-corrected proximal replacements, see :mod:`~astrobayes.imaging.nested`) and
:func:`nested_is_running` is the stopping rule; all compose with ``jit`` and
``lax.while_loop``. :func:`~astrobayes.imaging.nested.proximal_nested_sampling` is the
driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from astrobayes._checks import check_positive_int

__all__ = [
    "NestedSettings",
    "NestedShrinkage",
    "NestedState",
    "build_nested_step",
    "check_nested_settings",
    "nested_init",
    "nested_is_running",
    "nested_shrinkage",
]


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


class NestedShrinkage(NamedTuple):
    """Expected ``ln X`` decrements of one cycle (the order statistics of ``N - j``).

    Attributes:
        cycle_shrink: ``sum_j 1 / (N - j)``, the expected fall of ``ln X`` per cycle.
        log_x_offsets: ``ln X`` offsets of the deleted points within a cycle.
        log_shrinks: ``ln(1 - exp(-1 / (N - j)))``, their prior-volume weights.
        shrink_variance: Variance of ``ln X`` per unit of expected shrinkage.
    """

    cycle_shrink: float
    log_x_offsets: Float[Array, " num_delete"]
    log_shrinks: Float[Array, " num_delete"]
    shrink_variance: float


def nested_shrinkage(settings: NestedSettings) -> NestedShrinkage:
    """The :class:`NestedShrinkage` of a run with ``settings``."""
    dtype = jnp.zeros(()).dtype
    # the j-th deleted point of a cycle is the lowest of N - j: E[d ln X] = -1 / (N - j)
    inverse_counts = 1.0 / (settings.num_live - np.arange(settings.num_delete, dtype=np.float64))
    cycle_shrink = float(inverse_counts.sum())
    return NestedShrinkage(
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
    cycle_shrink = nested_shrinkage(settings).cycle_shrink
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
    has_subspace, smoothing, num_mcmc_steps, trapezoid=False,
):  # fmt: skip
    """``(key, x, level, steps) -> (x', acceptance (2,))``: MH-corrected proximal moves.

    With ``trapezoid`` the prior is known only through its gradient (a score), and the
    potential difference in the Metropolis ratio is the trapezoid rule along the move,
    ``U(x') - U(x) ~= (grad U(x) + grad U(x')) . (x' - x) / 2``: exact for a quadratic
    potential (a Gaussian prior), with an error of third order in the move otherwise.
    """
    dtype = jnp.zeros(()).dtype

    def potential_drop(x, proposal, value, new_value, gradient, new_gradient):
        """``U(x) - U(proposal)``: exact, or by the trapezoid rule (score-only priors)."""
        if trapezoid:
            return -0.5 * jnp.sum((gradient + new_gradient) * (proposal - x))
        return value - new_value

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
            potential_drop(x, proposal, value, new[0], gradient, new[1])
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
            potential_drop(x, proposal, value, new_value, gradient, new_gradient)
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
    shrinkage = nested_shrinkage(settings)
    max_step = 1e6 * initial_step  # an always-accepted (empty) block must not blow up
    has_subspace = subspace_projection_fn is not None
    trapezoid = prior_potential_fn is None
    if trapezoid:
        if prior_gradient_fn is None:
            raise ValueError(
                "prior_gradient_fn is required when prior_potential_fn is None (a prior "
                "known only through its score: pass x -> -score(x))"
            )

        def prior_value_and_grad(x):
            return jnp.zeros((), x.dtype), prior_gradient_fn(x)

    elif prior_gradient_fn is None:
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
        trapezoid=trapezoid,
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
