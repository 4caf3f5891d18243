"""Gaussian variational families: mean-field and low-rank plus diagonal.

Each family is an equinox Module with ``sample(key, num)`` (reparameterised), ``entropy()``
and ``variance()``, so :func:`astrobayes.variational.fit_variational` trains any of them by
the same stochastic ELBO (Kingma & Welling 2014, arXiv:1312.6114; Titsias &
Lazaro-Gredilla 2014). Mean-field is known to underestimate marginal variances of a
correlated posterior (for a Gaussian target with precision ``Lambda`` its optimum is
``1 / Lambda_ii <= Sigma_ii``; Bishop 2006, Sec. 10.1.2); the low-rank family
(Rezende & Mohamed 2015 style ``D + V V^T``; Ong, Nott & Smith 2018, arXiv:1701.03208)
captures the leading correlations.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_positive_int

__all__ = ["LowRankGaussian", "MeanFieldGaussian"]

_LOG_2PI_E = float(np.log(2 * np.pi) + 1.0)


class MeanFieldGaussian(eqx.Module):
    """``q = N(mean, diag(exp(2 log_std)))``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> q = MeanFieldGaussian.init(jnp.zeros(3))
        >>> q.sample(jax.random.key(0), 5).shape, float(q.entropy()) > 0
        ((5, 3), True)

    """

    mean: Float[Array, " dim"]
    log_std: Float[Array, " dim"]

    @classmethod
    def init(cls, mean: Float[Array, " dim"], std: float = 1.0) -> MeanFieldGaussian:
        """Start at ``mean`` with every standard deviation ``std``."""
        mean = jnp.asarray(mean, jnp.float32)
        return cls(mean, jnp.full(mean.shape, np.log(std), jnp.float32))

    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num dim"]:
        """``num`` reparameterised draws."""
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, (num, *self.mean.shape))

    def entropy(self) -> Float[Array, ""]:
        """Differential entropy (nats)."""
        return jnp.sum(self.log_std) + 0.5 * self.mean.size * _LOG_2PI_E

    def variance(self) -> Float[Array, " dim"]:
        """Marginal variances."""
        return jnp.exp(2 * self.log_std)


class LowRankGaussian(eqx.Module):
    """``q = N(mean, diag(exp(2 log_diag)) + factor factor^T)``, ``factor`` of shape ``(dim, rank)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> q = LowRankGaussian.init(jax.random.key(0), jnp.zeros(4), rank=2)
        >>> q.sample(jax.random.key(1), 3).shape, q.variance().shape
        ((3, 4), (4,))

    """

    mean: Float[Array, " dim"]
    log_diag: Float[Array, " dim"]
    factor: Float[Array, "dim rank"]

    @classmethod
    def init(
        cls, key: PRNGKeyArray, mean: Float[Array, " dim"], *, rank: int, std: float = 1.0
    ) -> LowRankGaussian:
        """Start at ``mean``, diagonal ``std``, a small random factor of ``rank`` columns."""
        check_positive_int(rank, "rank")
        mean = jnp.asarray(mean, jnp.float32)
        factor = 1e-2 * std * jax.random.normal(key, (mean.size, rank), jnp.float32)
        return cls(mean, jnp.full(mean.shape, np.log(std), jnp.float32), factor)

    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num dim"]:
        """``num`` reparameterised draws."""
        diag_key, factor_key = jax.random.split(key)
        eps = jax.random.normal(diag_key, (num, *self.mean.shape))
        eta = jax.random.normal(factor_key, (num, self.factor.shape[1]))
        return self.mean + jnp.exp(self.log_diag) * eps + eta @ self.factor.T

    def entropy(self) -> Float[Array, ""]:
        """Differential entropy, by the matrix determinant lemma."""
        inv_diag = jnp.exp(-2 * self.log_diag)
        small = jnp.eye(self.factor.shape[1]) + (self.factor.T * inv_diag) @ self.factor
        log_det = 2 * jnp.sum(self.log_diag) + jnp.linalg.slogdet(small)[1]
        return 0.5 * log_det + 0.5 * self.mean.size * _LOG_2PI_E

    def variance(self) -> Float[Array, " dim"]:
        """Marginal variances."""
        return jnp.exp(2 * self.log_diag) + jnp.sum(self.factor**2, axis=1)
