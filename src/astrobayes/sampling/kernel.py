"""The NUTS kernel for many chains: pure state, ``init`` and a compiled step program.

Everything here is a pure function of explicit state (as in blackjax), so it composes
with ``jit``, ``vmap`` and ``lax.scan``; the host driver (:mod:`astrobayes.sampling.nuts`:
blocks, checkpoints, progress, summary) and the SBI posterior both run on it.

The log density is ``logdensity_fn(params, theta)``: ``params`` is any PyTree (an
equinox Module holding a trained estimator, a dict of data, or ``None``) passed as an
*argument* of the compiled program, so a retrained estimator with the same structure
reuses the compiled code instead of compiling NUTS again.

Warm-up is Stan's windowed adaptation: dual averaging of the step size and Welford
estimates of the inverse mass matrix in doubling slow windows. Warm-up and sampling run
through one program, whose adaptation updates are switched on or off by a per-step
schedule passed as data (:func:`warmup_schedule`). Step ``i`` of a chain uses the key
``fold_in(chain_key, i)``.

References:
    Hoffman & Gelman (2014), arXiv:1111.4246 (NUTS, dual averaging); Stan Reference
    Manual, "HMC algorithm parameters" (adaptation windows); Cabezas et al. (2024),
    arXiv:2402.10797 (BlackJAX).

"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation, welford_algorithm
from blackjax.adaptation.metric_estimators import fisher_score_diagonal_from_moments
from blackjax.adaptation.staged_adaptation import build_schedule
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.optimizers.lbfgs import lbfgs_inverse_hessian_formula_1
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes.compilation import program_per_function

__all__ = [
    "NUTSAdaptation",
    "NUTSDraws",
    "NUTSState",
    "NUTSStepInfo",
    "PathfinderStart",
    "build_nuts_steps",
    "end_warmup",
    "nuts_init",
    "pathfinder_start",
    "sample_nuts",
    "warmup_schedule",
]

#: ``logdensity_fn(params, theta (dim,)) -> +log density`` (scalar, differentiable).
LogDensityFn = Callable[[Any, Float[Array, " dim"]], Float[Array, ""]]

#: Per-chain position, log density and its gradient (blackjax's ``HMCState``).
NUTSState = blackjax.mcmc.hmc.HMCState


class NUTSAdaptation(NamedTuple):
    """Per-chain adaptation state: dual averaging, Welford window, current parameters.

    Attributes:
        step_size_state: Dual-averaging state (blackjax).
        mass_matrix_state: Welford state of the current slow window (blackjax).
        step_size: Step size used by the next step.
        inverse_mass_matrix: Inverse mass matrix used by the next step.

    """

    step_size_state: Any
    mass_matrix_state: Any
    step_size: Float[Array, "*chains"]
    inverse_mass_matrix: Float[Array, "*chains dim"] | Float[Array, "*chains dim dim"]


class NUTSStepInfo(NamedTuple):
    """What each step of :func:`build_nuts_steps`'s program reports, ``(num_chains, num_steps)``.

    Attributes:
        position: Position after the step, ``(num_chains, num_steps, dim)``.
        logdensity: Its log density.
        is_divergent: Divergent transition (``False`` on inactive steps).
        acceptance_rate: Mean Metropolis acceptance of the trajectory.
        num_integration_steps: Leapfrog steps of the trajectory, each one evaluation of
            the density and its gradient (inactive steps are computed too, and counted).

    """

    position: Float[Array, "num_chains num_steps dim"]
    logdensity: Float[Array, "num_chains num_steps"]
    is_divergent: Bool[Array, "num_chains num_steps"]
    acceptance_rate: Float[Array, "num_chains num_steps"]
    num_integration_steps: Int[Array, "num_chains num_steps"]


class NUTSDraws(NamedTuple):
    """Output of :func:`sample_nuts`.

    Attributes:
        samples: Draws after warm-up, ``(num_chains, num_samples, dim)``.
        logdensity: Their log densities, ``(num_chains, num_samples)``.
        is_divergent: Divergent transitions, ``(num_chains, num_samples)``.
        acceptance_rate: Mean acceptance of each trajectory, ``(num_chains, num_samples)``.
        step_size: Adapted step size per chain, ``(num_chains,)``.
        inverse_mass_matrix: Adapted inverse mass matrix per chain.

    """

    samples: Float[Array, "num_chains num_samples dim"]
    logdensity: Float[Array, "num_chains num_samples"]
    is_divergent: Bool[Array, "num_chains num_samples"]
    acceptance_rate: Float[Array, "num_chains num_samples"]
    step_size: Float[Array, " num_chains"]
    inverse_mass_matrix: Float[Array, "num_chains ..."]


#: Estimators of the inverse mass matrix in each slow window: ``"welford"`` (Stan: the
#: window's sample variance or covariance of the positions) or ``"fisher"`` (diagonal
#: only: ``sqrt(Var[x] / Var[grad log p])`` per coordinate, which also uses the
#: gradients, started from ``1 / |grad log p|`` at the initial point instead of the
#: identity; nutpie's estimator and start, Seyboldt et al., as implemented in BlackJAX).
MASS_MATRIX_ESTIMATORS = ("welford", "fisher")

#: The inverse mass matrix before the first slow window: ``"identity"`` (Stan),
#: ``"gradient"`` (nutpie's start, ``1 / |grad log p|`` per coordinate at each chain's
#: initial point; always used by the ``"fisher"`` estimator) or ``"pathfinder"`` (each
#: chain runs Pathfinder from its initial point, then *starts at a draw* from its
#: approximation, with the approximation's covariance, diagonal or dense, as the metric:
#: :func:`pathfinder_start`; Welford estimator only). ``"gradient"`` is meant for
#: parameters whose scales differ by orders of magnitude, where the identity makes early
#: warm-up trajectories long; on the d = 30 shear posterior it saved only ~3% of the
#: gradient evaluations. ``"pathfinder"`` moves starts far from the posterior into its
#: typical set: there it cut warm-up from 503 s to 267 s, but cost 80-105 s itself (mostly
#: compilation), and its metric was too narrow in the weakly constrained directions
#: (docs/cosmic_shear.md).
INITIAL_METRICS = ("identity", "gradient", "pathfinder")

#: How each slow window's Welford covariance is regularised: ``"stan"`` (Stan and
#: BlackJAX: ``n/(n+5) C + 5/(n+5) 1e-3 I``, shrinking toward a fixed ``1e-3`` variance)
#: or ``"scale_free"`` (``n/(n+5) C + 5/(n+5) 1e-3 diag(C)``: the same weights, but
#: toward a thousandth of each parameter's *own* window variance, so the result does
#: not depend on the parameters' units). Stan's target assumes unit-scale parameters:
#: one whose posterior variance is ``1e-5`` gets a metric inflated ~17x after a
#: 25-draw window, so the step size must shrink for it. Shear calibrations and
#: photo-z shifts (posterior sd ~0.005) are such parameters, but on the d = 30 shear
#: posterior the step size stayed where it was: there the correlations set it
#: (docs/cosmic_shear.md).
METRIC_SHRINKAGES = ("stan", "scale_free")

#: How :func:`build_nuts_steps` runs its chains: ``"vectorized"`` (``vmap``: one batched
#: program; each NUTS step costs the *longest* trajectory among the chains, because the
#: tree-doubling loop runs until every chain's tree is done) or ``"sequential"``
#: (``lax.map``: one chain after another; each costs its own trajectories).
CHAIN_METHODS = ("vectorized", "sequential")


#: Stan's and BlackJAX's largest NUTS tree depth: at most ``2**10 - 1`` leapfrog steps
#: per transition (``NUTSConfig.max_tree_depth`` may lower it, never raise it).
MAX_TREE_DEPTH = 10


def check_nuts_options(
    dense_mass: bool,
    chain_method: str = "vectorized",
    mass_matrix_estimator: str = "welford",
    pooled_metric: bool = False,
    initial_metric: str = "identity",
    metric_shrinkage: str = "stan",
    pooled_step_size: bool = False,
    max_tree_depth: int = MAX_TREE_DEPTH,
) -> None:
    """Raise ``ValueError`` naming the option when the NUTS settings do not go together."""
    if (
        isinstance(max_tree_depth, bool)
        or not isinstance(max_tree_depth, int | np.integer)
        or not 1 <= max_tree_depth <= MAX_TREE_DEPTH
    ):
        raise ValueError(
            f"max_tree_depth must be an integer in [1, {MAX_TREE_DEPTH}]; got {max_tree_depth!r}"
        )
    if pooled_step_size and chain_method != "vectorized":
        raise ValueError(
            f"pooled_step_size=True needs chain_method='vectorized'; got {chain_method!r}"
        )
    if metric_shrinkage not in METRIC_SHRINKAGES:
        raise ValueError(
            f"metric_shrinkage must be one of {METRIC_SHRINKAGES}; got {metric_shrinkage!r}"
        )
    if initial_metric not in INITIAL_METRICS:
        raise ValueError(f"initial_metric must be one of {INITIAL_METRICS}; got {initial_metric!r}")
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}; got {chain_method!r}")
    if mass_matrix_estimator not in MASS_MATRIX_ESTIMATORS:
        raise ValueError(
            f"mass_matrix_estimator must be one of {MASS_MATRIX_ESTIMATORS}; "
            f"got {mass_matrix_estimator!r}"
        )
    if mass_matrix_estimator == "fisher" and initial_metric == "pathfinder":
        raise ValueError(
            "initial_metric='pathfinder' needs mass_matrix_estimator='welford' (the 'fisher' "
            "estimator always starts from 1 / |grad log p|)"
        )
    if mass_matrix_estimator == "fisher" and metric_shrinkage != "stan":
        raise ValueError(
            f"metric_shrinkage={metric_shrinkage!r} needs mass_matrix_estimator='welford' "
            "(the 'fisher' estimator is not shrunk)"
        )
    if mass_matrix_estimator == "fisher" and dense_mass:
        raise ValueError("mass_matrix_estimator='fisher' is diagonal only; set dense_mass=False")
    if pooled_metric and (chain_method != "vectorized" or mass_matrix_estimator != "welford"):
        raise ValueError(
            "pooled_metric=True needs chain_method='vectorized' and "
            f"mass_matrix_estimator='welford'; got {chain_method!r} and {mass_matrix_estimator!r}"
        )


#: Name of the chain axis of the vectorized step program (for the pooled metric).
_CHAINS = "chains"


def _pool_welford(state):
    """One Welford state from all chains' window states (Chan et al. 1979's pairwise merge).

    Inside ``vmap(..., axis_name=_CHAINS)``: every chain gets the pooled count, mean and
    sum of squared deviations, ``M2 = sum_c [M2_c + n_c (mean_c - mean)(mean_c - mean)^T]``.
    """
    count = jax.lax.psum(state.sample_size, _CHAINS)
    weight = state.sample_size / jnp.maximum(count, 1)
    mean = jax.lax.psum(weight * state.mean, _CHAINS)
    shift = state.mean - mean
    spread = shift * shift if state.m2.ndim == 1 else jnp.outer(shift, shift)
    m2 = jax.lax.psum(state.m2 + state.sample_size * spread, _CHAINS)
    return state._replace(mean=mean, m2=m2, sample_size=count)


def _adaptation_fns(
    target_acceptance_rate: float,
    dense_mass: bool,
    estimator: str = "welford",
    shrinkage: str = "stan",
):
    """``(init, update(m, position, grad), final)`` of the metric, and dual averaging."""
    check_nuts_options(dense_mass, mass_matrix_estimator=estimator, metric_shrinkage=shrinkage)
    da = dual_averaging_adaptation(target_acceptance_rate)
    if estimator == "welford":
        init, update, final = mass_matrix_adaptation(not dense_mass)
        if shrinkage == "scale_free":
            final = _scale_free_final(dense_mass)
        return (init, lambda m, position, grad: update(m, position), final), da
    init, update, reset = mass_matrix_adaptation(True, diagonal_estimator="fisher")

    def final(m):
        block = m.fisher_block
        denom = jnp.maximum(block.count - 1.0, 1.0)
        inverse = fisher_score_diagonal_from_moments(block.m2_x / denom, block.m2_g / denom)
        return reset(m)._replace(inverse_mass_matrix=inverse.astype(m.inverse_mass_matrix.dtype))

    return (init, update, final), da


def _scale_free_final(dense_mass: bool):
    """Window end with Stan's weights but the target ``1e-3 diag(C)`` (see METRIC_SHRINKAGES)."""
    wc_init, _, wc_final = welford_algorithm(not dense_mass)

    def final(m):
        covariance, count, _ = wc_final(m.wc_state)
        variances = jnp.diag(covariance) if dense_mass else covariance
        # a chain stuck for a whole window has zero variance: keep its previous scale
        previous = jnp.diag(m.inverse_mass_matrix) if dense_mass else m.inverse_mass_matrix
        variances = jnp.where(variances > 0, variances, previous)
        data, target = count / (count + 5.0), 5.0 / (count + 5.0) * 1e-3
        if dense_mass:
            inverse = data * covariance + target * jnp.diag(variances)
            inverse = jnp.where(jnp.all(jnp.diag(covariance) > 0), inverse, jnp.diag(variances))
        else:
            inverse = jnp.where(covariance > 0, data * covariance, variances) + target * variances
        inverse = inverse.astype(m.inverse_mass_matrix.dtype)
        return m._replace(inverse_mass_matrix=inverse, wc_state=wc_init(variances.shape[0]))

    return final


