"""The host driver of NUTS: many chains in blocks, checkpointed, resumable, summarised.

Chains are vectorised with ``vmap`` on one device and, when several devices are visible
and the number of chains divides evenly, sharded across them along the chain axis. The
numerics live in :mod:`astrobayes.sampling.kernel` (one compiled program for warm-up and
sampling); this module calls it block by block. After warm-up and every
``checkpoint_every`` draws the full state (adapted step sizes and mass matrices, current
positions, draws so far) goes to the ``checkpoint`` object, so a killed run started again
with the same settings resumes where it stopped. Step ``i`` of a chain uses the key
``fold_in(chain_key, i)``, so a resumed run gives the same draws as an uninterrupted one.
The result carries a :class:`~astrobayes.sampling.SamplingStatus` (divergences, R-hat,
effective sample size).

References:
    Hoffman & Gelman (2014), arXiv:1111.4246 (NUTS, dual averaging); Stan Reference
    Manual, "HMC algorithm parameters" (adaptation windows); Cabezas et al. (2024),
    arXiv:2402.10797 (BlackJAX); Vehtari et al. (2021), arXiv:1903.08008 (R-hat, ESS).

"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes._status import check
from astrobayes._types import ProgressFn
from astrobayes.compilation import RUN_ONCE_COMPILER_OPTIONS, program_per_function
from astrobayes.sampling.kernel import (
    MAX_TREE_DEPTH,
    NUTSAdaptation,
    NUTSState,
    build_nuts_steps,
    check_nuts_options,
    end_warmup,
    nuts_init,
    pathfinder_start,
    warmup_schedule,
)
from astrobayes.sampling.result import SamplingResult, sampling_diagnostics

__all__ = ["Checkpoint", "NUTSConfig", "batched_logdensity", "run_nuts"]


class Checkpoint(Protocol):
    """Where a run keeps its state between blocks (see ``astrobayes.io.NpzCheckpoint``)."""

    def load(self) -> dict[str, np.ndarray] | None:
        """Return the saved arrays, or ``None`` when there is no checkpoint."""

    def save(self, arrays: dict[str, np.ndarray]) -> None:
        """Save the arrays atomically."""


@dataclass(frozen=True)
class NUTSConfig:
    """Settings of a NUTS run (shared by the Python API and the CLI).

    Attributes:
        num_chains: Chains run in parallel.
        num_warmup: Window-adaptation steps per chain.
        num_samples: Draws kept per chain.
        target_acceptance_rate: Dual-averaging target.
        checkpoint_every: Draws per block between checkpoints.
        dense_mass: Adapt a dense (not diagonal) inverse mass matrix.
        chain_method: ``"vectorized"`` (one batched program; every step costs the
            longest trajectory among the chains) or ``"sequential"`` (chains one after
            another, each at its own cost): see
            :data:`~astrobayes.sampling.kernel.CHAIN_METHODS`.
        mass_matrix_estimator: ``"welford"`` (Stan's window variance) or ``"fisher"``
            (diagonal, from positions and gradients: nutpie's estimator); see
            :data:`~astrobayes.sampling.kernel.MASS_MATRIX_ESTIMATORS`.
        pooled_metric: Estimate the inverse mass matrix at each warm-up window's end
            from all chains' draws together, one metric for every chain (needs
            ``chain_method="vectorized"`` and ``mass_matrix_estimator="welford"``). Meant
            for ``dense_mass=True`` at tens of parameters, where one chain's window is
            too few draws for a stable covariance.
        initial_metric: The metric before the first slow window: ``"identity"``
            (Stan), ``"gradient"`` (nutpie's ``1 / |grad log p|`` at each start) or
            ``"pathfinder"`` (each chain runs Pathfinder from its initial position and
            starts at a draw from the approximation, with its covariance as the metric;
            for starts far from the posterior at tens of parameters; with
            ``pooled_metric``, every chain gets the mixture covariance of all chains'
            approximations); see
            :data:`~astrobayes.sampling.kernel.INITIAL_METRICS`.
        metric_shrinkage: How each window's covariance is regularised: ``"stan"``
            (toward ``1e-3`` times the identity) or ``"scale_free"`` (toward ``1e-3``
            times each parameter's own variance, for parameters far from unit scale);
            see :data:`~astrobayes.sampling.kernel.METRIC_SHRINKAGES`.
        pooled_step_size: Adapt one step size for all chains, from their mean acceptance
            rate (needs ``chain_method="vectorized"``). A vectorized step costs the
            longest trajectory among the chains, so chains whose warm-up step sizes drift
            apart all wait for the smallest.
        max_tree_depth: At most ``2**max_tree_depth - 1`` leapfrog steps per transition
            (Stan's ``max_treedepth``; 1 to 10, default 10).

    """

    num_chains: int = 8
    num_warmup: int = 500
    num_samples: int = 2000
    target_acceptance_rate: float = 0.8
    checkpoint_every: int = 500
    dense_mass: bool = False
    chain_method: str = "vectorized"
    mass_matrix_estimator: str = "welford"
    pooled_metric: bool = False
    initial_metric: str = "identity"
    metric_shrinkage: str = "stan"
    pooled_step_size: bool = False
    max_tree_depth: int = MAX_TREE_DEPTH

    def __post_init__(self):
        check_positive_int(self.num_chains, "num_chains")
        check_positive_int(self.num_warmup, "num_warmup", minimum=10)
        check_positive_int(self.num_samples, "num_samples")
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        if not 0.0 < float(self.target_acceptance_rate) < 1.0:
            raise ValueError(
                f"target_acceptance_rate must lie in (0, 1); got {self.target_acceptance_rate}"
            )
        check_nuts_options(
            self.dense_mass,
            self.chain_method,
            self.mass_matrix_estimator,
            self.pooled_metric,
            self.initial_metric,
            self.metric_shrinkage,
            self.pooled_step_size,
            self.max_tree_depth,
        )


class _Run(NamedTuple):
    """The driver's state between blocks."""

    state: NUTSState
    adaptation: NUTSAdaptation
    draws: np.ndarray
    logdensity: np.ndarray
    num_divergent: np.ndarray
    acceptance_sum: np.ndarray
    num_gradient_evaluations: np.ndarray | None  # None: resumed from a checkpoint without it
    num_computed_evaluations: int | None  # the same; see SamplingResult


def _evaluations(info, config: NUTSConfig) -> tuple[np.ndarray, int]:
    """One block's leapfrog steps: per chain, and what the program computed (SamplingResult).

    A vectorized step lasts (at least) as long as its longest trajectory, for every chain;
    sequential chains pay their own.
    """
    steps = np.asarray(info.num_integration_steps, np.int64)
    if config.chain_method == "vectorized":
        return steps.sum(axis=1), int(steps.max(axis=0).sum()) * config.num_chains
    return steps.sum(axis=1), int(steps.sum())


def run_nuts(
    key: PRNGKeyArray,
    logdensity_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    initial_positions: Float[Array, "num_chains dim"],
    *,
    config: NUTSConfig | None = None,
    names: tuple[str, ...] | None = None,
    checkpoint: Checkpoint | None = None,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> SamplingResult:
    """Run NUTS with window adaptation on ``num_chains`` chains at once.

    Args:
        key: JAX PRNG key.
        logdensity_fn: ``theta (dim,) -> +log density`` (JAX, differentiable).
        initial_positions: ``(num_chains, dim)`` starting points with finite density.
        config: :class:`NUTSConfig` (defaults when ``None``).
        names: Parameter names (``dim`` strings).
        checkpoint: Optional store for resumable runs.
        progress_fn: Called as ``progress_fn(stage, done, total)`` with stage
            ``"pathfinder"`` (``initial_metric="pathfinder"`` only), ``"warmup"`` or
            ``"sampling"``.
        throw: Raise :class:`~astrobayes.UnreliableResultError` (carrying the result)
            on a failure status (non-finite draws, R-hat > 1.1) instead of returning it.

    Returns:
        :class:`~astrobayes.sampling.SamplingResult` with its ``status``.

    Raises:
        ValueError: If positions have the wrong shape, a non-finite density, or the
            checkpoint belongs to a different run.
        UnreliableResultError: With ``throw=True`` and a failure status.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> result = run_nuts(jax.random.key(0), lambda x: -0.5 * jnp.sum(x**2),
        ...                   jnp.zeros((2, 3)), config=NUTSConfig(2, 50, 100))
        >>> result.samples.shape
        (2, 100, 3)

    """
    check_key(key)
    config = NUTSConfig() if config is None else config
    positions, names = _check_start(logdensity_fn, initial_positions, config, names)
    positions = _shard_chains(positions)
    warmup_key, sample_key = jax.random.split(key)
    fingerprint = _fingerprint(key, positions, config, names)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None and str(saved.get("fingerprint")) != fingerprint:
        raise ValueError(
            "the checkpoint belongs to a different run (other model, seed or settings); "
            "remove it or write to another output directory"
        )

    def density(params, theta):
        del params
        return logdensity_fn(theta)

    steps_fn = build_nuts_steps(
        density,
        target_acceptance_rate=config.target_acceptance_rate,
        dense_mass=config.dense_mass,
        chain_method=config.chain_method,
        mass_matrix_estimator=config.mass_matrix_estimator,
        pooled_metric=config.pooled_metric,
        metric_shrinkage=config.metric_shrinkage,
        pooled_step_size=config.pooled_step_size,
        max_tree_depth=config.max_tree_depth,
    )
    if saved is None and config.initial_metric == "pathfinder":
        state, adaptation = _pathfinder_state(key, density, config, positions, progress_fn)
    else:
        state, adaptation = _initial_state(density, config, positions)
    if saved is None:
        run = _warmup(warmup_key, steps_fn, state, adaptation, config, progress_fn)
        if checkpoint is not None:
            _save(checkpoint, fingerprint, run)
    else:
        run = _resume(saved, adaptation)
    resumed = run.draws.shape[1] if saved is not None else 0
    run = _sample(sample_key, steps_fn, run, config, checkpoint, fingerprint, progress_fn)
    samples = np.asarray(run.draws, np.float64)
    logdensity = np.asarray(run.logdensity, np.float64)
    rhat, ess, status, messages = sampling_diagnostics(samples, logdensity, run.num_divergent)
    result = SamplingResult(
        samples=samples,
        logdensity=logdensity,
        names=names,
        rhat=rhat,
        ess=ess,
        acceptance_rate=run.acceptance_sum / config.num_samples,
        num_divergent=np.asarray(run.num_divergent),
        step_size=np.asarray(run.adaptation.step_size),
        resumed_from=resumed,
        status=status,
        messages=messages,
        num_gradient_evaluations=run.num_gradient_evaluations,
        num_computed_evaluations=run.num_computed_evaluations,
    )
    return check(result, throw)


def _check_start(logdensity_fn, initial_positions, config: NUTSConfig, names):
    """Validate the starting points and names; return ``(positions, names)`` (default float type)."""
    positions = as_float_array(initial_positions, "initial_positions", ndim=2)
    if positions.shape[0] != config.num_chains:
        raise ValueError(
            f"initial_positions must have shape (num_chains={config.num_chains}, dim); "
            f"got {positions.shape}"
        )
    dim = positions.shape[1]
    names = tuple(names) if names is not None else tuple(f"p{i}" for i in range(dim))
    if len(names) != dim:
        raise ValueError(f"names must hold dim = {dim} names; got {len(names)}")
    # float32, or float64 where the user enabled jax_enable_x64 (never flipped here).
    positions = jnp.asarray(positions, jnp.result_type(float))
    initial_logdensity = np.asarray(batched_logdensity(logdensity_fn)(positions))
    if not np.all(np.isfinite(initial_logdensity)):
        bad = int(np.flatnonzero(~np.isfinite(initial_logdensity))[0])
        raise ValueError(
            f"logdensity_fn is not finite at initial_positions[{bad}] = "
            f"{np.asarray(positions[bad])} (got {initial_logdensity[bad]}); start inside "
            "the support"
        )
    return positions, names


def _warmup(key, steps_fn, state, adaptation, config: NUTSConfig, progress_fn) -> _Run:
    """Window adaptation in blocks of ``_CHUNK`` steps; the run with no draws yet."""
    chunk = min(_CHUNK, config.checkpoint_every)
    stages, window_ends = warmup_schedule(config.num_warmup)
    chain_keys = jax.random.split(key, config.num_chains)
    gradients = np.zeros(config.num_chains, np.int64)
    computed = 0
    if progress_fn is not None:
        progress_fn("warmup", 0, config.num_warmup)
    for begin in range(0, config.num_warmup, chunk):
        index = begin + np.arange(chunk)
        active = index < config.num_warmup
        row = np.minimum(index, config.num_warmup - 1)
        stage = np.where(active, stages[row], 0)
        window_end = active & window_ends[row]
        (state, adaptation), info = steps_fn(
            None, chain_keys, state, adaptation, index, stage, window_end, active, active
        )
        per_chain, block = _evaluations(info, config)
        gradients = gradients + per_chain
        computed += block
        if progress_fn is not None:
            # JAX dispatches asynchronously: wait for the block, or the progress bar
            # would report warm-up done while it still runs
            jax.block_until_ready(state)
            progress_fn("warmup", int(min(begin + chunk, config.num_warmup)), config.num_warmup)
    dim = state.position.shape[-1]
    return _Run(
        state=state,
        adaptation=end_warmup(adaptation),
        draws=np.zeros((config.num_chains, 0, dim), np.float32),
        logdensity=np.zeros((config.num_chains, 0), np.float32),
        num_divergent=np.zeros(config.num_chains, np.int64),
        acceptance_sum=np.zeros(config.num_chains),
        num_gradient_evaluations=gradients,
        num_computed_evaluations=computed,
    )


def _resume(saved: dict[str, np.ndarray], template: NUTSAdaptation) -> _Run:
    """The run stored in a checkpoint (``template`` gives the adaptation's types)."""
    state = NUTSState(
        jnp.asarray(saved["position"]),
        jnp.asarray(saved["state_logdensity"]),
        jnp.asarray(saved["state_grad"]),
    )
    # Same types as a fresh run, so the compiled steps program is reused.
    adaptation = template._replace(
        step_size=jnp.asarray(saved["step_size"], template.step_size.dtype),
        inverse_mass_matrix=jnp.asarray(
            saved["inverse_mass_matrix"], template.inverse_mass_matrix.dtype
        ),
    )
    return _Run(
        state=state,
        adaptation=adaptation,
        draws=saved["draws"],
        logdensity=saved["logdensity"],
        num_divergent=saved["num_divergent"],
        acceptance_sum=saved["acceptance_sum"],
        num_gradient_evaluations=saved.get("num_gradient_evaluations"),
        num_computed_evaluations=(
            int(saved["num_computed_evaluations"]) if "num_computed_evaluations" in saved else None
        ),
    )


def _sample(key, steps_fn, run: _Run, config: NUTSConfig, checkpoint, fingerprint, progress_fn):
    """Draw in blocks up to ``num_samples``, checkpointing every ``checkpoint_every``."""
    chunk = min(_CHUNK, config.checkpoint_every)
    chain_keys = jax.random.split(key, config.num_chains)
    no_stage = np.zeros(chunk, np.int32)
    no_adapt = np.zeros(chunk, bool)
    done = run.draws.shape[1]
    while done < config.num_samples:
        # Never run past the next checkpoint boundary (inactive steps change nothing).
        boundary = min(
            (done // config.checkpoint_every + 1) * config.checkpoint_every, config.num_samples
        )
        index = done + np.arange(chunk)
        active = index < boundary
        keep = int(active.sum())
        (state, adaptation), info = steps_fn(
            None, chain_keys, run.state, run.adaptation, index, no_stage, no_adapt, no_adapt, active
        )
        per_chain, block = _evaluations(info, config)
        run = _Run(
            state=state,
            adaptation=adaptation,
            draws=np.concatenate([run.draws, np.asarray(info.position)[:, :keep]], axis=1),
            logdensity=np.concatenate(
                [run.logdensity, np.asarray(info.logdensity)[:, :keep]], axis=1
            ),
            num_divergent=run.num_divergent + np.asarray(info.is_divergent)[:, :keep].sum(axis=1),
            acceptance_sum=run.acceptance_sum
            + np.asarray(info.acceptance_rate, np.float64)[:, :keep].sum(axis=1),
            num_gradient_evaluations=None
            if run.num_gradient_evaluations is None
            else run.num_gradient_evaluations + per_chain,
            num_computed_evaluations=None
            if run.num_computed_evaluations is None
            else run.num_computed_evaluations + block,
        )
        done = run.draws.shape[1]
        if checkpoint is not None and done == boundary:
            _save(checkpoint, fingerprint, run)
        if progress_fn is not None:
            progress_fn("sampling", done, config.num_samples)
    return run


#: ``jit(vmap(logdensity_fn))`` per density, shared by model set-up and the start check.
_BATCHED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def batched_logdensity(logdensity_fn: Callable[[jax.Array], jax.Array]) -> Callable:
    """``jit(vmap(logdensity_fn))``, built once per function so it compiles once.

    Model set-up (initial points) and :func:`run_nuts` (its finiteness check) evaluate the
    same density on the same batch shape; a fresh ``jit(vmap(...))`` wrapper in each would
    compile it twice. The program is dropped with the function (it held the function
    before, so every density of the process stayed alive).

    Example:
        >>> import jax.numpy as jnp
        >>> def logdensity(x):
        ...     return -0.5 * jnp.sum(x**2)
        >>> batched_logdensity(logdensity)(jnp.ones((3, 2))).shape
        (3,)

    """
    return program_per_function(
        _BATCHED, logdensity_fn, lambda get_fn: jax.jit(jax.vmap(lambda x: get_fn()(x)))
    )


#: Steps per call of the compiled program (its scan length).
_CHUNK = 100


#: ``fold_in`` constant of the Pathfinder start's key (apart from the warm-up's and the
#: sampling's keys, which come from ``split(key)``).
_PATHFINDER_STREAM = 0x7F4A7C15


def _pathfinder_state(key, density, config: NUTSConfig, positions, progress_fn):
    """Initial states at each chain's Pathfinder draw, with its covariance as metric."""
    if progress_fn is not None:
        progress_fn("pathfinder", 0, config.num_chains)
    start = pathfinder_start(
        jax.random.fold_in(key, _PATHFINDER_STREAM),
        density,
        None,
        positions,
        dense_mass=config.dense_mass,
        pooled=config.pooled_metric,
    )
    if progress_fn is not None:
        jax.block_until_ready(start)
        progress_fn("pathfinder", config.num_chains, config.num_chains)
    positions = _shard_chains(start.positions)
    return _initial_state(density, config, positions, start.inverse_mass_matrix)


def _initial_state(density, config: NUTSConfig, positions, inverse_mass_matrix=None):
    """NUTS and adaptation states; ``"pathfinder"`` without its matrix: the identity."""
    initial_metric = config.initial_metric
    if initial_metric == "pathfinder" and inverse_mass_matrix is None:
        initial_metric = "identity"  # a template only (for a resumed run's types)

    def init(params, positions, inverse_mass_matrix):
        return nuts_init(
            density,
            params,
            positions,
            target_acceptance_rate=config.target_acceptance_rate,
            dense_mass=config.dense_mass,
            mass_matrix_estimator=config.mass_matrix_estimator,
            initial_metric=initial_metric,
            inverse_mass_matrix=inverse_mass_matrix,
        )

    # run once per chain set: compiled without XLA's backend optimisation (cheaper to build)
    state = jax.jit(init, compiler_options=RUN_ONCE_COMPILER_OPTIONS)(
        None, positions, inverse_mass_matrix
    )
    # Concrete, strongly typed leaves: the compiled steps program sees the same types on
    # its first call as on every later one (weak types would trigger a recompilation).
    return jax.tree_util.tree_map(
        lambda leaf: jax.device_put(np.asarray(leaf), leaf.sharding), state
    )


def _save(checkpoint: Checkpoint, fingerprint: str, run: _Run) -> None:
    arrays = {
        "fingerprint": np.asarray(fingerprint),
        "position": np.asarray(run.state.position),
        "state_logdensity": np.asarray(run.state.logdensity),
        "state_grad": np.asarray(run.state.logdensity_grad),
        "step_size": np.asarray(run.adaptation.step_size),
        "inverse_mass_matrix": np.asarray(run.adaptation.inverse_mass_matrix),
        "draws": run.draws,
        "logdensity": run.logdensity,
        "num_divergent": run.num_divergent,
        "acceptance_sum": run.acceptance_sum,
    }
    if run.num_gradient_evaluations is not None:  # unknown after an older checkpoint
        arrays["num_gradient_evaluations"] = run.num_gradient_evaluations
    if run.num_computed_evaluations is not None:
        arrays["num_computed_evaluations"] = np.asarray(run.num_computed_evaluations, np.int64)
    checkpoint.save(arrays)


def _shard_chains(positions: jax.Array) -> jax.Array:
    devices = jax.devices()
    if len(devices) < 2 or positions.shape[0] % len(devices):
        return positions
    mesh = jax.sharding.Mesh(np.asarray(devices), ("chains",))
    return jax.device_put(
        positions, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("chains"))
    )


def _fingerprint(key, positions, config: NUTSConfig, names) -> str:
    return run_fingerprint(b"astrobayes-nuts-v2", key, positions, asdict(config), names)


def run_fingerprint(salt: bytes, key, positions, settings: dict, names) -> str:
    """Short hash of what makes a sampler run reproducible (checkpoints must match it).

    Args:
        salt: The sampler and its checkpoint layout version.
        key: The run's PRNG key.
        positions: Starting points.
        settings: The sampler's settings (a dataclass as a dict).
        names: Parameter names.

    Returns:
        32 hexadecimal characters.
    """
    digest = hashlib.sha256(salt)
    digest.update(np.asarray(jax.random.key_data(key)).tobytes())
    digest.update(np.asarray(positions, np.float32).tobytes())
    digest.update(repr(sorted(settings.items())).encode())
    digest.update(repr(names).encode())
    return digest.hexdigest()[:32]
