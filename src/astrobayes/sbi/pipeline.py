"""End-to-end SBI for one observation: the configuration shared by the Python API and the CLI.

:class:`SBIConfig` is the frozen dataclass onto which ``astrobayes sbi CONFIG.toml`` maps
(see ``docs/sbi.md`` for the TOML schema); :func:`run_sbi` simulates (from the prior,
then from truncated priors for ``num_rounds > 1``), trains the estimator and draws the
posterior.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes._config import from_mapping
from astrobayes._status import Status, check, worst
from astrobayes._training import TrainingInfo
from astrobayes._types import ProgressFn
from astrobayes.sbi.embeddings import CNN1dEmbedding, CNN2dEmbedding, MLPEmbedding
from astrobayes.sbi.estimators import AbstractEstimator, FlowConfig
from astrobayes.sbi.likelihood_check import LikelihoodCheckResult, local_likelihood_check
from astrobayes.sbi.posterior import MCMCConfig, PosteriorSamples, sample_posterior
from astrobayes.sbi.priors import Prior, prior_from_config
from astrobayes.sbi.sequential import RoundInfo, TruncatedPrior, truncate_prior
from astrobayes.sbi.simulators import (
    FailureLocations,
    JaxSimulator,
    PythonSimulator,
    SimulationSink,
    failure_locations,
    run_simulations,
    simulate_for_prior,
)
from astrobayes.sbi.training import SBITrainingConfig, train_nle, train_npe, train_nre

__all__ = [
    "SBIConfig",
    "SBIResult",
    "build_simulator",
    "config_from_dict",
    "load_simulator",
    "run_sbi",
]

_METHODS = ("npe", "nle", "nre")
_EMBEDDINGS = ("none", "mlp", "cnn1d", "cnn2d")
_POSTERIOR_METHODS = (
    "auto",
    "direct",
    "nuts",
    "importance",
    "smc",
    "flow_mcmc",
    "preconditioned_smc",
)


@dataclass(frozen=True)
class SBIConfig:
    """Everything ``astrobayes sbi`` needs, besides the observation's values.

    Attributes:
        simulator: ``"package.module:function"`` with signature ``simulate(key, theta) -> x``
            (JAX) or ``simulate(seed, theta) -> x`` (Python, ``simulator_kind="python"``).
        prior: Ordered ``{name: {"uniform": [lo, hi]} | {"normal": [mean, std]}}``.
        method: ``"npe"``, ``"nle"`` or ``"nre"``.
        num_simulations: Simulations per round.
        num_rounds: Rounds (``> 1``: truncated sequential rounds for ``x_obs``).
        x_obs: Observation values, or a path to a ``.npy`` file (read by the CLI).
        num_posterior_samples: Posterior draws written out.
        posterior_method: Sampler of :func:`sample_posterior`: ``"auto"`` (direct for
            NPE, NUTS otherwise), ``"nuts"``, ``"importance"``, ``"smc"`` (tempered SMC,
            for multimodal NLE / NRE posteriors), ``"flow_mcmc"`` or
            ``"preconditioned_smc"`` (the sampling module's flow-enhanced samplers, set
            by ``[mcmc.flow_mcmc]`` / ``[mcmc.preconditioned_smc]``).
        seed: Seed of the run's PRNG key.
        simulator_kind: ``"jax"`` or ``"python"``.
        max_workers: Processes for a Python simulator.
        embedding: ``"none"``, ``"mlp"``, ``"cnn1d"`` or ``"cnn2d"`` (NPE / NRE only).
        embedding_size: Summaries produced by the embedding.
        embedding_downsample: CNN embeddings: ``"max"`` (max-pool by 2 after each
            convolution) or ``"stride"`` (stride-2 convolutions).
        embedding_global_pool: CNN embeddings: average the last feature maps over
            position before the head (for statistically homogeneous fields; see
            docs/sbi.md, weak-lensing example).
        num_validation: Test simulations for the calibration checks (0 to skip).
        likelihood_check: NLE only: posterior draws (resampled from the final ones),
            each simulated afresh, for the per-observation check of the learned
            likelihood at ``x_obs`` (:func:`~astrobayes.sbi.local_likelihood_check`;
            raised to the ``200 * (data size + 1)`` draws it needs); 0 to skip.
        training: :class:`~astrobayes.sbi.training.SBITrainingConfig`.
        flow: :class:`FlowConfig`.
        mcmc: :class:`MCMCConfig`.

    """

    simulator: str
    prior: Mapping[str, Mapping[str, Any]]
    x_obs: tuple[float, ...] | str
    method: str = "npe"
    num_simulations: int = 1000
    num_rounds: int = 1
    num_posterior_samples: int = 1000
    posterior_method: str = "auto"
    seed: int = 0
    simulator_kind: str = "jax"
    max_workers: int | None = None
    embedding: str = "none"
    embedding_size: int = 16
    embedding_downsample: str = "max"
    embedding_global_pool: bool = False
    num_validation: int = 200
    likelihood_check: int = 0
    training: SBITrainingConfig = field(default_factory=SBITrainingConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    mcmc: MCMCConfig = field(default_factory=MCMCConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.simulator, str) or ":" not in self.simulator:
            raise ValueError(f"simulator must be 'package.module:function'; got {self.simulator!r}")
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}; got {self.method!r}")
        if self.simulator_kind not in ("jax", "python"):
            raise ValueError(
                f"simulator_kind must be 'jax' or 'python'; got {self.simulator_kind!r}"
            )
        if self.posterior_method not in _POSTERIOR_METHODS:
            raise ValueError(
                f"posterior_method must be one of {_POSTERIOR_METHODS}; "
                f"got {self.posterior_method!r}"
            )
        for name in ("flow_mcmc", "preconditioned_smc"):
            if getattr(self.mcmc, name) is not None and self.posterior_method != name:
                raise ValueError(
                    f"an [mcmc.{name}] table is used only with posterior_method = "
                    f'"{name}"; got posterior_method = {self.posterior_method!r}'
                )
        if self.embedding not in _EMBEDDINGS:
            raise ValueError(f"embedding must be one of {_EMBEDDINGS}; got {self.embedding!r}")
        if self.embedding != "none" and self.method == "nle":
            raise ValueError("embedding is not available with method 'nle' (it models x itself)")
        check_positive_int(self.num_simulations, "num_simulations", minimum=10)
        check_positive_int(self.num_rounds, "num_rounds")
        check_positive_int(self.num_posterior_samples, "num_posterior_samples")
        check_positive_int(self.num_validation, "num_validation", minimum=0)
        check_positive_int(self.likelihood_check, "likelihood_check", minimum=0)
        if self.likelihood_check and self.method != "nle":
            raise ValueError(
                f"likelihood_check checks a learned likelihood: it needs method 'nle'; "
                f"got method {self.method!r}"
            )
        check_positive_int(self.embedding_size, "embedding_size")
        if self.embedding_downsample not in ("max", "stride"):
            raise ValueError(
                f"embedding_downsample must be 'max' or 'stride'; got {self.embedding_downsample!r}"
            )
        if not isinstance(self.embedding_global_pool, bool):
            raise TypeError(
                "embedding_global_pool must be true or false; "
                f"got {type(self.embedding_global_pool).__name__}"
            )
        prior_from_config(self.prior)

    def build_prior(self) -> Prior:
        """Build the :class:`Prior` described by ``prior``."""
        return prior_from_config(self.prior)


def config_from_dict(values: Mapping[str, Any]) -> SBIConfig:
    """Map a parsed TOML document onto :class:`SBIConfig`.

    Top-level keys are the fields of :class:`SBIConfig`; ``[training]``, ``[flow]`` and
    ``[mcmc]`` tables map onto :class:`SBITrainingConfig`, :class:`FlowConfig` and
    :class:`MCMCConfig` through :func:`astrobayes._config.from_mapping`. An array
    ``x_obs`` (of any nesting) is flattened to a tuple of floats; a string stays a path.

    Args:
        values: The parsed document.

    Returns:
        :class:`SBIConfig`.

    Raises:
        TypeError: If ``values`` (or a nested table) is not a mapping.
        ValueError: On unknown or missing keys (naming the table), or invalid values.

    Example:
        >>> config = config_from_dict({"simulator": "m:f", "x_obs": [[1, 2]],
        ...     "prior": {"a": {"uniform": [0, 1]}}, "training": {"patience": 5}})
        >>> config.x_obs, config.training.patience, config.training.learning_rate
        ((1.0, 2.0), 5, 0.0005)

    """
    if not isinstance(values, Mapping):
        raise TypeError(f"config must be a mapping; got {type(values).__name__}")
    values = dict(values)
    x_obs = values.get("x_obs")
    if x_obs is not None and not isinstance(x_obs, str):
        values["x_obs"] = tuple(np.asarray(x_obs, dtype=float).reshape(-1).tolist())
    return from_mapping(SBIConfig, values)


def load_simulator(spec: str) -> Callable:
    """Import ``"package.module:function"`` and return the function.

    Raises:
        ValueError: If ``spec`` is malformed or the attribute is missing or not callable.

    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"simulator must be 'package.module:function'; got {spec!r}")
    module_name, attribute = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ValueError(f"cannot import simulator module {module_name!r}: {error}") from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"module {module_name!r} has no callable {attribute!r}")
    return function