def nuts_init(
    logdensity_fn: LogDensityFn,
    params: Any,
    positions: Float[Array, "num_chains dim"],
    *,
    target_acceptance_rate: float = 0.8,
    dense_mass: bool = False,
    mass_matrix_estimator: str = "welford",
    initial_metric: str = "identity",
    inverse_mass_matrix: Float[Array, "num_chains ..."] | None = None,
) -> tuple[NUTSState, NUTSAdaptation]:
    """Initial NUTS states and adaptation states of ``num_chains`` chains (pure).

    Args:
        logdensity_fn: ``(params, theta) -> +log density``.
        params: PyTree of density parameters (``None`` for none).
        positions: Starting points, ``(num_chains, dim)``.
        target_acceptance_rate: Dual-averaging target.
        dense_mass: Adapt a dense (not diagonal) inverse mass matrix.
        mass_matrix_estimator: One of :data:`MASS_MATRIX_ESTIMATORS`.
        initial_metric: One of :data:`INITIAL_METRICS`. ``"pathfinder"`` needs
            ``inverse_mass_matrix`` (from :func:`pathfinder_start`, whose positions are
            the ``positions`` to pass here).
        inverse_mass_matrix: Each chain's initial inverse mass matrix, ``(num_chains,
            dim)`` or ``(num_chains, dim, dim)`` as ``dense_mass``; overrides
            ``initial_metric``'s own start.

    Returns:
        ``(state, adaptation)``, each with a leading chain axis; step size 1 and an
        identity inverse mass matrix (``"gradient"`` or ``"fisher"``: ``1 / |grad log
        p|`` at each start, on the diagonal; ``inverse_mass_matrix`` where given).

    Raises:
        ValueError: If the options do not go together, or ``inverse_mass_matrix`` has
            the wrong shape.

    """
    check_nuts_options(
        dense_mass, mass_matrix_estimator=mass_matrix_estimator, initial_metric=initial_metric
    )
    (mm_init, _, _), (da_init, _, _) = _adaptation_fns(
        target_acceptance_rate, dense_mass, mass_matrix_estimator
    )
    num_chains, dim = positions.shape
    if inverse_mass_matrix is None and initial_metric == "pathfinder":
        raise ValueError(
            "initial_metric='pathfinder' needs the inverse_mass_matrix (and positions) "
            "returned by pathfinder_start"
        )
    if inverse_mass_matrix is not None:
        expected = (num_chains, dim, dim) if dense_mass else (num_chains, dim)
        if jnp.shape(inverse_mass_matrix) != expected:
            raise ValueError(
                f"inverse_mass_matrix must have shape {expected} (dense_mass={dense_mass}); "
                f"got {jnp.shape(inverse_mass_matrix)}"
            )
        matrices = jnp.asarray(inverse_mass_matrix, positions.dtype)
    else:
        matrices = jnp.zeros((num_chains,), positions.dtype)  # unused placeholder

    def one(params, position, matrix):
        state = blackjax.nuts.init(position, partial(logdensity_fn, params))
        if inverse_mass_matrix is not None:
            mass_matrix = mm_init(dim, matrix)
        elif mass_matrix_estimator == "fisher" or initial_metric == "gradient":
            # nutpie's start: the metric 1 / |grad log p| at the initial point, clipped
            # to nutpie's range, instead of the identity
            scale = jnp.clip(1.0 / jnp.abs(state.logdensity_grad), 1e-20, 1e20)
            scale = scale.astype(position.dtype)
            mass_matrix = mm_init(dim, jnp.diag(scale) if dense_mass else scale)
        else:
            mass_matrix = mm_init(dim)
        step_size = jnp.asarray(1.0, position.dtype)
        adaptation = NUTSAdaptation(
            step_size_state=da_init(step_size),
            mass_matrix_state=mass_matrix,
            step_size=step_size,
            inverse_mass_matrix=mass_matrix.inverse_mass_matrix,
        )
        return state, adaptation

    return jax.vmap(one, in_axes=(None, 0, 0))(params, positions, matrices)


