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
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
from flowjax.bijections import Affine
from flowjax.distributions import Normal
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_finite, check_key, check_positive_int
from astrobayes._flows import DenseRationalQuadraticSpline, masked_autoregressive_flow
from astrobayes.sbi.embeddings import AbstractEmbedding, IdentityEmbedding
from astrobayes.sbi.priors import Prior
from astrobayes.sbi.training import TrainingConfig, TrainingInfo, fit

__all__ = [
    "NLE",
    "NPE",
    "NRE",
    "AbstractEstimator",
    "FlowConfig",
    "train_nle",
    "train_npe",
    "train_nre",
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


def _flow(key, dim: int, cond_dim: int, config: FlowConfig):
    transformer = (
        DenseRationalQuadraticSpline(knots=config.knots, interval=config.interval)
        if config.knots > 0
        else Affine()
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


def _moments(a: np.ndarray) -> tuple[jax.Array, jax.Array]:
    shift = a.mean(axis=0)
    scale = a.std(axis=0)
    scale = np.where(scale > 1e-8 * (1.0 + np.abs(shift)), scale, 1.0)
    return jnp.asarray(shift, jnp.float32), jnp.asarray(scale, jnp.float32)


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


def _check_training_data(prior: Prior, theta, x) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be an astrobayes.sbi.Prior; got {type(prior).__name__}")
    theta = as_float_array(theta, "theta", ndim=2)
    x = as_float_array(x, "x")
    if x.ndim < 1 or x.shape[0] != theta.shape[0]:
        raise ValueError(
            f"x must have a leading axis of length len(theta) = {theta.shape[0]}; got shape {x.shape}"
        )
    if theta.shape[1] != prior.dim:
        raise ValueError(f"theta must have prior.dim = {prior.dim} columns; got {theta.shape[1]}")
    check_finite(theta, "theta")
    check_finite(x, "x")
    if not bool(np.all(np.asarray(prior.in_support(theta)))):
        raise ValueError("theta must lie inside the prior support")
    if x.ndim == 1:
        x = x[:, None]
    return theta, x


class _TrainingSet(NamedTuple):
    """Validated training pairs in the estimators' coordinates and their standardisers."""

    u: jax.Array
    x: jax.Array
    u_shift: jax.Array
    u_scale: jax.Array
    x_shift: jax.Array
    x_scale: jax.Array

    def standardisers(self) -> dict[str, jax.Array]:
        """Keyword arguments of every estimator's constructor but the networks."""
        return {
            "u_shift": self.u_shift,
            "u_scale": self.u_scale,
            "x_shift": self.x_shift,
            "x_scale": self.x_scale,
        }


def _training_set(prior: Prior, theta, x, *, flatten: bool = False) -> _TrainingSet:
    """Validate ``(theta, x)`` and map them to unconstrained ``u`` and float32 data."""
    theta, x = _check_training_data(prior, theta, x)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    u = np.asarray(prior.to_unconstrained(jnp.asarray(theta)), dtype=float)
    u_shift, u_scale = _moments(u)
    x_shift, x_scale = _moments(x)
    return _TrainingSet(
        jnp.asarray(u, jnp.float32),
        jnp.asarray(x, jnp.float32),
        u_shift,
        u_scale,
        x_shift,
        x_scale,
    )


def _fit(key, model, loss_fn, data: _TrainingSet, training_config: TrainingConfig | None):
    config = TrainingConfig() if training_config is None else training_config
    return fit(key, model, loss_fn, (data.u, data.x), config)


def train_npe(
    key: PRNGKeyArray,
    prior: Prior,
    theta,
    x,
    *,
    embedding: AbstractEmbedding | None = None,
    flow_config: FlowConfig = FlowConfig(),
    training_config: TrainingConfig | None = None,
) -> tuple[NPE, TrainingInfo]:
    """Train a neural posterior estimator (and its embedding) by maximum likelihood.

    Args:
        key: JAX PRNG key.
        prior: The prior the simulations' ``theta`` were drawn from (or a truncated
            version of it, see :mod:`astrobayes.sbi.sequential`).
        theta: Parameters, ``(num_simulations, dim)``, inside the prior support.
        x: Data, ``(num_simulations, *data_shape)``.
        embedding: Optional embedding network (default: flatten).
        flow_config: Flow architecture.
        training_config: Optimiser settings.

    Returns:
        ``(npe, info)``.

    Raises:
        TypeError: If ``prior`` is not a :class:`Prior`.
        ValueError: On mismatched, non-finite or out-of-support inputs.

    References:
        Papamakarios & Murray 2016, arXiv:1605.06376; Greenberg et al. 2019,
        arXiv:1905.07488.

    Example:
        >>> import jax
        >>> from astrobayes.sbi import Prior, simulate_for_prior
        >>> prior = Prior.uniform([-1.0], [1.0])
        >>> sims = simulate_for_prior(jax.random.key(0), prior,
        ...     lambda k, t: t + 0.1 * jax.random.normal(k, t.shape), 200)
        >>> npe, info = train_npe(jax.random.key(1), prior, sims.theta, sims.x,
        ...     flow_config=FlowConfig(flow_layers=1, nn_width=8, knots=0),
        ...     training_config=TrainingConfig(max_epochs=2))
        >>> npe.sample(jax.random.key(2), sims.x[0], 10).shape
        (10, 1)

    """
    check_key(key)
    data = _training_set(prior, theta, x)
    key_flow, _, key_fit = jax.random.split(key, 3)  # middle key: kept for reproducibility
    if embedding is None:
        embedding = IdentityEmbedding(data.x.shape[1:])
    flow = _flow(key_flow, prior.dim, embedding.out_size, flow_config)
    model = NPE(flow=flow, embedding=embedding, prior=prior, **data.standardisers())

    def loss_fn(model: NPE, batch, _key):
        u_batch, x_batch = batch
        flow = paramax.unwrap(model.flow)
        condition = jax.vmap(model._condition)(x_batch)
        return -jnp.mean(flow.log_prob(model._z(u_batch), condition))

    return _fit(key_fit, model, loss_fn, data, training_config)


def train_nle(
    key: PRNGKeyArray,
    prior: Prior,
    theta,
    x,
    *,
    flow_config: FlowConfig = FlowConfig(),
    training_config: TrainingConfig | None = None,
    initial: NLE | None = None,
) -> tuple[NLE, TrainingInfo]:
    """Train a neural likelihood estimator ``q(x | theta)`` on flattened data.

    Args:
        key: JAX PRNG key.
        prior: Prior (defines the unconstrained parametrisation and the posterior).
        theta: Parameters, ``(num_simulations, dim)``; any proposal is valid for NLE.
        x: Data, ``(num_simulations, *data_shape)`` (flattened; keep it low-dimensional
            or compress it first).
        flow_config: Flow architecture (ignored with ``initial``).
        training_config: Optimiser settings.
        initial: A trained NLE to continue training from (sequential rounds): its flow
            and its standardisation are kept, so later rounds converge in fewer epochs.

    Returns:
        ``(nle, info)``.

    Raises:
        TypeError: If ``prior`` is not a :class:`Prior` or ``initial`` not an NLE.
        ValueError: On mismatched, non-finite or out-of-support inputs, or an
            ``initial`` estimator for other data or parameter dimensions.

    References:
        Papamakarios, Sterratt & Murray 2019, arXiv:1805.07226.

    """
    check_key(key)
    data = _training_set(prior, theta, x, flatten=True)
    data_size = data.x.shape[1]
    key_flow, key_fit = jax.random.split(key)
    if initial is None:
        flow = _flow(key_flow, data_size, prior.dim, flow_config)
        model = NLE(flow=flow, prior=prior, **data.standardisers())
    elif not isinstance(initial, NLE):
        raise TypeError(f"initial must be an NLE; got {type(initial).__name__}")
    elif initial.x_shift.shape != (data_size,) or initial.u_shift.shape != (prior.dim,):
        raise ValueError(
            f"initial was trained on data of size {initial.x_shift.shape[0]} and "
            f"{initial.u_shift.shape[0]} parameters; got {data_size} and {prior.dim}"
        )
    else:
        model = eqx.tree_at(lambda m: m.prior, initial, prior)

    def loss_fn(model: NLE, batch, _key):
        u_batch, x_batch = batch
        flow = paramax.unwrap(model.flow)
        return -jnp.mean(flow.log_prob(model._x_std(x_batch), model._z(u_batch)))

    return _fit(key_fit, model, loss_fn, data, training_config)


def train_nre(
    key: PRNGKeyArray,
    prior: Prior,
    theta,
    x,
    *,
    embedding: AbstractEmbedding | None = None,
    flow_config: FlowConfig = FlowConfig(),
    training_config: TrainingConfig | None = None,
    num_contrastive: int = 1,
) -> tuple[NRE, TrainingInfo]:
    """Train a neural ratio estimator: a classifier of joint vs. marginal pairs.

    Marginal pairs are built inside each batch by rolling ``theta`` by ``1 ..
    num_contrastive`` positions; the loss is the balanced binary cross-entropy.

    Args:
        key: JAX PRNG key.
        prior: Prior.
        theta: Parameters, ``(num_simulations, dim)``.
        x: Data, ``(num_simulations, *data_shape)``.
        embedding: Optional embedding network.
        flow_config: Uses ``classifier_width`` and ``classifier_depth``.
        training_config: Optimiser settings.
        num_contrastive: Marginal pairs per joint pair.

    Returns:
        ``(nre, info)``.

    Raises:
        TypeError: If ``prior`` is not a :class:`Prior`.
        ValueError: On mismatched, non-finite or out-of-support inputs.

    References:
        Hermans, Begy & Louppe 2020, arXiv:1903.04057.

    """
    check_key(key)
    data = _training_set(prior, theta, x)
    num_contrastive = check_positive_int(num_contrastive, "num_contrastive")
    key_net, key_fit = jax.random.split(key)
    if embedding is None:
        embedding = IdentityEmbedding(data.x.shape[1:])
    classifier = eqx.nn.MLP(
        prior.dim + embedding.out_size,
        "scalar",
        flow_config.classifier_width,
        flow_config.classifier_depth,
        activation=jax.nn.gelu,
        key=key_net,
    )
    model = NRE(classifier=classifier, embedding=embedding, prior=prior, **data.standardisers())

    def loss_fn(model: NRE, batch, _key):
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

    return _fit(key_fit, model, loss_fn, data, training_config)
