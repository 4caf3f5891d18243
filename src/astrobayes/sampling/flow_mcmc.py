"""Flow-enhanced MCMC: local MALA moves plus global proposals from a flow trained on the fly.

Many chains run side by side. Each loop alternates a block of preconditioned MALA steps
(local moves, one log density and gradient per step) with a block of independence
Metropolis-Hastings steps whose proposals are drawn from a normalizing flow (global
moves that can carry a chain from one mode to another). During the training loops the
flow is refitted to the chains' draws (through :func:`astrobayes._training.fit`) and the
MALA step sizes adapt; during the production loops both are frozen, so the production
draws come from a fixed mixture of two kernels that each leave the target invariant, and
mode weights are set by the Metropolis-Hastings ratio rather than by where the chains
started (Gabrié, Rotskoff & Vanden-Eijnden 2022, arXiv:2105.12603; Wong, Gabrié &
Foreman-Mackey 2023, arXiv:2211.06397, flowMC).

The chains must first *reach* every mode: they start where the caller puts them (draws
from the prior, for example), local moves carry them into the basins they fall in, and
the flow learns each mode that some chain found. A mode no chain visits during training
is never proposed; a low production acceptance of the global moves is reported as a
warning.

The production flow also gives an importance-sampling evidence for free
(``flow_log_evidence``, from the global proposals already evaluated), with the Pareto
tail index of its weights; :meth:`FlowMCMCResult.to_chains` feeds the draws to the
learned harmonic mean (``astrobayes.evidence.estimate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from flowjax.distributions import Normal
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes import diagnostics
from astrobayes._checks import as_float_array, check_key, check_positive_int, check_positive_number
from astrobayes._flows import (
    masked_autoregressive_flow,
    spline_transformer,
)
from astrobayes._status import Severity, Status, by_severity, check
from astrobayes._training import TrainingConfig, TrainingInfo, TrainingStatus
from astrobayes._types import ProgressFn
from astrobayes.chains import Chains
from astrobayes.sampling.flow_proposal import (
    FlowProposal,
    fit_flow_proposal,
    proposal_arrays,
    restore_proposal,
)
from astrobayes.sampling.nuts import Checkpoint, run_fingerprint
from astrobayes.sampling.result import sampling_diagnostics

__all__ = [
    "FlowMCMCConfig",
    "FlowMCMCResult",
    "FlowMCMCStatus",
    "FlowProposal",
    "run_flow_mcmc",
]

#: Production acceptance of global moves below which the run is a warning.
MIN_GLOBAL_ACCEPTANCE = 0.01
#: Pareto tail index of the importance weights above which the flow evidence is unreliable
#: (Vehtari et al. 2024, arXiv:1507.02646, Sec. 3.2).
MAX_PARETO_K = 0.7
#: MALA's optimal acceptance rate (Roberts & Rosenthal 1998).
MALA_TARGET_ACCEPTANCE = 0.574


class FlowMCMCStatus(Status):
    """Flow-specific outcomes of :func:`run_flow_mcmc` (R-hat/ESS use SamplingStatus)."""

    OK = (Severity.OK, "ok")
    RARE_GLOBAL_MOVES = (
        Severity.WARNING,
        "warning: fewer than 1% of the flow's global proposals were accepted in production: "
        "chains rarely move between modes, so mode weights rest on where the chains started; "
        "train longer (num_loops_training, num_epochs) or start chains more widely",
    )
    FLOW_EVIDENCE_TAILS = (
        Severity.WARNING,
        "warning: the importance weights of the flow are heavy-tailed (Pareto k > 0.7): "
        "flow_log_evidence and its error are unreliable; estimate the evidence from the chains "
        "(astrobayes.evidence.estimate)",
    )
    FLOW_TRAINING_FAILED = (
        Severity.FAILURE,
        "failure: the flow's training loss became non-finite",
    )


@dataclass(frozen=True)
class FlowMCMCConfig:
    """Settings of :func:`run_flow_mcmc`.

    Attributes:
        num_chains: Chains run side by side; ``initial_positions`` must hold this many
            (``compare`` and ``astrobayes run`` start them from the model's prior).
        num_burnin_steps: MALA steps (step sizes adapting) that carry the chains from their
            starting points into the modes before the first flow is trained (discarded).
        num_loops_training: Loops that refit the flow and adapt step sizes (draws discarded).
        num_loops_production: Loops with a frozen flow and step sizes (draws kept).
        num_local_steps: MALA steps per chain per loop.
        num_global_steps: Independence Metropolis-Hastings steps per chain per loop.
        initial_step_size: Starting MALA step size (in units of the preconditioner).
        num_epochs: Flow training epochs per training loop (a fixed budget, warm-started).
        max_flow_samples: Most recent draws kept to train the flow.
        flow_layers: Autoregressive layers of the flow.
        nn_width: Conditioner width.
        knots: Spline knots per dimension.
        interval: Spline interval in standardised units (identity outside).
        learning_rate: Adam step size of the flow training.
        batch_size: Minibatch size of the flow training.
        checkpoint_every: Loops between checkpoints (a checkpoint is also written after
            burn-in, after the last training loop and at the end).

    """

    num_chains: int = 64
    num_burnin_steps: int = 200
    num_loops_training: int = 4
    num_loops_production: int = 60
    num_local_steps: int = 20
    num_global_steps: int = 30
    initial_step_size: float = 0.1
    num_epochs: int = 20
    max_flow_samples: int = 10000
    flow_layers: int = 4
    nn_width: int = 64
    knots: int = 8
    interval: float = 5.0
    learning_rate: float = 2e-3
    batch_size: int = 500
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        check_positive_int(self.num_chains, "num_chains", minimum=4)
        for name in (
            "checkpoint_every",
            "num_burnin_steps",
            "num_loops_training",
            "num_loops_production",
            "num_local_steps",
            "num_global_steps",
            "num_epochs",
            "flow_layers",
            "nn_width",
            "batch_size",
        ):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.knots, "knots", minimum=2)
        check_positive_int(self.max_flow_samples, "max_flow_samples", minimum=20)
        for name in ("initial_step_size", "interval", "learning_rate"):
            check_positive_number(getattr(self, name), name)


class FlowMCMCResult(NamedTuple):
    """Draws and diagnostics of :func:`run_flow_mcmc`.

    Attributes:
        samples: Production draws, ``(num_chains, num_samples, dim)`` (local and global
            steps interleaved, every step kept).
        logdensity: Their +log densities, ``(num_chains, num_samples)``.
        names: Parameter names.
        rhat: Split R-hat per parameter (:func:`astrobayes.diagnostics.split_rhat`).
        ess: Effective sample size per parameter, all chains.
        local_acceptance: Mean production MALA acceptance per chain.
        global_acceptance: Production acceptance of flow proposals per chain.
        step_size: Adapted MALA step size per chain.
        num_logdensity_evaluations: Log-density calls of the whole run, training
            included (a MALA step's value-and-gradient counts as one).
        flow_log_evidence: ``ln z`` by importance sampling with the production flow.
        flow_log_evidence_std: Its standard error (delta method).
        flow_pareto_k: Pareto tail index of the importance weights.
        proposal: The trained :class:`FlowProposal`.
        training: :class:`~astrobayes._training.TrainingInfo` of the last training loop.
        resumed_from: Log-density evaluations per chain found in the checkpoint the run
            resumed from (0 for a fresh run).
        status: The most severe status (a :class:`FlowMCMCStatus` or ``SamplingStatus``).
        messages: Every status raised, most severe first.

    """

    samples: Float[np.ndarray, "num_chains num_samples dim"]
    logdensity: Float[np.ndarray, "num_chains num_samples"]
    names: tuple[str, ...]
    rhat: Float[np.ndarray, " dim"]
    ess: Float[np.ndarray, " dim"]
    local_acceptance: Float[np.ndarray, " num_chains"]
    global_acceptance: Float[np.ndarray, " num_chains"]
    step_size: Float[np.ndarray, " num_chains"]
    num_logdensity_evaluations: int
    flow_log_evidence: float
    flow_log_evidence_std: float
    flow_pareto_k: float
    proposal: FlowProposal
    training: TrainingInfo
    resumed_from: int
    status: Status
    messages: tuple[Status, ...]

    def to_chains(self) -> Chains:
        """The draws as :class:`~astrobayes.chains.Chains` (log posterior = log density)."""
        return Chains(self.samples, self.logdensity, names=self.names)

    @property
    def num_divergent(self) -> np.ndarray:
        """Divergent transitions per chain: always 0 (MALA and independence moves have none).

        Present so that a flow-MCMC run stands where a NUTS
        :class:`~astrobayes.sampling.SamplingResult` does (e.g. in ``compare``'s reports).
        """
        return np.zeros(self.samples.shape[0], np.int64)


class _LocalState(NamedTuple):
    position: Array
    logdensity: Array
    grad: Array
    log_step_size: Array


def run_flow_mcmc(
    key: PRNGKeyArray,
    logdensity_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    initial_positions: Float[Array, "num_chains dim"],
    *,
    config: FlowMCMCConfig | None = None,
    names: tuple[str, ...] | None = None,
    checkpoint: Checkpoint | None = None,
    throw: bool = False,
    progress_fn: ProgressFn | None = None,
) -> FlowMCMCResult:
    """Sample with local MALA moves and global proposals from a flow trained on the fly.

    Args:
        key: JAX PRNG key.
        logdensity_fn: ``theta (dim,) -> +log density`` (differentiable; ``-inf`` outside
            the support is rejected).
        initial_positions: Starting points ``(num_chains, dim)``, spread over the region
            where modes may be (e.g. prior draws); at least 4 chains.
        config: :class:`FlowMCMCConfig` (defaults when ``None``).
        names: Parameter names (``p0, p1, ...`` by default).
        checkpoint: Optional store (e.g. ``astrobayes.io.NpzCheckpoint``): the run saves its
            whole state every ``config.checkpoint_every`` loops, and a run started again
            with the same arguments resumes from it and returns bitwise the same result
            as an uninterrupted run.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` on a failure status.
        progress_fn: Called as ``progress_fn("training" | "production", loop, num_loops)``.

    Returns:
        :class:`FlowMCMCResult`.

    Raises:
        TypeError: If ``key`` is not a PRNG key or ``config`` not a :class:`FlowMCMCConfig`.
        ValueError: On a number of chains other than ``config.num_chains``, non-finite
            starting points or log densities, a wrong number of names, or a checkpoint
            of another run.

    References:
        Gabrié, Rotskoff & Vanden-Eijnden (2022), arXiv:2105.12603; Wong, Gabrié &
        Foreman-Mackey (2023), arXiv:2211.06397; Roberts & Tweedie (1996) (MALA).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> config = FlowMCMCConfig(num_chains=4, num_burnin_steps=5, num_loops_training=1, num_loops_production=1,
        ...     num_local_steps=5, num_global_steps=5, num_epochs=1, flow_layers=1,
        ...     nn_width=8, max_flow_samples=40)
        >>> result = run_flow_mcmc(jax.random.key(0), lambda x: -0.5 * jnp.sum(x**2),
        ...     jnp.zeros((4, 2)), config=config)
        >>> result.samples.shape
        (4, 10, 2)

    """
    check_key(key)
    config = FlowMCMCConfig() if config is None else config
    if not isinstance(config, FlowMCMCConfig):
        raise TypeError(f"config must be a FlowMCMCConfig; got {type(config).__name__}")
    positions = as_float_array(initial_positions, "initial_positions", ndim=2)
    num_chains, dim = positions.shape
    if num_chains != config.num_chains:
        raise ValueError(
            f"initial_positions must have shape (num_chains={config.num_chains}, dim); got "
            f"{positions.shape} (set FlowMCMCConfig.num_chains)"
        )
    if not np.all(np.isfinite(positions)):
        raise ValueError("initial_positions must be finite")
    names = tuple(f"p{i}" for i in range(dim)) if names is None else tuple(names)
    if len(names) != dim:
        raise ValueError(f"names must hold dim = {dim} names; got {len(names)}")
    # float32, or float64 where the user enabled jax_enable_x64 (never flipped here)
    dtype = jnp.result_type(float)
    positions = jnp.asarray(positions, dtype)
    logdensity, grad = jax.vmap(jax.value_and_grad(logdensity_fn))(positions)
    if not bool(jnp.all(jnp.isfinite(logdensity))):
        bad = int(np.flatnonzero(~np.isfinite(np.asarray(logdensity)))[0])
        raise ValueError(
            f"the log density at initial_positions[{bad}] is not finite; start every chain "
            "inside the support"
        )

    init_key, key = jax.random.split(key)
    flow = masked_autoregressive_flow(
        init_key,
        base_dist=Normal(jnp.zeros(dim)),
        transformer=spline_transformer(config.knots, config.interval),
        flow_layers=config.flow_layers,
        nn_width=max(config.nn_width, 2 * dim),
        nn_depth=1,
    )
    training_config = TrainingConfig(
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        max_epochs=config.num_epochs,
        patience=config.num_epochs,
        clip_max_norm=5.0,
    )
    # a proposal of the right structure, so that a checkpoint's flow can be put back in it
    template = FlowProposal(flow, jnp.zeros(dim, dtype), jnp.ones(dim, dtype))
    fingerprint = _fingerprint(key, positions, config, names)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        if str(saved.get("fingerprint")) != fingerprint:
            raise ValueError(
                "the checkpoint belongs to a different run (other target, key, starting points "
                "or settings); remove it or write to another output directory"
            )
        run = _restore(saved, template)
        resumed_from = run.num_evaluations // num_chains
    else:
        resumed_from = 0
        state = _LocalState(
            positions,
            logdensity,
            grad,
            jnp.full(num_chains, np.log(config.initial_step_size), dtype),
        )
        key, burnin_key = jax.random.split(key)
        state, burnin_draws, _, _ = _local_block(
            burnin_key,
            logdensity_fn,
            state,
            jnp.ones(dim, dtype),
            config.num_burnin_steps,
            jnp.asarray(True),
        )
        inverse_mass = _preconditioner(burnin_draws[:, config.num_burnin_steps // 2 :])
        run = _Progress(
            loop=0,
            key=key,
            state=_keep_step_length(state, jnp.ones(dim, dtype), inverse_mass),
            inverse_mass=inverse_mass,
            buffer=np.zeros((0, dim), dtype),
            proposal=None,
            training=None,
            num_evaluations=num_chains * (1 + config.num_burnin_steps),
            failed=False,
            samples=np.zeros((num_chains, 0, dim), dtype),
            logdensity=np.zeros((num_chains, 0), dtype),
            local_accepted=np.zeros(num_chains),
            global_accepted=np.zeros(num_chains),
            log_weights=np.zeros(0, dtype),
        )
        if checkpoint is not None:
            _save(checkpoint, fingerprint, run)
    num_loops = config.num_loops_training + config.num_loops_production
    while run.loop < num_loops:
        run = _one_loop(run, logdensity_fn, config, flow, training_config, num_chains, dim)
        if checkpoint is not None and (
            run.loop % config.checkpoint_every == 0
            or run.loop in (config.num_loops_training, num_loops)
        ):
            _save(checkpoint, fingerprint, run)
        if progress_fn is not None:
            if run.loop <= config.num_loops_training:
                progress_fn("training", run.loop, config.num_loops_training)
            else:
                progress_fn(
                    "production",
                    run.loop - config.num_loops_training,
                    config.num_loops_production,
                )
    samples = np.asarray(run.samples, np.float64)
    logdensity_kept = np.asarray(run.logdensity, np.float64)
    rhat, ess, _, sampling_messages = sampling_diagnostics(
        samples, logdensity_kept, np.zeros(num_chains)
    )
    log_w = np.asarray(run.log_weights, np.float64)
    log_evidence, log_evidence_std, pareto_k = _importance_evidence(log_w)
    messages: list[Status] = list(sampling_messages)
    global_rate = run.global_accepted / (config.num_loops_production * config.num_global_steps)
    if run.failed:
        messages.append(FlowMCMCStatus.FLOW_TRAINING_FAILED)
    if np.mean(global_rate) < MIN_GLOBAL_ACCEPTANCE:
        messages.append(FlowMCMCStatus.RARE_GLOBAL_MOVES)
    if not (np.isfinite(pareto_k) and pareto_k <= MAX_PARETO_K):
        messages.append(FlowMCMCStatus.FLOW_EVIDENCE_TAILS)
    ordered = by_severity(messages)
    result = FlowMCMCResult(
        samples=samples,
        logdensity=logdensity_kept,
        names=names,
        rhat=rhat,
        ess=ess,
        local_acceptance=run.local_accepted
        / (config.num_loops_production * config.num_local_steps),
        global_acceptance=global_rate,
        step_size=np.exp(np.asarray(run.state.log_step_size, np.float64)),
        num_logdensity_evaluations=int(run.num_evaluations),
        flow_log_evidence=log_evidence,
        flow_log_evidence_std=log_evidence_std,
        flow_pareto_k=pareto_k,
        proposal=run.proposal,
        training=run.training,
        resumed_from=resumed_from,
        status=ordered[0] if ordered else FlowMCMCStatus.OK,
        messages=ordered,
    )
    return check(result, throw)


class _Progress(NamedTuple):
    """The driver's state between loops (what a checkpoint holds)."""

    loop: int
    key: PRNGKeyArray
    state: _LocalState
    inverse_mass: Array
    buffer: np.ndarray
    proposal: FlowProposal | None
    training: TrainingInfo | None
    num_evaluations: int
    failed: bool
    samples: np.ndarray
    logdensity: np.ndarray
    local_accepted: np.ndarray
    global_accepted: np.ndarray
    log_weights: np.ndarray


def _one_loop(run: _Progress, logdensity_fn, config, flow, training_config, num_chains, dim):
    """One loop: a local block, a global block (once a flow exists), a refit or kept draws."""
    is_training = run.loop < config.num_loops_training
    key, local_key, global_key, fit_key = jax.random.split(run.key, 4)
    state, local_draws, local_logp, local_accept = _local_block(
        local_key,
        logdensity_fn,
        run.state,
        run.inverse_mass,
        config.num_local_steps,
        jnp.asarray(is_training),
    )
    num_evaluations = run.num_evaluations + num_chains * config.num_local_steps
    blocks = [np.asarray(local_draws)]
    logps = [np.asarray(local_logp)]
    proposal = run.proposal
    if proposal is not None:
        state, global_draws, global_logp, global_accept, log_w = _global_block(
            global_key, logdensity_fn, proposal, state, config.num_global_steps
        )
        num_evaluations += num_chains * config.num_global_steps
        blocks.append(np.asarray(global_draws))
        logps.append(np.asarray(global_logp))
    run = run._replace(loop=run.loop + 1, key=key, state=state, num_evaluations=num_evaluations)
    if is_training:
        draws = np.concatenate([b.reshape(-1, dim) for b in blocks])
        buffer = np.concatenate([run.buffer, draws])[-config.max_flow_samples :]
        proposal, training = fit_flow_proposal(
            fit_key,
            flow if proposal is None else proposal.flow,
            proposal,
            buffer,
            training_config,
        )
        inverse_mass = _preconditioner(local_draws)
        return run._replace(
            state=_keep_step_length(run.state, run.inverse_mass, inverse_mass),
            inverse_mass=inverse_mass,
            buffer=buffer,
            proposal=proposal,
            training=training,
            failed=run.failed or training.status is TrainingStatus.NON_FINITE,
        )
    return run._replace(
        samples=np.concatenate([run.samples, np.concatenate(blocks, axis=1)], axis=1),
        logdensity=np.concatenate([run.logdensity, np.concatenate(logps, axis=1)], axis=1),
        local_accepted=run.local_accepted + np.asarray(local_accept).sum(axis=1),
        global_accepted=run.global_accepted + np.asarray(global_accept).sum(axis=1),
        log_weights=np.concatenate([run.log_weights, np.asarray(log_w).ravel()]),
    )


def _fingerprint(key, positions, config: FlowMCMCConfig, names) -> str:
    # checkpoint_every only sets when the state is saved, so a resume may change it
    settings = {k: v for k, v in asdict(config).items() if k != "checkpoint_every"}
    return run_fingerprint(b"astrobayes-flow-mcmc-v1", key, positions, settings, names)


_TRAINING_FIELDS = (
    "train_losses",
    "validation_losses",
    "best_epoch",
    "num_epochs",
    "num_train",
    "num_validation",
    "wall_time_s",
)


def _save(checkpoint: Checkpoint, fingerprint: str, run: _Progress) -> None:
    """Every array of ``run`` (the flow's array leaves in tree order) into ``checkpoint``."""
    arrays = {
        "fingerprint": np.asarray(fingerprint),
        "loop": np.asarray(run.loop),
        "key": np.asarray(jax.random.key_data(run.key)),
        "position": np.asarray(run.state.position),
        "state_logdensity": np.asarray(run.state.logdensity),
        "state_grad": np.asarray(run.state.grad),
        "log_step_size": np.asarray(run.state.log_step_size),
        "inverse_mass": np.asarray(run.inverse_mass),
        "buffer": run.buffer,
        "num_evaluations": np.asarray(run.num_evaluations),
        "failed": np.asarray(run.failed),
        "samples": run.samples,
        "logdensity": run.logdensity,
        "local_accepted": run.local_accepted,
        "global_accepted": run.global_accepted,
        "log_weights": run.log_weights,
    }
    if run.proposal is not None:
        arrays.update(proposal_arrays(run.proposal))
    if run.training is not None:
        for name in _TRAINING_FIELDS:
            arrays[f"training_{name}"] = np.asarray(getattr(run.training, name))
        arrays["training_status"] = np.asarray(run.training.status.name)
    checkpoint.save(arrays)


def _restore(saved: dict[str, np.ndarray], template: FlowProposal) -> _Progress:
    """The :class:`_Progress` kept by :func:`_save` (``template`` gives the flow's structure)."""
    proposal = restore_proposal(saved, template) if "proposal_0" in saved else None
    training = None
    if "training_status" in saved:
        values = {name: saved[f"training_{name}"] for name in _TRAINING_FIELDS}
        for name in ("best_epoch", "num_epochs", "num_train", "num_validation"):
            values[name] = int(values[name])
        values["wall_time_s"] = float(values["wall_time_s"])
        training = TrainingInfo(**values, status=TrainingStatus[str(saved["training_status"])])
    return _Progress(
        loop=int(saved["loop"]),
        key=jax.random.wrap_key_data(jnp.asarray(saved["key"])),
        state=_LocalState(
            jnp.asarray(saved["position"]),
            jnp.asarray(saved["state_logdensity"]),
            jnp.asarray(saved["state_grad"]),
            jnp.asarray(saved["log_step_size"]),
        ),
        inverse_mass=jnp.asarray(saved["inverse_mass"]),
        buffer=saved["buffer"],
        proposal=proposal,
        training=training,
        num_evaluations=int(saved["num_evaluations"]),
        failed=bool(saved["failed"]),
        samples=saved["samples"],
        logdensity=saved["logdensity"],
        local_accepted=saved["local_accepted"],
        global_accepted=saved["global_accepted"],
        log_weights=saved["log_weights"],
    )


def _keep_step_length(state: _LocalState, old_mass, new_mass) -> _LocalState:
    """Rescale the step sizes so a new preconditioner keeps the (geometric mean) step length.

    The preconditioner sets the shape of the MALA steps and the adapted step size their
    length. Without this, a preconditioner estimated from a block of short steps is small,
    makes the next steps shorter still, and the two collapse together (every step
    accepted, the chains barely moving); with it, only the acceptance-rate adaptation
    sets the length.
    """
    shift = 0.5 * jnp.mean(jnp.log(old_mass) - jnp.log(new_mass))
    return state._replace(log_step_size=state.log_step_size + shift)


def _preconditioner(draws) -> Array:
    """Diagonal inverse mass: the median over chains of each chain's variance.

    Each chain mostly stays in one mode during a local block, so its variance is the
    mode's, and the median ignores the few chains that jumped between modes.
    """
    within = np.var(np.asarray(draws, np.float64), axis=1)
    return jnp.asarray(np.clip(np.median(within, axis=0), 1e-8, None), jnp.result_type(float))


def _importance_evidence(log_w: np.ndarray) -> tuple[float, float, float]:
    """``ln z``, its delta-method error and the Pareto k of weights ``exp(log_w)``."""
    finite = np.where(np.isfinite(log_w), log_w, -np.inf)
    top = np.max(finite)
    if not np.isfinite(top):
        return float("nan"), float("nan"), float("nan")
    w = np.exp(finite - top)
    mean = w.mean()
    log_evidence = float(np.log(mean) + top)
    std = float(np.std(w) / np.sqrt(w.size) / mean)
    pareto_k = float(diagnostics.pareto_tail_index(finite[np.isfinite(finite)]))
    return log_evidence, std, pareto_k


@eqx.filter_jit
def _local_block(key, logdensity_fn, state, inverse_mass, num_steps, is_adapting):
    """``num_steps`` preconditioned MALA steps for every chain (step sizes adapt if asked)."""
    value_and_grad = jax.value_and_grad(logdensity_fn)
    sqrt_mass = jnp.sqrt(inverse_mass)

    def log_q(to, start, grad, step):
        mean = start + 0.5 * step**2 * inverse_mass * grad
        return -0.5 * jnp.sum((to - mean) ** 2 / inverse_mass) / step**2

    def one_step(state: _LocalState, step_key):
        noise_key, accept_key = jax.random.split(step_key)
        step = jnp.exp(state.log_step_size)
        noise = jax.random.normal(noise_key, state.position.shape)
        proposal = (
            state.position + 0.5 * step**2 * inverse_mass * state.grad + step * sqrt_mass * noise
        )
        logp, grad = value_and_grad(proposal)
        log_ratio = (
            logp
            - state.logdensity
            + log_q(state.position, proposal, grad, step)
            - log_q(proposal, state.position, state.grad, step)
        )
        log_ratio = jnp.where(
            jnp.isfinite(log_ratio) & jnp.all(jnp.isfinite(grad)), log_ratio, -jnp.inf
        )
        accept_prob = jnp.exp(jnp.minimum(log_ratio, 0.0))
        accept = jnp.log(jax.random.uniform(accept_key)) < log_ratio
        new_log_step = jnp.where(
            is_adapting,
            state.log_step_size + 0.05 * (accept_prob - MALA_TARGET_ACCEPTANCE),
            state.log_step_size,
        )
        new = _LocalState(
            jnp.where(accept, proposal, state.position),
            jnp.where(accept, logp, state.logdensity),
            jnp.where(accept, grad, state.grad),
            new_log_step,
        )
        return new, (new.position, new.logdensity, accept)

    def chain(state, chain_key):
        return jax.lax.scan(one_step, state, jax.random.split(chain_key, num_steps))

    num_chains = state.position.shape[0]
    state, (draws, logp, accept) = jax.vmap(chain)(state, jax.random.split(key, num_chains))
    return state, draws, logp, accept


@eqx.filter_jit
def _global_block(key, logdensity_fn, proposal: FlowProposal, state, num_steps):
    """Independence Metropolis-Hastings with flow proposals for every chain.

    All ``num_steps * num_chains`` proposals are drawn and evaluated in one batch; the
    scan only makes the accept decisions. Returns the new state, the draws, their log
    densities, the accept flags and the importance log weights ``log p - log q`` of the
    proposals.
    """
    num_chains, dim = state.position.shape
    draw_key, accept_key = jax.random.split(key)
    candidates = proposal.sample(draw_key, num_steps * num_chains)
    log_q = proposal.log_prob(candidates)
    logp, grad = jax.vmap(jax.value_and_grad(logdensity_fn))(candidates)
    logp = jnp.where(jnp.isfinite(logp), logp, -jnp.inf)
    log_w = logp - log_q
    shape = (num_steps, num_chains)
    candidates = candidates.reshape(*shape, dim)
    grad = grad.reshape(*shape, dim)
    log_w_steps = log_w.reshape(shape)
    logp_steps = logp.reshape(shape)
    current_log_w = state.logdensity - proposal.log_prob(state.position)
    uniforms = jnp.log(jax.random.uniform(accept_key, shape))

    def step(carry, inputs):
        state, current = carry
        candidate, cand_grad, cand_logp, cand_log_w, log_u = inputs
        accept = log_u < cand_log_w - current
        pick = accept[:, None]
        new = state._replace(
            position=jnp.where(pick, candidate, state.position),
            logdensity=jnp.where(accept, cand_logp, state.logdensity),
            grad=jnp.where(pick, cand_grad, state.grad),
        )
        return (new, jnp.where(accept, cand_log_w, current)), (new.position, new.logdensity, accept)

    (state, _), (draws, draws_logp, accept) = jax.lax.scan(
        step, (state, current_log_w), (candidates, grad, logp_steps, log_w_steps, uniforms)
    )
    return (
        state,
        jnp.swapaxes(draws, 0, 1),
        jnp.swapaxes(draws_logp, 0, 1),
        jnp.swapaxes(accept, 0, 1),
        log_w,
    )