class PathfinderStart(NamedTuple):
    """Output of :func:`pathfinder_start`, one row per chain.

    Attributes:
        positions: Where each chain starts: a draw from its Pathfinder approximation,
            or its given point where Pathfinder failed.
        inverse_mass_matrix: The approximation's covariance (its diagonal unless
            ``dense_mass``; with ``pooled``, the mixture's, the same for every chain);
            the identity where Pathfinder failed.
        means: Each chain's approximation mean (one Newton step from the selected
            point of its path).
        elbo: The selected approximation's ELBO estimate (``-inf`` where it failed).
        num_iterations: L-BFGS steps that moved the point.
        succeeded: Whether the chain's Pathfinder gave a finite ELBO, a finite start
            and a positive definite metric.

    """

    positions: Float[Array, "num_chains dim"]
    inverse_mass_matrix: Float[Array, "num_chains ..."]
    means: Float[Array, "num_chains dim"]
    elbo: Float[Array, " num_chains"]
    num_iterations: Int[Array, " num_chains"]
    succeeded: Bool[Array, " num_chains"]


#: Pathfinder's L-BFGS iterations and Monte Carlo draws per ELBO estimate (per chain).
PATHFINDER_MAXITER = 100
PATHFINDER_NUM_ELBO_SAMPLES = 50


