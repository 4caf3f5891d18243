"""Importance targets for the learned harmonic mean: normalizing flows and a Gaussian.

A target is fitted on *whitened* draws ``z = L^{-1} (theta - mu)`` (``mu`` and ``L L^T``
the weighted mean and covariance of the training draws), so that a posterior close to
Gaussian needs only a near-identity flow. The density in parameter space is
``log phi(theta) = log phi_z(z) - log|det L|``.

Temperature convention (one for every target): the temperature ``T`` scales the
*variance* of the standard-normal base distribution, ``u ~ N(0, T I)``. ``T < 1``
concentrates the target so that its tails stay inside the posterior's.

References:
    McEwen et al. (2021), arXiv:2111.12720; Polanska et al. (2024), arXiv:2405.05969;
    Durkan et al. (2019), arXiv:1906.04032 (rational-quadratic splines); Dinh et al.
    (2017), arXiv:1605.08803 (RealNVP); Papamakarios et al. (2017), arXiv:1705.07057 (MAF).

"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._training import TrainingConfig, fit
from astrobayes._types import ProgressFn

__all__ = [
    "FittedTarget",
    "GaussianTarget",
    "RQSplineFlow",
    "RealNVPFlow",
    "TargetFamily",
    "Whitening",
    "fit_whitening",
    "log_density_from_terms",
]


class Whitening(eqx.Module):
    """Affine map to whitened coordinates, ``z = L^{-1}(theta - mu)``."""

    mean: Float[Array, " dim"]
    cholesky: Float[Array, "dim dim"]
    log_det: Float[Array, ""]

    def __call__(self, theta: Float[Array, "n dim"]) -> Float[Array, "n dim"]:
        """Whiten draws."""
        centred = (theta - self.mean).T
        return jax.scipy.linalg.solve_triangular(self.cholesky, centred, lower=True).T


def fit_whitening(samples: np.ndarray, weights: np.ndarray) -> Whitening:
    """Weighted mean and Cholesky factor of the weighted covariance of ``samples``."""
    w = weights / weights.sum()
    mean = np.sum(w[:, None] * samples, axis=0)
    centred = samples - mean
    cov = (w[:, None] * centred).T @ centred
    scale = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    corr = cov / np.outer(scale, scale)
    corr += 1e-10 * np.eye(len(scale))
    chol = np.linalg.cholesky(corr) * scale[:, None]
    log_det = np.sum(np.log(np.diag(chol)))
    return Whitening(jnp.asarray(mean), jnp.asarray(chol), jnp.asarray(log_det))


class FittedTarget(eqx.Module):
    """A fitted, normalised importance target in parameter space.

    Attributes:
        whitening: Map to whitened coordinates.
        bijection: Map from whitened coordinates to the base space (``None`` for the
            Gaussian target, i.e. the identity).
        kind: Name of the target family.

    """

    whitening: Whitening
    bijection: eqx.Module | None
    kind: str = eqx.field(static=True)

    def base_terms(
        self, theta: Float[Array, "n dim"]
    ) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
        """``(|u|^2, log|det du/dtheta|)`` with ``u`` the base-space image of ``theta``.

        The log density at any temperature follows without re-evaluating the flow:
        ``log phi_T = -|u|^2 / (2 T) - (dim / 2) log(2 pi T) + log|det du/dtheta|``.
        """
        z = self.whitening(theta)
        if self.bijection is None:
            u, log_det = z, jnp.zeros(z.shape[0])
        else:
            u, log_det = jax.vmap(self.bijection.inverse_and_log_det)(z)
        return jnp.sum(u**2, axis=-1), log_det - self.whitening.log_det

    def log_prob(self, theta: Float[Array, "n dim"], temperature: float) -> Float[Array, " n"]:
        """Log density of the target concentrated by ``temperature`` (base variance ``T``)."""
        squared_norm, log_det = self.base_terms(theta)
        return log_density_from_terms(squared_norm, log_det, temperature, theta.shape[-1])

    def sample(self, key: PRNGKeyArray, temperature: float, num: int) -> Float[Array, "num dim"]:
        """Draw ``num`` samples from the target concentrated by ``temperature``."""
        dim = self.whitening.mean.shape[0]
        u = jnp.sqrt(temperature) * jax.random.normal(key, (num, dim))
        z = u if self.bijection is None else jax.vmap(self.bijection.transform)(u)
        return self.whitening.mean + z @ self.whitening.cholesky.T


def log_density_from_terms(squared_norm, log_det, temperature, dim: int):
    """Target log density from :meth:`FittedTarget.base_terms` at a given temperature."""
    return (
        -0.5 * squared_norm / temperature - 0.5 * dim * np.log(2.0 * np.pi * temperature) + log_det
    )


class TargetFamily(abc.ABC):
    """Strategy object: how to fit an importance target to whitened training draws."""

    @abc.abstractmethod
    def fit(
        self,
        key: PRNGKeyArray,
        z_train: np.ndarray,
        w_train: np.ndarray,
        z_valid: np.ndarray,
        w_valid: np.ndarray,
        progress_fn: ProgressFn | None,
    ) -> tuple[eqx.Module | None, np.ndarray]:
        """Return ``(bijection or None, validation losses per epoch)``."""

    @property
    def name(self) -> str:
        """Short name of the family."""
        return type(self).__name__


@dataclass(frozen=True)
class GaussianTarget(TargetFamily):
    """The classical option: a Gaussian with the posterior's mean and covariance.

    Cheap and exact for Gaussian posteriors; too crude for curved or multimodal ones
    (which the diagnostics then report through a low effective sample size).
    """

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):  # noqa: D102
        return None, np.zeros(0)


@dataclass(frozen=True)
class _FlowFamily(TargetFamily):
    """Shared training of flowjax flows by weighted maximum likelihood."""

    num_layers: int = 2
    width: int = 64
    depth: int = 1
    learning_rate: float = 2e-3
    batch_size: int = 512
    max_epochs: int = 60
    patience: int = 6
    weight_decay: float = 1e-5

    def _build(self, key: PRNGKeyArray, dim: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def training_config(self) -> TrainingConfig:
        """The :class:`~astrobayes._training.TrainingConfig` of the flow's training.

        Clip the global gradient norm at 5, AdamW (``weight_decay``) with a cosine decay
        to 5% of ``learning_rate`` over all steps, early stopping after ``patience``
        epochs without a validation improvement larger than ``1e-4``.
        """
        return TrainingConfig(
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            min_improvement=1e-4,
            clip_max_norm=5.0,
            weight_decay=self.weight_decay,
            schedule="cosine",
            cosine_final_fraction=0.05,
        )

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):  # noqa: D102
        from flowjax.distributions import Normal

        init_key, train_key = jax.random.split(key)
        dim = z_train.shape[1]
        flow = self._build(init_key, dim, Normal(jnp.zeros(dim)))
        flow = _zero_final_layers(flow)
        train = (
            jnp.asarray(z_train, jnp.float32),
            jnp.asarray(w_train / w_train.mean(), jnp.float32),
        )
        validation = (
            jnp.asarray(z_valid, jnp.float32),
            jnp.asarray(w_valid / w_valid.sum(), jnp.float32),
        )
        trained, info = fit(
            train_key,
            flow,
            _weighted_negative_log_likelihood,
            train,
            validation,
            config=self.training_config(),
            is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
            progress_fn=progress_fn,
        )
        return paramax.unwrap(trained).bijection, info.validation_losses


def _weighted_negative_log_likelihood(flow, batch, key):
    """``-sum(w log q(x)) / sum(w)`` of a (wrapped) flowjax flow on ``batch = (x, w)``."""
    del key
    x, w = batch
    model = paramax.unwrap(flow)
    return -jnp.sum(w * model.log_prob(x)) / jnp.sum(w)


def _zero_final_layers(flow, scale: float = 1e-2):
    """Shrink the last layer of every conditioner so that the flow starts near identity.

    Whitened draws of a near-Gaussian posterior are then well described from the first
    step, and training only learns the departures.
    """

    def is_mlp(node):
        return isinstance(node, eqx.nn.MLP)

    def shrink(node):
        if not is_mlp(node):
            return node
        return eqx.tree_at(
            lambda mlp: mlp.layers[-1],
            node,
            replace_fn=lambda layer: jax.tree_util.tree_map(
                lambda x: x * scale if eqx.is_inexact_array(x) else x, layer
            ),
        )

    return jax.tree_util.tree_map(shrink, flow, is_leaf=is_mlp)


@dataclass(frozen=True)
class RQSplineFlow(_FlowFamily):
    """Masked autoregressive flow with rational-quadratic spline transformers (default).

    Attributes:
        knots: Spline knots per dimension.
        interval: Spline interval ``[-interval, interval]`` in whitened units; the map
            is the identity outside, so the tails stay Gaussian (variance ``T``).

    """

    knots: int = 8
    interval: float = 5.0

    def _build(self, key, dim, base):
        from astrobayes._flows import DenseRationalQuadraticSpline, masked_autoregressive_flow

        return masked_autoregressive_flow(
            key,
            base_dist=base,
            transformer=DenseRationalQuadraticSpline(knots=self.knots, interval=self.interval),
            flow_layers=self.num_layers,
            nn_width=max(self.width, 2 * dim),
            nn_depth=self.depth,
        )


@dataclass(frozen=True)
class RealNVPFlow(_FlowFamily):
    """Coupling flow with affine transformers (RealNVP-style)."""

    def _build(self, key, dim, base):
        from flowjax.bijections import Affine
        from flowjax.flows import coupling_flow

        return coupling_flow(
            key,
            base_dist=base,
            transformer=Affine(),
            flow_layers=self.num_layers,
            nn_width=max(self.width, 2 * dim),
            nn_depth=self.depth,
        )
