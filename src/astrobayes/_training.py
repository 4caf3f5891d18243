"""The one training loop: minibatches, optax, validation, early stopping, ``(model, info)``.

Every learned component of astrobayes (evidence flow targets, SBI estimators, emulators,
and every denoiser, surrogate or encoder built after them) trains through :func:`fit`.
Each epoch is one compiled ``lax.scan`` over shuffled minibatches; the validation loss
after each epoch drives early stopping, and the parameters of the best epoch are
returned in a *new* Module (nothing is mutated, as in flowjax's ``fit_to_data``).
:class:`TrainingInfo` says what happened, with a :class:`TrainingStatus`: stopping at
``max_epochs`` before the validation loss stopped improving is a warning, a non-finite
loss a failure, never silent.

Randomness: epoch ``e`` uses the key ``k_e`` of the chain ``key -> (key, k_e)`` of
``jax.random.split``; the minibatch order is ``permutation(k_e)``, per-step loss keys
(for stochastic losses) come from ``fold_in(k_e, 1)``. The validation key is one key for
the whole fit, ``fold_in(key, 2)``: a stochastic validation loss (noise levels of a
denoising loss, a VAE's or an ELBO's draws) is evaluated on the same draws after every
epoch, so early stopping and the choice of the best epoch compare parameters, not
Monte Carlo noise (common random numbers). With a fresh key per epoch, the best epoch
was partly the luckiest draw. Same key, same model.

Example:
    >>> import equinox as eqx, jax, jax.numpy as jnp
    >>> x = jnp.linspace(-1, 1, 64)[:, None]; y = 3 * x
    >>> model = eqx.nn.Linear(1, 1, key=jax.random.key(0))
    >>> def loss(m, batch, key):
    ...     xb, yb = batch
    ...     return jnp.mean((jax.vmap(m)(xb) - yb) ** 2)
    >>> train, valid = split_validation(jax.random.key(1), (x, y), 0.25)
    >>> config = TrainingConfig(learning_rate=0.1, batch_size=16, max_epochs=200, patience=10)
    >>> fitted, info = fit(jax.random.key(2), model, loss, train, valid, config=config)
    >>> bool(abs(float(fitted.weight[0, 0]) - 3) < 0.1)
    True

"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from astrobayes._checks import check_fraction, check_key, check_positive_int
from astrobayes._status import Severity, Status
from astrobayes._types import ProgressFn
from astrobayes.compilation import (
    RUN_ONCE_COMPILER_OPTIONS,
    SMALL_NETWORK_COMPILER_OPTIONS,
    compiled_with_options,
)

__all__ = [
    "LossFn",
    "TrainingConfig",
    "TrainingInfo",
    "TrainingStatus",
    "fit",
    "split_validation",
]

#: ``loss_fn(model, batch, key) -> scalar``: mean loss over a batch (a tuple of arrays
#: with a leading batch axis); ``key`` is for stochastic losses and may be ignored.
LossFn = Callable[[Any, tuple, PRNGKeyArray], Array]


class TrainingStatus(Status):
    """Outcome of :func:`fit`."""

    CONVERGED = (
        Severity.OK,
        "training stopped early: the validation loss stopped improving",
    )
    MAX_EPOCHS = (
        Severity.WARNING,
        "warning: training reached max_epochs while the validation loss was still "
        "improving; the model may be under-trained (raise max_epochs)",
    )
    NON_FINITE = (
        Severity.FAILURE,
        "failure: the validation loss or a parameter became non-finite (training "
        "diverged); the parameters of the best finite epoch were kept",
    )


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser and stopping settings of :func:`fit`.

    The optimiser is ``clip_by_global_norm(clip_max_norm)`` (when set) followed by Adam,
    or AdamW when ``weight_decay > 0``, with a constant step size or a cosine decay to
    ``cosine_final_fraction * learning_rate`` over ``max_epochs`` epochs.

    Attributes:
        learning_rate: Initial Adam step size.
        batch_size: Minibatch size (capped at the number of training points).
        max_epochs: Hard cap on epochs.
        patience: Epochs without a validation improvement before stopping.
        min_improvement: An epoch improves when its validation loss is below the best by
            more than this.
        clip_max_norm: Global gradient-norm clip; ``None`` for none.
        weight_decay: Decoupled weight decay (AdamW) when positive.
        schedule: ``"constant"`` or ``"cosine"``.
        cosine_final_fraction: Final step size of the cosine schedule, as a fraction.
        validation_fraction: Share of the data held out by :func:`split_validation`
            (for callers that split with it).
        epoch_loop: ``"scan"`` (default): each epoch is one compiled ``lax.scan`` over
            its minibatches, which saves a dispatch per step for small models.
            ``"python"``: one compiled step per minibatch, called from Python. Use it
            for convolutional networks on a CPU: measured on a 4-stage U-Net
            (``imaging.unrolled``, 64 images of 32², batch 8), an epoch took 23 CPU-s as
            one scan and 1.6 CPU-s as separate steps (XLA's CPU backend runs the
            convolutions of a multi-step program far slower). Same keys, same batches.
        cpu_emitter: How XLA's CPU backend compiles the ``"scan"`` epoch: ``"fusion"``
            (its default) or ``"elemental"``
            (:data:`~astrobayes.compilation.SMALL_NETWORK_COMPILER_OPTIONS`: faster to
            compile for small networks at the same run time; the evidence flows use it up
            to 16 dimensions). Other backends ignore it.
        cpu_optimization_level: LLVM optimisation level (0-3) with which XLA's CPU
            backend compiles the ``"scan"`` epoch; ``None`` (default): XLA's (3). Level 1
            compiles a tiny network's epoch faster at the same run time; the evidence
            flows use it up to 4 dimensions
            (:data:`~astrobayes.compilation.TINY_NETWORK_COMPILER_OPTIONS`). Other
            backends ignore it.

    """

    learning_rate: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 500
    patience: int = 20
    min_improvement: float = 0.0
    clip_max_norm: float | None = 5.0
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine"] = "constant"
    cosine_final_fraction: float = 0.05
    validation_fraction: float = 0.1
    epoch_loop: Literal["scan", "python"] = "scan"
    cpu_emitter: Literal["fusion", "elemental"] = "fusion"
    cpu_optimization_level: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number; got {self.learning_rate!r}")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.max_epochs, "max_epochs")
        check_positive_int(self.patience, "patience")
        if not (isinstance(self.min_improvement, int | float) and self.min_improvement >= 0):
            raise ValueError(f"min_improvement must be >= 0; got {self.min_improvement!r}")
        if self.clip_max_norm is not None and not (
            isinstance(self.clip_max_norm, int | float) and self.clip_max_norm > 0
        ):
            raise ValueError(f"clip_max_norm must be > 0 or None; got {self.clip_max_norm!r}")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine'; got {self.schedule!r}")
        check_fraction(self.cosine_final_fraction, "cosine_final_fraction", low=0.0, high=1.0)
        check_fraction(self.validation_fraction, "validation_fraction")
        if self.epoch_loop not in ("scan", "python"):
            raise ValueError(f"epoch_loop must be 'scan' or 'python'; got {self.epoch_loop!r}")
        if self.cpu_emitter not in ("fusion", "elemental"):
            raise ValueError(
                f"cpu_emitter must be 'fusion' or 'elemental'; got {self.cpu_emitter!r}"
            )
        if self.cpu_optimization_level is not None and (
            isinstance(self.cpu_optimization_level, bool)
            or self.cpu_optimization_level not in (0, 1, 2, 3)
        ):
            raise ValueError(
                "cpu_optimization_level must be None or an int from 0 to 3; got "
                f"{self.cpu_optimization_level!r}"
            )

    def compiler_options(self) -> dict[str, Any]:
        """XLA options of the ``"scan"`` epoch's program (``{}``: XLA's defaults).

        Example:
            >>> TrainingConfig(cpu_emitter="elemental", cpu_optimization_level=1).compiler_options()
            {'xla_cpu_use_fusion_emitters': False, 'xla_backend_optimization_level': 1}
        """
        options: dict[str, Any] = {}
        if self.cpu_emitter == "elemental":
            options.update(SMALL_NETWORK_COMPILER_OPTIONS)
        if self.cpu_optimization_level is not None:
            options["xla_backend_optimization_level"] = int(self.cpu_optimization_level)
        return options

    def optimizer(self, steps_per_epoch: int) -> optax.GradientTransformation:
        """The optax transformation described by these settings."""
        if self.schedule == "cosine":
            rate = optax.cosine_decay_schedule(
                self.learning_rate,
                steps_per_epoch * self.max_epochs,
                alpha=self.cosine_final_fraction,
            )
        else:
            rate = self.learning_rate
        if self.weight_decay > 0:
            adam = optax.adamw(rate, weight_decay=self.weight_decay)
        else:
            adam = optax.adam(rate)
        if self.clip_max_norm is None:
            return adam
        return optax.chain(optax.clip_by_global_norm(self.clip_max_norm), adam)


