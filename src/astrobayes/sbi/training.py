"""A small, fast training loop shared by the estimators.

Every epoch is one jitted ``lax.scan`` over shuffled minibatches (Adam with gradient
clipping); a held-out validation fraction drives early stopping and the parameters with
the best validation loss are returned. Nothing is mutated: ``fit`` returns a new Module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from astrobayes._checks import check_fraction, check_key, check_positive_int

__all__ = ["TrainingConfig", "TrainingInfo", "fit"]


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser and stopping settings (defaults follow the ``sbi`` package).

    Attributes:
        learning_rate: Adam step size.
        batch_size: Minibatch size.
        validation_fraction: Share of simulations held out for early stopping.
        stop_after_epochs: Epochs without validation improvement before stopping.
        max_epochs: Hard cap on epochs.
        clip_max_norm: Global gradient-norm clip.

    """

    learning_rate: float = 5e-4
    batch_size: int = 200
    validation_fraction: float = 0.1
    stop_after_epochs: int = 20
    max_epochs: int = 500
    clip_max_norm: float = 5.0

    def __post_init__(self) -> None:
        if not (self.learning_rate > 0):
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}")
        check_positive_int(self.batch_size, "batch_size")
        check_fraction(self.validation_fraction, "validation_fraction")
        check_positive_int(self.stop_after_epochs, "stop_after_epochs")
        check_positive_int(self.max_epochs, "max_epochs")


class TrainingInfo(NamedTuple):
    """What happened during training.

    Attributes:
        train_losses: Mean training loss per epoch.
        validation_losses: Validation loss per epoch.
        best_epoch: Epoch whose parameters were returned.
        num_epochs: Epochs run.
        wall_time_s: Seconds spent (compilation included).
        converged: Whether early stopping triggered before ``max_epochs``.

    """

    train_losses: np.ndarray
    validation_losses: np.ndarray
    best_epoch: int
    num_epochs: int
    wall_time_s: float
    converged: bool


def fit(
    key: PRNGKeyArray,
    model: eqx.Module,
    loss_fn: Callable[[Any, tuple, PRNGKeyArray], jax.Array],
    data: tuple,
    config: TrainingConfig = TrainingConfig(),
) -> tuple[eqx.Module, TrainingInfo]:
    """Minimise ``loss_fn(model, batch, key)`` over minibatches of ``data``.

    Args:
        key: JAX PRNG key (split, validation and shuffling).
        model: The Module to train; its inexact arrays are the parameters.
        loss_fn: Mean loss over a batch, a tuple of arrays with a leading batch axis.
        data: Tuple of arrays with the same leading length.
        config: :class:`TrainingConfig`.

    Returns:
        ``(trained_model, info)``.

    Raises:
        ValueError: If the arrays disagree in length or are too few for one batch.

    """
    check_key(key)
    data = tuple(jnp.asarray(a) for a in data)
    num = data[0].shape[0]
    if any(a.shape[0] != num for a in data):
        raise ValueError(f"data arrays must share their first axis; got {[a.shape for a in data]}")
    num_validation = max(1, int(round(config.validation_fraction * num)))
    num_train = num - num_validation
    batch_size = min(config.batch_size, num_train)
    num_batches = num_train // batch_size
    if num_train < 2 or num_batches < 1:
        raise ValueError(f"need at least 3 simulations to train; got {num}")
    start = time.perf_counter()
    key_split, key_train = jax.random.split(key)
    order = jax.random.permutation(key_split, num)
    train = tuple(a[order[:num_train]] for a in data)
    validation = tuple(a[order[num_train:]] for a in data)

    params, static = eqx.partition(model, eqx.is_inexact_array)
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.clip_max_norm), optax.adam(config.learning_rate)
    )
    opt_state = optimizer.init(params)

    def batch_loss(p, batch, k):
        return loss_fn(eqx.combine(p, static), batch, k)

    @jax.jit
    def run_epoch(p, state, k, train, validation):
        k_perm, k_loss, k_val = jax.random.split(k, 3)
        perm = jax.random.permutation(k_perm, num_train)[: num_batches * batch_size]
        batches = tuple(a[perm].reshape(num_batches, batch_size, *a.shape[1:]) for a in train)

        def step(carry, inputs):
            p, state = carry
            batch, k_step = inputs
            loss, grads = jax.value_and_grad(batch_loss)(p, batch, k_step)
            updates, state = optimizer.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), loss

        (p, state), losses = jax.lax.scan(
            step, (p, state), (batches, jax.random.split(k_loss, num_batches))
        )
        return p, state, losses.mean(), batch_loss(p, validation, k_val)

    best_params, best_loss, best_epoch = params, np.inf, 0
    train_losses, validation_losses = [], []
    converged = False
    for epoch in range(config.max_epochs):
        params, opt_state, train_loss, validation_loss = run_epoch(
            params, opt_state, jax.random.fold_in(key_train, epoch), train, validation
        )
        validation_loss = float(validation_loss)
        train_losses.append(float(train_loss))
        validation_losses.append(validation_loss)
        if np.isfinite(validation_loss) and validation_loss < best_loss:
            best_params, best_loss, best_epoch = params, validation_loss, epoch
        elif epoch - best_epoch >= config.stop_after_epochs:
            converged = True
            break
    trained = eqx.combine(best_params, static)
    info = TrainingInfo(
        np.asarray(train_losses),
        np.asarray(validation_losses),
        best_epoch,
        len(train_losses),
        time.perf_counter() - start,
        converged,
    )
    return trained, info
