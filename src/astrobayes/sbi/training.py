"""Training NPE, NLE and NRE through the package's one training loop.

Every estimator trains with :func:`astrobayes._training.fit` on a validation split made by
:func:`astrobayes._training.split_validation`; :class:`SBITrainingConfig` is the shared
:class:`~astrobayes._training.TrainingConfig` with the defaults of the ``sbi`` package
(Adam at ``5e-4``, batches of 200, 10% held out, patience 20, at most 500 epochs, gradient
norm clipped at 5). The returned :class:`~astrobayes._training.TrainingInfo` carries a
status: stopping at ``max_epochs`` while the validation loss still improved is a warning
that :func:`astrobayes.sbi.run_sbi` passes on to its result.

Randomness: the key of a trainer splits into the network initialisation and a fitting
key; the fitting key splits into the validation split and the key of :func:`fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_finite, check_key, check_positive_int
from astrobayes._training import LossFn, TrainingConfig, TrainingInfo, fit, split_validation
from astrobayes._types import ProgressFn
from astrobayes.sbi.embeddings import AbstractEmbedding, IdentityEmbedding
from astrobayes.sbi.estimators import (
    NLE,
    NPE,
    NRE,
    FlowConfig,
    conditional_flow,
    nle_loss,
    npe_loss,
    nre_loss,
)
from astrobayes.sbi.priors import Prior

__all__ = ["SBITrainingConfig", "TrainingInfo", "train_nle", "train_npe", "train_nre"]


@dataclass(frozen=True)
class SBITrainingConfig(TrainingConfig):
    """:class:`astrobayes._training.TrainingConfig` with the ``sbi`` package's defaults.

    Only the step size and the batch size differ from the shared defaults; every field
    (``patience``, ``max_epochs``, ``clip_max_norm``, ``validation_fraction``,
    ``weight_decay``, ``schedule``, ...) means what it means there, and the ``[training]``
    table of ``astrobayes sbi`` takes the same keys.

    Example:
        >>> config = SBITrainingConfig(max_epochs=50)
        >>> config.learning_rate, config.batch_size, config.patience
        (0.0005, 200, 20)

    """

    learning_rate: float = 5e-4
    batch_size: int = 200


def _moments(a: np.ndarray) -> tuple[Array, Array]:
    shift = a.mean(axis=0)
    scale = a.std(axis=0)
    scale = np.where(scale > 1e-8 * (1.0 + np.abs(shift)), scale, 1.0)
    return jnp.asarray(shift, jnp.result_type(float)), jnp.asarray(scale, jnp.result_type(float))


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

    u: Array
    x: Array
    u_shift: Array
    u_scale: Array
    x_shift: Array
    x_scale: Array

    def standardisers(self) -> dict[str, Array]:
        """Keyword arguments of every estimator's constructor but the networks."""
        return {
            "u_shift": self.u_shift,
            "u_scale": self.u_scale,
            "x_shift": self.x_shift,
            "x_scale": self.x_scale,
        }


def _training_set(prior: Prior, theta, x, *, flatten: bool = False) -> _TrainingSet:
    """Validate ``(theta, x)``; map them to unconstrained ``u`` and data.

    Both in the session's float type: float32, or float64 with ``jax_enable_x64``.
    """
    theta, x = _check_training_data(prior, theta, x)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    u = np.asarray(prior.to_unconstrained(jnp.asarray(theta)), dtype=float)
    u_shift, u_scale = _moments(u)
    x_shift, x_scale = _moments(x)
    return _TrainingSet(
        u=jnp.asarray(u, jnp.result_type(float)),
        x=jnp.asarray(x, jnp.result_type(float)),
        u_shift=u_shift,
        u_scale=u_scale,
        x_shift=x_shift,
        x_scale=x_scale,
    )


def _fit(
    key: PRNGKeyArray,
    model: eqx.Module,
    loss_fn: LossFn,
    data: _TrainingSet,
    config: TrainingConfig | None,
    progress_fn: ProgressFn | None,
):
    """Hold out ``config.validation_fraction`` of the pairs and run the shared loop."""
    config = SBITrainingConfig() if config is None else config
    if not isinstance(config, TrainingConfig):
        raise TypeError(
            f"training_config must be an SBITrainingConfig (or TrainingConfig); "
            f"got {type(config).__name__}"
        )
    key_split, key_train = jax.random.split(key)
    num = data.u.shape[0]
    if num < 3:
        raise ValueError(f"need at least 3 simulations to train; got {num}")
    train, validation = split_validation(key_split, (data.u, data.x), config.validation_fraction)
    return fit(key_train, model, loss_fn, train, validation, config=config, progress_fn=progress_fn)


