"""NUTS with window adaptation for many chains at once, checkpointed and resumable.

Chains are vectorised with ``vmap`` on one device and, when several devices are visible
and the number of chains divides evenly, sharded across them along the chain axis.
Warm-up (Stan's windowed adaptation: dual averaging of the step size, Welford estimates of
the inverse mass matrix in doubling windows) and sampling run through *one* compiled
program, a scan of fixed length over NUTS steps whose adaptation updates are switched on
or off by a schedule passed as data; compiling NUTS once instead of twice halves the
start-up cost that dominates small problems. After warm-up and every ``checkpoint_every``
draws the full state (adapted step sizes and mass matrices, current positions, draws so
far) goes to the ``checkpoint`` object, so a killed run started again with the same
settings resumes where it stopped. Step ``i`` of a chain uses the key
``fold_in(chain_key, i)``, so a resumed run gives the same draws as an uninterrupted one.

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

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.staged_adaptation import build_schedule
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.diagnostics import effective_sample_size, potential_scale_reduction

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes.chains import Chains

ProgressFn = Callable[[str, int, int], None]


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

    """

    num_chains: int = 8
    num_warmup: int = 500
    num_samples: int = 2000
    target_acceptance_rate: float = 0.8
    checkpoint_every: int = 500
    dense_mass: bool = False

    def __post_init__(self):
        check_positive_int(self.num_chains, "num_chains")
        check_positive_int(self.num_warmup, "num_warmup", minimum=10)
        check_positive_int(self.num_samples, "num_samples")
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        if not 0.0 < float(self.target_acceptance_rate) < 1.0:
            raise ValueError(
                f"target_acceptance_rate must lie in (0, 1); got {self.target_acceptance_rate}"
            )


class SamplingResult(NamedTuple):
    """Draws and diagnostics of :func:`run_nuts`.

    Attributes:
        samples: ``(num_chains, num_samples, dim)`` draws (in the space of ``logdensity_fn``).
        logdensity: ``(num_chains, num_samples)`` +log density of each draw.
        names: Parameter names.
        rhat: Split R-hat per parameter.
        ess: Effective sample size per parameter (all chains).
        acceptance_rate: Mean acceptance per chain.
        num_divergent: Divergent transitions per chain.
        step_size: Adapted step size per chain.
        resumed_from: Draws per chain found in the checkpoint (0 for a fresh run).

    """

    samples: np.ndarray
    logdensity: np.ndarray
    names: tuple[str, ...]
    rhat: np.ndarray
    ess: np.ndarray
    acceptance_rate: np.ndarray
    num_divergent: np.ndarray
    step_size: np.ndarray
    resumed_from: int

    def to_chains(self) -> Chains:
        """The draws as :class:`~astrobayes.chains.Chains` (log posterior = log density)."""
        return Chains(self.samples, self.logdensity, names=self.names)


