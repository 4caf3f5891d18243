"""Neural posterior, likelihood and ratio estimators (NPE, NLE, NRE) as equinox Modules.

All three work in the prior's *unconstrained* space (see
:meth:`astrobayes.sbi.priors.Prior.to_unconstrained`), standardised with the training
set's mean and standard deviation; data are standardised elementwise and may pass
through an embedding network trained jointly.

* :class:`NPE` fits a conditional flow ``q(u | x)`` to ``u = T^{-1}(theta)``, so its
  posterior ``q(T^{-1}(theta) | x) |d T^{-1} / d theta|`` is exactly zero outside a
  uniform prior's box: no probability leaks out of the support, and no rejection step
  is needed.
* :class:`NLE` fits a conditional flow ``q(x | theta)``; the posterior is sampled by MCMC
  on ``log q(x_o | theta) + log p(theta)``.
* :class:`NRE` fits a classifier ``d(theta, x)`` between joint and shuffled pairs whose
  logit estimates ``log p(x | theta) / p(x)``; the posterior is
  ``p(theta) exp d(theta, x_o)``.

References:
    Papamakarios & Murray 2016, arXiv:1605.06376 (NPE); Greenberg, Nonnenmacher &
    Macke 2019, arXiv:1905.07488; Papamakarios, Sterratt & Murray 2019,
    arXiv:1805.07226 (NLE); Hermans, Begy & Louppe 2020, arXiv:1903.04057 (NRE);
    Cranmer, Brehmer & Louppe 2020, arXiv:1911.01429 (review).

"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import paramax
from flowjax.bijections import Affine
from flowjax.distributions import Normal
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_positive_int
from astrobayes._flows import (
    masked_autoregressive_flow,
    spline_transformer,
)
from astrobayes.sbi.embeddings import AbstractEmbedding
from astrobayes.sbi.priors import Prior

__all__ = [
    "NLE",
    "NPE",
    "NRE",
    "AbstractEstimator",
    "FlowConfig",
    "conditional_flow",
    "nle_loss",
    "npe_loss",
    "nre_loss",
]


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of the conditional flows (masked autoregressive, spline transformer).

    Attributes:
        flow_layers: Autoregressive layers.
        nn_width: Hidden width of each conditioner.
        nn_depth: Hidden layers of each conditioner.
        knots: Rational-quadratic spline knots (``0`` for affine layers).
        interval: Spline interval ``[-interval, interval]`` in standardised units.
        classifier_width: Hidden width of the NRE classifier.
        classifier_depth: Hidden layers of the NRE classifier.

    """

    flow_layers: int = 5
    nn_width: int = 50
    nn_depth: int = 2
    knots: int = 10
    interval: float = 5.0
    classifier_width: int = 64
    classifier_depth: int = 3

    def __post_init__(self) -> None:
        check_positive_int(self.flow_layers, "flow_layers")
        check_positive_int(self.nn_width, "nn_width")
        check_positive_int(self.nn_depth, "nn_depth", minimum=0)
        check_positive_int(self.knots, "knots", minimum=0)
        if not self.interval > 0:
            raise ValueError(f"interval must be > 0; got {self.interval}")


def conditional_flow(key: PRNGKeyArray, dim: int, cond_dim: int, config: FlowConfig) -> eqx.Module:
    """A masked autoregressive flow on ``dim`` variables conditioned on ``cond_dim`` ones.

    Args:
        key: JAX PRNG key of the initial weights.
        dim: Dimension of the modelled variable.
        cond_dim: Dimension of the conditioning variable.
        config: :class:`FlowConfig` (spline transformer when ``knots > 0``, else affine).

    Returns:
        A flowjax distribution with a standard-normal base.

    """
    transformer = (
        spline_transformer(config.knots, config.interval) if config.knots > 0 else Affine()
    )
    return masked_autoregressive_flow(
        key,
        base_dist=Normal(jnp.zeros(dim)),
        transformer=transformer,
        cond_dim=cond_dim,
        flow_layers=config.flow_layers,
        nn_width=config.nn_width,
        nn_depth=config.nn_depth,
        nn_activation=jax.nn.gelu,
    )