def train_npe(
    key: PRNGKeyArray,
    prior: Prior,
    theta: Float[Array, "num_simulations dim"] | np.ndarray,
    x: Array | np.ndarray,
    *,
    embedding: AbstractEmbedding | None = None,
    flow_config: FlowConfig | None = None,
    training_config: TrainingConfig | None = None,
    progress_fn: ProgressFn | None = None,
) -> tuple[NPE, TrainingInfo]:
    """Train a neural posterior estimator (and its embedding) by maximum likelihood.

    Args:
        key: JAX PRNG key.
        prior: The prior the simulations' ``theta`` were drawn from (or a truncated
            version of it, see :mod:`astrobayes.sbi.sequential`).
        theta: Parameters, ``(num_simulations, dim)``, inside the prior support.
        x: Data, ``(num_simulations, *data_shape)``.
        embedding: Optional embedding network (default: flatten).
        flow_config: Flow architecture (default :class:`FlowConfig`).
        training_config: Optimiser settings (default :class:`SBITrainingConfig`).
        progress_fn: Called as ``progress_fn("training", epoch, max_epochs)``.

    Returns:
        ``(npe, info)``; ``info.status`` says whether training converged.

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
        ...     training_config=SBITrainingConfig(max_epochs=2))
        >>> npe.sample(jax.random.key(2), sims.x[0], 10).shape, info.status.name
        ((10, 1), 'MAX_EPOCHS')

    """
    check_key(key)
    data = _training_set(prior, theta, x)
    key_flow, _, key_fit = jax.random.split(key, 3)  # middle key: kept for reproducibility
    if embedding is None:
        embedding = IdentityEmbedding(data.x.shape[1:])
    flow = conditional_flow(key_flow, prior.dim, embedding.out_size, flow_config or FlowConfig())
    model = NPE(flow=flow, embedding=embedding, prior=prior, **data.standardisers())
    return _fit(key_fit, model, npe_loss, data, training_config, progress_fn)


def train_nle(
    key: PRNGKeyArray,
    prior: Prior,
    theta: Float[Array, "num_simulations dim"] | np.ndarray,
    x: Array | np.ndarray,
    *,
    flow_config: FlowConfig | None = None,
    training_config: TrainingConfig | None = None,
    initial: NLE | None = None,
    progress_fn: ProgressFn | None = None,
) -> tuple[NLE, TrainingInfo]:
    """Train a neural likelihood estimator ``q(x | theta)`` on flattened data.

    Args:
        key: JAX PRNG key.
        prior: Prior (defines the unconstrained parametrisation and the posterior).
        theta: Parameters, ``(num_simulations, dim)``; any proposal is valid for NLE.
        x: Data, ``(num_simulations, *data_shape)`` (flattened; keep it low-dimensional
            or compress it first).
        flow_config: Flow architecture (ignored with ``initial``).
        training_config: Optimiser settings (default :class:`SBITrainingConfig`).
        initial: A trained NLE to continue training from (sequential rounds): its flow
            and its standardisation are kept, so later rounds converge in fewer epochs.
        progress_fn: Called as ``progress_fn("training", epoch, max_epochs)``.

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
        flow = conditional_flow(key_flow, data_size, prior.dim, flow_config or FlowConfig())
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
    return _fit(key_fit, model, nle_loss, data, training_config, progress_fn)


def train_nre(
    key: PRNGKeyArray,
    prior: Prior,
    theta: Float[Array, "num_simulations dim"] | np.ndarray,
    x: Array | np.ndarray,
    *,
    embedding: AbstractEmbedding | None = None,
    flow_config: FlowConfig | None = None,
    training_config: TrainingConfig | None = None,
    num_contrastive: int = 1,
    progress_fn: ProgressFn | None = None,
) -> tuple[NRE, TrainingInfo]:
    """Train a neural ratio estimator: a classifier of joint vs. marginal pairs.

    The loss is :func:`~astrobayes.sbi.estimators.nre_loss` (balanced binary
    cross-entropy; marginal pairs rolled inside each batch).

    Args:
        key: JAX PRNG key.
        prior: Prior.
        theta: Parameters, ``(num_simulations, dim)``.
        x: Data, ``(num_simulations, *data_shape)``.
        embedding: Optional embedding network.
        flow_config: Uses ``classifier_width`` and ``classifier_depth``.
        training_config: Optimiser settings (default :class:`SBITrainingConfig`).
        num_contrastive: Marginal pairs per joint pair.
        progress_fn: Called as ``progress_fn("training", epoch, max_epochs)``.

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
    flow_config = flow_config or FlowConfig()
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

    def loss_fn(model: NRE, batch, key):
        return nre_loss(model, batch, key, num_contrastive)

    return _fit(key_fit, model, loss_fn, data, training_config, progress_fn)