def pathfinder_start(
    key: PRNGKeyArray,
    logdensity_fn: LogDensityFn,
    params: Any,
    positions: Float[Array, "num_chains dim"],
    *,
    dense_mass: bool = False,
    pooled: bool = False,
    maxiter: int = PATHFINDER_MAXITER,
    num_elbo_samples: int = PATHFINDER_NUM_ELBO_SAMPLES,
) -> PathfinderStart:
    """Each chain's start and metric from single-path Pathfinder (pure).

    From each chain's point, L-BFGS climbs the log density; along its path Pathfinder
    forms Gaussian approximations from the L-BFGS inverse Hessian and keeps the one of
    largest ELBO. The chain then starts at one draw from that Gaussian, with its
    covariance as the inverse mass matrix: a start in the typical set and a metric of
    the right scales, where a start drawn from the prior at tens of parameters would
    spend the first warm-up window on maximum-depth trajectories. The warm-up windows
    then refine the metric as usual. Uses BlackJAX's Pathfinder; chains run one after
    another (``lax.map``), since the line searches of a batch would wait for the
    slowest chain. A chain whose Pathfinder fails keeps its point and the identity.

    One path's L-BFGS inverse Hessian is narrow in the directions its few steps did not
    explore (on the d = 30 shear posterior, 5-15x too narrow in h, n_s, w0). With
    ``pooled=True`` every chain gets the covariance of the equal-weight mixture of all
    chains' approximations instead, ``mean_c S_c + cov_c(m_c)`` (the spread of the
    paths' means fills those directions), as :attr:`NUTSConfig.pooled_metric` pools the
    warm-up windows.

    References:
        Zhang, Carpenter, Gelman & Vehtari (2022), arXiv:2108.03782 (Pathfinder);
        Cabezas et al. (2024), arXiv:2402.10797 (BlackJAX).

    Args:
        key: JAX PRNG key (chain ``c`` uses ``split(key, num_chains)[c]``).
        logdensity_fn: ``(params, theta) -> +log density``.
        params: PyTree of density parameters (``None`` for none).
        positions: Points to start L-BFGS from, ``(num_chains, dim)``.
        dense_mass: Return the dense covariance, not its diagonal.
        pooled: Give every chain the mixture covariance of all successful chains.
        maxiter: L-BFGS iterations at most.
        num_elbo_samples: Draws per ELBO estimate along the path.

    Returns:
        :class:`PathfinderStart`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> def logdensity(params, x):
        ...     return -0.5 * jnp.sum((x / jnp.array([1.0, 10.0])) ** 2)
        >>> start = pathfinder_start(jax.random.key(0), logdensity, None, jnp.ones((2, 2)))
        >>> start.positions.shape, bool(start.succeeded.all())
        ((2, 2), True)

    """
    check_key(key)
    maxiter = check_positive_int(maxiter, "maxiter")
    num_elbo_samples = check_positive_int(num_elbo_samples, "num_elbo_samples")
    positions = jnp.asarray(positions)
    if positions.ndim != 2:
        raise ValueError(f"positions must have shape (num_chains, dim); got {positions.shape}")
    paths = program_per_function(_PATH_PROGRAMS, logdensity_fn, _pathfinder_paths)
    draws = paths(key, params, positions, maxiter, num_elbo_samples)
    return _pathfinder_result(positions, *draws, dense_mass=dense_mass, pooled=pooled)


