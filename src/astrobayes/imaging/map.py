"""MAP estimation by FISTA with adaptive restart and an objective-based stopping rule.

``x_MAP = argmin_x U(x)`` for an :class:`~astrobayes.imaging.posterior.ImagingPosterior`
``U = f + g``: ``f`` the smooth part (data term, plus a smooth prior) with Lipschitz
gradient, ``g`` the non-smooth part (a prior used through its prox, positivity).

Also: :func:`discrepancy_strength`, the documented rule that sets the regularisation
strength from the data and the noise level alone (Morozov's discrepancy principle).

References:
    Beck & Teboulle 2009, SIAM J. Imaging Sci. 2, 183, "A fast iterative
    shrinkage-thresholding algorithm for linear inverse problems" (FISTA).
    O'Donoghue & Candes 2015, Found. Comput. Math. 15, 715, "Adaptive restart for
    accelerated gradient schemes" (arXiv:1204.3982): the gradient restart scheme.
    Morozov 1966, Soviet Math. Dokl. 7, 414 (the discrepancy principle).

"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._checks import check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes.imaging.posterior import ImagingPosterior

__all__ = [
    "MapResult",
    "MapStatus",
    "StrengthResult",
    "StrengthStatus",
    "discrepancy_strength",
    "map_estimate",
    "snr_db",
    "with_strength",
]


class MapStatus(Status):
    """How the MAP optimisation ended; values are the messages."""

    CONVERGED = (Severity.OK, "converged: relative change of the objective below tolerance")
    MAX_ITERATIONS = (
        Severity.WARNING,
        "stopped at max_iterations before the objective met the tolerance",
    )
    NOT_FINITE = (
        Severity.FAILURE,
        "the objective became non-finite; check the data and the step size",
    )


class MapResult(NamedTuple):
    """Result of :func:`map_estimate`.

    Attributes:
        image: The MAP estimate ``x_MAP``.
        potential: ``U(x_MAP)``.
        num_iterations: FISTA iterations run.
        relative_change: Last relative change of the objective.
        num_restarts: Number of momentum restarts.
        objective_trace: ``U`` at every iteration (``nan`` past ``num_iterations``).
        status: A :class:`MapStatus`.

    """

    image: Float[Array, "height width"]
    potential: float
    num_iterations: int
    relative_change: float
    num_restarts: int
    objective_trace: Float[Array, " max_iterations"]
    status: MapStatus


def map_estimate(
    posterior: ImagingPosterior,
    *,
    initial_image: Float[Array, "height width"] | None = None,
    max_iterations: int = 3000,
    tolerance: float = 1e-6,
    patience: int = 5,
    throw: bool = False,
) -> MapResult:
    """MAP estimate by FISTA with gradient-based adaptive restart.

    Step size ``1 / L`` with ``L`` the Lipschitz constant of the smooth gradient. The
    run stops when the relative change of the objective ``|U_k - U_{k-1}| / |U_k|`` has
    stayed below ``tolerance`` for ``patience`` consecutive iterations.

    Args:
        posterior: The posterior (see :func:`~astrobayes.imaging.posterior.imaging_posterior`).
        initial_image: Starting point; by default ``Phi^H y / ||Phi||^2`` (clipped at
            zero with positivity).
        max_iterations: Maximum number of iterations.
        tolerance: Relative objective change for the stopping rule.
        patience: Consecutive iterations below ``tolerance`` required to stop.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) when the status is a failure (a non-finite objective).

    Returns:
        A :class:`MapResult`.

    Raises:
        ValueError: If the starting image has the wrong shape or is not finite, or the
            iteration settings are invalid.
        UnreliableResultError: With ``throw=True`` on a failure status.

    Example:
        >>> import numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> from astrobayes.imaging.posterior import imaging_posterior
        >>> from astrobayes.imaging.priors import WaveletSparsityPrior
        >>> from astrobayes.imaging.wavelets import WaveletTransform
        >>> op = fourier_mask_operator(np.ones((8, 8), dtype=bool))
        >>> y = op(np.ones((8, 8)))
        >>> post = imaging_posterior(op, y, 0.1, WaveletSparsityPrior(1.0, WaveletTransform(1, 1)))
        >>> result = map_estimate(post)
        >>> result.status.name
        'CONVERGED'

    """
    max_iterations = check_positive_int(max_iterations, "max_iterations")
    patience = check_positive_int(patience, "patience")
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be positive; got {tolerance}")
    if initial_image is None:
        # one gradient step from zero with the data term's natural step: Phi^H y / ||Phi||^2
        # (for an unnormalised NUFFT, Phi^H y alone is ||Phi||^2 ~ M times too bright)
        start = posterior.operator.adjoint(posterior.visibilities) / posterior.operator_norm**2
    else:
        start = np.asarray(initial_image)
        if start.shape != posterior.image_shape:
            raise ValueError(
                f"initial_image must have shape {posterior.image_shape}; got {start.shape}"
            )
        if not np.all(np.isfinite(start)):
            raise ValueError("initial_image must be finite")
        start = jnp.asarray(start, dtype=jnp.zeros(()).dtype)
    if posterior.positivity:
        start = jnp.maximum(start, 0.0)
    image, potential, iterations, change, restarts, trace = _fista(
        posterior, start, max_iterations, float(tolerance), patience
    )
    potential = float(potential)
    if not np.isfinite(potential):
        status = MapStatus.NOT_FINITE
    elif int(iterations) < max_iterations:
        status = MapStatus.CONVERGED
    else:
        status = MapStatus.MAX_ITERATIONS
    result = MapResult(
        image=image,
        potential=potential,
        num_iterations=int(iterations),
        relative_change=float(change),
        num_restarts=int(restarts),
        objective_trace=trace,
        status=status,
    )
    return check(result, throw)


@jax.jit(static_argnums=(2, 4))
def _fista(posterior, start, max_iterations, tolerance, patience):
    step = 1.0 / posterior.smooth_lipschitz
    dtype = start.dtype

    def objective(x):
        return posterior.potential(x)

    def cond(state):
        k, _, _, _, _, calm, _, _, value, _ = state
        return (k < max_iterations) & (calm < patience) & jnp.isfinite(value)

    def body(state):
        k, x, x_previous, t, restarts, calm, trace, _, value, _ = state
        momentum = (t - 1.0) / (t_next := (1.0 + jnp.sqrt(1.0 + 4.0 * t * t)) / 2.0)
        z = x + momentum * (x - x_previous)
        x_new = posterior.prox(z - step * posterior.smooth_gradient(z), step)
        # gradient restart (O'Donoghue & Candes 2015): momentum points uphill
        restart = jnp.vdot(z - x_new, x_new - x) > 0
        t_new = jnp.where(restart, 1.0, t_next)
        value_new = objective(x_new)
        change = jnp.abs(value_new - value) / jnp.maximum(jnp.abs(value_new), 1e-30)
        calm = jnp.where(change < tolerance, calm + 1, 0)
        trace = trace.at[k].set(value_new)
        return (
            k + 1,
            x_new,
            jnp.where(restart, x_new, x),
            t_new.astype(dtype),
            restarts + restart.astype(jnp.int32),
            calm,
            trace,
            value,
            value_new,
            change,
        )

    trace = jnp.full((max_iterations,), jnp.nan, dtype)
    value0 = objective(start)
    state = (
        0,
        start,
        start,
        jnp.asarray(1.0, dtype),
        jnp.asarray(0, jnp.int32),
        0,
        trace,
        value0,
        value0,
        jnp.asarray(jnp.inf, dtype),
    )
    k, x, _, _, restarts, _, trace, _, value, change = jax.lax.while_loop(cond, body, state)
    return x, value, k, change, restarts, trace


class StrengthStatus(Status):
    """Outcome of the strength search; values are the messages."""

    CONVERGED = (Severity.OK, "converged: the residual matches the expected noise level")
    AT_LOWER_LIMIT = (
        Severity.WARNING,
        "the residual stays above the noise level even at the smallest strength",
    )
    AT_UPPER_LIMIT = (
        Severity.WARNING,
        "the residual stays below the noise level even at the largest strength",
    )
    MAX_SOLVES = (
        Severity.WARNING,
        "stopped at max_solves before the residual met the tolerance",
    )
    MAP_FAILED = (
        Severity.FAILURE,
        "failure: the MAP at the selected strength failed (see map_result.status)",
    )


class StrengthResult(NamedTuple):
    """Result of :func:`discrepancy_strength`.

    Attributes:
        strength: The selected regularisation strength.
        map_result: The MAP at that strength.
        posterior: The posterior at that strength.
        discrepancy_ratio: ``||y - Phi x_MAP||^2 / (2 M sigma^2)`` (1 at the target).
        num_solves: MAP solves used.
        status: :class:`StrengthStatus`.

    """

    strength: float
    map_result: MapResult
    posterior: ImagingPosterior
    discrepancy_ratio: float
    num_solves: int
    status: StrengthStatus


def discrepancy_strength(
    posterior: ImagingPosterior,
    *,
    target_ratio: float = 1.0,
    relative_tolerance: float = 0.02,
    bracket: tuple[float, float] | None = None,
    max_solves: int = 12,
    max_iterations: int = 3000,
    tolerance: float = 1e-6,
    throw: bool = False,
) -> StrengthResult:
    """Regularisation strength by Morozov's discrepancy principle.

    Chooses the strength ``lam`` of ``posterior.prior`` (any prior with a ``strength``
    field) such that the MAP residual matches the noise:
    ``||y - Phi x_MAP(lam)||^2 = target_ratio * 2 M sigma^2``, the expected value of
    ``||n||^2`` for ``M`` complex visibilities whose real and imaginary parts each have
    variance ``sigma^2``. The residual grows with ``lam``; the root is found by
    bisection on ``log lam`` (secant steps when bracketed), warm-starting each MAP from
    the previous one. The rule uses the data and the noise level only, never the truth.

    Args:
        posterior: Posterior whose prior's ``strength`` is the starting value.
        target_ratio: Target of ``||r||^2 / (2 M sigma^2)``.
        relative_tolerance: Accept when the ratio is within this relative distance.
        bracket: Optional ``(low, high)`` strengths; by default ``strength * 1e-3`` to
            ``strength * 1e3``.
        max_solves: Maximum number of MAP solves.
        max_iterations: FISTA iterations per MAP.
        tolerance: FISTA objective tolerance.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) when the status is a failure.

    Returns:
        A :class:`StrengthResult`.

    Raises:
        TypeError: If the prior has no ``strength`` field.
        ValueError: On invalid settings.
        UnreliableResultError: With ``throw=True`` when the selected MAP failed.

    References:
        Morozov 1966, Soviet Math. Dokl. 7, 414, "On the solution of functional
        equations by the method of regularization"; Engl, Hanke & Neubauer 1996,
        "Regularization of Inverse Problems", section 4.3.

    """
    if not hasattr(posterior.prior, "strength"):
        raise TypeError(f"{type(posterior.prior).__name__} has no strength field to tune")
    max_solves = check_positive_int(max_solves, "max_solves", minimum=2)
    if not (np.isfinite(target_ratio) and target_ratio > 0):
        raise ValueError(f"target_ratio must be positive; got {target_ratio}")
    start = float(posterior.prior.strength)
    low, high = bracket if bracket is not None else (start * 1e-3, start * 1e3)
    if not (0 < low < high and np.isfinite(high)):
        raise ValueError(f"bracket must satisfy 0 < low < high; got {(low, high)}")
    noise_energy = 2 * posterior.operator.num_visibilities * posterior.sigma**2

    cache: dict[float, tuple[float, MapResult, ImagingPosterior]] = {}
    image = None

    def solve(strength: float):
        nonlocal image
        current = with_strength(posterior, strength)
        result = map_estimate(
            current, initial_image=image, max_iterations=max_iterations, tolerance=tolerance
        )
        image = result.image
        residual = current.residual(result.image)
        ratio = float(jnp.sum(jnp.abs(residual) ** 2)) / noise_energy / target_ratio
        cache[strength] = (ratio, result, current)
        return ratio

    log_low, log_high = np.log(low), np.log(high)
    strength = float(np.clip(start, low, high))
    status = StrengthStatus.MAX_SOLVES
    f_low = f_high = None
    for _ in range(max_solves):
        ratio = solve(strength)
        if abs(ratio - 1.0) <= relative_tolerance:
            status = StrengthStatus.CONVERGED
            break
        if ratio < 1.0:
            log_low, f_low = np.log(strength), np.log(ratio)
        else:
            log_high, f_high = np.log(strength), np.log(ratio)
        if f_low is not None and f_high is not None:
            # secant on (log lam, log ratio), safeguarded inside the bracket
            guess = log_low - f_low * (log_high - log_low) / (f_high - f_low)
            margin = 0.05 * (log_high - log_low)
            guess = float(np.clip(guess, log_low + margin, log_high - margin))
        elif f_low is None:  # every ratio so far is too large: decrease lam
            guess = max(np.log(strength) - np.log(10.0), log_low)
        else:
            guess = min(np.log(strength) + np.log(10.0), log_high)
        if np.isclose(guess, np.log(strength)):
            status = StrengthStatus.AT_LOWER_LIMIT if ratio > 1 else StrengthStatus.AT_UPPER_LIMIT
            break
        strength = float(np.exp(guess))
    best = min(cache, key=lambda s: abs(np.log(cache[s][0])))
    ratio, result, current = cache[best]
    if result.status.is_failure:
        status = StrengthStatus.MAP_FAILED
    strength_result = StrengthResult(
        strength=best,
        map_result=result,
        posterior=current,
        discrepancy_ratio=ratio * target_ratio,
        num_solves=len(cache),
        status=status,
    )
    return check(strength_result, throw)


def with_strength(posterior: ImagingPosterior, strength: float) -> ImagingPosterior:
    """Return ``posterior`` with its prior's ``strength`` replaced.

    Args:
        posterior: The posterior.
        strength: New positive strength.

    Returns:
        A new posterior (the input is not modified).

    """
    if not (np.isfinite(strength) and strength > 0):
        raise ValueError(f"strength must be positive and finite; got {strength}")
    prior = eqx.tree_at(lambda p: p.strength, posterior.prior, float(strength))
    return eqx.tree_at(lambda p: p.prior, posterior, prior)


def snr_db(truth: Float[Array, "height width"], estimate: Float[Array, "height width"]) -> float:
    """Reconstruction SNR ``20 log10(||x|| / ||x - x_hat||)`` in dB.

    Args:
        truth: Ground truth ``x``.
        estimate: Estimate ``x_hat`` of the same shape.

    Returns:
        The SNR in dB (``inf`` for a perfect estimate).

    Raises:
        ValueError: On a shape mismatch.

    """
    truth = np.asarray(truth, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if truth.shape != estimate.shape:
        raise ValueError(f"shapes differ: truth {truth.shape}, estimate {estimate.shape}")
    error = np.linalg.norm(truth - estimate)
    if error == 0:
        return float("inf")
    return float(20 * np.log10(np.linalg.norm(truth) / error))
