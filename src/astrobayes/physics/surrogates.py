r"""Learned surrogates of the primordial-chemistry network, with deep-ensemble errors.

Three surrogates share one interface, ``surrogate.trajectory(initial, log_times)``: from
the state at :math:`t = 0` they return the state at the times :math:`10^{\log t}`, in dex.

- :class:`MLPSurrogate`: an MLP on (state, :math:`\log_{10}\Delta t`). It predicts the
  change from the input state, so it is also a *flow map*: trained with extra pairs
  (state at :math:`t_i`, :math:`t_j - t_i`) it can be rolled out autoregressively
  (:func:`rollout`), feeding its prediction at :math:`t_k` back as the next input.
- :class:`DeepONetSurrogate`: operator learning (Lu et al. 2021, arXiv:1910.03193); a
  branch net of the initial state gives coefficients of a basis that a trunk net of
  :math:`\log_{10} t` learns, one coefficient set per output.
- :class:`LatentODESurrogate`: an encoder maps the initial state to a low-dimensional
  latent state, a learned vector field moves it with diffrax (Tsit5 on a fixed grid in
  :math:`\log t`), a decoder reads the state off (Chen et al. 2018, arXiv:1806.07366;
  Rubanova et al. 2019, arXiv:1907.03907 for the encoder/decoder form).

State features (:func:`state_features`, 12 numbers): :math:`\log_{10}` of the nine
abundances per H nucleus (floored at ``floor_dex``, because H⁻, H₂⁺ and He⁺⁺ start at
zero), :math:`\log_{10} T`, and the two parameters :math:`\log_{10} n_H` and
:math:`\log_{10} J_{21}`. Outputs (10): the first ten features. Inputs and times are
standardised with training statistics (a :class:`Standardiser`, not trained). The loss is
the mean squared error in dex with a hinge at the floor (a prediction below the floor for
a true value below the floor costs nothing), so every species is fitted in relative terms.

Uncertainty: a deep ensemble (Lakshminarayanan et al. 2017, arXiv:1612.01474). The
members are stacked (one module whose arrays carry a leading member axis) and trained
together through the one training loop :func:`astrobayes._training.fit` with the sum of
their losses; they differ in their initial weights (same minibatches, joint early
stopping). The prediction is the member mean, the error bar the member standard
deviation. Whether that spread is calibrated is measured (:func:`interval_coverage`);
:func:`fit_variance_scale` fits one scale per output on a calibration split (Kuleshov et
al. 2018, arXiv:1807.00263, in its simplest variance-scaling form) to be checked on a
separate test split.

Errors (:func:`surrogate_errors`): per output, the median and 99th percentile of the
relative error :math:`|10^{\hat y - y} - 1|` and of the error in dex :math:`|\hat y - y|`,
over all times and trajectories whose true abundance is above ``floor_dex`` (temperature:
always counted).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from astrobayes._training import TrainingConfig
    >>> key = jax.random.key(0)
    >>> initial = jax.random.normal(key, (16, 12))
    >>> log_times = jnp.linspace(8.0, 15.0, 4)
    >>> targets = jnp.broadcast_to(initial[:, None, :10], (16, 4, 10))
    >>> data = SurrogateData(initial, log_times, targets)
    >>> config = SurrogateConfig(kind="deeponet", num_members=2, width=8, depth=1,
    ...     basis_size=4, training=TrainingConfig(batch_size=8, max_epochs=2))
    >>> ensemble = train_surrogate_ensemble(jax.random.key(1), data, config)
    >>> mean, std = surrogate_predict(ensemble, initial, log_times)
    >>> mean.shape, std.shape
    ((16, 4, 10), (16, 4, 10))

"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._training import TrainingConfig, TrainingInfo, TrainingStatus, fit, split_validation
from astrobayes._types import ProgressFn
from astrobayes.physics.chemistry import SPECIES, initial_state
from astrobayes.validation import intervals as validation_intervals

__all__ = [
    "NUM_FEATURES",
    "NUM_OUTPUTS",
    "OUTPUT_NAMES",
    "SURROGATE_KINDS",
    "DeepONetSurrogate",
    "LatentODESurrogate",
    "MLPSurrogate",
    "Standardiser",
    "Surrogate",
    "SurrogateConfig",
    "SurrogateData",
    "SurrogateEnsemble",
    "SurrogateErrors",
    "SurrogateStatus",
    "build_surrogate_ensemble",
    "fit_variance_scale",
    "interval_coverage",
    "predict_members",
    "rollout",
    "state_features",
    "surrogate_data",
    "surrogate_errors",
    "surrogate_predict",
    "train_surrogate_ensemble",
]

SURROGATE_KINDS = ("mlp", "deeponet", "latent_ode")
"""The surrogate types of :class:`SurrogateConfig`."""

NUM_FEATURES = 12
"""State features: 9 log10 abundances, log10 T, log10 n_H, log10 J21."""

NUM_OUTPUTS = 10
"""Predicted outputs: 9 log10 abundances and log10 T."""

OUTPUT_NAMES = (*SPECIES, "T")
"""Names of the outputs, in order."""

_LN10 = math.log(10.0)


class SurrogateStatus(Status):
    """Outcome of :func:`train_surrogate_ensemble`."""

    OK = (Severity.OK, "the ensemble converged (validation loss stopped improving)")
    MAX_EPOCHS = (
        Severity.WARNING,
        "warning: training stopped at max_epochs while the validation loss was still "
        "falling; the surrogates may be under-trained (raise training.max_epochs)",
    )
    NON_FINITE = (
        Severity.FAILURE,
        "failure: the training loss became non-finite; the best finite epoch was kept",
    )


def state_features(
    states: Float[ArrayLike, "*batch 10"],
    log_density: Float[ArrayLike, "*batch"],
    log_j21: Float[ArrayLike, "*batch"],
    *,
    floor_dex: float = -22.0,
) -> Float[Array, "*batch 12"]:
    """Features of network states (abundances and ln T, as ``chemistry`` stores them).

    Args:
        states: ``(..., 10)`` abundances per H nucleus and ln T.
        log_density: log10 n_H (cm⁻³), broadcast against ``states[..., 0]``.
        log_j21: log10 J21, broadcast likewise.
        floor_dex: Abundances below ``10**floor_dex`` (and zeros) are set to the floor.

    Returns:
        ``(..., 12)``: log10 abundances, log10 T, log10 n_H, log10 J21.

    Example:
        >>> from astrobayes.physics.chemistry import initial_state
        >>> f = state_features(initial_state(0.1, 0.0, 1e4), 2.0, -1.0)
        >>> [round(float(f[i]), 3) for i in (0, 2, 9, 10)]
        [-0.046, -22.0, 4.0, 2.0]

    """
    states = jnp.asarray(states)
    abundances = jnp.log10(jnp.maximum(states[..., :9], 10.0**floor_dex))
    shape = states.shape[:-1]
    extra = [jnp.broadcast_to(jnp.asarray(v, states.dtype), shape) for v in (log_density, log_j21)]
    return jnp.concatenate(
        [abundances, (states[..., 9] / _LN10)[..., None], extra[0][..., None], extra[1][..., None]],
        axis=-1,
    )


class SurrogateData(NamedTuple):
    """Trajectories in surrogate coordinates.

    Attributes:
        initial: ``(num, 12)`` state features at t = 0.
        log_times: ``(num_times,)`` log10 of the output times (s), increasing.
        targets: ``(num, num_times, 10)`` log10 abundances (floored) and log10 T.

    """

    initial: Float[Array, "num 12"]
    log_times: Float[Array, " num_times"]
    targets: Float[Array, "num num_times 10"]


def surrogate_data(
    conditions: Float[ArrayLike, "num 5"],
    times: Float[ArrayLike, " num_times"],
    states: Float[ArrayLike, "num num_times 10"],
    *,
    floor_dex: float = -22.0,
) -> SurrogateData:
    """Surrogate coordinates of generator output (``chemistry.simulate_trajectories``).

    Args:
        conditions: ``(num, 5)`` log10 (n_H, T, ionised fraction, molecular fraction, J21)
            as drawn by ``chemistry.sample_conditions``.
        times: ``(num_times,)`` output times in s.
        states: ``(num, num_times, 10)`` solver states.
        floor_dex: Abundance floor in dex.

    Returns:
        :class:`SurrogateData`.

    Raises:
        ValueError: On inconsistent shapes or non-positive times.

    Example:
        >>> import jax.numpy as jnp
        >>> c = jnp.array([[2.0, 3.0, -3.0, -5.0, 0.0]])
        >>> s = jnp.ones((1, 2, 10))
        >>> d = surrogate_data(c, jnp.array([1e8, 1e9]), s)
        >>> d.initial.shape, d.targets.shape
        ((1, 12), (1, 2, 10))

    """
    conditions = jnp.asarray(conditions)
    times = np.asarray(times, dtype=float)
    states = jnp.asarray(states)
    if conditions.ndim != 2 or conditions.shape[1] != 5:
        raise ValueError(f"conditions must have shape (num, 5); got {conditions.shape}")
    if states.shape != (conditions.shape[0], times.size, 10):
        raise ValueError(
            f"states must have shape (num, num_times, 10) = {(conditions.shape[0], times.size, 10)}"
            f"; got {states.shape}"
        )
    if times.ndim != 1 or np.any(times <= 0) or np.any(np.diff(times) <= 0):
        raise ValueError("times must be a 1-d increasing array of positive seconds")
    temperature, ionised, molecular = (10.0 ** conditions[:, i] for i in (1, 2, 3))
    initial = jax.vmap(lambda x, m, t: initial_state(x, m, t, helium_ionised_fraction=x / 10.0))(
        ionised, molecular, temperature
    )
    log_n, log_j21 = conditions[:, 0], conditions[:, 4]
    return SurrogateData(
        initial=state_features(initial, log_n, log_j21, floor_dex=floor_dex),
        log_times=jnp.asarray(np.log10(times), conditions.dtype),
        targets=state_features(states, log_n[:, None], log_j21[:, None], floor_dex=floor_dex)[
            ..., :NUM_OUTPUTS
        ],
    )


class Standardiser(eqx.Module):
    """Affine maps of inputs, log time and outputs (training statistics; never trained).

    Attributes:
        input_shift: ``(12,)``.
        input_scale: ``(12,)``.
        time_shift: Scalar shift of log10 t.
        time_scale: Scalar scale of log10 t.
        output_shift: ``(10,)`` (for the MLP: of the change from the input state).
        output_scale: ``(10,)``.

    """

    input_shift: Array
    input_scale: Array
    time_shift: Array
    time_scale: Array
    output_shift: Array
    output_scale: Array

    @staticmethod
    def from_data(
        initial: Float[ArrayLike, "num 12"],
        log_times: Float[ArrayLike, " num"],
        outputs: Float[ArrayLike, "num 10"],
    ) -> Standardiser:
        """Means and standard deviations (1 where a column is constant)."""

        def stats(a):
            a = jnp.asarray(a, jnp.float32)
            std = jnp.std(a, axis=0)
            return jnp.mean(a, axis=0), jnp.where(std > 1e-6, std, 1.0)

        (ins, ins_scale), (ts, ts_scale), (outs, outs_scale) = (
            stats(initial),
            stats(log_times),
            stats(outputs),
        )
        return Standardiser(ins, ins_scale, ts, ts_scale, outs, outs_scale)

    def inputs(self, initial: Array) -> Array:
        """Standardised state features."""
        s = jax.lax.stop_gradient(self)
        return (initial - s.input_shift) / s.input_scale

    def time(self, log_time: Array) -> Array:
        """Standardised log10 t."""
        s = jax.lax.stop_gradient(self)
        return (log_time - s.time_shift) / s.time_scale

    def outputs(self, raw: Array) -> Array:
        """Network outputs back to dex."""
        s = jax.lax.stop_gradient(self)
        return s.output_shift + s.output_scale * raw


class Surrogate(eqx.Module):
    """The interface: ``trajectory(initial, log_times) -> (num_times, 10)`` in dex."""

    standardiser: Standardiser

    def trajectory(
        self, initial: Float[Array, " 12"], log_times: Float[Array, " num_times"]
    ) -> Float[Array, "num_times 10"]:
        """Outputs at ``10**log_times`` s from the state features ``initial`` at t = 0."""
        raise NotImplementedError

    def trajectories(
        self, initial: Float[Array, "num 12"], log_times: Float[Array, " num_times"]
    ) -> Float[Array, "num num_times 10"]:
        """:meth:`trajectory` for a batch of initial states (shared times)."""
        return jax.vmap(self.trajectory, in_axes=(0, None))(initial, log_times)


class MLPSurrogate(Surrogate):
    """MLP on (state features, log10 Δt) predicting the change of the first ten features.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = Standardiser.from_data(jnp.zeros((2, 12)), jnp.zeros(2), jnp.zeros((2, 10)))
        >>> m = MLPSurrogate(jax.random.key(0), s, width=8, depth=1)
        >>> m.trajectory(jnp.zeros(12), jnp.array([8.0, 9.0])).shape
        (2, 10)

    """

    network: eqx.nn.MLP

    def __init__(self, key: PRNGKeyArray, standardiser: Standardiser, *, width: int, depth: int):
        self.standardiser = standardiser
        self.network = eqx.nn.MLP(NUM_FEATURES + 1, NUM_OUTPUTS, width, depth, jax.nn.silu, key=key)

    def step(self, state: Float[Array, " 12"], log_dt: Float[Array, ""]) -> Float[Array, " 10"]:
        """Outputs a time ``10**log_dt`` after the state ``state``."""
        inputs = jnp.concatenate(
            [self.standardiser.inputs(state), self.standardiser.time(log_dt)[None]]
        )
        return state[:NUM_OUTPUTS] + self.standardiser.outputs(self.network(inputs))

    def trajectory(self, initial, log_times):
        """Direct predictions from ``initial`` at each time (no roll-out)."""
        return jax.vmap(self.step, in_axes=(None, 0))(initial, log_times)


class DeepONetSurrogate(Surrogate):
    r"""DeepONet: :math:`y_k(t) = \sum_p b_{kp}(u_0)\,\tau_p(\log t) + c_k`, unstandardised.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = Standardiser.from_data(jnp.zeros((2, 12)), jnp.zeros(2), jnp.zeros((2, 10)))
        >>> m = DeepONetSurrogate(jax.random.key(0), s, width=8, depth=1, basis_size=4)
        >>> m.trajectory(jnp.zeros(12), jnp.array([8.0, 9.0])).shape
        (2, 10)

    """

    branch: eqx.nn.MLP
    trunk: eqx.nn.MLP
    bias: Array
    basis_size: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        standardiser: Standardiser,
        *,
        width: int,
        depth: int,
        basis_size: int,
    ):
        branch_key, trunk_key = jax.random.split(key)
        self.standardiser = standardiser
        self.basis_size = basis_size
        self.branch = eqx.nn.MLP(
            NUM_FEATURES, NUM_OUTPUTS * basis_size, width, depth, jax.nn.silu, key=branch_key
        )
        self.trunk = eqx.nn.MLP(
            1, basis_size, width, depth, jax.nn.silu, final_activation=jax.nn.silu, key=trunk_key
        )
        self.bias = jnp.zeros(NUM_OUTPUTS)

    def trajectory(self, initial, log_times):
        """All times at once: one branch evaluation, one trunk evaluation per time."""
        coefficients = self.branch(self.standardiser.inputs(initial))
        coefficients = coefficients.reshape(NUM_OUTPUTS, self.basis_size)
        basis = jax.vmap(self.trunk)(self.standardiser.time(log_times)[:, None])
        raw = basis @ coefficients.T / math.sqrt(self.basis_size) + self.bias
        return self.standardiser.outputs(raw)

    def trajectories(self, initial, log_times):
        """A batch with one trunk evaluation per time (shared by the batch)."""
        coefficients = jax.vmap(self.branch)(self.standardiser.inputs(initial))
        coefficients = coefficients.reshape(-1, NUM_OUTPUTS, self.basis_size)
        basis = jax.vmap(self.trunk)(self.standardiser.time(log_times)[:, None])
        raw = jnp.einsum("tp,nkp->ntk", basis, coefficients) / math.sqrt(self.basis_size)
        return self.standardiser.outputs(raw + self.bias)


class LatentODESurrogate(Surrogate):
    """Encoder -> diffrax ODE (Tsit5, fixed steps in standardised log t) -> decoder.

    The latent state is defined at ``start`` (standardised log10 t, before the first
    training time); queried times must lie after it. ``substeps`` Tsit5 steps are taken
    between consecutive queried times.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = Standardiser.from_data(jnp.zeros((2, 12)), jnp.zeros(2), jnp.zeros((2, 10)))
        >>> m = LatentODESurrogate(jax.random.key(0), s, width=8, depth=1, latent_size=3,
        ...     start=-1.0, substeps=1)
        >>> m.trajectory(jnp.zeros(12), jnp.array([0.0, 1.0])).shape
        (2, 10)

    """

    encoder: eqx.nn.MLP
    vector_field: eqx.nn.MLP
    decoder: eqx.nn.MLP
    start: float = eqx.field(static=True)
    substeps: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        standardiser: Standardiser,
        *,
        width: int,
        depth: int,
        latent_size: int,
        start: float,
        substeps: int,
    ):
        keys = jax.random.split(key, 3)
        self.standardiser = standardiser
        self.encoder = eqx.nn.MLP(NUM_FEATURES, latent_size, width, depth, jax.nn.silu, key=keys[0])
        self.vector_field = eqx.nn.MLP(
            latent_size + 1, latent_size, width, depth, jax.nn.tanh, key=keys[1]
        )
        self.decoder = eqx.nn.MLP(latent_size, NUM_OUTPUTS, width, depth, jax.nn.silu, key=keys[2])
        self.start = float(start)
        self.substeps = int(substeps)

    def trajectory(self, initial, log_times):
        """Solve the latent ODE once through all queried times."""
        tau = self.standardiser.time(log_times)
        z0 = self.encoder(self.standardiser.inputs(initial))
        nodes = jnp.concatenate([jnp.asarray([self.start], tau.dtype), tau])
        fractions = jnp.arange(self.substeps, dtype=tau.dtype) / self.substeps
        grid = (nodes[:-1, None] + fractions[None, :] * jnp.diff(nodes)[:, None]).ravel()
        grid = jnp.concatenate([grid, nodes[-1:]])

        def vector_field(s, z, args):
            return self.vector_field(jnp.concatenate([z, s[None]]))

        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(vector_field),
            diffrax.Tsit5(),
            t0=grid[0],
            t1=grid[-1],
            dt0=None,
            y0=z0,
            saveat=diffrax.SaveAt(ts=tau),
            stepsize_controller=diffrax.StepTo(ts=grid),
            max_steps=grid.shape[0],
        )
        return self.standardiser.outputs(jax.vmap(self.decoder)(solution.ys))


def _default_training() -> TrainingConfig:
    return TrainingConfig(
        learning_rate=2e-3,
        batch_size=256,
        max_epochs=300,
        patience=30,
        schedule="cosine",
        cosine_final_fraction=0.01,
        clip_max_norm=1.0,
    )


@dataclass(frozen=True)
class SurrogateConfig:
    """Architecture and training of a surrogate ensemble.

    Attributes:
        kind: One of :data:`SURROGATE_KINDS`.
        num_members: Ensemble size (at least 2 for an error bar).
        width: Hidden width of every MLP.
        depth: Hidden layers of every MLP.
        basis_size: DeepONet basis functions per output.
        latent_size: Latent dimension of the neural ODE.
        substeps: Tsit5 steps of the latent ODE between output times.
        num_pairs: MLP only: extra training pairs (state at t_i, t_j - t_i), i < j, per
            trajectory, drawn at random (0: trained from t = 0 only). Needed for
            roll-outs.
        floor_dex: Abundance floor of the loss hinge (dex).
        training: :class:`~astrobayes._training.TrainingConfig` (one ``fit`` call trains
            all members; ``batch_size`` counts samples for the MLP, trajectories
            otherwise).

    """

    kind: str = "mlp"
    num_members: int = 5
    width: int = 128
    depth: int = 3
    basis_size: int = 32
    latent_size: int = 8
    substeps: int = 2
    num_pairs: int = 0
    floor_dex: float = -22.0
    training: TrainingConfig = field(default_factory=_default_training)

    def __post_init__(self) -> None:
        if self.kind not in SURROGATE_KINDS:
            raise ValueError(f"kind must be one of {SURROGATE_KINDS}; got {self.kind!r}")
        for name in ("num_members", "width", "depth", "basis_size", "latent_size", "substeps"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.num_pairs, "num_pairs", minimum=0)
        if self.num_pairs and self.kind != "mlp":
            raise ValueError(f"num_pairs applies to kind 'mlp' only; got kind {self.kind!r}")
        if not (isinstance(self.floor_dex, int | float) and math.isfinite(self.floor_dex)):
            raise ValueError(f"floor_dex must be a finite number; got {self.floor_dex!r}")
        if not isinstance(self.training, TrainingConfig):
            raise TypeError(
                f"training must be a TrainingConfig; got {type(self.training).__name__}"
            )


class SurrogateEnsemble(NamedTuple):
    """A trained deep ensemble.

    Attributes:
        members: One :class:`Surrogate` whose arrays carry a leading member axis.
        config: The :class:`SurrogateConfig`.
        info: :class:`~astrobayes._training.TrainingInfo` of the joint fit.
        status: :class:`SurrogateStatus`.

    """

    members: Surrogate
    config: SurrogateConfig
    info: TrainingInfo | None
    status: SurrogateStatus


def _pairs(key, data: SurrogateData, num_pairs: int):
    """MLP samples: every (t=0, t_j) plus ``num_pairs`` random (t_i, t_j) per trajectory."""
    num, num_times = data.targets.shape[:2]
    inputs = [jnp.repeat(data.initial, num_times, axis=0)]
    log_dt = [jnp.tile(data.log_times, num)]
    targets = [data.targets.reshape(num * num_times, NUM_OUTPUTS)]
    if num_pairs and num_times > 1:
        first_key, second_key = jax.random.split(key)
        i = jax.random.randint(first_key, (num, num_pairs), 0, num_times - 1)
        u = jax.random.uniform(second_key, (num, num_pairs))
        j = jnp.minimum(i + 1 + jnp.floor(u * (num_times - 1 - i)).astype(i.dtype), num_times - 1)
        rows = jnp.arange(num)[:, None]
        start = data.targets[rows, i]
        params = jnp.broadcast_to(data.initial[:, None, 10:], (num, num_pairs, 2))
        inputs.append(jnp.concatenate([start, params], axis=-1).reshape(-1, NUM_FEATURES))
        times = 10.0 ** np.asarray(data.log_times, dtype=float)
        gaps = np.log10(times[np.asarray(j)] - times[np.asarray(i)])
        log_dt.append(jnp.asarray(gaps, jnp.float32).ravel())
        targets.append(data.targets[rows, j].reshape(-1, NUM_OUTPUTS))
    return tuple(jnp.concatenate(a).astype(jnp.float32) for a in (inputs, log_dt, targets))


def build_surrogate_ensemble(
    key: PRNGKeyArray, config: SurrogateConfig, standardiser: Standardiser, start: float = 0.0
) -> Surrogate:
    """Untrained stacked members (also the skeleton for loading saved weights).

    Args:
        key: JAX PRNG key; member ``i`` is initialised from ``split(key, num_members)[i]``.
        config: :class:`SurrogateConfig`.
        standardiser: :class:`Standardiser` shared by the members.
        start: Latent ODE only: standardised log10 t of the latent initial state.

    Returns:
        A :class:`Surrogate` with a leading member axis on its arrays.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = Standardiser.from_data(jnp.zeros((2, 12)), jnp.zeros(2), jnp.zeros((2, 10)))
        >>> m = build_surrogate_ensemble(jax.random.key(0), SurrogateConfig(num_members=3,
        ...     width=4, depth=1), s)
        >>> m.network.layers[0].weight.shape
        (3, 4, 13)

    """

    def make(k):
        if config.kind == "mlp":
            return MLPSurrogate(k, standardiser, width=config.width, depth=config.depth)
        if config.kind == "deeponet":
            return DeepONetSurrogate(
                k, standardiser, width=config.width, depth=config.depth,
                basis_size=config.basis_size,
            )  # fmt: skip
        return LatentODESurrogate(
            k, standardiser, width=config.width, depth=config.depth,
            latent_size=config.latent_size, start=start, substeps=config.substeps,
        )  # fmt: skip

    return eqx.filter_vmap(make)(jax.random.split(key, config.num_members))


def _member_trajectories(member: Surrogate, initial, log_times):
    return member.trajectories(initial, log_times)


def _dex_loss(prediction, target, floor_dex):
    lower = jnp.concatenate([jnp.full(9, floor_dex), jnp.array([-jnp.inf])]).astype(target.dtype)
    difference = jnp.maximum(prediction, lower) - jnp.maximum(target, lower)
    return jnp.mean(difference**2)


def train_surrogate_ensemble(
    key: PRNGKeyArray,
    data: SurrogateData,
    config: SurrogateConfig,
    *,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> SurrogateEnsemble:
    """Train a deep ensemble of one surrogate kind (validation split by trajectory).

    Args:
        key: JAX PRNG key (validation split, pairs, initial weights, minibatches).
        data: Training :class:`SurrogateData` (held-out trajectories must not be in it).
            A share ``config.training.validation_fraction`` of its trajectories is held
            out for early stopping (for the MLP, their t = 0 samples only).
        config: :class:`SurrogateConfig`.
        progress_fn: ``progress_fn("training", epoch, max_epochs)``.
        throw: Raise :class:`~astrobayes.UnreliableResultError` on a failure status.

    Returns:
        :class:`SurrogateEnsemble` (float32 weights).

    Raises:
        TypeError: If ``data`` or ``config`` has the wrong type.
        ValueError: On inconsistent shapes.

    """
    check_key(key)
    if not isinstance(data, SurrogateData):
        raise TypeError(f"data must be a SurrogateData; got {type(data).__name__}")
    if not isinstance(config, SurrogateConfig):
        raise TypeError(f"config must be a SurrogateConfig; got {type(config).__name__}")
    num, num_times = data.targets.shape[:2]
    if data.initial.shape != (num, NUM_FEATURES) or data.targets.shape[2] != NUM_OUTPUTS:
        raise ValueError(
            f"data.initial must be (num, {NUM_FEATURES}) and data.targets (num, num_times, "
            f"{NUM_OUTPUTS}); got {data.initial.shape} and {data.targets.shape}"
        )
    split_key, pair_key, init_key, fit_key = jax.random.split(key, 4)
    (train_initial, train_targets), (valid_initial, valid_targets) = split_validation(
        split_key, (data.initial, data.targets), config.training.validation_fraction
    )
    train = SurrogateData(train_initial, data.log_times, train_targets)
    valid = SurrogateData(valid_initial, data.log_times, valid_targets)
    floor = float(config.floor_dex)
    log_times = jnp.asarray(data.log_times, jnp.float32)
    start = 0.0
    if config.kind == "mlp":
        train_arrays = _pairs(pair_key, train, config.num_pairs)
        valid_arrays = _pairs(pair_key, valid, 0)
        inputs, log_dt, targets = train_arrays
        standardiser = Standardiser.from_data(inputs, log_dt, targets - inputs[:, :NUM_OUTPUTS])

        def member_loss(member, batch):
            x, t, y = batch
            return _dex_loss(jax.vmap(member.step)(x, t), y, floor)

    else:
        train_arrays = tuple(jnp.asarray(a, jnp.float32) for a in (train.initial, train.targets))
        valid_arrays = tuple(jnp.asarray(a, jnp.float32) for a in (valid.initial, valid.targets))
        standardiser = Standardiser.from_data(
            train_arrays[0],
            log_times,
            train_arrays[1].reshape(-1, NUM_OUTPUTS),
        )
        step = float(jnp.min(jnp.diff(log_times))) if num_times > 1 else 1.0
        start = float(standardiser.time(log_times[0] - step))

        def member_loss(member, batch):
            x, y = batch
            return _dex_loss(_member_trajectories(member, x, log_times), y, floor)

    members = build_surrogate_ensemble(init_key, config, standardiser, start)

    def loss_fn(stacked, batch, loss_key):
        losses = eqx.filter_vmap(member_loss, in_axes=(eqx.if_array(0), None))(stacked, batch)
        return jnp.sum(losses)

    members, info = fit(
        fit_key,
        members,
        loss_fn,
        train_arrays,
        valid_arrays,
        config=config.training,
        progress_fn=progress_fn,
    )
    status = {
        TrainingStatus.CONVERGED: SurrogateStatus.OK,
        TrainingStatus.MAX_EPOCHS: SurrogateStatus.MAX_EPOCHS,
        TrainingStatus.NON_FINITE: SurrogateStatus.NON_FINITE,
    }[info.status]
    return check(SurrogateEnsemble(members, config, info, status), throw)


def _members(ensemble: SurrogateEnsemble | Surrogate) -> Surrogate:
    return ensemble.members if isinstance(ensemble, SurrogateEnsemble) else ensemble


@eqx.filter_jit
def _predict_all(members: Surrogate, initial, log_times):
    return eqx.filter_vmap(_member_trajectories, in_axes=(eqx.if_array(0), None, None))(
        members, initial, log_times
    )


def predict_members(
    ensemble: SurrogateEnsemble | Surrogate,
    initial: Float[ArrayLike, "num 12"],
    log_times: Float[ArrayLike, " num_times"],
) -> Float[Array, "members num num_times 10"]:
    """Every member's outputs in dex (one compiled program; float32).

    Args:
        ensemble: A :class:`SurrogateEnsemble` or stacked members (one or more).
        initial: ``(num, 12)`` state features at t = 0.
        log_times: ``(num_times,)`` log10 times in s.

    Returns:
        ``(num_members, num, num_times, 10)``.

    """
    return _predict_all(
        _members(ensemble), jnp.asarray(initial, jnp.float32), jnp.asarray(log_times, jnp.float32)
    )


def surrogate_predict(
    ensemble: SurrogateEnsemble | Surrogate,
    initial: Float[ArrayLike, "num 12"],
    log_times: Float[ArrayLike, " num_times"],
) -> tuple[Float[Array, "num num_times 10"], Float[Array, "num num_times 10"]]:
    """Ensemble mean and standard deviation (ddof 1) of the outputs, in dex.

    Args:
        ensemble: A :class:`SurrogateEnsemble` or stacked members (at least two).
        initial: ``(num, 12)`` state features at t = 0.
        log_times: ``(num_times,)`` log10 times in s.

    Returns:
        ``(mean, std)``, each ``(num, num_times, 10)``.

    Raises:
        ValueError: With fewer than two members.

    """
    values = predict_members(ensemble, initial, log_times)
    if values.shape[0] < 2:
        raise ValueError(f"ensemble must hold at least 2 members; got {values.shape[0]}")
    return values.mean(axis=0), values.std(axis=0, ddof=1)


def rollout(
    ensemble: SurrogateEnsemble | MLPSurrogate,
    initial: Float[ArrayLike, "num 12"],
    log_times: Float[ArrayLike, " num_times"],
    *,
    floor_dex: float = -22.0,
) -> tuple[Float[Array, "num num_times 10"], Float[Array, "num num_times 10"]]:
    """Autoregressive roll-out of MLP surrogates: each prediction is the next input state.

    Each member rolls out on its own (step ``k`` predicts ``t_k`` from its own prediction
    at ``t_{k-1}`` with Δt = t_k − t_{k−1}; n_H and J21 are carried over); the ensemble
    mean and standard deviation of the roll-outs are returned.

    Args:
        ensemble: An MLP :class:`SurrogateEnsemble` or stacked :class:`MLPSurrogate`.
        initial: ``(num, 12)`` state features at t = 0.
        log_times: ``(num_times,)`` log10 times in s.
        floor_dex: Abundance floor applied to each fed-back state.

    Returns:
        ``(mean, std)``, each ``(num, num_times, 10)``.

    Raises:
        TypeError: If the surrogates are not MLPs.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = Standardiser.from_data(jnp.zeros((2, 12)), jnp.zeros(2), jnp.zeros((2, 10)))
        >>> m = build_surrogate_ensemble(jax.random.key(0), SurrogateConfig(num_members=2,
        ...     width=4, depth=1), s)
        >>> mean, std = rollout(m, jnp.zeros((3, 12)), jnp.array([8.0, 9.0]))
        >>> mean.shape
        (3, 2, 10)

    """
    members = _members(ensemble)
    if not isinstance(members, MLPSurrogate):
        raise TypeError(f"rollout needs MLP surrogates; got {type(members).__name__}")
    times = 10.0 ** np.asarray(log_times, dtype=float)
    log_dt = np.log10(np.diff(np.concatenate([[0.0], times])))
    values = _rollout_all(
        members, jnp.asarray(initial, jnp.float32), jnp.asarray(log_dt, jnp.float32), floor_dex
    )
    return values.mean(axis=0), values.std(axis=0, ddof=1)


@eqx.filter_jit
def _rollout_all(members, initial, log_dt, floor_dex: float):
    lower = jnp.concatenate([jnp.full(9, floor_dex), jnp.array([-jnp.inf])]).astype(initial.dtype)

    def one(member, state):
        def step(carry, dt):
            # in the carry's dtype: a member built under jax_enable_x64 has float64 layers
            # beside its float32 standardiser, and scan needs one carry type
            out = member.step(carry, dt).astype(carry.dtype)
            return jnp.concatenate([jnp.maximum(out, lower), carry[NUM_OUTPUTS:]]), out

        return jax.lax.scan(step, state, log_dt)[1]

    def member_all(member):
        return jax.vmap(lambda s: one(member, s))(initial)

    return eqx.filter_vmap(member_all)(members)


class SurrogateErrors(NamedTuple):
    r"""Errors per output (arrays of length 10, order :data:`OUTPUT_NAMES`).

    Attributes:
        median_relative: Median of :math:`|10^{\hat y - y} - 1|`.
        p99_relative: 99th percentile of the same.
        median_dex: Median of :math:`|\hat y - y|`.
        p99_dex: 99th percentile of the same.
        count: Values counted (true abundance above the floor).
        overall_median_relative: Median over all counted values of all outputs.
        overall_p99_relative: 99th percentile over all counted values.

    """

    median_relative: np.ndarray
    p99_relative: np.ndarray
    median_dex: np.ndarray
    p99_dex: np.ndarray
    count: np.ndarray
    overall_median_relative: float
    overall_p99_relative: float


def _above_floor(truth: np.ndarray, floor_dex: float) -> np.ndarray:
    mask = truth > floor_dex
    mask[..., 9] = True
    return mask


def surrogate_errors(
    prediction: Float[ArrayLike, "*batch 10"],
    truth: Float[ArrayLike, "*batch 10"],
    *,
    floor_dex: float = -20.0,
) -> SurrogateErrors:
    """Relative and dex errors per output over values whose truth is above the floor.

    Args:
        prediction: Predicted outputs in dex.
        truth: True outputs in dex.
        floor_dex: Abundances at or below ``10**floor_dex`` per H are not counted.

    Returns:
        :class:`SurrogateErrors` (percentiles are NaN for an output with no values).

    Example:
        >>> import numpy as np
        >>> truth = np.zeros((4, 10)); pred = truth + np.log10(1.01)
        >>> e = surrogate_errors(pred, truth)
        >>> round(float(e.median_relative[0]), 4)
        0.01

    """
    prediction = np.asarray(prediction, dtype=float)
    truth = np.asarray(truth, dtype=float)
    if prediction.shape != truth.shape or truth.shape[-1] != NUM_OUTPUTS:
        raise ValueError(
            f"prediction and truth must share a shape ending in {NUM_OUTPUTS}; got "
            f"{prediction.shape} and {truth.shape}"
        )
    mask = _above_floor(truth, floor_dex).reshape(-1, NUM_OUTPUTS)
    dex = np.abs(prediction - truth).reshape(-1, NUM_OUTPUTS)
    relative = np.abs(np.expm1(_LN10 * (prediction - truth))).reshape(-1, NUM_OUTPUTS)
    stats = {name: np.full(NUM_OUTPUTS, np.nan) for name in ("mr", "pr", "md", "pd")}
    for k in range(NUM_OUTPUTS):
        if mask[:, k].any():
            stats["mr"][k], stats["pr"][k] = np.percentile(relative[mask[:, k], k], [50, 99])
            stats["md"][k], stats["pd"][k] = np.percentile(dex[mask[:, k], k], [50, 99])
    overall = relative[mask]
    return SurrogateErrors(
        median_relative=stats["mr"],
        p99_relative=stats["pr"],
        median_dex=stats["md"],
        p99_dex=stats["pd"],
        count=mask.sum(axis=0),
        overall_median_relative=float(np.median(overall)),
        overall_p99_relative=float(np.percentile(overall, 99)),
    )


def _z(level: float) -> float:
    from scipy.stats import norm

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    return float(norm.ppf(0.5 + level / 2.0))


def fit_variance_scale(
    mean: Float[ArrayLike, "*batch 10"],
    std: Float[ArrayLike, "*batch 10"],
    truth: Float[ArrayLike, "*batch 10"],
    *,
    level: float = 0.68,
    floor_dex: float = -20.0,
) -> np.ndarray:
    """Per-output scale ``s`` so that ``mean ± z·s·std`` covers ``level`` of the truth.

    Fitted on a calibration split (the split-conformal ``level`` quantile of
    ``|truth − mean| / std``, :func:`astrobayes.validation.intervals.conformal_quantile`,
    divided by the Gaussian ``z``); apply it to a separate test split.

    Args:
        mean: Ensemble means (dex).
        std: Ensemble standard deviations.
        truth: True values.
        level: Nominal central probability.
        floor_dex: Abundances at or below the floor are not used.

    Returns:
        ``(10,)`` scales.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> truth = 3.0 * rng.normal(size=(20000, 10))
        >>> s = fit_variance_scale(np.zeros_like(truth), np.ones_like(truth), truth)
        >>> bool(np.all(np.abs(s - 3.0) < 0.1))
        True

    """
    mean, std, truth = (np.asarray(a, dtype=float) for a in (mean, std, truth))
    mask = _above_floor(truth, floor_dex).reshape(-1, NUM_OUTPUTS)
    z = (np.abs(truth - mean) / np.maximum(std, np.finfo(float).tiny)).reshape(-1, NUM_OUTPUTS)
    return np.array(
        [validation_intervals.conformal_quantile(z[mask[:, k], k], level) / _z(level) if mask[:, k].any() else np.nan
         for k in range(NUM_OUTPUTS)]
    )  # fmt: skip


def interval_coverage(
    mean: Float[ArrayLike, "*batch 10"],
    std: Float[ArrayLike, "*batch 10"],
    truth: Float[ArrayLike, "*batch 10"],
    *,
    scale: Float[ArrayLike, " 10"] | float = 1.0,
    level: float = 0.68,
    floor_dex: float = -20.0,
) -> tuple[np.ndarray, float]:
    """Share of true values inside ``mean ± z·scale·std`` (Gaussian central interval).

    Args:
        mean: Ensemble means (dex).
        std: Ensemble standard deviations.
        truth: True values.
        scale: Per-output variance scale (:func:`fit_variance_scale`), 1 for raw.
        level: Nominal central probability.
        floor_dex: Abundances at or below the floor are not counted.

    Returns:
        ``(per_output (10,), overall)`` coverage.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> truth = rng.normal(size=(20000, 10))
        >>> per, overall = interval_coverage(np.zeros_like(truth), np.ones_like(truth), truth)
        >>> bool(abs(overall - 0.68) < 0.01)
        True

    """
    mean, std, truth = (np.asarray(a, dtype=float) for a in (mean, std, truth))
    mask = _above_floor(truth, floor_dex).reshape(-1, NUM_OUTPUTS)
    width = _z(level) * np.asarray(scale, dtype=float) * std
    truth, lower, upper = (
        a.reshape(-1, NUM_OUTPUTS) for a in np.broadcast_arrays(truth, mean - width, mean + width)
    )
    per = np.array(
        [validation_intervals.interval_coverage(
            truth[:, k], lower[:, k], upper[:, k], where=mask[:, k]).fraction
         if mask[:, k].any() else np.nan for k in range(NUM_OUTPUTS)]
    )  # fmt: skip
    return per, validation_intervals.interval_coverage(truth, lower, upper, where=mask).fraction