#: The Pathfinder path program per density (see :func:`_pathfinder_paths`).
_PATH_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pathfinder_paths(get_logdensity_fn):
    """The program running each chain's Pathfinder, one after another (``lax.map``).

    One per density (:func:`~astrobayes.compilation.program_per_function`), with the
    settings static: calls with the same density, shapes and settings (the diagonal,
    dense and pooled variants; repeated starts) share one compiled program, where a
    closure built per call compiled it again every time.
    """

    @partial(jax.jit, static_argnums=(3, 4))
    def paths(key, params, positions, maxiter, num_elbo_samples):
        return jax.lax.map(
            partial(_one_path, get_logdensity_fn(), params, maxiter, num_elbo_samples),
            (jax.random.split(key, positions.shape[0]), positions),
        )

    return paths


def _one_path(logdensity_fn, params, maxiter, num_elbo_samples, args):
    """One chain's Pathfinder: its draw, covariance, mean, ELBO, steps and checks."""
    chain_key, position = args
    approximate_key, draw_key = jax.random.split(chain_key)
    density = partial(logdensity_fn, params)
    state, info = blackjax.vi.pathfinder.approximate(
        approximate_key, density, position, num_elbo_samples, maxiter=maxiter
    )
    draw, _ = blackjax.vi.pathfinder.sample(draw_key, state)
    covariance = lbfgs_inverse_hessian_formula_1(state.alpha, state.beta, state.gamma)
    variances = jnp.diag(covariance)
    finite = (
        jnp.isfinite(state.elbo)
        & jnp.all(jnp.isfinite(draw))
        & jnp.isfinite(density(draw))
        & jnp.all(jnp.isfinite(covariance))
        & jnp.all(variances > 0)
    )
    factorises = jnp.all(jnp.isfinite(jnp.linalg.cholesky(covariance)))
    # the approximation's mean: one Newton step from the selected point
    mean = state.position + covariance @ state.grad_position
    # steps that moved the point (after convergence the path repeats its last point)
    path = info.path.position
    iterations = jnp.sum(jnp.any(path[1:] != path[:-1], axis=1))
    return draw, covariance, mean, state.elbo, iterations, finite, factorises