class SBIResult(NamedTuple):
    """Outcome of :func:`run_sbi`.

    Attributes:
        estimator: The trained estimator (last round).
        posterior: :class:`PosteriorSamples` for ``x_obs``.
        proposal: The proposal of the last round (the prior or a truncated prior).
        rounds: One :class:`RoundInfo` per round (with its training, simulation and
            posterior statuses).
        training: The :class:`~astrobayes._training.TrainingInfo` of each round.
        num_failed: Failed simulations over all rounds.
        failure_examples: Up to five failure messages.
        failed_theta: Parameters whose simulation failed, over all rounds,
            ``(num_failed, dim)``.
        failure_locations: Where they failed (:func:`~astrobayes.sbi.failure_locations`
            over all rounds), ``None`` when none failed.
        status: The most severe status of every round's simulations, training and
            posterior (a training that hit ``max_epochs`` is a warning here), and of
            the likelihood check when it ran.
        likelihood_check: :class:`~astrobayes.sbi.LikelihoodCheckResult` of the
            per-observation check (``config.likelihood_check > 0``), else ``None``.

    """

    estimator: AbstractEstimator
    posterior: PosteriorSamples
    proposal: Prior | TruncatedPrior
    rounds: tuple[RoundInfo, ...]
    training: tuple[TrainingInfo, ...]
    num_failed: int
    failure_examples: tuple[str, ...]
    failed_theta: np.ndarray
    failure_locations: FailureLocations | None
    status: Status
    likelihood_check: LikelihoodCheckResult | None = None