class TrainingInfo(NamedTuple):
    """What happened in :func:`fit`.

    Attributes:
        train_losses: Mean training loss per epoch, shape ``(num_epochs,)``.
        validation_losses: Validation loss after each epoch, shape ``(num_epochs,)``.
        best_epoch: 0-based epoch whose parameters were returned (-1: the initial ones).
        num_epochs: Epochs run.
        num_train: Training points.
        num_validation: Validation points.
        wall_time_s: Seconds spent, compilation included.
        status: :class:`TrainingStatus`.

    """

    train_losses: np.ndarray
    validation_losses: np.ndarray
    best_epoch: int
    num_epochs: int
    num_train: int
    num_validation: int
    wall_time_s: float
    status: TrainingStatus

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping (not ``max_epochs`` or divergence) ended training."""
        return self.status is TrainingStatus.CONVERGED


def split_validation(
    key: PRNGKeyArray, data: tuple, fraction: float
) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
    """Hold out a random ``fraction`` (at least one point) of ``data`` for validation.

    Args:
        key: JAX PRNG key of the random split.
        data: Tuple of arrays sharing their leading axis.
        fraction: Share held out, in ``(0, 1)``.

    Returns:
        ``(train, validation)``, tuples like ``data``: the first ``num - num_validation``
        points of ``permutation(key, num)`` train, the rest validate.

    Raises:
        ValueError: If the arrays disagree in length or leave fewer than two points to
            train on.

    """
    check_key(key)
    fraction = check_fraction(fraction, "fraction")
    data = _as_arrays(data, "data")
    num = data[0].shape[0]
    num_validation = max(1, int(round(fraction * num)))
    num_train = num - num_validation
    if num_train < 2:
        raise ValueError(
            f"need at least 2 training points after holding out {num_validation} for "
            f"validation; got {num} points in total"
        )
    return _split(key, data, num_train)


@functools.partial(jax.jit, static_argnums=2)
def _split(key, data, num_train):
    """One program per set of shapes (eagerly, each gather and slice compiled on its own)."""
    order = jax.random.permutation(key, data[0].shape[0])
    train = tuple(a[order[:num_train]] for a in data)
    validation = tuple(a[order[num_train:]] for a in data)
    return train, validation


def _as_arrays(data: Any, name: str) -> tuple[Array, ...]:
    if not isinstance(data, tuple) or not data:
        raise TypeError(f"{name} must be a non-empty tuple of arrays; got {type(data).__name__}")
    arrays = tuple(jnp.asarray(a) for a in data)
    num = arrays[0].shape[0] if arrays[0].ndim else None
    if num is None or any(a.ndim == 0 or a.shape[0] != num for a in arrays):
        raise ValueError(
            f"{name} arrays must share their leading axis; got shapes {[a.shape for a in arrays]}"
        )
    return arrays


def fit(
    key: PRNGKeyArray,
    model: Any,
    loss_fn: LossFn,
    train: tuple,
    validation: tuple,
    *,
    config: TrainingConfig = TrainingConfig(),
    filter_spec: Any = eqx.is_inexact_array,
    is_leaf: Callable[[Any], bool] | None = None,
    progress_fn: ProgressFn | None = None,
) -> tuple[Any, TrainingInfo]:
    """Minimise ``loss_fn(model, batch, key)`` over minibatches of ``train``.

    Args:
        key: JAX PRNG key (shuffling and stochastic losses).
        model: The PyTree (usually an equinox Module) to train.
        loss_fn: Mean loss over a batch; see :data:`LossFn`.
        train: Tuple of training arrays sharing their leading axis.
        validation: Tuple of validation arrays (same structure), evaluated whole.
        config: :class:`TrainingConfig`.
        filter_spec: Which leaves are trained, as in :func:`equinox.partition` (default:
            every inexact array).
        is_leaf: Passed to :func:`equinox.partition` (e.g. to freeze
            ``paramax.NonTrainable`` nodes).
        progress_fn: Called as ``progress_fn("training", epoch, max_epochs)`` after each
            epoch.

    Returns:
        ``(trained_model, info)``: the model with the best epoch's parameters and a
        :class:`TrainingInfo`.

    Raises:
        TypeError: If ``train`` or ``validation`` is not a tuple of arrays.
        ValueError: If the arrays disagree in length or the structures differ.

    """
    check_key(key)
    if not isinstance(config, TrainingConfig):
        raise TypeError(f"config must be a TrainingConfig; got {type(config).__name__}")
    train = _as_arrays(train, "train")
    validation = _as_arrays(validation, "validation")
    if len(train) != len(validation):
        raise ValueError(
            f"train and validation must hold the same arrays; got {len(train)} and "
            f"{len(validation)}"
        )
    start = time.perf_counter()
    num_train = train[0].shape[0]
    batch_size = int(min(config.batch_size, num_train))
    num_batches = max(num_train // batch_size, 1)
    optimizer = _optimizer(config, num_batches)
    params, static = eqx.partition(model, filter_spec, is_leaf=is_leaf)
    opt_state = _initial_optimizer_state(optimizer, params)
    best, best_loss, best_epoch = params, np.inf, -1
    validation_key = jax.random.fold_in(key, 2)  # the epochs' keys are fold_in(., 0 or 1)
    train_losses: list[float] = []
    validation_losses: list[float] = []
    status = TrainingStatus.MAX_EPOCHS
    for epoch in range(config.max_epochs):
        key, epoch_key = jax.random.split(key)
        if config.epoch_loop == "python":
            run = _run_epoch_stepwise
        else:
            run = compiled_with_options(_epoch, config.compiler_options())
        params, opt_state, train_loss, validation_loss = run(
            params,
            opt_state,
            epoch_key,
            validation_key,
            train,
            validation,
            static,
            loss_fn,
            optimizer,
            batch_size,
        )
        validation_loss = float(validation_loss)
        train_losses.append(float(train_loss))
        validation_losses.append(validation_loss)
        if progress_fn is not None:
            progress_fn("training", epoch + 1, config.max_epochs)
        if not np.isfinite(validation_loss):
            status = TrainingStatus.NON_FINITE
            break
        if validation_loss < best_loss - config.min_improvement:
            best, best_loss, best_epoch = params, validation_loss, epoch
        elif epoch - best_epoch >= config.patience:
            status = TrainingStatus.CONVERGED
            break
    info = TrainingInfo(
        train_losses=np.asarray(train_losses),
        validation_losses=np.asarray(validation_losses),
        best_epoch=best_epoch,
        num_epochs=len(train_losses),
        num_train=num_train,
        num_validation=int(validation[0].shape[0]),
        wall_time_s=time.perf_counter() - start,
        status=status,
    )
    return eqx.combine(best, static), info


@eqx.filter_jit(compiler_options=RUN_ONCE_COMPILER_OPTIONS)
def _initial_optimizer_state(optimizer, params):
    """``optimizer.init(params)`` as one compiled program (eagerly: one per leaf and op)."""
    return optimizer.init(params)


@functools.lru_cache(maxsize=128)
def _optimizer(config: TrainingConfig, num_batches: int) -> optax.GradientTransformation:
    """One optimizer object per (config, batches per epoch), so compiled epochs are reused."""
    return config.optimizer(num_batches)


def _epoch_batches(key, train, batch_size):
    """The epoch's shuffled minibatches ``(num_batches, batch_size, ...)`` and step keys."""
    num_train = train[0].shape[0]
    num_batches = max(num_train // batch_size, 1)
    order = jax.random.permutation(key, num_train)[: num_batches * batch_size]
    batches = tuple(a[order].reshape(num_batches, batch_size, *a.shape[1:]) for a in train)
    step_keys = jax.random.split(jax.random.fold_in(key, 1), num_batches)
    return batches, step_keys


def _train_step(params, opt_state, batch, key, static, loss_fn, optimizer):
    """One optimiser step on one minibatch; returns the new state and the batch loss."""

    def batch_loss(p):
        return loss_fn(eqx.combine(p, static), batch, key)

    loss, grads = eqx.filter_value_and_grad(batch_loss)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return eqx.apply_updates(params, updates), opt_state, loss


def _epoch(
    params, state, key, validation_key, train, validation, static, loss_fn, optimizer, batch_size
):
    """One epoch of minibatch steps, then the validation loss (drawn with ``validation_key``).

    Compiled (:func:`~astrobayes.compilation.compiled_with_options`, one program per set
    of the config's XLA options) once per (model structure, loss function, optimizer, batch
    size, array shapes): repeated :func:`fit` calls on the same structure (warm-started
    refits, SMC temperatures, ensembles) reuse the compilation instead of tracing anew.
    """
    batches, step_keys = _epoch_batches(key, train, batch_size)

    def step(carry, inputs):
        p, opt_state = carry
        batch, k_step = inputs
        p, opt_state, loss = _train_step(p, opt_state, batch, k_step, static, loss_fn, optimizer)
        return (p, opt_state), loss

    (params, state), losses = jax.lax.scan(step, (params, state), (batches, step_keys))
    validation_loss = loss_fn(eqx.combine(params, static), validation, validation_key)
    return params, state, losses.mean(), _nan_unless_finite(validation_loss, params)


def _nan_unless_finite(loss, params):
    """``loss``, or NaN where a parameter is not finite.

    A loss can hide non-finite parameters (a ``jnp.where`` guard maps them to a finite
    value): the GP emulator's Matern kernel gave a finite loss with a NaN length scale.
    NaN sends :func:`fit` to ``NON_FINITE`` with the last finite parameters kept.
    """
    leaves = [leaf for leaf in jax.tree.leaves(params) if eqx.is_inexact_array(leaf)]
    if not leaves:
        return loss
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
    return jnp.where(finite, loss, jnp.nan)


_jit_epoch_batches = eqx.filter_jit(_epoch_batches)
_jit_train_step = eqx.filter_jit(_train_step)


@eqx.filter_jit
def _validation_loss(params, static, loss_fn, validation, validation_key):
    loss = loss_fn(eqx.combine(params, static), validation, validation_key)
    return _nan_unless_finite(loss, params)


def _run_epoch_stepwise(
    params, state, key, validation_key, train, validation, static, loss_fn, optimizer, batch_size
):
    """:func:`_epoch` with one compiled call per minibatch (``epoch_loop="python"``)."""
    batches, step_keys = _jit_epoch_batches(key, train, batch_size)
    losses = []
    for index in range(step_keys.shape[0]):
        batch = tuple(a[index] for a in batches)
        params, state, loss = _jit_train_step(
            params, state, batch, step_keys[index], static, loss_fn, optimizer
        )
        losses.append(loss)
    train_loss = jnp.mean(jnp.stack(losses))
    validation_loss = _validation_loss(params, static, loss_fn, validation, validation_key)
    return params, state, train_loss, validation_loss
