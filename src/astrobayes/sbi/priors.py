"""Priors for simulation-based inference: independent uniform boxes and normals.

A :class:`Prior` is a product of one-dimensional uniforms and normals. Besides sampling
and the log density it carries the bijection to an unconstrained space (a scaled logit
for the bounded parameters, the identity for the normal ones) that the estimators use so
that no posterior probability leaks outside the prior support.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int

__all__ = ["Prior", "prior_from_config"]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


class Prior(eqx.Module):
    """Product prior of independent uniforms and normals, with its unconstraining map.

    Parameter ``i`` is uniform on ``[low[i], high[i]]`` when ``is_bounded[i]`` and
    normal with mean ``low[i]`` and standard deviation ``high[i]`` otherwise (the two
    arrays are reused to keep the Module a flat PyTree of arrays). Build it with
    :meth:`Prior.uniform`, :meth:`Prior.normal` or :func:`prior_from_config`.

    The unconstrained coordinate of a bounded parameter is
    ``u = logit((theta - low) / (high - low))``; normal parameters are left unchanged.

    Attributes:
        low: Lower bounds (uniform) or means (normal), shape ``(dim,)``.
        high: Upper bounds (uniform) or standard deviations (normal), shape ``(dim,)``.
        is_bounded: ``True`` for uniform parameters, shape ``(dim,)`` (static).
        names: Parameter names (static).

    Example:
        >>> import jax
        >>> prior = Prior.uniform([0.0, -1.0], [1.0, 1.0], names=("a", "b"))
        >>> prior.sample(jax.random.key(0), 5).shape
        (5, 2)

    """

    low: Float[Array, " dim"]
    high: Float[Array, " dim"]
    is_bounded: tuple[bool, ...] = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, low, high, is_bounded: Sequence[bool], names: Sequence[str] | None = None):
        low = np.asarray(low, dtype=float).reshape(-1)
        high = np.asarray(high, dtype=float).reshape(-1)
        is_bounded = tuple(bool(b) for b in is_bounded)
        if not (low.shape == high.shape == (len(is_bounded),)) or low.size == 0:
            raise ValueError(
                "low, high and is_bounded must have the same non-zero length; got "
                f"{low.shape}, {high.shape} and {len(is_bounded)}"
            )
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("prior bounds / means and standard deviations must be finite")
        bounded = np.asarray(is_bounded)
        if np.any(bounded & (high <= low)):
            i = int(np.flatnonzero(bounded & (high <= low))[0])
            raise ValueError(
                f"uniform prior of parameter {i} needs low < high; got [{low[i]}, {high[i]}]"
            )
        if np.any(~bounded & (high <= 0)):
            i = int(np.flatnonzero(~bounded & (high <= 0))[0])
            raise ValueError(f"normal prior of parameter {i} needs std > 0; got {high[i]}")
        if names is None:
            names = tuple(f"theta_{i}" for i in range(low.size))
        names = tuple(str(n) for n in names)
        if len(names) != low.size:
            raise ValueError(f"names must hold {low.size} names; got {len(names)}")
        self.low = jnp.asarray(low, dtype=jnp.result_type(float))
        self.high = jnp.asarray(high, dtype=jnp.result_type(float))
        self.is_bounded = is_bounded
        self.names = names

    @classmethod
    def uniform(cls, low, high, names: Sequence[str] | None = None) -> Prior:
        """Independent uniforms on ``[low[i], high[i]]``."""
        low = np.atleast_1d(np.asarray(low, dtype=float))
        return cls(low, high, [True] * low.size, names)

    @classmethod
    def normal(cls, mean, std, names: Sequence[str] | None = None) -> Prior:
        """Independent normals with the given means and standard deviations."""
        mean = np.atleast_1d(np.asarray(mean, dtype=float))
        return cls(mean, std, [False] * mean.size, names)

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return len(self.is_bounded)

    @property
    def _mask(self) -> Array:
        return jnp.asarray(self.is_bounded)

    def sample(self, key: PRNGKeyArray, num_samples: int) -> Float[Array, "num_samples dim"]:
        """Draw ``num_samples`` parameter vectors.

        Args:
            key: JAX PRNG key.
            num_samples: Number of draws.

        Returns:
            Array of shape ``(num_samples, dim)``.

        """
        check_key(key)
        num_samples = check_positive_int(num_samples, "num_samples")
        key_uniform, key_normal = jax.random.split(key)
        unit = jax.random.uniform(key_uniform, (num_samples, self.dim))
        normal = jax.random.normal(key_normal, (num_samples, self.dim))
        bounded = self.low + (self.high - self.low) * unit
        gaussian = self.low + self.high * normal
        return jnp.where(self._mask, bounded, gaussian)

    def log_prob(self, theta: Float[Array, "... dim"]) -> Float[Array, ...]:
        """Normalised log prior density; ``-inf`` outside the support."""
        theta = jnp.asarray(theta)
        width = self.high - self.low
        inside = (theta >= self.low) & (theta <= self.high)
        log_uniform = jnp.where(inside, -jnp.log(jnp.where(self._mask, width, 1.0)), -jnp.inf)
        z = (theta - self.low) / self.high
        log_normal = -0.5 * z**2 - jnp.log(self.high) - _LOG_SQRT_2PI
        return jnp.sum(jnp.where(self._mask, log_uniform, log_normal), axis=-1)

    def in_support(self, theta: Float[Array, "... dim"]) -> Bool[Array, ...]:
        """Whether ``theta`` lies in the prior support."""
        theta = jnp.asarray(theta)
        inside = (theta >= self.low) & (theta <= self.high)
        return jnp.all(jnp.where(self._mask, inside, jnp.isfinite(theta)), axis=-1)

    def to_unconstrained(self, theta: Float[Array, "... dim"]) -> Float[Array, "... dim"]:
        """Map parameters to the unconstrained space (scaled logit for bounded ones)."""
        theta = jnp.asarray(theta)
        unit = (theta - self.low) / (self.high - self.low)
        unit = jnp.clip(unit, 1e-7, 1.0 - 1e-7)
        return jnp.where(self._mask, jnp.log(unit) - jnp.log1p(-unit), theta)

    def to_constrained(self, u: Float[Array, "... dim"]) -> Float[Array, "... dim"]:
        """Inverse of :meth:`to_unconstrained`."""
        u = jnp.asarray(u)
        return jnp.where(self._mask, self.low + (self.high - self.low) * jax.nn.sigmoid(u), u)

    def log_abs_det_jacobian(self, u: Float[Array, "... dim"]) -> Float[Array, ...]:
        """``log |d theta / d u|`` of :meth:`to_constrained`, summed over parameters."""
        u = jnp.asarray(u)
        width = jnp.where(self._mask, self.high - self.low, 1.0)
        log_det = jnp.log(width) + jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u)
        return jnp.sum(jnp.where(self._mask, log_det, 0.0), axis=-1)

    def log_prob_unconstrained(self, u: Float[Array, "... dim"]) -> Float[Array, ...]:
        """Log density of the prior pushed to the unconstrained space."""
        u = jnp.asarray(u)
        log_uniform = jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u)
        z = (u - self.low) / self.high
        log_normal = -0.5 * z**2 - jnp.log(self.high) - _LOG_SQRT_2PI
        return jnp.sum(jnp.where(self._mask, log_uniform, log_normal), axis=-1)


def prior_from_config(parameters: Mapping[str, Mapping[str, Sequence[float]]]) -> Prior:
    """Build a :class:`Prior` from ``{name: {"uniform": [lo, hi]}}`` / ``{"normal": [mean, std]}``.

    Args:
        parameters: Ordered mapping from parameter name to a one-entry mapping.

    Returns:
        The prior, parameters in the mapping's order.

    Raises:
        ValueError: If an entry is not exactly one of ``uniform`` / ``normal`` with two numbers.

    Example:
        >>> prior_from_config({"a": {"uniform": [0, 1]}, "b": {"normal": [0, 2]}}).dim
        2

    """
    if not isinstance(parameters, Mapping) or len(parameters) == 0:
        raise ValueError("prior must map at least one parameter name to its distribution")
    low, high, bounded, names = [], [], [], []
    for name, spec in parameters.items():
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise ValueError(
                f"prior of {name!r} must be one of uniform = [lo, hi] or normal = [mean, std]; got {spec!r}"
            )
        ((kind, values),) = spec.items()
        if kind not in ("uniform", "normal"):
            raise ValueError(
                f"prior of {name!r}: unknown distribution {kind!r}; use uniform or normal"
            )
        values = list(values) if isinstance(values, Sequence) else values
        if not isinstance(values, list) or len(values) != 2:
            raise ValueError(f"prior of {name!r}: {kind} needs two numbers; got {values!r}")
        low.append(float(values[0]))
        high.append(float(values[1]))
        bounded.append(kind == "uniform")
        names.append(str(name))
    return Prior(low, high, bounded, names)
