"""Gaussian mixtures: densities, sampling and weighted expectation-maximisation in JAX.

One implementation shared by the mutual-information estimator
(:mod:`astrobayes.interpret.mutual_info`) and the mixture target of the learned harmonic
mean (:class:`astrobayes.evidence.GaussianMixtureTarget`). A mixture has a fixed number of
*slots*; unused slots carry zero weight, so fits with different component counts share one
shape and can be ``vmap``-ed.

References:
    Dempster, Laird & Rubin (1977), J. R. Stat. Soc. B 39, 1 (EM).
    Bishop (2006), Pattern Recognition and Machine Learning, section 9.2.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_finite, check_key, check_positive_int

__all__ = [
    "GaussianMixture",
    "component_log_densities",
    "fit_em",
    "fit_gaussian_mixture",
    "marginal_mixture",
    "run_em",
    "mixture_log_density",
    "sample_mixture",
]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixture(NamedTuple):
    """A Gaussian mixture with a fixed number of slots (unused slots have zero weight).

    Attributes:
        weights: Component weights, summing to one, shape ``(num_slots,)``.
        means: Component means, shape ``(num_slots, dim)``.
        cholesky: Lower Cholesky factors of the covariances, ``(num_slots, dim, dim)``.
    """

    weights: Float[Array, " num_slots"]
    means: Float[Array, "num_slots dim"]
    cholesky: Float[Array, "num_slots dim dim"]


def component_log_densities(
    mixture: GaussianMixture, points: Float[Array, "num_points dim"]
) -> Float[Array, "num_points num_slots"]:
    """``ln w_k + ln N(x_n | mu_k, Sigma_k)``, shape ``(num_points, num_slots)``."""
    dim = points.shape[-1]
    eye = jnp.eye(dim, dtype=points.dtype)
    inverse = jax.vmap(lambda chol: solve_triangular(chol, eye, lower=True))(mixture.cholesky)
    # whitened[n, k, :] = L_k^{-1} (x_n - mu_k), computed as L^{-1} x - L^{-1} mu
    whitened = jnp.einsum("kij,nj->nki", inverse, points) - jnp.einsum(
        "kij,kj->ki", inverse, mixture.means
    )
    log_det = jnp.sum(jnp.log(jnp.diagonal(mixture.cholesky, axis1=1, axis2=2)), axis=1)
    log_norm = -0.5 * jnp.sum(whitened**2, axis=2) - log_det - 0.5 * dim * _LOG_2PI
    safe = jnp.where(mixture.weights > 0, mixture.weights, 1.0)
    log_weights = jnp.where(mixture.weights > 0, jnp.log(safe), -jnp.inf)
    return log_norm + log_weights


def mixture_log_density(
    mixture: GaussianMixture, points: Float[Array, "num_points dim"]
) -> Float[Array, " num_points"]:
    """Log density of a Gaussian mixture at ``points``.

    Args:
        mixture: The mixture.
        points: Where to evaluate, shape ``(num_points, dim)``.

    Returns:
        ``ln p(points)``, shape ``(num_points,)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> g = GaussianMixture(jnp.ones(1), jnp.zeros((1, 1)), jnp.ones((1, 1, 1)))
        >>> round(float(mixture_log_density(g, jnp.zeros((1, 1)))[0]), 4)
        -0.9189
    """
    return logsumexp(component_log_densities(mixture, points), axis=1)


def marginal_mixture(mixture: GaussianMixture, index: slice) -> GaussianMixture:
    """The marginal mixture of the coordinates ``index``."""
    covariance = mixture.cholesky @ jnp.swapaxes(mixture.cholesky, -1, -2)
    block = covariance[:, index, index]
    return GaussianMixture(mixture.weights, mixture.means[:, index], jnp.linalg.cholesky(block))


def sample_mixture(
    key: PRNGKeyArray, mixture: GaussianMixture, num_samples: int
) -> Float[Array, "num_samples dim"]:
    """Draw ``num_samples`` points from the mixture."""
    key_component, key_normal = jax.random.split(key)
    safe = jnp.where(mixture.weights > 0, mixture.weights, 1.0)
    logits = jnp.where(mixture.weights > 0, jnp.log(safe), -jnp.inf)
    component = jax.random.categorical(key_component, logits, shape=(num_samples,))
    normal = jax.random.normal(key_normal, (num_samples, mixture.means.shape[1]))
    return mixture.means[component] + jnp.einsum("nij,nj->ni", mixture.cholesky[component], normal)


def _em_step(
    mixture: GaussianMixture, points: Array, sample_weights: Array, active: Array, floor: float
) -> tuple[GaussianMixture, Array]:
    """One weighted EM step; returns the new mixture and the mean log-likelihood before it."""
    log_components = component_log_densities(mixture, points)
    log_total = logsumexp(log_components, axis=1)
    responsibility = jnp.exp(log_components - log_total[:, None]) * sample_weights[:, None]
    counts = jnp.sum(responsibility, axis=0) * active
    total = jnp.sum(sample_weights)
    safe_counts = jnp.maximum(counts, 1e-10 * total)
    weights = counts / jnp.sum(counts)
    means = (responsibility.T @ points) / safe_counts[:, None]
    centred = points[None, :, :] - means[:, None, :]
    covariance = jnp.einsum("nk,kni,knj->kij", responsibility, centred, centred)
    covariance = covariance / safe_counts[:, None, None]
    dim = points.shape[1]
    eye = jnp.eye(dim, dtype=points.dtype)
    # an emptied or inactive slot keeps a unit covariance (it has zero weight anyway)
    empty = (counts <= 1e-10 * total)[:, None, None]
    covariance = jnp.where(empty, eye, covariance) + floor * eye
    mean_log_likelihood = jnp.sum(sample_weights * log_total) / total
    return GaussianMixture(weights, means, jnp.linalg.cholesky(covariance)), mean_log_likelihood


def run_em(
    mixture: GaussianMixture,
    points: Float[Array, "num_points dim"],
    sample_weights: Float[Array, " num_points"],
    active: Float[Array, " num_slots"],
    num_iterations: int,
    floor: float,
    tolerance: float,
) -> tuple[GaussianMixture, Float[Array, ""], Float[Array, ""]]:
    """Weighted EM from ``mixture`` until the mean log-likelihood settles (traceable).

    Args:
        mixture: Starting mixture (e.g. a previous fit, to warm-start bootstrap replicas).
        points: Samples.
        sample_weights: Non-negative weight of each sample.
        active: 1 for the slots in use, 0 for the others (which keep zero weight).
        num_iterations: Cap on EM steps.
        floor: Added to every covariance diagonal.
        tolerance: Stop when the mean log-likelihood per sample changes by less.

    Returns:
        The mixture, its final mean log-likelihood and the last change (``inf`` when
        stopped by ``num_iterations`` before two steps were taken).
    """

    def cond(state):
        _, _, change, iteration = state
        return (change >= tolerance) & (iteration < num_iterations)

    def body(state):
        current, previous, _, iteration = state
        new, mean_log_likelihood = _em_step(current, points, sample_weights, active, floor)
        return new, mean_log_likelihood, jnp.abs(mean_log_likelihood - previous), iteration + 1

    inf = jnp.asarray(jnp.inf, points.dtype)
    start = (mixture, -inf, inf, jnp.asarray(0))
    final, last, change, _ = jax.lax.while_loop(cond, body, start)
    return final, last, change


def _initial_mixture(
    key: PRNGKeyArray, points: Array, sample_weights: Array, active: Array
) -> GaussianMixture:
    """Means at distinct random data points (by weight), unit covariances, equal weights."""
    num_slots = active.shape[0]
    probabilities = sample_weights / jnp.sum(sample_weights)
    index = jax.random.choice(key, points.shape[0], (num_slots,), replace=False, p=probabilities)
    dim = points.shape[1]
    weights = active / jnp.sum(active)
    chol = jnp.broadcast_to(jnp.eye(dim, dtype=points.dtype), (num_slots, dim, dim))
    return GaussianMixture(weights, points[index], chol)


def fit_em(
    key: PRNGKeyArray,
    points: Float[Array, "num_points dim"],
    sample_weights: Float[Array, " num_points"],
    num_active: Array,
    *,
    num_slots: int,
    num_inits: int,
    num_iterations: int,
    floor: float,
    tolerance: float,
) -> tuple[GaussianMixture, Float[Array, ""], Float[Array, ""]]:
    """Best of ``num_inits`` EM runs with ``num_active`` of ``num_slots`` components.

    Traceable (``num_active`` may be a traced integer), so fits with different component
    counts, folds or bootstrap weights can be ``vmap``-ed; :func:`fit_gaussian_mixture` is
    the checked, compiled entry point for one fit.

    Returns:
        ``(mixture, final mean log-likelihood, last change)`` of the best initialisation.
    """
    active = (jnp.arange(num_slots) < num_active).astype(points.dtype)

    def one(init_key):
        start = _initial_mixture(init_key, points, sample_weights, active)
        return run_em(start, points, sample_weights, active, num_iterations, floor, tolerance)

    mixtures, finals, changes = jax.vmap(one)(jax.random.split(key, num_inits))
    best = jnp.argmax(jnp.where(jnp.isfinite(finals), finals, -jnp.inf))
    pick = jax.tree_util.tree_map(lambda leaf: leaf[best], mixtures)
    return pick, finals[best], changes[best]


def fit_gaussian_mixture(
    key: PRNGKeyArray,
    points: Float[Array, "num_points dim"],
    num_components: int,
    *,
    sample_weights: Float[Array, " num_points"] | None = None,
    num_inits: int = 3,
    num_iterations: int = 500,
    convergence_tolerance: float = 1e-5,
    covariance_floor: float = 1e-6,
) -> tuple[GaussianMixture, float, bool]:
    """Fit a Gaussian mixture by (weighted) EM, best of several initialisations.

    Args:
        key: PRNG key for the initialisations.
        points: Samples, shape ``(num_points, dim)``.
        num_components: Number of components.
        sample_weights: Non-negative weights per sample (bootstrap counts); default ones.
        num_inits: Random initialisations; the best final training likelihood wins.
        num_iterations: Cap on EM iterations.
        convergence_tolerance: Stop when the mean log-likelihood per sample changes by
            less than this in one iteration.
        covariance_floor: Added to every covariance diagonal.

    Returns:
        ``(mixture, mean_log_likelihood, is_converged)``.

    Raises:
        ValueError: If ``points`` is not a finite 2-D array with more rows than
            ``num_components``.

    Examples:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (500, 1)) * 2.0 + 1.0
        >>> g, log_likelihood, ok = fit_gaussian_mixture(jax.random.key(1), x, 1)
        >>> abs(float(x.mean()) - float(g.means[0, 0])) < 1e-4, ok  # the sample mean
        (True, True)
        >>> round(float(g.cholesky[0, 0, 0]), 1)
        2.0
    """
    check_key(key, "key")
    array = as_float_array(points, "points", ndim=2)
    check_finite(array, "points")
    num_components = check_positive_int(num_components, "num_components")
    if array.shape[0] <= num_components:
        raise ValueError(
            f"points must have more rows than num_components={num_components}; got {array.shape[0]}"
        )
    data = jnp.asarray(array, dtype=jnp.result_type(float))
    weights = (
        jnp.ones(data.shape[0], data.dtype)
        if sample_weights is None
        else jnp.asarray(sample_weights, data.dtype)
    )
    mixture, final, change = _fit_jit(
        key,
        data,
        weights,
        jnp.asarray(num_components),
        num_slots=num_components,
        num_inits=check_positive_int(num_inits, "num_inits"),
        num_iterations=check_positive_int(num_iterations, "num_iterations"),
        floor=float(covariance_floor),
        tolerance=float(convergence_tolerance),
    )
    return mixture, float(final), bool(float(change) < convergence_tolerance)


_FIT_STATIC = ("num_slots", "num_inits", "num_iterations", "floor", "tolerance")
_fit_jit = jax.jit(fit_em, static_argnames=_FIT_STATIC)