class AbstractEstimator(eqx.Module):
    """Common interface: a prior and an (unnormalised for NLE/NRE) log posterior."""

    prior: eqx.AbstractVar[Prior]
    u_shift: eqx.AbstractVar[Array]
    u_scale: eqx.AbstractVar[Array]
    x_shift: eqx.AbstractVar[Array]
    x_scale: eqx.AbstractVar[Array]

    def _z(self, u: Array) -> Array:
        return (u - jax.lax.stop_gradient(self.u_shift)) / jax.lax.stop_gradient(self.u_scale)

    def _x_std(self, x: Array) -> Array:
        return (x - jax.lax.stop_gradient(self.x_shift)) / jax.lax.stop_gradient(self.x_scale)

    def log_posterior_unconstrained(self, u: Float[Array, " dim"], x: Array) -> Float[Array, ""]:
        """Log posterior density of ``u`` (unconstrained) given one observation ``x``."""
        raise NotImplementedError

    def log_posterior(self, theta: Float[Array, "... dim"], x: Array) -> Float[Array, ...]:
        """Log posterior of ``theta`` given one observation ``x``; ``-inf`` outside the prior.

        Normalised for NPE, normalised up to a constant (the evidence) for NLE and NRE.
        """
        theta = jnp.asarray(theta)
        flat = theta.reshape(-1, theta.shape[-1])
        u = self.prior.to_unconstrained(flat)
        log_u = jax.vmap(self.log_posterior_unconstrained, in_axes=(0, None))(u, x)
        value = log_u - self.prior.log_abs_det_jacobian(u)
        value = jnp.where(self.prior.in_support(flat), value, -jnp.inf)
        return value.reshape(theta.shape[:-1])

    @property
    def is_normalised(self) -> bool:
        """Whether :meth:`log_posterior` is normalised."""
        return False


class NPE(AbstractEstimator):
    """Neural posterior estimator ``q(theta | x)`` (see the module docstring)."""

    flow: eqx.Module
    embedding: AbstractEmbedding
    prior: Prior
    u_shift: Array
    u_scale: Array
    x_shift: Array
    x_scale: Array

    def _condition(self, x: Array) -> Array:
        return self.embedding(self._x_std(x))

    def log_posterior_unconstrained(self, u: Float[Array, " dim"], x: Array) -> Float[Array, ""]:
        """Normalised log density of the unconstrained ``u`` given one observation."""
        flow = paramax.unwrap(self.flow)
        return flow.log_prob(self._z(u), self._condition(x)) - jnp.sum(jnp.log(self.u_scale))

    @property
    def is_normalised(self) -> bool:
        """NPE densities are normalised."""
        return True

    def sample_and_log_prob(
        self, key: PRNGKeyArray, x: Array, num_samples: int
    ) -> tuple[Float[Array, "num_samples dim"], Float[Array, " num_samples"]]:
        """Posterior draws for one observation and their log posterior density.

        Args:
            key: JAX PRNG key.
            x: One observation (the data shape, no batch axis).
            num_samples: Number of draws.

        Returns:
            ``(theta, log_posterior)``, shapes ``(num_samples, dim)`` and ``(num_samples,)``.

        """
        flow = paramax.unwrap(self.flow)
        z, log_q = flow.sample_and_log_prob(key, (num_samples,), condition=self._condition(x))
        u = z * self.u_scale + self.u_shift
        log_q = log_q - jnp.sum(jnp.log(self.u_scale))
        theta = self.prior.to_constrained(u)
        return theta, log_q - self.prior.log_abs_det_jacobian(u)

    def sample(
        self, key: PRNGKeyArray, x: Array, num_samples: int
    ) -> Float[Array, "num_samples dim"]:
        """Posterior draws for one observation, shape ``(num_samples, dim)``."""
        return self.sample_and_log_prob(key, x, num_samples)[0]


