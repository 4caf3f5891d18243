"""Design of training sets, training with early stopping, and accuracy validation."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float
from scipy.stats import qmc

from astrobayes._checks import (
    as_float_array,
    check_finite,
    check_fraction,
    check_key,
    check_positive_int,
)
from astrobayes.emulators.network import ACTIVATIONS, Emulator

__all__ = [
    "EmulatorValidation",
    "TrainingHistory",
    "design",
    "train_emulator",
    "validate_emulator",
]


def _seed_from_key(key: jax.Array) -> int:
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


def _check_bounds(bounds: ArrayLike) -> np.ndarray:
    bounds = as_float_array(bounds, "bounds", ndim=2)
    if bounds.shape[1] != 2 or bounds.shape[0] < 1:
        raise ValueError(
            f"bounds must have shape (dim, 2) with rows (low, high); got {bounds.shape}"
        )
    check_finite(bounds, "bounds")
    bad = np.flatnonzero(bounds[:, 0] >= bounds[:, 1])
    if bad.size:
        raise ValueError(
            f"bounds must have low < high in every row; row {int(bad[0])} is {bounds[bad[0]].tolist()}"
        )
    return bounds


def design(
    key: jax.Array,
    bounds: Float[ArrayLike, "dim 2"],
    num: int,
    method: Literal["sobol", "lhs"] = "sobol",
) -> Float[np.ndarray, "num dim"]:
    """Space-filling design of parameter points inside a box.

    Scrambled Sobol' points (``"sobol"``; best for ``num`` a power of two, other sizes
    take the first ``num`` points of the sequence) or a Latin hypercube (``"lhs"``), both
    from :mod:`scipy.stats.qmc`, seeded from ``key``.

    Args:
        key: JAX PRNG key (same key, same design).
        bounds: ``(dim, 2)`` rows of ``(low, high)``.
        num: Number of points.
        method: ``"sobol"`` or ``"lhs"``.

    Returns:
        float64 NumPy array ``(num, dim)`` (float64 because the points usually feed a
        non-JAX simulator).

    Raises:
        TypeError: If ``key`` is not a PRNG key or ``num`` not an integer.
        ValueError: On malformed bounds or an unknown method.

    References:
        Sobol' 1967; Owen 1998 (scrambling); McKay, Beckman & Conover 1979 (LHS).

    Example:
        >>> import jax
        >>> from astrobayes.emulators import design
        >>> points = design(jax.random.key(0), [[0.1, 0.5], [60.0, 140.0]], 8)
        >>> points.shape
        (8, 2)

    """
    check_key(key)
    bounds = _check_bounds(bounds)
    num = check_positive_int(num, "num")
    dim = bounds.shape[0]
    rng = np.random.default_rng(_seed_from_key(key))
    if method == "sobol":
        sampler = qmc.Sobol(d=dim, scramble=True, rng=rng)
        with warnings.catch_warnings():
            # scipy warns that non-powers of two lose the balance properties; documented.
            warnings.filterwarnings(
                "ignore", message=".*balance properties.*", category=UserWarning
            )
            unit = sampler.random(num)
    elif method == "lhs":
        unit = qmc.LatinHypercube(d=dim, rng=rng).random(num)
    else:
        raise ValueError(f"method must be 'sobol' or 'lhs'; got {method!r}")
    return qmc.scale(unit, bounds[:, 0], bounds[:, 1])


class TrainingHistory(NamedTuple):
    """What happened during :func:`train_emulator`.

    Attributes:
        train_losses: Mean training loss per epoch (standardised-output MSE).
        validation_losses: Validation loss per epoch.
        best_epoch: Epoch whose weights were kept (lowest validation loss).
        stopped_early: Whether the patience criterion ended training.
        num_train: Number of training points.
        num_validation: Number of validation points.

    """

    train_losses: np.ndarray
    validation_losses: np.ndarray
    best_epoch: int
    stopped_early: bool
    num_train: int
    num_validation: int


def _as_training_arrays(parameters, outputs, log_outputs):
    parameters = as_float_array(parameters, "parameters", ndim=2)
    outputs = as_float_array(outputs, "outputs", ndim=(1, 2))
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    if parameters.shape[0] != outputs.shape[0]:
        raise ValueError(
            "parameters and outputs must have the same number of rows (points); got "
            f"{parameters.shape[0]} and {outputs.shape[0]}"
        )
    check_finite(parameters, "parameters")
    check_finite(outputs, "outputs")
    if log_outputs and np.any(outputs <= 0):
        raise ValueError(
            f"log_outputs=True needs strictly positive outputs; got min {outputs.min()!r}"
        )
    return parameters, outputs


def train_emulator(
    key: jax.Array,
    parameters: Float[ArrayLike, "num_points num_parameters"],
    outputs: Float[ArrayLike, "num_points num_outputs"],
    *,
    pca_components: int | None = None,
    hidden: Sequence[int] = (128, 128, 128),
    activation: str = "silu",
    log_outputs: bool = False,
    learning_rate: float = 3e-3,
    num_epochs: int = 1000,
    batch_size: int = 64,
    validation_fraction: float = 0.1,
    patience: int = 100,
) -> tuple[Emulator, TrainingHistory]:
    """Train an :class:`~astrobayes.emulators.Emulator` (CosmoPower-style).

    Inputs are scaled to [-1, 1] by the training box; outputs (log-transformed if
    ``log_outputs``) are standardised per feature and optionally projected on their
    leading ``pca_components`` principal components; an MLP is fitted by Adam with a
    cosine-decayed learning rate, minimising the mean squared error of the standardised
    outputs. A random ``validation_fraction`` of the points is held out; the weights with
    the lowest validation loss are returned and training stops after ``patience``
    epochs without improvement. Returns a new Module and mutates nothing.

    Args:
        key: JAX PRNG key (split into split/initialisation/shuffling subkeys).
        parameters: Training inputs, ``(num_points, num_parameters)``.
        outputs: Training outputs, ``(num_points, num_outputs)`` (or ``(num_points,)``).
        pca_components: Number of principal components of the standardised outputs to
            emulate, or ``None`` for all outputs directly.
        hidden: Hidden-layer widths.
        activation: One of :data:`~astrobayes.emulators.ACTIVATIONS` (smooth, so the
            emulator has smooth gradients for HMC).
        log_outputs: Emulate ``log(outputs)`` (outputs must be positive); good for
            quantities spanning orders of magnitude or with multiplicative dependence.
        learning_rate: Initial Adam learning rate.
        num_epochs: Maximum number of epochs.
        batch_size: Minibatch size (capped at the training-set size).
        validation_fraction: Fraction held out for early stopping, in (0, 1).
        patience: Epochs without validation improvement before stopping.

    Returns:
        ``(emulator, history)``: the trained :class:`Emulator` and a
        :class:`TrainingHistory`.

    Raises:
        TypeError: On a bad key or non-integer sizes.
        ValueError: On mismatched rows, non-finite values, non-positive outputs with
            ``log_outputs``, too few points, or an invalid ``pca_components``/activation.

    References:
        Spurio Mancini et al. 2022, CosmoPower, arXiv:2106.03846; Kingma & Ba 2014,
        arXiv:1412.6980.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.emulators import train_emulator
        >>> x = jnp.linspace(-1.0, 1.0, 128)[:, None]
        >>> emulator, history = train_emulator(
        ...     jax.random.key(1), x, jnp.cos(2 * x), hidden=(32, 32), num_epochs=20
        ... )
        >>> history.train_losses.shape[0] <= 20
        True

    """
    check_key(key)
    parameters, outputs = _as_training_arrays(parameters, outputs, log_outputs)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    hidden = tuple(check_positive_int(h, "hidden[i]") for h in hidden)
    num_epochs = check_positive_int(num_epochs, "num_epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    patience = check_positive_int(patience, "patience")
    validation_fraction = check_fraction(validation_fraction, "validation_fraction")
    if not (isinstance(learning_rate, int | float) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number; got {learning_rate!r}")
    num_points = parameters.shape[0]
    num_validation = max(1, int(round(validation_fraction * num_points)))
    num_train = num_points - num_validation
    if num_train < 2:
        raise ValueError(
            f"need at least 2 training points after holding out {num_validation} for "
            f"validation; got {num_points} points in total"
        )

    split_key, init_key, shuffle_key = jax.random.split(key, 3)
    order = np.asarray(jax.random.permutation(split_key, num_points))
    train_idx, val_idx = order[num_validation:], order[:num_validation]

    x_train, x_val = parameters[train_idx], parameters[val_idx]
    low, high = x_train.min(0), x_train.max(0)
    input_shift = 0.5 * (low + high)
    input_scale = np.where(high > low, 0.5 * (high - low), 1.0)

    y = np.log(outputs) if log_outputs else outputs
    y_train, y_val = y[train_idx], y[val_idx]
    output_shift = y_train.mean(0)
    output_std = y_train.std(0)
    output_scale = np.where(output_std > 0, output_std, 1.0)
    s_train = (y_train - output_shift) / output_scale
    s_val = (y_val - output_shift) / output_scale

    basis = coefficient_scale = None
    if pca_components is not None:
        pca_components = check_positive_int(pca_components, "pca_components")
        limit = min(num_train, outputs.shape[1])
        if pca_components > limit:
            raise ValueError(
                f"pca_components must be <= min(num_train, num_outputs) = {limit}; "
                f"got {pca_components}"
            )
        _, _, vt = np.linalg.svd(s_train, full_matrices=False)
        basis = vt[:pca_components]
        coefficients = s_train @ basis.T
        coefficient_std = coefficients.std(0)
        coefficient_scale = np.where(coefficient_std > 0, coefficient_std, 1.0)

    dtype = jnp.asarray(0.0).dtype
    emulator = Emulator(
        init_key,
        input_shift=jnp.asarray(input_shift, dtype),
        input_scale=jnp.asarray(input_scale, dtype),
        output_shift=jnp.asarray(output_shift, dtype),
        output_scale=jnp.asarray(output_scale, dtype),
        basis=None if basis is None else jnp.asarray(basis, dtype),
        coefficient_scale=None
        if coefficient_scale is None
        else jnp.asarray(coefficient_scale, dtype),
        hidden=hidden,
        activation=activation,
        log_outputs=log_outputs,
    )

    batch_size = min(batch_size, num_train)
    steps_per_epoch = num_train // batch_size
    schedule = optax.cosine_decay_schedule(
        learning_rate, decay_steps=num_epochs * steps_per_epoch, alpha=1e-2
    )
    optimiser = optax.adam(schedule)

    def replace_layers(layers):
        return eqx.tree_at(lambda e: e.layers, emulator, layers)

    def loss_fn(layers, x, s):
        model = replace_layers(layers)
        prediction = jax.vmap(model._standardised_outputs)(x)
        return jnp.mean((prediction - s) ** 2)

    x_train_j, s_train_j = jnp.asarray(x_train, dtype), jnp.asarray(s_train, dtype)
    x_val_j, s_val_j = jnp.asarray(x_val, dtype), jnp.asarray(s_val, dtype)

    @eqx.filter_jit
    def run_epoch(layers, opt_state, epoch_key):
        permutation = jax.random.permutation(epoch_key, num_train)[: steps_per_epoch * batch_size]
        batches = permutation.reshape(steps_per_epoch, batch_size)

        def step(carry, batch):
            layers, opt_state = carry
            loss, grads = eqx.filter_value_and_grad(loss_fn)(
                layers, x_train_j[batch], s_train_j[batch]
            )
            updates, opt_state = optimiser.update(grads, opt_state, layers)
            layers = eqx.apply_updates(layers, updates)
            return (layers, opt_state), loss

        (layers, opt_state), losses = jax.lax.scan(step, (layers, opt_state), batches)
        return layers, opt_state, jnp.mean(losses), loss_fn(layers, x_val_j, s_val_j)

    layers = emulator.layers
    opt_state = optimiser.init(eqx.filter(layers, eqx.is_inexact_array))
    best_layers, best_loss, best_epoch = layers, math.inf, 0
    train_losses, val_losses = [], []
    stopped_early = False
    epoch_keys = jax.random.split(shuffle_key, num_epochs)
    for epoch in range(num_epochs):
        layers, opt_state, train_loss, val_loss = run_epoch(layers, opt_state, epoch_keys[epoch])
        train_losses.append(float(train_loss))
        val_losses.append(float(val_loss))
        if val_losses[-1] < best_loss:
            best_layers, best_loss, best_epoch = layers, val_losses[-1], epoch
        elif epoch - best_epoch >= patience:
            stopped_early = True
            break
    history = TrainingHistory(
        train_losses=np.asarray(train_losses),
        validation_losses=np.asarray(val_losses),
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        num_train=num_train,
        num_validation=num_validation,
    )
    return replace_layers(best_layers), history


@eqx.filter_jit
def _evaluate(emulator: Emulator, parameters: Array) -> Array:
    return emulator(parameters)


class EmulatorValidation(NamedTuple):
    """Accuracy of an emulator on held-out points.

    Relative errors are ``|emulated - true| / max(|true|, floor)`` over every point and
    output.

    Attributes:
        max_relative_error: Largest relative error.
        percentile_99_relative_error: 99th percentile of the relative errors.
        median_relative_error: Median relative error.
        max_absolute_error: Largest absolute error.
        num_points: Number of held-out points.

    """

    max_relative_error: float
    percentile_99_relative_error: float
    median_relative_error: float
    max_absolute_error: float
    num_points: int


def validate_emulator(
    emulator: Emulator,
    parameters: Float[ArrayLike, "num_points num_parameters"],
    outputs: Float[ArrayLike, "num_points num_outputs"],
    *,
    floor: float | None = None,
) -> EmulatorValidation:
    """Measure an emulator's error on held-out points (never the training set).

    Args:
        emulator: The trained emulator.
        parameters: Held-out inputs, ``(num_points, num_parameters)``.
        outputs: True outputs there, ``(num_points, num_outputs)`` (or ``(num_points,)``).
        floor: Smallest denominator of the relative error (for outputs crossing zero);
            default ``1e-8 * max |outputs|`` of each output.

    Returns:
        :class:`EmulatorValidation`.

    Raises:
        ValueError: If the shapes do not match the emulator or values are not finite.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.emulators import train_emulator, validate_emulator
        >>> x = jnp.linspace(0.0, 1.0, 64)[:, None]
        >>> emulator, _ = train_emulator(jax.random.key(0), x, x + 1, hidden=(8,), num_epochs=5)
        >>> report = validate_emulator(emulator, x[:8], x[:8] + 1)

    """
    parameters, outputs = _as_training_arrays(parameters, outputs, False)
    if parameters.shape[1] != emulator.num_parameters:
        raise ValueError(
            f"parameters must have {emulator.num_parameters} columns; got {parameters.shape[1]}"
        )
    if outputs.shape[1] != emulator.num_outputs:
        raise ValueError(
            f"outputs must have {emulator.num_outputs} columns; got {outputs.shape[1]}"
        )
    predicted = np.asarray(_evaluate(emulator, parameters), dtype=np.float64)
    absolute = np.abs(predicted - outputs)
    if floor is None:
        denominator = np.maximum(np.abs(outputs), 1e-8 * np.abs(outputs).max(0))
    else:
        denominator = np.maximum(np.abs(outputs), float(floor))
    denominator = np.where(denominator > 0, denominator, 1.0)
    relative = absolute / denominator
    return EmulatorValidation(
        max_relative_error=float(relative.max()),
        percentile_99_relative_error=float(np.percentile(relative, 99)),
        median_relative_error=float(np.median(relative)),
        max_absolute_error=float(absolute.max()),
        num_points=int(parameters.shape[0]),
    )