@partial(jax.jit, static_argnames=("dense_mass", "pooled"))
def _pathfinder_result(
    positions,
    draws,
    covariances,
    means,
    elbo,
    iterations,
    finite,
    factorises,
    *,
    dense_mass,
    pooled,
) -> PathfinderStart:
    """Starts and metrics from the paths (a chain that failed keeps its point and the identity)."""
    succeeded = finite & factorises if dense_mass else finite
    starts = jnp.where(succeeded[:, None], draws, positions).astype(positions.dtype)
    identity = jnp.eye(positions.shape[1], dtype=covariances.dtype)
    if pooled:
        weight = succeeded / jnp.maximum(jnp.sum(succeeded), 1)
        mean = jnp.einsum("c,cd->d", weight, jnp.where(succeeded[:, None], means, 0.0))
        shift = jnp.where(succeeded[:, None], means - mean, 0.0)
        mixture = jnp.einsum(
            "c,cij->ij", weight, jnp.where(succeeded[:, None, None], covariances, 0.0)
        )
        mixture = mixture + jnp.einsum("c,ci,cj->ij", weight, shift, shift)
        mixture = jnp.where(jnp.any(succeeded), mixture, identity)
        covariances = jnp.broadcast_to(mixture, covariances.shape)
    else:
        covariances = jnp.where(succeeded[:, None, None], covariances, identity)
    metrics = covariances if dense_mass else jnp.diagonal(covariances, axis1=1, axis2=2)
    return PathfinderStart(
        positions=starts,
        inverse_mass_matrix=metrics.astype(positions.dtype),
        means=means.astype(positions.dtype),
        elbo=jnp.where(succeeded, elbo, -jnp.inf),
        num_iterations=iterations.astype(jnp.int32),
        succeeded=succeeded,
    )


