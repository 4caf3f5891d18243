"""NUTS with window adaptation for many chains at once, checkpointed and resumable.

Chains are vectorised with ``vmap`` on one device and, when several devices are visible
and the number of chains divides evenly, sharded across them along the chain axis.
Sampling runs in blocks of ``checkpoint_every`` draws; after each block the full state
(adapted step sizes and mass matrices, current positions, draws so far) goes to the
``checkpoint`` object, so a killed run started again with the same settings resumes where
it stopped. Block ``b`` uses the key ``fold_in(sample_key, b)``, so a resumed run gives
the same draws as an uninterrupted one.

References:
    Hoffman & Gelman (2014), arXiv:1111.4246 (NUTS); Cabezas et al. (2024),
    arXiv:2402.10797 (BlackJAX); Vehtari et al. (2021), arXiv:1903.08008 (R-hat, ESS).

"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple, Protocol

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.base import get_filter_adapt_info_fn
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
    initial_logdensity = np.asarray(jax.jit(jax.vmap(logdensity_fn))(positions))
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

    if saved is None:
        if progress_fn is not None:
            progress_fn("warmup", 0, config.num_warmup)
        state, params = _warmup(logdensity_fn, config)(
            jax.random.split(warmup_key, config.num_chains), positions
        )
        if progress_fn is not None:
            progress_fn("warmup", config.num_warmup, config.num_warmup)
        draws = np.zeros((config.num_chains, 0, dim), np.float32)
        logdens = np.zeros((config.num_chains, 0), np.float32)
        divergent = np.zeros(config.num_chains, np.int64)
        accept_sum = np.zeros(config.num_chains)
        resumed = 0
    else:
        state = blackjax.mcmc.hmc.HMCState(
            jnp.asarray(saved["position"]),
            jnp.asarray(saved["state_logdensity"]),
            jnp.asarray(saved["state_grad"]),
        )
        params = {
            "step_size": jnp.asarray(saved["step_size"]),
            "inverse_mass_matrix": jnp.asarray(saved["inverse_mass_matrix"]),
        }
        draws, logdens = saved["draws"], saved["logdensity"]
        divergent, accept_sum = saved["num_divergent"], saved["acceptance_sum"]
        resumed = draws.shape[1]

    block_fn = _block(logdensity_fn)
    done = draws.shape[1]
    while done < config.num_samples:
        # Every block has the same length (one compilation); the last is cut to size.
        size = config.checkpoint_every
        keep = min(size, config.num_samples - done)
        block_index = done // config.checkpoint_every
        keys = jax.random.split(jax.random.fold_in(sample_key, block_index), config.num_chains)
        state, (pos, lp, div, acc) = block_fn(keys, state, params, size)
        pos, lp, div, acc = pos[:, :keep], lp[:, :keep], div[:, :keep], acc[:, :keep]
        draws = np.concatenate([draws, np.asarray(pos)], axis=1)
        logdens = np.concatenate([logdens, np.asarray(lp)], axis=1)
        divergent = divergent + np.asarray(div).sum(axis=1)
        accept_sum = accept_sum + np.asarray(acc, np.float64).sum(axis=1)
        done = draws.shape[1]
        if checkpoint is not None:
            checkpoint.save(
                {
                    "fingerprint": np.asarray(fingerprint),
                    "position": np.asarray(state.position),
                    "state_logdensity": np.asarray(state.logdensity),
                    "state_grad": np.asarray(state.logdensity_grad),
                    "step_size": np.asarray(params["step_size"]),
                    "inverse_mass_matrix": np.asarray(params["inverse_mass_matrix"]),
                    "draws": draws,
                    "logdensity": logdens,
                    "num_divergent": divergent,
                    "acceptance_sum": accept_sum,
                }
            )
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
        step_size=np.asarray(params["step_size"]),
        resumed_from=resumed,
    )


def _warmup(logdensity_fn, config: NUTSConfig):
    def one(key, position):
        adaptation = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity_fn,
            is_mass_matrix_diagonal=not config.dense_mass,
            target_acceptance_rate=config.target_acceptance_rate,
            adaptation_info_fn=get_filter_adapt_info_fn(),
        )
        (state, params), _ = adaptation.run(key, position, num_steps=config.num_warmup)
        return state, params

    return jax.jit(jax.vmap(one))


def _block(logdensity_fn):
    def one(key, state, params, size):
        kernel = blackjax.nuts(logdensity_fn, **params)

        def body(state, step_key):
            state, info = kernel.step(step_key, state)
            return state, (
                state.position,
                state.logdensity,
                info.is_divergent,
                info.acceptance_rate,
            )

        return jax.lax.scan(body, state, jax.random.split(key, size))

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None)), static_argnums=3)


def _shard_chains(positions: jax.Array) -> jax.Array:
    devices = jax.devices()
    if len(devices) < 2 or positions.shape[0] % len(devices):
        return positions
    mesh = jax.sharding.Mesh(np.asarray(devices), ("chains",))
    return jax.device_put(
        positions, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("chains"))
    )


def _fingerprint(key, positions, config: NUTSConfig, names) -> str:
    digest = hashlib.sha256()
    digest.update(np.asarray(jax.random.key_data(key)).tobytes())
    digest.update(np.asarray(positions, np.float32).tobytes())
    digest.update(repr(sorted(asdict(config).items())).encode())
    digest.update(repr(names).encode())
    return digest.hexdigest()[:32]
