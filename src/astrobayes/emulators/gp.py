"""Gaussian-process emulator (tinygp): exact GP, hyperparameters by marginal likelihood.

The baseline beside the MLP emulators (Rasmussen & Williams 2006, ch. 2 and 5; tinygp,
Foreman-Mackey et al.). Inputs are scaled to the unit box of the training design and the
scalar output is standardised; the kernel is ``amplitude^2 exp(-r^2/2)`` (squared exponential; tinygp's Matern-5/2
with its default L1 distance is indefinite in more than one dimension (the marginal
likelihood was -inf here), and with the L2 distance its gradient at zero distance is
not finite) with one length scale per input (ARD), plus a white-noise variance (floored at
``GPConfig.noise_floor`` in standardised units)
and a constant mean. The hyperparameters maximise the log marginal likelihood through
:func:`astrobayes._training.fit` (full batch; the marginal likelihood is both the loss and
the stopping criterion, so no design point is withheld from the GP). The predictive
standard deviation is the GP's epistemic uncertainty: its calibration on held-out points
is measured, not assumed (``tests/test_gp_emulator.py``, ``docs/probabilistic.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import tinygp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes._training import TrainingConfig, TrainingInfo, fit

__all__ = ["GPConfig", "GPEmulator", "train_gp_emulator"]

#: Float type of the GP: JAX's default (float64 when ``jax_enable_x64`` is on).
_FLOAT = float


class _Hyper(eqx.Module):
    log_amplitude: Array
    log_scales: Array
    log_noise: Array
    mean: Array
    noise_floor: float = eqx.field(static=True, default=1e-4)


def _process(hyper: _Hyper, x: Array) -> tinygp.GaussianProcess:
    kernel = jnp.exp(2 * hyper.log_amplitude) * tinygp.kernels.ExpSquared(scale=1.0)
    noise = jnp.exp(2 * hyper.log_noise) + hyper.noise_floor
    return tinygp.GaussianProcess(
        kernel, x / jnp.exp(hyper.log_scales), diag=noise, mean=hyper.mean
    )


def _negative_log_marginal(hyper, batch, key):
    del key
    x, y = batch
    return -_process(hyper, x).log_probability(y) / y.shape[0]


@dataclass(frozen=True)
class GPConfig:
    """Settings of :func:`train_gp_emulator`.

    Attributes:
        learning_rate: Adam step size on the log hyperparameters.
        max_epochs: Full-batch steps at most.
        patience: Steps without a marginal-likelihood improvement before stopping.
        noise_floor: Smallest white-noise variance (standardised units). ``1e-4`` keeps
            float32 Cholesky factors finite; with float64 inputs under ``jax_enable_x64``
            a floor of ``1e-8`` works, and on noise-free functions it decides the
            calibration (``docs/probabilistic.md``).

    """

    learning_rate: float = 0.05
    max_epochs: int = 500
    patience: int = 30
    noise_floor: float = 1e-4

    def __post_init__(self) -> None:
        check_positive_int(self.max_epochs, "max_epochs")
        check_positive_int(self.patience, "patience")
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate!r}")
        if not (isinstance(self.noise_floor, int | float) and self.noise_floor > 0):
            raise ValueError(f"noise_floor must be positive; got {self.noise_floor!r}")


class GPEmulator(eqx.Module):
    """A trained GP emulator of one scalar output; :meth:`predict` gives mean and std.

    Attributes:
        hyper: Hyperparameters (in scaled units).
        x_train: Scaled design points ``(num, dim)``.
        y_train: Standardised outputs ``(num,)``.
        low: Lower corner of the design box.
        width: Widths of the design box.
        y_mean: Output mean.
        y_scale: Output standard deviation.

    """

    hyper: _Hyper
    x_train: Float[Array, "num dim"]
    y_train: Float[Array, " num"]
    low: Float[Array, " dim"]
    width: Float[Array, " dim"]
    y_mean: Float[Array, ""]
    y_scale: Float[Array, ""]

    def predict(
        self, parameters: Float[ArrayLike, "num dim"]
    ) -> tuple[Float[Array, " num"], Float[Array, " num"]]:
        """Predictive mean and standard deviation (noise-free latent function) at points."""
        x = (jnp.asarray(parameters, _FLOAT) - self.low) / self.width
        conditioned = (
            _process(self.hyper, self.x_train)
            .condition(self.y_train, x / jnp.exp(self.hyper.log_scales), include_mean=True)
            .gp
        )
        std = jnp.sqrt(jnp.clip(conditioned.variance, 0.0, None))
        return self.y_mean + self.y_scale * conditioned.loc, self.y_scale * std


def train_gp_emulator(
    key: PRNGKeyArray,
    parameters: Float[ArrayLike, "num dim"],
    outputs: Float[ArrayLike, " num"],
    *,
    config: GPConfig | None = None,
) -> tuple[GPEmulator, TrainingInfo]:
    """Fit a GP emulator's hyperparameters by maximising the log marginal likelihood.

    Args:
        key: JAX PRNG key (passed to the training loop; the fit is deterministic).
        parameters: Design points ``(num, dim)``, at least 3.
        outputs: Scalar outputs ``(num,)``.
        config: :class:`GPConfig`.

    Returns:
        ``(emulator, info)``; ``info.status`` is the training loop's status.

    Raises:
        ValueError: On fewer than 3 points, mismatched lengths or non-finite values.

    References:
        Rasmussen & Williams (2006), *Gaussian Processes for Machine Learning*, eq. 5.8.

    Example:
        >>> import jax, numpy as np
        >>> x = np.linspace(0, 1, 12)[:, None]
        >>> gp, info = train_gp_emulator(jax.random.key(0), x, np.sin(4 * x[:, 0]),
        ...     config=GPConfig(max_epochs=50))
        >>> mean, std = gp.predict(np.array([[0.5]]))
        >>> bool(abs(mean[0] - np.sin(2.0)) < 3 * std[0] + 1e-2)
        True

    """
    check_key(key)
    config = GPConfig() if config is None else config
    x = as_float_array(parameters, "parameters", ndim=2)
    y = as_float_array(outputs, "outputs", ndim=1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"parameters and outputs must have the same length; got {x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] < 3:
        raise ValueError(f"need at least 3 design points; got {x.shape[0]}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("parameters and outputs must be finite")
    low, high = x.min(axis=0), x.max(axis=0)
    width = np.where(high > low, high - low, 1.0)
    y_mean, y_scale = y.mean(), y.std() if y.std() > 0 else 1.0
    x_scaled = jnp.asarray((x - low) / width, _FLOAT)
    y_scaled = jnp.asarray((y - y_mean) / y_scale, _FLOAT)
    dim = x.shape[1]
    hyper = _Hyper(
        log_amplitude=jnp.zeros((), _FLOAT),
        log_scales=jnp.full(dim, np.log(0.3), _FLOAT),
        log_noise=jnp.full((), np.log(1e-2), _FLOAT),
        mean=jnp.zeros((), _FLOAT),
        noise_floor=float(config.noise_floor),
    )
    data = (x_scaled, y_scaled)
    training = TrainingConfig(
        learning_rate=config.learning_rate,
        batch_size=x.shape[0],
        max_epochs=config.max_epochs,
        patience=config.patience,
        min_improvement=1e-5,
        clip_max_norm=None,
    )
    hyper, info = fit(key, hyper, _negative_log_marginal, data, data, config=training)
    emulator = GPEmulator(
        hyper=hyper,
        x_train=x_scaled,
        y_train=y_scaled,
        low=jnp.asarray(low, _FLOAT),
        width=jnp.asarray(width, _FLOAT),
        y_mean=jnp.asarray(y_mean, _FLOAT),
        y_scale=jnp.asarray(y_scale, _FLOAT),
    )
    return emulator, info