def run_nuts(
    key: jax.Array,
    logdensity_fn: Callable[[jax.Array], jax.Array],
    initial_positions: jax.Array,
    *,
    config: NUTSConfig | None = None,
    names: tuple[str, ...] | None = None,
    checkpoint: Checkpoint | None = None,
    progress_fn: ProgressFn | None = None,
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
            ``"warmup"`` or ``"sampling"``.

    Returns:
        :class:`SamplingResult`.

    Raises:
        ValueError: If positions have the wrong shape, a non-finite density, or the
            checkpoint belongs to a different run.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> result = run_nuts(jax.random.key(0), lambda x: -0.5 * jnp.sum(x**2),
        ...                   jnp.zeros((2, 3)), config=NUTSConfig(2, 50, 100))
        >>> result.samples.shape
        (2, 100, 3)

    """
    check_key(key)
    config = NUTSConfig() if config is None else config
    positions = as_float_array(initial_positions, "initial_positions", ndim=2)
    if positions.shape[0] != config.num_chains:
        raise ValueError(
            f"initial_positions must have shape (num_chains={config.num_chains}, dim); got {positions.shape}"
        )
    dim = positions.shape[1]
    names = tuple(names) if names is not None else tuple(f"p{i}" for i in range(dim))
    if len(names) != dim:
        raise ValueError(f"names must hold dim = {dim} names; got {len(names)}")
    positions = jnp.asarray(positions, jnp.float32)
    initial_logdensity = np.asarray(batched_logdensity(logdensity_fn)(positions))
    if not np.all(np.isfinite(initial_logdensity)):
        bad = int(np.flatnonzero(~np.isfinite(initial_logdensity))[0])
        raise ValueError(
            f"logdensity_fn is not finite at initial_positions[{bad}] = {np.asarray(positions[bad])} "
            f"(got {initial_logdensity[bad]}); start inside the support"
        )
    positions = _shard_chains(positions)
    warmup_key, sample_key = jax.random.split(key)
    fingerprint = _fingerprint(key, positions, config, names)

    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None and str(saved.get("fingerprint")) != fingerprint:
        raise ValueError(
            "the checkpoint belongs to a different run (other model, seed or settings); "
            "remove it or write to another output directory"
        )

    steps_fn = _steps(logdensity_fn, config)
    chunk = min(_CHUNK, config.checkpoint_every)
    if saved is None:
        state, adaptation = _initial_state(logdensity_fn, config, positions)
        schedule = np.asarray(build_schedule(config.num_warmup), dtype=np.int32).reshape(-1, 2)
        chain_keys = jax.random.split(warmup_key, config.num_chains)
        if progress_fn is not None:
            progress_fn("warmup", 0, config.num_warmup)
        for begin in range(0, config.num_warmup, chunk):
            index = begin + np.arange(chunk)
            active = index < config.num_warmup
            row = schedule[np.minimum(index, config.num_warmup - 1)]
            stage = np.where(active, row[:, 0], 0)
            window_end = active & row[:, 1].astype(bool)
            (state, adaptation), _ = steps_fn(
                chain_keys, state, adaptation, index, stage, window_end, active, active
            )
            if progress_fn is not None:
                progress_fn("warmup", int(min(begin + chunk, config.num_warmup)), config.num_warmup)
        adaptation = _end_warmup(adaptation)
        draws = np.zeros((config.num_chains, 0, dim), np.float32)
        logdens = np.zeros((config.num_chains, 0), np.float32)
        divergent = np.zeros(config.num_chains, np.int64)
        accept_sum = np.zeros(config.num_chains)
        resumed = 0
        if checkpoint is not None:
            _save(checkpoint, fingerprint, state, adaptation, draws, logdens, divergent, accept_sum)
    else:
        state = blackjax.mcmc.hmc.HMCState(
            jnp.asarray(saved["position"]),
            jnp.asarray(saved["state_logdensity"]),
            jnp.asarray(saved["state_grad"]),
        )
        _, template = _initial_state(logdensity_fn, config, positions)
        adaptation = _fixed_adaptation(template, saved["step_size"], saved["inverse_mass_matrix"])
        draws, logdens = saved["draws"], saved["logdensity"]
        divergent, accept_sum = saved["num_divergent"], saved["acceptance_sum"]
        resumed = draws.shape[1]

    chain_keys = jax.random.split(sample_key, config.num_chains)
    no_stage = np.zeros(chunk, np.int32)
    no_adapt = np.zeros(chunk, bool)
    done = draws.shape[1]
    while done < config.num_samples:
        # Never run past the next checkpoint boundary (inactive steps change nothing).
        boundary = min(
            (done // config.checkpoint_every + 1) * config.checkpoint_every, config.num_samples
        )
        index = done + np.arange(chunk)
        active = index < boundary
        keep = int(active.sum())
        (state, adaptation), (pos, lp, div, acc) = steps_fn(
            chain_keys, state, adaptation, index, no_stage, no_adapt, no_adapt, active
        )
        draws = np.concatenate([draws, np.asarray(pos)[:, :keep]], axis=1)
        logdens = np.concatenate([logdens, np.asarray(lp)[:, :keep]], axis=1)
        divergent = divergent + np.asarray(div)[:, :keep].sum(axis=1)
        accept_sum = accept_sum + np.asarray(acc, np.float64)[:, :keep].sum(axis=1)
        done = draws.shape[1]
        if checkpoint is not None and done == boundary:
            _save(checkpoint, fingerprint, state, adaptation, draws, logdens, divergent, accept_sum)
        if progress_fn is not None:
            progress_fn("sampling", done, config.num_samples)

    samples = np.asarray(draws, np.float64)
    rhat = (
        np.asarray(potential_scale_reduction(samples))
        if config.num_chains > 1
        else np.full(dim, np.nan)
    )
    ess = (
        np.asarray(effective_sample_size(samples))
        if config.num_chains > 1
        else np.full(dim, np.nan)
    )
    return SamplingResult(
        samples=samples,
        logdensity=np.asarray(logdens, np.float64),
        names=names,
        rhat=rhat,
        ess=ess,
        acceptance_rate=accept_sum / config.num_samples,
        num_divergent=np.asarray(divergent),
        step_size=np.asarray(adaptation.step_size),
        resumed_from=resumed,
    )


#: ``jit(vmap(logdensity_fn))`` per density, shared by model set-up and the start check.
_BATCHED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def batched_logdensity(logdensity_fn: Callable[[jax.Array], jax.Array]) -> Callable:
    """``jit(vmap(logdensity_fn))``, built once per function so it compiles once.

    Model set-up (initial points) and :func:`run_nuts` (its finiteness check) evaluate the
    same density on the same batch shape; a fresh ``jit(vmap(...))`` wrapper in each would
    compile it twice.
    """
    batched = _BATCHED.get(logdensity_fn)
    if batched is None:
        batched = _BATCHED[logdensity_fn] = jax.jit(jax.vmap(logdensity_fn))
    return batched


#: Steps per call of the compiled program (its scan length).
_CHUNK = 100


class _Adaptation(NamedTuple):
    """Per-chain adaptation state: dual averaging, Welford window, current parameters."""

    step_size_state: tuple
    mass_matrix_state: tuple
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def _adaptation_fns(config: NUTSConfig):
    mm_init, mm_update, mm_final = mass_matrix_adaptation(not config.dense_mass)
    da_init, da_update, da_final = dual_averaging_adaptation(config.target_acceptance_rate)
    return (mm_init, mm_update, mm_final), (da_init, da_update, da_final)


def _initial_state(logdensity_fn, config: NUTSConfig, positions):
    (mm_init, _, _), (da_init, _, _) = _adaptation_fns(config)
    dim = positions.shape[1]

    def one(position):
        mass_matrix = mm_init(dim)
        step_size = jnp.asarray(1.0, position.dtype)
        adaptation = _Adaptation(
            da_init(step_size), mass_matrix, step_size, mass_matrix.inverse_mass_matrix
        )
        return blackjax.nuts.init(position, logdensity_fn), adaptation

    state = jax.jit(jax.vmap(one))(positions)
    # Concrete, strongly typed leaves: the compiled steps program sees the same types on
    # its first call as on every later one (weak types would trigger a recompilation).
    return jax.tree_util.tree_map(
        lambda leaf: jax.device_put(np.asarray(leaf), leaf.sharding), state
    )


def _end_warmup(adaptation: _Adaptation) -> _Adaptation:
    """Fix the step size at its dual-averaging average and the last window's mass matrix."""
    return adaptation._replace(
        step_size=jnp.exp(adaptation.step_size_state.log_step_size_avg),
        inverse_mass_matrix=adaptation.mass_matrix_state.inverse_mass_matrix,
    )


def _fixed_adaptation(template: _Adaptation, step_size, inverse_mass_matrix) -> _Adaptation:
    """``template`` (same types, so no recompilation) carrying saved final parameters."""
    return template._replace(
        step_size=jnp.asarray(step_size, template.step_size.dtype),
        inverse_mass_matrix=jnp.asarray(inverse_mass_matrix, template.inverse_mass_matrix.dtype),
    )


def _steps(logdensity_fn, config: NUTSConfig):
    """One compiled program for warm-up and sampling: a scan over ``_CHUNK`` NUTS steps.

    Per step (data, not compile-time constants): the global step index (for the key), the
    window stage (0 fast, 1 slow), whether a slow window ends, whether to adapt and whether
    the step is active at all (inactive steps leave state and adaptation unchanged).
    """
    (_, mm_update, mm_final), (da_init, da_update, da_final) = _adaptation_fns(config)
    kernel = blackjax.nuts.build_kernel()

    def end_window(adaptation):
        mass_matrix = mm_final(adaptation.mass_matrix_state)
        step_size_state = da_init(da_final(adaptation.step_size_state))
        return _Adaptation(
            step_size_state,
            mass_matrix,
            jnp.exp(step_size_state.log_step_size),
            mass_matrix.inverse_mass_matrix,
        )

    def keep_where(flag, new, old):
        return jax.tree_util.tree_map(lambda a, b: jnp.where(flag, a, b), new, old)

    def one(chain_key, state, adaptation, index, stage, window_end, adapting, active):
        def body(carry, xs):
            state, adaptation = carry
            step_index, step_stage, step_window_end, step_adapting, step_active = xs
            new_state, info = kernel(
                jax.random.fold_in(chain_key, step_index),
                state,
                logdensity_fn,
                adaptation.step_size,
                adaptation.inverse_mass_matrix,
            )
            step_size_state = da_update(adaptation.step_size_state, info.acceptance_rate)
            mass_matrix = jax.lax.cond(
                step_stage == 1,
                lambda m: mm_update(m, new_state.position),
                lambda m: m,
                adaptation.mass_matrix_state,
            )
            adapted = _Adaptation(
                step_size_state,
                mass_matrix,
                jnp.exp(step_size_state.log_step_size),
                adaptation.inverse_mass_matrix,
            )
            adapted = jax.lax.cond(step_window_end, end_window, lambda a: a, adapted)
            adaptation = keep_where(step_adapting & step_active, adapted, adaptation)
            state = keep_where(step_active, new_state, state)
            return (state, adaptation), (
                new_state.position,
                new_state.logdensity,
                info.is_divergent & step_active,
                info.acceptance_rate,
            )

        xs = (index, stage, window_end, adapting, active)
        return jax.lax.scan(body, (state, adaptation), xs)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, None, None, None, None)))


