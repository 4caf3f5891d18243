"""Stochastic-ELBO variational inference through the package's one training loop.

The ELBO ``E_q[log p(theta)] + H[q]`` is estimated with reparameterised draws. It trains
through :func:`astrobayes._training.fit` with the Monte Carlo draw index as "data": a
training batch of ``num_draws`` indices is one ELBO estimate from ``num_draws`` draws,
and the validation set (``num_validation_draws`` indices, the same draws after every
epoch) is a more precise estimate that drives early stopping and the choice of the best
epoch. The reported ELBO is estimated afresh, on ``num_elbo_draws`` draws that played no
part in the choice, with its Monte Carlo standard error: the best of many validation
estimates would be biased upwards by the choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
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
        num_moment_draws: Draws that estimate the mean and standard deviations of a
            family without analytic moments (:class:`FlowFamily`).
        num_elbo_draws: Fresh draws that estimate the fitted family's ELBO and its
            Monte Carlo error (:attr:`VIResult.elbo`, :attr:`VIResult.elbo_error`).

    """

    num_draws: int = 8
    steps_per_epoch: int = 100
    num_validation_draws: int = 256
    learning_rate: float = 1e-2
    max_epochs: int = 60
    patience: int = 60
    num_moment_draws: int = 4096
    num_elbo_draws: int = 4096

    def __post_init__(self) -> None:
        for name in (
            "num_draws",
            "steps_per_epoch",
            "num_validation_draws",
            "max_epochs",
            "patience",
            "num_moment_draws",
            "num_elbo_draws",
        ):
            check_positive_int(getattr(self, name), name)
        if self.num_elbo_draws < 2:
            raise ValueError(
                f"num_elbo_draws must be at least 2 (its error is a sample standard "
                f"deviation); got {self.num_elbo_draws}"
            )
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate!r}")


class VIResult(NamedTuple):
    """What :func:`fit_variational` returns.

    Attributes:
        family: The fitted variational family (its ``mean`` and ``variance()``).
        mean: Posterior mean of ``q``, ``(dim,)`` (estimated from draws for a flow).
        std: Marginal standard deviations of ``q``, ``(dim,)`` (likewise).
        elbo: ELBO of the fitted family (nats): the mean over ``num_elbo_draws`` fresh
            draws, independent of the draws that trained it and chose its epoch; NaN if a
            term is not finite.
        elbo_error: Monte Carlo standard error of ``elbo`` (standard deviation of the
            per-draw terms over the square root of their number).
        training: :class:`~astrobayes._training.TrainingInfo`.
        status: :class:`VIStatus`.
        messages: Every status raised.

    """

    family: eqx.Module
    mean: Float[np.ndarray, " dim"]
    std: Float[np.ndarray, " dim"]
    elbo: float
    elbo_error: float
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
            ``variance()`` (:class:`MeanFieldGaussian`, :class:`LowRankGaussian`: the
            entropy is analytic), or with ``sample_and_log_prob(key, num)`` and
            ``moments(key, num)`` (:class:`FlowFamily`: the ELBO is ``E_q[log p - log q]``
            from the same draws, the moments from ``num_moment_draws`` draws).
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
    analytic = all(callable(getattr(family, name, None)) for name in ("entropy", "variance"))
    required = ("sample", "entropy", "variance") if analytic else ("sample_and_log_prob", "moments")
    for name in required:
        if not callable(getattr(family, name, None)):
            raise TypeError(
                f"family must have a sample(), entropy() and variance() (Gaussian families) or "
                f"sample_and_log_prob() and moments() (flows); got {type(family).__name__} "
                f"without {name}()"
            )
    batched = jax.vmap(logdensity_fn)

    def negative_elbo(q, batch, draw_key):
        (index,) = batch
        if analytic:
            draws = q.sample(draw_key, index.shape[0])
            return -(jnp.mean(batched(draws)) + q.entropy())
        draws, log_q = q.sample_and_log_prob(draw_key, index.shape[0])
        return -jnp.mean(batched(draws) - log_q)

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
    fit_key, moment_key = jax.random.split(key)
    fitted, info = fit(
        fit_key,
        family,
        negative_elbo,
        train,
        validation,
        config=training_config,
        is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
    )
    if analytic:
        mean, variance = fitted.mean, fitted.variance()
    else:
        mean, variance = fitted.moments(moment_key, config.num_moment_draws)

    @eqx.filter_jit
    def elbo_terms(q, draw_key):
        if analytic:
            return batched(q.sample(draw_key, config.num_elbo_draws)) + q.entropy()
        draws, log_q = q.sample_and_log_prob(draw_key, config.num_elbo_draws)
        return batched(draws) - log_q

    # fold_in(key, 2): the split above gave fold_in(key, 0) and fold_in(key, 1)
    terms = np.asarray(elbo_terms(fitted, jax.random.fold_in(key, 2)), np.float64)
    finite_terms = bool(np.all(np.isfinite(terms)))
    elbo = float(terms.mean()) if finite_terms else float("nan")
    elbo_error = float(terms.std(ddof=1) / np.sqrt(terms.size)) if finite_terms else float("nan")
    messages = []
    if info.status is TrainingStatus.NON_FINITE or not finite_terms:
        messages.append(VIStatus.NON_FINITE)
    elif info.status is TrainingStatus.MAX_EPOCHS and info.best_epoch == info.num_epochs - 1:
        messages.append(VIStatus.NOT_CONVERGED)  # the last epoch was still the best
    ordered = by_severity(messages)
    result = VIResult(
        family=fitted,
        mean=np.asarray(mean, np.float64),
        std=np.sqrt(np.asarray(variance, np.float64)),
        elbo=elbo,
        elbo_error=elbo_error,
        training=info,
        status=ordered[0] if ordered else VIStatus.OK,
        messages=ordered,
    )
    return check(result, throw)