def warmup_schedule(num_warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Stan's window schedule as data: per warm-up step, its stage and window end.

    Args:
        num_warmup: Warm-up steps.

    Returns:
        ``(stage, window_end)``, each ``(num_warmup,)``: stage 0 (fast: step size only)
        or 1 (slow: mass matrix too), and whether a slow window ends after the step.

    Example:
        >>> stage, window_end = warmup_schedule(100)
        >>> int(stage.sum()), int(window_end.sum())
        (75, 1)

    """
    with jax.ensure_compile_time_eval():  # concrete even when called under jit
        rows = np.asarray(build_schedule(num_warmup), dtype=np.int32).reshape(-1, 2)
    return rows[:, 0], rows[:, 1].astype(bool)


def end_warmup(adaptation: NUTSAdaptation) -> NUTSAdaptation:
    """Fix the step size at its dual-averaging average and the last window's mass matrix."""
    return adaptation._replace(
        step_size=jnp.exp(adaptation.step_size_state.log_step_size_avg),
        inverse_mass_matrix=adaptation.mass_matrix_state.inverse_mass_matrix,
    )


def _multi_chain_steps(
    logdensity_fn: LogDensityFn,
    target_acceptance_rate,
    dense_mass,
    chain_method="vectorized",
    mass_matrix_estimator="welford",
    pooled_metric=False,
    metric_shrinkage="stan",
    pooled_step_size=False,
    max_tree_depth=MAX_TREE_DEPTH,
):
    """The (not yet compiled) multi-chain step program; see :func:`build_nuts_steps`."""
    check_nuts_options(
        dense_mass,
        chain_method,
        mass_matrix_estimator,
        pooled_metric,
        metric_shrinkage=metric_shrinkage,
        pooled_step_size=pooled_step_size,
        max_tree_depth=max_tree_depth,
    )
    (_, mm_update, mm_final), (da_init, da_update, da_final) = _adaptation_fns(
        target_acceptance_rate, dense_mass, mass_matrix_estimator, metric_shrinkage
    )
    kernel = blackjax.nuts.build_kernel()

    def end_window(adaptation):
        mass_matrix = adaptation.mass_matrix_state
        if pooled_metric:
            mass_matrix = mass_matrix._replace(wc_state=_pool_welford(mass_matrix.wc_state))
        mass_matrix = mm_final(mass_matrix)
        step_size_state = da_init(da_final(adaptation.step_size_state))
        return NUTSAdaptation(
            step_size_state=step_size_state,
            mass_matrix_state=mass_matrix,
            step_size=jnp.exp(step_size_state.log_step_size),
            inverse_mass_matrix=mass_matrix.inverse_mass_matrix,
        )

    def keep_where(flag, new, old):
        return jax.tree_util.tree_map(lambda a, b: jnp.where(flag, a, b), new, old)

    def one(params, chain_key, state, adaptation, index, stage, window_end, adapting, active):
        density = partial(logdensity_fn, params)

        def body(carry, xs):
            state, adaptation = carry
            step_index, step_stage, step_window_end, step_adapting, step_active = xs
            new_state, info = kernel(
                jax.random.fold_in(chain_key, step_index),
                state,
                density,
                adaptation.step_size,
                adaptation.inverse_mass_matrix,
                max_num_doublings=max_tree_depth,
            )
            acceptance = info.acceptance_rate
            if pooled_step_size:
                # every chain's dual averaging sees the chains' mean acceptance, so all
                # chains keep one step size (they start from the same one)
                acceptance = jax.lax.pmean(acceptance, _CHAINS)
            step_size_state = da_update(adaptation.step_size_state, acceptance)
            mass_matrix = jax.lax.cond(
                step_stage == 1,
                lambda m: mm_update(m, new_state.position, new_state.logdensity_grad),
                lambda m: m,
                adaptation.mass_matrix_state,
            )
            adapted = NUTSAdaptation(
                step_size_state=step_size_state,
                mass_matrix_state=mass_matrix,
                step_size=jnp.exp(step_size_state.log_step_size),
                inverse_mass_matrix=adaptation.inverse_mass_matrix,
            )
            adapted = jax.lax.cond(step_window_end, end_window, lambda a: a, adapted)
            adaptation = keep_where(step_adapting & step_active, adapted, adaptation)
            state = keep_where(step_active, new_state, state)
            return (state, adaptation), NUTSStepInfo(
                position=new_state.position,
                logdensity=new_state.logdensity,
                is_divergent=info.is_divergent & step_active,
                acceptance_rate=info.acceptance_rate,
                num_integration_steps=info.num_integration_steps,
            )

        xs = (index, stage, window_end, adapting, active)
        return jax.lax.scan(body, (state, adaptation), xs)

    if chain_method == "vectorized":
        return jax.vmap(
            one, in_axes=(None, 0, 0, 0, None, None, None, None, None), axis_name=_CHAINS
        )

    def sequential(params, chain_keys, state, adaptation, *schedule):
        return jax.lax.map(lambda c: one(params, *c, *schedule), (chain_keys, state, adaptation))

    return sequential


def build_nuts_steps(
    logdensity_fn: LogDensityFn,
    *,
    target_acceptance_rate: float = 0.8,
    dense_mass: bool = False,
    chain_method: str = "vectorized",
    mass_matrix_estimator: str = "welford",
    pooled_metric: bool = False,
    metric_shrinkage: str = "stan",
    pooled_step_size: bool = False,
    max_tree_depth: int = MAX_TREE_DEPTH,
) -> Callable:
    """One compiled program for warm-up and sampling of many chains: a scan of NUTS steps.

    The program is ``steps(params, chain_keys, state, adaptation, index, stage,
    window_end, adapting, active) -> ((state, adaptation), NUTSStepInfo)``, with
    ``chain_keys`` ``(num_chains,)``, ``state``/``adaptation`` from :func:`nuts_init`, and
    per step (data, not compile-time constants, each ``(num_steps,)``): the global step
    index (the key is ``fold_in(chain_key, index)``), the window stage (0 fast, 1 slow),
    whether a slow window ends, whether to adapt, and whether the step is active at all
    (inactive steps leave state and adaptation unchanged). ``params`` is an argument, so
    new parameters of the same structure reuse the compiled code: build the program once
    and keep it.

    Args:
        logdensity_fn: ``(params, theta) -> +log density``.
        target_acceptance_rate: Dual-averaging target.
        dense_mass: Adapt a dense inverse mass matrix.
        chain_method: ``"vectorized"`` (default) or ``"sequential"``: see
            :data:`CHAIN_METHODS`. The same keys, so the same chains up to rounding
            (which NUTS trajectories amplify: the two agree in distribution, not bitwise).
        mass_matrix_estimator: One of :data:`MASS_MATRIX_ESTIMATORS`.
        pooled_metric: At each slow window's end, estimate one inverse mass matrix from
            all chains' window draws together and give it to every chain (``"welford"``,
            ``"vectorized"`` only). A dense metric then rests on ``num_chains`` times the
            draws. The chains stay independent after warm-up, with one fixed kernel.
        metric_shrinkage: One of :data:`METRIC_SHRINKAGES` (``"welford"`` only).
        pooled_step_size: Adapt one step size for all chains: dual averaging is fed the
            chains' mean acceptance rate (``"vectorized"`` only). A vectorized step costs
            the longest trajectory among the chains, and chains whose step sizes drift
            apart during warm-up pay for the smallest one.
        max_tree_depth: At most ``2**max_tree_depth - 1`` leapfrog steps per
            transition (1 to :data:`MAX_TREE_DEPTH`).

    Returns:
        The jitted ``steps`` function.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> def logdensity(scale, x):
        ...     return -0.5 * jnp.sum((x / scale) ** 2)
        >>> steps = build_nuts_steps(logdensity)
        >>> state, adaptation = nuts_init(logdensity, 2.0, jnp.zeros((2, 3)))
        >>> index = np.arange(5); on = np.ones(5, bool)
        >>> (state, adaptation), info = steps(2.0, jax.random.split(jax.random.key(0), 2),
        ...     state, adaptation, index, np.zeros(5, np.int32), ~on, ~on, on)
        >>> info.position.shape
        (2, 5, 3)

    """
    return jax.jit(
        _multi_chain_steps(
            logdensity_fn,
            float(target_acceptance_rate),
            bool(dense_mass),
            chain_method,
            mass_matrix_estimator,
            bool(pooled_metric),
            metric_shrinkage,
            bool(pooled_step_size),
            max_tree_depth,
        )
    )


def sample_nuts(
    key: PRNGKeyArray,
    logdensity_fn: LogDensityFn,
    params: Any,
    initial_positions: Float[Array, "num_chains dim"],
    *,
    num_warmup: int,
    num_samples: int,
    target_acceptance_rate: float = 0.8,
    dense_mass: bool = False,
) -> NUTSDraws:
    """Window-adapted NUTS on ``num_chains`` chains in one compiled call.

    Uses the same keys as the host driver :func:`~astrobayes.sampling.run_nuts`: with
    ``warmup_key, sample_key = split(key)``, chain ``c`` warms up with
    ``split(warmup_key, num_chains)[c]`` and samples with ``split(sample_key,
    num_chains)[c]``, step ``i`` folding in ``i``. Compiled with ``equinox.filter_jit``:
    array leaves of ``params`` are arguments (new values of the same shapes reuse the
    compiled code); ``logdensity_fn`` and the settings are static, so pass the same
    function object each time (not a fresh ``lambda``). It may be called inside ``jit``.

    Args:
        key: JAX PRNG key.
        logdensity_fn: ``(params, theta) -> +log density``.
        params: PyTree of density parameters (e.g. an equinox Module), or ``None``.
        initial_positions: ``(num_chains, dim)`` starting points with finite density.
        num_warmup: Warm-up (adaptation) steps per chain, at least 10.
        num_samples: Draws kept per chain.
        target_acceptance_rate: Dual-averaging target in ``(0, 1)``.
        dense_mass: Adapt a dense inverse mass matrix.

    Returns:
        :class:`NUTSDraws` (samples, log densities, divergences, acceptance, adapted
        step sizes and mass matrices).

    Raises:
        ValueError: If ``initial_positions`` is not 2-D or a setting is out of range.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> def logdensity(mean, x):
        ...     return -0.5 * jnp.sum((x - mean) ** 2)
        >>> draws = sample_nuts(jax.random.key(0), logdensity, jnp.ones(2), jnp.zeros((2, 2)),
        ...                     num_warmup=50, num_samples=100)
        >>> draws.samples.shape, draws.is_divergent.shape
        ((2, 100, 2), (2, 100))

    """
    check_key(key)
    if jnp.ndim(initial_positions) != 2:
        raise ValueError(
            "initial_positions must have shape (num_chains, dim); got shape "
            f"{jnp.shape(initial_positions)}"
        )
    num_warmup = check_positive_int(num_warmup, "num_warmup", minimum=10)
    num_samples = check_positive_int(num_samples, "num_samples")
    if not 0.0 < float(target_acceptance_rate) < 1.0:
        raise ValueError(f"target_acceptance_rate must lie in (0, 1); got {target_acceptance_rate}")
    return _sample_nuts(
        key,
        logdensity_fn,
        params,
        jnp.asarray(initial_positions),
        num_warmup,
        num_samples,
        float(target_acceptance_rate),
        bool(dense_mass),
    )


@eqx.filter_jit
def _sample_nuts(
    key, logdensity_fn, params, positions, num_warmup, num_samples, target_acceptance_rate, dense
):
    num_chains = positions.shape[0]
    steps = _multi_chain_steps(logdensity_fn, target_acceptance_rate, dense)
    state, adaptation = nuts_init(
        logdensity_fn,
        params,
        positions,
        target_acceptance_rate=target_acceptance_rate,
        dense_mass=dense,
    )
    warmup_key, sample_key = jax.random.split(key)
    stage, window_end = warmup_schedule(num_warmup)
    adapting = np.ones(num_warmup, bool)
    (state, adaptation), _ = steps(
        params,
        jax.random.split(warmup_key, num_chains),
        state,
        adaptation,
        np.arange(num_warmup),
        stage,
        window_end,
        adapting,
        adapting,
    )
    adaptation = end_warmup(adaptation)
    fixed = np.zeros(num_samples, bool)
    _, info = steps(
        params,
        jax.random.split(sample_key, num_chains),
        state,
        adaptation,
        np.arange(num_samples),
        np.zeros(num_samples, np.int32),
        fixed,
        fixed,
        ~fixed,
    )
    return NUTSDraws(
        samples=info.position,
        logdensity=info.logdensity,
        is_divergent=info.is_divergent,
        acceptance_rate=info.acceptance_rate,
        step_size=adaptation.step_size,
        inverse_mass_matrix=adaptation.inverse_mass_matrix,
    )