def _embedding(key, config: SBIConfig, data_shape: tuple[int, ...]):
    size = int(np.prod(data_shape))
    cnn_options = dict(
        downsample=config.embedding_downsample, global_pool=config.embedding_global_pool
    )
    if config.embedding == "mlp":
        return MLPEmbedding(key, size, config.embedding_size)
    if config.embedding == "cnn1d":
        return CNN1dEmbedding(
            key,
            data_shape[-1],
            config.embedding_size,
            in_channels=1 if len(data_shape) == 1 else data_shape[0],
            **cnn_options,
        )
    if config.embedding == "cnn2d":
        return CNN2dEmbedding(
            key,
            data_shape[-2:],
            config.embedding_size,
            in_channels=1 if len(data_shape) == 2 else data_shape[0],
            **cnn_options,
        )
    return None


def build_simulator(
    config: SBIConfig, function: Callable | None = None
) -> JaxSimulator | PythonSimulator:
    """The simulator ``config`` describes, wrapped for its ``simulator_kind``.

    Args:
        config: The run's :class:`SBIConfig`.
        function: The simulator function; imported from ``config.simulator``
            (``"package.module:function"``) when ``None``.

    Returns:
        A :class:`JaxSimulator` (``simulator_kind = "jax"``) or a
        :class:`PythonSimulator` with ``config.max_workers`` processes.

    Raises:
        ValueError: If ``function`` is ``None`` and ``config.simulator`` cannot be imported.

    """
    function = load_simulator(config.simulator) if function is None else function
    if config.simulator_kind == "python":
        return PythonSimulator(function, max_workers=config.max_workers)
    return JaxSimulator(function)