class NLE(AbstractEstimator):
    """Neural likelihood estimator ``q(x | theta)`` (see the module docstring)."""

    flow: eqx.Module
    prior: Prior
    u_shift: Array
    u_scale: Array
    x_shift: Array
    x_scale: Array

    def log_likelihood_unconstrained(self, u: Float[Array, " dim"], x: Array) -> Float[Array, ""]:
        """Learned ``log p(x | theta(u))`` for one observation (flattened)."""
        flow = paramax.unwrap(self.flow)
        x_std = self._x_std(jnp.reshape(x, (-1,)))
        return flow.log_prob(x_std, self._z(u)) - jnp.sum(jnp.log(self.x_scale))

    def log_likelihood(self, theta: Float[Array, "... dim"], x: Array) -> Float[Array, ...]:
        """Learned ``log p(x | theta)`` for one observation, any leading batch shape."""
        theta = jnp.asarray(theta)
        u = self.prior.to_unconstrained(theta.reshape(-1, theta.shape[-1]))
        value = jax.vmap(self.log_likelihood_unconstrained, in_axes=(0, None))(u, x)
        return value.reshape(theta.shape[:-1])

    def log_posterior_unconstrained(self, u: Float[Array, " dim"], x: Array) -> Float[Array, ""]:
        """Unnormalised ``log q(x | theta(u)) + log p_u(u)``."""
        return self.log_likelihood_unconstrained(u, x) + self.prior.log_prob_unconstrained(u)


class NRE(AbstractEstimator):
    """Neural ratio estimator ``d(theta, x) ~ log p(x | theta) / p(x)`` (see module docstring)."""

    classifier: eqx.nn.MLP
    embedding: AbstractEmbedding
    prior: Prior
    u_shift: Array
    u_scale: Array
    x_shift: Array
    x_scale: Array

    def log_ratio_unconstrained(self, u: Float[Array, " dim"], x: Array) -> Float[Array, ""]:
        """Classifier logit for one ``(u, x)`` pair."""
        features = jnp.concatenate([self._z(u), self.embedding(self._x_std(x))])
        return self.classifier(features)

    def log_posterior_unconstrained(self, u: Float[Array, " dim"], x: Array) -> Float[Array, ""]:
        """Unnormalised ``d(u, x) + log p_u(u)``."""
        return self.log_ratio_unconstrained(u, x) + self.prior.log_prob_unconstrained(u)


#: ``(u, x)``: a minibatch of unconstrained parameters ``(batch, dim)`` and data
#: ``(batch, *data_shape)`` (flattened for NLE).
Batch = tuple[Float[Array, "batch dim"], Array]


def npe_loss(model: NPE, batch: Batch, key: PRNGKeyArray) -> Float[Array, ""]:
    """Negative mean log density of the standardised ``u`` under the conditional flow.

    Args:
        model: The :class:`NPE` being trained.
        batch: ``(u, x)``.
        key: Unused (the loss is deterministic); part of the training-loop signature.

    Returns:
        The mean loss over the batch.

    """
    del key
    u_batch, x_batch = batch
    flow = paramax.unwrap(model.flow)
    condition = jax.vmap(model._condition)(x_batch)
    return -jnp.mean(flow.log_prob(model._z(u_batch), condition))


def nle_loss(model: NLE, batch: Batch, key: PRNGKeyArray) -> Float[Array, ""]:
    """Negative mean log density of the standardised, flattened data given ``u``.

    Args:
        model: The :class:`NLE` being trained.
        batch: ``(u, x)`` with ``x`` flattened to ``(batch, data_size)``.
        key: Unused (the loss is deterministic).

    Returns:
        The mean loss over the batch.

    """
    del key
    u_batch, x_batch = batch
    flow = paramax.unwrap(model.flow)
    return -jnp.mean(flow.log_prob(model._x_std(x_batch), model._z(u_batch)))


def nre_loss(
    model: NRE, batch: Batch, key: PRNGKeyArray, num_contrastive: int = 1
) -> Float[Array, ""]:
    """Balanced binary cross-entropy of joint pairs against rolled (marginal) pairs.

    Marginal pairs are built inside the batch by rolling ``u`` by ``1 ..
    num_contrastive`` positions.

    Args:
        model: The :class:`NRE` being trained.
        batch: ``(u, x)``.
        key: Unused (the contrastive pairs are deterministic given the batch order).
        num_contrastive: Marginal pairs per joint pair.

    Returns:
        The mean loss over the batch.

    """
    del key
    u_batch, x_batch = batch
    z = model._z(u_batch)
    e = jax.vmap(model.embedding)(jax.vmap(model._x_std)(x_batch))
    logits = jax.vmap(lambda a, b: model.classifier(jnp.concatenate([a, b])))
    joint = jax.nn.softplus(-logits(z, e)).mean()
    marginal = (
        sum(
            jax.nn.softplus(logits(jnp.roll(z, k, axis=0), e)).mean()
            for k in range(1, num_contrastive + 1)
        )
        / num_contrastive
    )
    return joint + marginal
