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

import enum
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._checks import check_key, check_positive_int

__all__ = [
    "NestedResult",
    "NestedSettings",
    "NestedStatus",
    "ball_projection",
    "check_nested_settings",
    "proximal_nested_sampling",
]


class NestedStatus(enum.Enum):
    """How the run ended; values are the messages."""

    CONVERGED = "the live set holds less than the requested fraction of the evidence"
    MAX_ITERATIONS = "stopped at max_iterations; the remainder term may dominate"
    LOW_ACCEPTANCE = "constrained moves were rarely accepted (< 5%): replacements may be correlated"


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
    dead_log_likelihoods: np.ndarray
    status: NestedStatus


def ball_projection(centre: Float[Array, " dim"], scale: float) -> Callable:
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
        num_live, num_mcmc_steps, initial_step, max_iterations, remainder_fraction, num_delete
    )


def proximal_nested_sampling(
    key: jax.Array,
    log_likelihood_fn: Callable,
    prior_potential_fn: Callable,
    constraint_projection_fn: Callable,
    initial_live_points: Float[Array, "num_live dim"],
    *,
    log_likelihood_offset: float = 0.0,
    prior_gradient_fn: Callable | None = None,
    subspace_projection_fn: Callable | None = None,
    num_mcmc_steps: int = 40,
    initial_step: float = 0.1,
    smoothing: float | None = None,
    max_iterations: int = 200_000,
    remainder_fraction: float = 1e-4,
    num_delete: int = 1,
) -> NestedResult:
    """Proximal nested sampling with Metropolis-corrected constrained moves.

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

    Returns:
        :class:`NestedResult`.

    Raises:
        ValueError: If the live points are not a finite ``(N, d)`` array with
            ``N >= 2``, or a setting is out of range (:func:`check_nested_settings`).
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
    num_live, num_mcmc_steps, initial_step, max_iterations, remainder_fraction, num_delete = (
        settings
    )
    dtype = jnp.zeros(()).dtype
    live = jnp.asarray(live, dtype)
    live_log_l = jax.vmap(log_likelihood_fn)(live)
    # the j-th deleted point of a cycle is the lowest of N - j: E[d ln X] = -1 / (N - j)
    inverse_counts = 1.0 / (num_live - np.arange(num_delete, dtype=np.float64))
    cycle_shrink = float(inverse_counts.sum())
    log_x_offsets = jnp.asarray(np.concatenate([[0.0], np.cumsum(inverse_counts)[:-1]]), dtype)
    log_shrinks = jnp.asarray(np.log1p(-np.exp(-inverse_counts)), dtype)
    shrink_variance = float(np.sum(inverse_counts**2) / cycle_shrink)
    max_step = 1e6 * initial_step  # an always-accepted (empty) block must not blow up

    if prior_gradient_fn is None:
        prior_value_and_grad = jax.value_and_grad(prior_potential_fn)
    else:

        def prior_value_and_grad(x):
            return prior_potential_fn(x), prior_gradient_fn(x)

    if subspace_projection_fn is None:

        def measured(v):
            return v
    else:
        measured = subspace_projection_fn

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
            if subspace_projection_fn is None:
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

    def accumulate(carry, dead_point):
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

    def cond(state):
        cycle, i, _, live_log_l, log_z, _, _, _, _, _ = state
        log_remaining = jnp.max(live_log_l) - cycle * cycle_shrink
        return (i < max_iterations) & (log_remaining - log_z > math.log(remainder_fraction))

    def body(state):
        cycle, i, live, live_log_l, log_z, information, step, key, acc_sum, dead = state
        key, k_pick, k_move = jax.random.split(key, 3)
        order = jnp.argsort(live_log_l)
        worst, survivors = order[:num_delete], order[num_delete:]
        levels = live_log_l[worst]  # ascending
        log_x = -cycle * cycle_shrink - log_x_offsets
        (log_z, information), _ = jax.lax.scan(
            accumulate, (log_z, information), (log_x, log_shrinks, levels)
        )
        level = levels[-1]  # the live set is now N - k draws constrained by L > level
        # each replacement starts from a different survivor (uniform, without replacement)
        picks = jax.random.permutation(k_pick, num_live - num_delete)[:num_delete]
        starts = live[survivors[picks]]
        new, rates = jax.vmap(constrained_move, in_axes=(0, 0, None, None))(
            jax.random.split(k_move, num_delete), starts, level, step
        )
        rates = jnp.mean(rates, axis=0)
        step = jnp.minimum(step * jnp.exp(jnp.clip(rates - 0.5, -0.5, 0.5)), max_step)
        rate = jnp.mean(rates) if subspace_projection_fn is not None else rates[0]
        live = live.at[worst].set(new)
        live_log_l = live_log_l.at[worst].set(jax.vmap(log_likelihood_fn)(new))
        dead = jax.lax.dynamic_update_slice(
            dead, levels, (jnp.minimum(i, dead.shape[0] - num_delete),)
        )
        return (
            cycle + 1,
            i + num_delete,
            live,
            live_log_l,
            log_z,
            information,
            step,
            key,
            acc_sum + rate,
            dead,
        )

    capacity = -(-min(max_iterations, 1_000_000) // num_delete) * num_delete
    state = (
        0,
        0,
        live,
        live_log_l,
        jnp.asarray(-jnp.inf, dtype),
        jnp.asarray(0.0, dtype),
        jnp.full((2,), initial_step, dtype),
        key,
        jnp.asarray(0.0, dtype),
        jnp.full((capacity,), jnp.nan, dtype),
    )
    cycle, i, live, live_log_l, log_z, information, step, _, acc_sum, dead = jax.jit(
        lambda s: jax.lax.while_loop(cond, body, s)
    )(state)
    cycle, i = int(cycle), int(i)
    log_z_dead = float(log_z)
    live_np = np.asarray(live_log_l, np.float64)
    log_mean_live = float(np.logaddexp.reduce(live_np) - math.log(num_live))
    log_remainder = -cycle * cycle_shrink + log_mean_live
    log_z_total = float(np.logaddexp(log_z_dead, log_remainder))
    h = max(float(information), 0.0)
    remainder_share = math.exp(log_remainder - log_z_total)
    error = math.sqrt(h * shrink_variance) + remainder_share
    acceptance = float(acc_sum) / max(cycle, 1)
    if acceptance < 0.05:
        status = NestedStatus.LOW_ACCEPTANCE
    elif i >= max_iterations:
        status = NestedStatus.MAX_ITERATIONS
    else:
        status = NestedStatus.CONVERGED
    offset = float(log_likelihood_offset)
    return NestedResult(
        log_z_total + offset,
        error,
        h,
        log_z_dead + offset,
        log_remainder + offset,
        i,
        acceptance,
        np.asarray(dead[: min(i, capacity)]) + offset,
        status,
    )