def _save(checkpoint, fingerprint, state, adaptation, draws, logdens, divergent, accept_sum):
    checkpoint.save(
        {
            "fingerprint": np.asarray(fingerprint),
            "position": np.asarray(state.position),
            "state_logdensity": np.asarray(state.logdensity),
            "state_grad": np.asarray(state.logdensity_grad),
            "step_size": np.asarray(adaptation.step_size),
            "inverse_mass_matrix": np.asarray(adaptation.inverse_mass_matrix),
            "draws": draws,
            "logdensity": logdens,
            "num_divergent": divergent,
            "acceptance_sum": accept_sum,
        }
    )


def _shard_chains(positions: jax.Array) -> jax.Array:
    devices = jax.devices()
    if len(devices) < 2 or positions.shape[0] % len(devices):
        return positions
    mesh = jax.sharding.Mesh(np.asarray(devices), ("chains",))
    return jax.device_put(
        positions, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("chains"))
    )


def _fingerprint(key, positions, config: NUTSConfig, names) -> str:
    digest = hashlib.sha256(b"astrobayes-nuts-v2")
    digest.update(np.asarray(jax.random.key_data(key)).tobytes())
    digest.update(np.asarray(positions, np.float32).tobytes())
    digest.update(repr(sorted(asdict(config).items())).encode())
    digest.update(repr(names).encode())
    return digest.hexdigest()[:32]
