"""The one predictive every BNN method returns: an equal-weight mixture of Gaussians.

Every method ends as ``num_members`` networks (ensemble members, dropout masks folded
into the weights, variational or Laplace draws, SGLD or NUTS draws), each giving a
Gaussian ``N(mean_m(x), scale_m(x)**2)``; the predictive at ``x`` is their equal-weight
mixture. :class:`Predictive` holds the stacked networks and the standardisation of the
training data; calling it on inputs gives a :class:`PredictiveMixture` in the original
target units.

Example:
    >>> import jax.numpy as jnp
    >>> mix = PredictiveMixture(jnp.array([[-1.0, 1.0]]), jnp.array([[1.0, 1.0]]))
    >>> float(mix.mean()[0]), float(mix.variance()[0])
    (0.0, 2.0)
    >>> float(mix.cdf(jnp.array([0.0]))[0])
    0.5

"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm
from jaxtyping import Array, Float

from astrobayes._checks import as_float_array, check_finite
from astrobayes._status import Severity, Status
from astrobayes._types import parameter_dtype

__all__ = ["BNNStatus", "PredictiveMixture", "Predictive"]


class BNNStatus(Status):
    """Outcome of :func:`astrobayes.bayesnn.fit`."""

    OK = (Severity.OK, "fit converged")
    TRAINING_MAX_EPOCHS = (
        Severity.WARNING,
        "warning: training reached max_epochs while the validation loss was still improving "
        "(raise max_epochs)",
    )
    HIGH_RHAT = (
        Severity.WARNING,
        "warning: function-space split R-hat > 1.01 (predictive means at the training inputs "
        "disagree between chains); the posterior draws are not converged",
    )
    DIVERGENT_TRANSITIONS = (
        Severity.WARNING,
        "warning: NUTS reported divergent transitions; the draws may be biased",
    )
    TRAINING_NON_FINITE = (
        Severity.FAILURE,
        "failure: training diverged (non-finite loss); the best finite epoch was kept",
    )
    NON_FINITE_DRAWS = (
        Severity.FAILURE,
        "failure: some posterior draws or predictions are non-finite",
    )


class PredictiveMixture(NamedTuple):
    """Equal-weight Gaussian mixture per point.

    Attributes:
        means: ``(num_points, num_members)`` component means.
        scales: ``(num_points, num_members)`` component standard deviations.

    """

    means: Float[Array, "num_points num_members"]
    scales: Float[Array, "num_points num_members"]

    def mean(self) -> Float[Array, " num_points"]:
        """Predictive mean."""
        return jnp.mean(self.means, axis=-1)

    def variance(self) -> Float[Array, " num_points"]:
        """Predictive variance: mean of the variances plus the variance of the means."""
        return jnp.mean(self.scales**2, axis=-1) + jnp.var(self.means, axis=-1)

    def std(self) -> Float[Array, " num_points"]:
        """Predictive standard deviation."""
        return jnp.sqrt(self.variance())

    def aleatoric_variance(self) -> Float[Array, " num_points"]:
        """Mean of the component variances (the noise the networks predict)."""
        return jnp.mean(self.scales**2, axis=-1)

    def cdf(self, y: Float[Array, " num_points"]) -> Float[Array, " num_points"]:
        """Predictive CDF at ``y`` (one value per point): the PIT value."""
        return jnp.mean(norm.cdf((jnp.asarray(y)[:, None] - self.means) / self.scales), axis=-1)

    def log_prob(self, y: Float[Array, " num_points"]) -> Float[Array, " num_points"]:
        """Predictive log density at ``y``."""
        logs = norm.logpdf(jnp.asarray(y)[:, None], self.means, self.scales)
        return logsumexp(logs, axis=-1) - jnp.log(self.means.shape[-1])

    def quantile(
        self, levels: Float[Array, " num_levels"], *, num_iterations: int = 60
    ) -> Float[Array, "num_points num_levels"]:
        """Predictive quantiles at ``levels`` (in ``(0, 1)``) by bisection on the CDF."""
        levels = jnp.asarray(levels)
        low = jnp.min(self.means - 10.0 * self.scales, axis=-1)[:, None] + 0.0 * levels
        high = jnp.max(self.means + 10.0 * self.scales, axis=-1)[:, None] + 0.0 * levels

        def cdf(y):  # y: (num_points, num_levels)
            z = (y[:, :, None] - self.means[:, None, :]) / self.scales[:, None, :]
            return jnp.mean(norm.cdf(z), axis=-1)

        def step(_, bounds):
            low, high = bounds
            mid = 0.5 * (low + high)
            below = cdf(mid) < levels
            return jnp.where(below, mid, low), jnp.where(below, high, mid)

        low, high = jax.lax.fori_loop(0, num_iterations, step, (low, high))
        return 0.5 * (low + high)

    def sample(self, key, num_samples: int) -> Float[Array, "num_samples num_points"]:
        """``num_samples`` draws per point from the mixture."""
        k_member, k_noise = jax.random.split(key)
        shape = (num_samples, self.means.shape[0])
        member = jax.random.randint(k_member, shape, 0, self.means.shape[1])
        rows = jnp.arange(self.means.shape[0])[None, :]
        return self.means[rows, member] + self.scales[rows, member] * jax.random.normal(
            k_noise, shape
        )


@eqx.filter_jit
def _predict(networks, inputs):
    def one(net):
        return jax.vmap(net)(inputs)

    means, scales = eqx.filter_vmap(one)(networks)
    return means.T, scales.T


class Predictive(NamedTuple):
    """A fitted BNN: stacked networks, standardisation, status and diagnostics.

    Call it on inputs ``(num_points, in_size)`` (original units) to get the
    :class:`PredictiveMixture` of the targets in original units.

    Attributes:
        networks: The networks, their array leaves stacked along a leading
            ``num_members`` axis.
        input_mean: ``(in_size,)`` mean of the training inputs.
        input_scale: ``(in_size,)`` standard deviation of the training inputs.
        target_mean: Mean of the training targets.
        target_scale: Standard deviation of the training targets.
        method: Name of the method that made it.
        status: The most severe :class:`BNNStatus`.
        messages: Every status raised (most severe first).
        diagnostics: Method-specific numbers (training epochs, R-hat, ESS, prior
            precision, ...).
        wall_time_s: Seconds the fit took, compilation included.

    """

    networks: Any
    input_mean: np.ndarray
    input_scale: np.ndarray
    target_mean: float
    target_scale: float
    method: str
    status: BNNStatus
    messages: tuple[BNNStatus, ...]
    diagnostics: dict
    wall_time_s: float

    @property
    def num_members(self) -> int:
        """Number of mixture components (networks)."""
        return int(jax.tree.leaves(eqx.filter(self.networks, eqx.is_array))[0].shape[0])

    def __call__(self, inputs: Float[Array, "num_points in_size"]) -> PredictiveMixture:
        """The predictive mixture at ``inputs`` (original units).

        Raises:
            ValueError: If ``inputs`` is not finite or has the wrong number of features.

        """
        x = as_float_array(inputs, "inputs", ndim=2)
        if x.shape[1] != self.input_mean.shape[0]:
            raise ValueError(
                f"inputs must have {self.input_mean.shape[0]} features (columns); got shape "
                f"{x.shape}"
            )
        check_finite(x, "inputs")
        x = jnp.asarray(
            (x - self.input_mean) / self.input_scale, dtype=parameter_dtype(self.networks)
        )
        means, scales = _predict(self.networks, x)
        return PredictiveMixture(
            means=self.target_mean + self.target_scale * means,
            scales=self.target_scale * scales,
        )