def _train(key, config: SBIConfig, prior: Prior, theta, x, embedding_key, progress_fn=None):
    """Train the configured estimator on every simulation so far."""
    embedding = _embedding(embedding_key, config, x.shape[1:])
    common = {
        "flow_config": config.flow,
        "training_config": config.training,
        "progress_fn": progress_fn,
    }
    if config.method == "npe":
        return train_npe(key, prior, theta, x, embedding=embedding, **common)
    if config.method == "nle":
        return train_nle(key, prior, theta, x, **common)
    return train_nre(key, prior, theta, x, embedding=embedding, **common)


def check_observation_size(x_obs: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    """Refuse an observation whose size differs from one simulation's.

    Raises:
        ValueError: ``x_obs has N values but <name> returns shape <shape>``.
    """
    if np.size(x_obs) != int(np.prod(shape)):
        raise ValueError(
            f"x_obs has {np.size(x_obs)} values but {name} returns shape {tuple(shape)}"
        )


def run_sbi(
    key: PRNGKeyArray,
    config: SBIConfig,
    x_obs: Array | np.ndarray,
    *,
    simulator: Any = None,
    sink: SimulationSink | None = None,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> SBIResult:
    """Simulate, train and sample the posterior for one observation.

    Args:
        key: JAX PRNG key.
        config: :class:`SBIConfig`.
        x_obs: The observation (array of the simulator's output shape).
        simulator: Overrides ``config.simulator`` (a function or simulator object).
        sink: Store receiving every chunk of simulations (with ``with_round`` when it
            has one, so chunks are labelled by round).
        progress_fn: Called as ``progress_fn(stage, done, total)`` with stage
            ``"simulations"`` after each chunk and ``"training"`` after each epoch, round
            after round (the CLI's progress bars).
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) when the run's status is a failure.

    Returns:
        :class:`SBIResult`.

    Raises:
        ValueError: If every simulation of a round failed, or ``x_obs`` is not finite.
        UnreliableResultError: With ``throw=True``, on a failure status.

    """
    check_key(key)
    x_obs = as_float_array(x_obs, "x_obs")
    if not np.all(np.isfinite(x_obs)):
        raise ValueError("x_obs must be finite")
    prior = config.build_prior()
    function = getattr(simulator, "simulate_fn", simulator)
    # a function's name, or a FileFunction's (the CLI's picklable wrapper): its attribute
    function_name = getattr(function, "__name__", None) or getattr(function, "attribute", None)
    # the config's "module:function" when it is the function run (the CLI loads it)
    name = (
        f"simulator {config.simulator!r}"
        if simulator is None or function_name == config.simulator.split(":")[-1]
        else f"simulator {function_name or type(function).__name__!r}"
    )
    simulator = build_simulator(config) if simulator is None else simulator
    if isinstance(simulator, JaxSimulator) or (
        callable(simulator) and not isinstance(simulator, PythonSimulator)
    ):
        # one abstract trace: a mistake in the simulator's code, or an output that cannot
        # match x_obs, stops the run before any simulation is spent
        jax_simulator = (
            simulator if isinstance(simulator, JaxSimulator) else JaxSimulator(simulator)
        )
        check_observation_size(x_obs, jax_simulator.output_shape(prior.dim, name), name)
    proposal: Prior | TruncatedPrior = prior
    thetas, xs, rounds, infos, examples, failed = [], [], [], [], [], []
    keys = jax.random.split(key, config.num_rounds + 1)
    for round_index in range(config.num_rounds):
        k_sim, k_train, k_post, k_trunc, k_emb = jax.random.split(keys[round_index], 5)
        round_sink = sink.with_round(round_index) if hasattr(sink, "with_round") else sink
        sims = simulate_for_prior(
            k_sim,
            proposal,
            simulator,
            config.num_simulations,
            sink=round_sink,
            progress_fn=progress_fn,
        )
        examples.extend(sims.failure_examples)
        failed.append(sims.failed_theta)
        if sims.theta.shape[0] < 10:
            raise ValueError(
                f"round {round_index}: only {sims.theta.shape[0]} of {config.num_simulations} "
                f"simulations succeeded ({sims.status.value}); e.g. {sims.failure_examples[:2]}"
            )
        thetas.append(sims.theta)
        xs.append(sims.x)
        theta_all, x_all = np.concatenate(thetas), np.concatenate(xs)
        check_observation_size(x_obs, x_all.shape[1:], name)
        estimator, info = _train(k_train, config, prior, theta_all, x_all, k_emb, progress_fn)
        x_obs_shaped = x_obs.reshape(x_all.shape[1:])
        last = round_index == config.num_rounds - 1
        num_draws = (
            config.num_posterior_samples if last else max(1000, config.num_posterior_samples)
        )
        posterior = sample_posterior(
            k_post,
            estimator,
            x_obs_shaped,
            num_draws,
            method=config.posterior_method,
            mcmc_config=config.mcmc,
        )
        infos.append(info)
        rounds.append(
            RoundInfo(
                round_index=round_index,
                num_simulations=sims.theta.shape[0],
                num_failed=sims.num_failed,
                acceptance_rate=1.0 if isinstance(proposal, Prior) else proposal.acceptance_rate,
                training_epochs=info.num_epochs,
                training_time_s=info.wall_time_s,
                training_status=info.status,
                simulation_status=sims.status,
                posterior_status=posterior.status,
            )
        )
        if not last:
            proposal = truncate_prior(
                k_trunc, prior, estimator, jnp.asarray(x_obs_shaped), posterior.samples
            )
    statuses = [
        s for r in rounds for s in (r.simulation_status, r.training_status, r.posterior_status)
    ]
    likelihood = None
    if config.likelihood_check:
        # keys[-1] is used by nothing else: the run's other numbers do not change.
        likelihood = _likelihood_check(
            keys[-1], config, estimator, simulator, x_obs_shaped, posterior.samples
        )
        statuses.append(likelihood.status)
    failed_all = np.concatenate(failed, axis=0)
    result = SBIResult(
        estimator=estimator,
        posterior=posterior,
        proposal=proposal,
        rounds=tuple(rounds),
        training=tuple(infos),
        num_failed=sum(r.num_failed for r in rounds),
        failure_examples=tuple(examples[:5]),
        failed_theta=failed_all,
        failure_locations=(
            failure_locations(theta_all, failed_all, names=posterior.names)
            if failed_all.shape[0]
            else None
        ),
        status=worst(statuses),
        likelihood_check=likelihood,
    )
    return check(result, throw)


def _likelihood_check(key, config, estimator, simulator, x_obs, samples) -> LikelihoodCheckResult:
    """Resample posterior draws, simulate each afresh, check the NLE at ``x_obs``."""
    k_draw, k_sim, k_check = jax.random.split(key, 3)
    samples = np.asarray(samples)
    num = max(config.likelihood_check, int(np.ceil(200 * (x_obs.size + 1))))
    index = jax.random.choice(k_draw, samples.shape[0], (num,), replace=num > samples.shape[0])
    sims = run_simulations(k_sim, simulator, samples[np.asarray(index)])
    return local_likelihood_check(k_check, estimator, x_obs, sims.theta, sims.x)
