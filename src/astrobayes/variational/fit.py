"""Stochastic-ELBO variational inference through the package's one training loop.

The ELBO ``E_q[log p(theta)] + H[q]`` is estimated with reparameterised draws. It trains
through :func:`astrobayes._training.fit` with the Monte Carlo draw index as "data": a
training batch of ``num_draws`` indices is one ELBO estimate from ``num_draws`` draws,
and the validation set (``num_validation_draws`` indices) is a more precise estimate that
drives early stopping and the choice of the best epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, by_severity, check
from astrobayes._training import TrainingConfig, TrainingInfo, TrainingStatus, fit

__all__ = ["VIConfig", "VIResult", "VIStatus", "fit_variational"]


class VIStatus(Status):
    """Outcome of :func:`fit_variational`."""

    OK = (Severity.OK, "ok: the ELBO stopped improving")
    NOT_CONVERGED = (
        Severity.WARNING,
        "warning: the ELBO was still improving in the last epoch; raise max_epochs",
    )
    NON_FINITE = (Severity.FAILURE, "failure: the ELBO became non-finite")


@dataclass(frozen=True)
class VIConfig:
    """Settings of :func:`fit_variational`.

    Attributes:
        num_draws: Draws per ELBO estimate (per optimiser step).
        steps_per_epoch: Optimiser steps per epoch.
        num_validation_draws: Draws of the ELBO estimate that selects the best epoch.
        learning_rate: Initial Adam step size (cosine decay to 5%).
        max_epochs: Epochs at most.
        patience: Epochs without improvement before stopping.

    """

    num_draws: int = 8
    steps_per_epoch: int = 100
    num_validation_draws: int = 256
    learning_rate: float = 1e-2
    max_epochs: int = 60
    patience: int = 60

    def __post_init__(self) -> None:
        for name in (
            "num_draws",
            "steps_per_epoch",
            "num_validation_draws",
            "max_epochs",
            "patience",
        ):
            check_positive_int(getattr(self, name), name)
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate!r}")


class VIResult(NamedTuple):
    """What :func:`fit_variational` returns.

    Attributes:
        family: The fitted variational family (its ``mean`` and ``variance()``).
        mean: Posterior mean of ``q``, ``(dim,)``.
        std: Marginal standard deviations of ``q``, ``(dim,)``.
        elbo: The last validation ELBO (nats).
        training: :class:`~astrobayes._training.TrainingInfo`.
        status: :class:`VIStatus`.
        messages: Every status raised.

    """

    family: eqx.Module
    mean: Float[np.ndarray, " dim"]
    std: Float[np.ndarray, " dim"]
    elbo: float
    training: TrainingInfo
    status: VIStatus
    messages: tuple[VIStatus, ...]


def fit_variational(
    key: PRNGKeyArray,
    logdensity_fn: Callable[[Float[Array, " dim"]], Float[Array, ""]],
    family: eqx.Module,
    *,
    config: VIConfig | None = None,
    throw: bool = False,
) -> VIResult:
    """Fit ``family`` to ``exp(logdensity_fn)`` by maximising the stochastic ELBO.

    Args:
        key: JAX PRNG key.
        logdensity_fn: ``theta (dim,) -> +log density`` (unnormalised).
        family: A variational family with ``sample(key, num)``, ``entropy()`` and
            ``variance()`` (:class:`MeanFieldGaussian`, :class:`LowRankGaussian`).
        config: :class:`VIConfig`.
        throw: Raise on a failure status.

    Returns:
        :class:`VIResult`.

    Raises:
        TypeError: If ``family`` lacks ``sample``/``entropy``/``variance``.

    References:
        Kingma & Welling (2014), arXiv:1312.6114; Blei, Kucukelbir & McAuliffe (2017),
        arXiv:1601.00670.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.variational import MeanFieldGaussian
        >>> q = MeanFieldGaussian.init(jnp.zeros(2))
        >>> result = fit_variational(jax.random.key(0), lambda x: -0.5 * jnp.sum((x - 1) ** 2), q,
        ...     config=VIConfig(steps_per_epoch=50, max_epochs=10, learning_rate=0.05))
        >>> bool(jnp.all(jnp.abs(result.mean - 1) < 0.2))
        True

    """
    check_key(key)
    config = VIConfig() if config is None else config
    for name in ("sample", "entropy", "variance"):
        if not callable(getattr(family, name, None)):
            raise TypeError(f"family must have a {name}() method; got {type(family).__name__}")
    batched = jax.vmap(logdensity_fn)

    def negative_elbo(q, batch, draw_key):
        (index,) = batch
        draws = q.sample(draw_key, index.shape[0])
        return -(jnp.mean(batched(draws)) + q.entropy())

    training_config = TrainingConfig(
        learning_rate=config.learning_rate,
        batch_size=config.num_draws,
        max_epochs=config.max_epochs,
        patience=config.patience,
        clip_max_norm=None,
        schedule="cosine",
        cosine_final_fraction=0.05,
    )
    train = (jnp.arange(config.num_draws * config.steps_per_epoch, dtype=jnp.float32),)
    validation = (jnp.arange(config.num_validation_draws, dtype=jnp.float32),)
    fitted, info = fit(key, family, negative_elbo, train, validation, config=training_config)
    messages = []
    if info.status is TrainingStatus.NON_FINITE:
        messages.append(VIStatus.NON_FINITE)
    elif info.status is TrainingStatus.MAX_EPOCHS and info.best_epoch == info.num_epochs - 1:
        messages.append(VIStatus.NOT_CONVERGED)  # the last epoch was still the best
    ordered = by_severity(messages)
    finite = info.validation_losses[np.isfinite(info.validation_losses)]
    result = VIResult(
        family=fitted,
        mean=np.asarray(fitted.mean, np.float64),
        std=np.sqrt(np.asarray(fitted.variance(), np.float64)),
        elbo=float(-finite.min()) if finite.size else float("nan"),
        training=info,
        status=ordered[0] if ordered else VIStatus.OK,
        messages=ordered,
    )
    return check(result, throw)
