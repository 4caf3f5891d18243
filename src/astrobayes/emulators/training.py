"""Design of training sets, training with early stopping, and accuracy validation."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray
from scipy.stats import qmc

from astrobayes._checks import (
    as_float_array,
    check_finite,
    check_fraction,
    check_key,
    check_positive_int,
)
from astrobayes._status import check
from astrobayes._training import TrainingConfig, TrainingInfo, fit
from astrobayes._types import ProgressFn
from astrobayes.emulators.network import ACTIVATIONS, Emulator

__all__ = [
    "EmulatorValidation",
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


class _Standardisation(NamedTuple):
    """Input box, output standardisation and optional PCA basis, from the training set."""

    input_shift: np.ndarray
    input_scale: np.ndarray
    output_shift: np.ndarray
    output_scale: np.ndarray
    basis: np.ndarray | None
    coefficient_scale: np.ndarray | None


def _standardisation(
    x_train: np.ndarray, y_train: np.ndarray, pca_components: int | None
) -> _Standardisation:
    low, high = x_train.min(0), x_train.max(0)
    output_std = y_train.std(0)
    output_shift = y_train.mean(0)
    output_scale = np.where(output_std > 0, output_std, 1.0)
    basis = coefficient_scale = None
    if pca_components is not None:
        pca_components = check_positive_int(pca_components, "pca_components")
        limit = min(x_train.shape[0], y_train.shape[1])
        if pca_components > limit:
            raise ValueError(
                f"pca_components must be <= min(num_train, num_outputs) = {limit}; "
                f"got {pca_components}"
            )
        standardised = (y_train - output_shift) / output_scale
        _, _, vt = np.linalg.svd(standardised, full_matrices=False)
        basis = vt[:pca_components]
        coefficient_std = (standardised @ basis.T).std(0)
        coefficient_scale = np.where(coefficient_std > 0, coefficient_std, 1.0)
    return _Standardisation(
        input_shift=0.5 * (low + high),
        input_scale=np.where(high > low, 0.5 * (high - low), 1.0),
        output_shift=output_shift,
        output_scale=output_scale,
        basis=basis,
        coefficient_scale=coefficient_scale,
    )


def _layers_only(emulator: Emulator) -> Emulator:
    """``filter_spec`` for :func:`~astrobayes._training.fit`: train the MLP's layers only."""
    spec = jax.tree_util.tree_map(lambda _: False, emulator)
    trainable = jax.tree_util.tree_map(eqx.is_inexact_array, emulator.layers)
    return eqx.tree_at(lambda e: e.layers, spec, replace=trainable)


def _standardised_loss(model: Emulator, batch: tuple[Array, Array], key: Array) -> Array:
    del key  # deterministic loss
    x, s = batch
    return jnp.mean((jax.vmap(model._standardised_outputs)(x) - s) ** 2)


def train_emulator(
    key: PRNGKeyArray,
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
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> tuple[Emulator, TrainingInfo]:
    """Train an :class:`~astrobayes.emulators.Emulator` (CosmoPower-style).

    Inputs are scaled to [-1, 1] by the training box; outputs (log-transformed if
    ``log_outputs``) are standardised per feature and optionally projected on their
    leading ``pca_components`` principal components; the MLP's layers are fitted by the
    shared loop :func:`astrobayes._training.fit` (Adam, cosine-decayed learning rate to
    1% of ``learning_rate``, no gradient clipping), minimising the mean squared error of
    the standardised outputs. A random ``validation_fraction`` of the points is held out;
    the weights with the lowest validation loss are returned and training stops after
    ``patience`` epochs without improvement. Returns a new Module and mutates nothing.

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
        progress_fn: Called as ``progress_fn("training", epoch, num_epochs)``.
        throw: Raise :class:`~astrobayes.UnreliableResultError` (carrying the
            :class:`~astrobayes._training.TrainingInfo`) if the loss became non-finite.

    Returns:
        ``(emulator, info)``: the trained :class:`Emulator` and the loop's
        :class:`~astrobayes._training.TrainingInfo` (per-epoch ``train_losses`` and
        ``validation_losses``, ``best_epoch``, ``status``, ``stopped_early``, ...).

    Raises:
        TypeError: On a bad key or non-integer sizes.
        ValueError: On mismatched rows, non-finite values, non-positive outputs with
            ``log_outputs``, too few points, or an invalid ``pca_components``/activation.
        UnreliableResultError: With ``throw=True``, if training diverged.

    References:
        Spurio Mancini et al. 2022, CosmoPower, arXiv:2106.03846; Kingma & Ba 2014,
        arXiv:1412.6980.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.emulators import train_emulator
        >>> x = jnp.linspace(-1.0, 1.0, 128)[:, None]
        >>> emulator, info = train_emulator(
        ...     jax.random.key(1), x, jnp.cos(2 * x), hidden=(16,), num_epochs=5
        ... )
        >>> info.num_epochs, info.status.name
        (5, 'MAX_EPOCHS')

    """
    check_key(key)
    parameters, outputs = _as_training_arrays(parameters, outputs, log_outputs)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    hidden = tuple(check_positive_int(h, "hidden[i]") for h in hidden)
    config = TrainingConfig(
        learning_rate=learning_rate,
        batch_size=check_positive_int(batch_size, "batch_size"),
        max_epochs=check_positive_int(num_epochs, "num_epochs"),
        patience=check_positive_int(patience, "patience"),
        clip_max_norm=None,
        schedule="cosine",
        cosine_final_fraction=1e-2,
        validation_fraction=check_fraction(validation_fraction, "validation_fraction"),
    )
    num_points = parameters.shape[0]
    num_validation = max(1, int(round(validation_fraction * num_points)))
    if num_points - num_validation < 2:
        raise ValueError(
            f"need at least 2 training points after holding out {num_validation} for "
            f"validation; got {num_points} points in total"
        )
    split_key, init_key, shuffle_key = jax.random.split(key, 3)
    # The split stays in float64 NumPy: the standardisation is computed from it.
    order = np.asarray(jax.random.permutation(split_key, num_points))
    train_idx, val_idx = order[num_validation:], order[:num_validation]
    y = np.log(outputs) if log_outputs else outputs
    scaling = _standardisation(parameters[train_idx], y[train_idx], pca_components)
    dtype = jnp.asarray(0.0).dtype

    def as_jax(array):
        return None if array is None else jnp.asarray(array, dtype)

    emulator = Emulator(
        init_key,
        **{name: as_jax(value) for name, value in scaling._asdict().items()},
        hidden=hidden,
        activation=activation,
        log_outputs=log_outputs,
    )
    standardised = (y - scaling.output_shift) / scaling.output_scale
    emulator, info = fit(
        shuffle_key,
        emulator,
        _standardised_loss,
        (as_jax(parameters[train_idx]), as_jax(standardised[train_idx])),
        (as_jax(parameters[val_idx]), as_jax(standardised[val_idx])),
        config=config,
        filter_spec=_layers_only(emulator),
        progress_fn=progress_fn,
    )
    check(info, throw)
    return emulator, info


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
