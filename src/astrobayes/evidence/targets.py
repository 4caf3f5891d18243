"""Importance targets for the learned harmonic mean: flows, a Gaussian mixture, a Gaussian.

A target is fitted on *whitened* draws ``z = L^{-1} (theta - mu)`` (``mu`` and ``L L^T``
the weighted mean and covariance of the training draws), so that a posterior close to
Gaussian needs only a near-identity flow. The density in parameter space is
``log phi(theta) = log phi_z(z) - log|det L|``.

Temperature convention (one for every target): the temperature ``T`` scales the
*variance* of the standard-normal base distribution, ``u ~ N(0, T I)``. ``T < 1``
concentrates the target so that its tails stay inside the posterior's. For the Gaussian
mixture the same ``T`` scales every component's covariance.

References:
    McEwen et al. (2021), arXiv:2111.12720; Polanska et al. (2024), arXiv:2405.05969;
    Polanska et al. (2023), arXiv:2307.00048 (learned harmonic mean with mixtures and
    flows); Durkan et al. (2019), arXiv:1906.04032 (rational-quadratic splines); Dinh et al.
    (2017), arXiv:1605.08803 (RealNVP); Papamakarios et al. (2017), arXiv:1705.07057 (MAF).

"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import paramax
from jaxtyping import Array, Float, PRNGKeyArray
from scipy import special

from astrobayes._checks import check_positive_int
from astrobayes._flows import shrink_final_layers
from astrobayes._training import TrainingConfig, fit
from astrobayes._types import ProgressFn, parameter_dtype
from astrobayes.compilation import (
    RUN_ONCE_COMPILER_OPTIONS,
    SMALL_NETWORK_MAX_DIM,
    TINY_NETWORK_MAX_DIM,
    compiled_with_options,
    network_compiler_options,
)
from astrobayes.mixtures import GaussianMixture, fit_em, mixture_log_density

__all__ = [
    "FittedTarget",
    "GaussianMixtureTarget",
    "GaussianTarget",
    "PretrainedFlowTarget",
    "RQSplineFlow",
    "RealNVPFlow",
    "TargetFamily",
    "Whitening",
    "fit_whitening",
    "log_density_from_terms",
    "target_terms",
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
            Gaussian target, i.e. the identity), or, for
            :class:`GaussianMixtureTarget`, the :class:`~astrobayes.mixtures.GaussianMixture`
            in whitened coordinates (each component is then its own affine map).
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
        For a mixture both terms have a column per component, ``u_k = L_k^{-1}(z - mu_k)``
        and ``log w_k - log|L_k|``, and ``log phi_T`` is their log-sum-exp.
        """
        z = self.whitening(theta)
        if isinstance(self.bijection, GaussianMixture):
            mixture = self.bijection
            u = jax.vmap(
                lambda chol, mean: (
                    jax.scipy.linalg.solve_triangular(chol, (z - mean).T, lower=True).T
                ),
                out_axes=1,
            )(mixture.cholesky, mixture.means)
            diag = jnp.diagonal(mixture.cholesky, axis1=1, axis2=2)
            safe = jnp.where(mixture.weights > 0, mixture.weights, 1.0)
            log_w = jnp.where(mixture.weights > 0, jnp.log(safe), -jnp.inf)
            log_det = log_w - jnp.sum(jnp.log(diag), axis=1) - self.whitening.log_det
            return jnp.sum(u**2, axis=-1), jnp.broadcast_to(log_det, u.shape[:2])
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
        return self.sample_with_base(key, temperature, num)[0]

    def sample_with_base(
        self, key: PRNGKeyArray, temperature: float, num: int
    ) -> tuple[Float[Array, "num dim"], Float[Array, " num"]]:
        """Draws as :meth:`sample`, and the squared norm ``|u|^2`` of each one's base point.

        ``u`` (variance ``temperature``) is what :meth:`base_terms` recovers from the draw
        through the inverse map (for flows: the first of its terms); the two agree when
        the map is numerically invertible.
        """
        dim = self.whitening.mean.shape[0]
        key_component, key_normal = jax.random.split(key)
        u = jnp.sqrt(temperature) * jax.random.normal(key_normal, (num, dim))
        if isinstance(self.bijection, GaussianMixture):
            mixture = self.bijection
            safe = jnp.where(mixture.weights > 0, mixture.weights, 1.0)
            logits = jnp.where(mixture.weights > 0, jnp.log(safe), -jnp.inf)
            k = jax.random.categorical(key_component, logits, shape=(num,))
            z = mixture.means[k] + jnp.einsum("nij,nj->ni", mixture.cholesky[k], u)
        elif self.bijection is None:
            z = u
        else:
            z = jax.vmap(self.bijection.transform)(u)
        squared_norm = jnp.sum(u**2, axis=-1)
        return self.whitening.mean + z @ self.whitening.cholesky.T, squared_norm


_CHUNK = 8192


def target_terms(fitted: FittedTarget, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`FittedTarget.base_terms` at ``theta``, in float64 NumPy, in fixed-size chunks.

    Every call pads to chunks of 8192 draws, so one compiled program serves every number
    of draws (the estimator's inference and validation draws, the support check's).

    Example:
        >>> import numpy as np
        >>> from astrobayes.evidence.targets import GaussianTarget, FittedTarget, fit_whitening
        >>> x = np.random.default_rng(0).normal(size=(100, 2))
        >>> fitted = FittedTarget(fit_whitening(x, np.ones(100)), None, "gaussian")
        >>> squared, log_det = target_terms(fitted, x[:3])
        >>> squared.shape, log_det.dtype
        ((3,), dtype('float64'))

    """
    num = theta.shape[0]
    if num == 0:
        return np.zeros(0), np.zeros(0)
    padded = np.concatenate([theta, np.repeat(theta[:1], (-num) % _CHUNK, axis=0)])
    squared, log_det = [], []
    program = compiled_with_options(_terms, network_compiler_options(int(theta.shape[1])))
    # float32, or the bijection's own dtype: a flow built in a float64 session (a
    # pretrained flow-MCMC proposal) must not get float32 draws (its layers' scan refuses)
    dtype = np.float32 if fitted.bijection is None else parameter_dtype(fitted.bijection)
    for lo in range(0, padded.shape[0], _CHUNK):
        chunk = np.asarray(padded[lo : lo + _CHUNK], dtype)  # cast on the host
        sq, ld = program(fitted, jnp.asarray(chunk))
        squared.append(np.asarray(sq, np.float64))
        log_det.append(np.asarray(ld, np.float64))
    return np.concatenate(squared)[:num], np.concatenate(log_det)[:num]


def _terms(fitted, theta):
    return fitted.base_terms(theta)


def log_density_from_terms(squared_norm, log_det, temperature, dim: int):
    """Target log density from :meth:`FittedTarget.base_terms` at a given temperature.

    Terms with a column per mixture component are combined by log-sum-exp (NumPy in,
    NumPy out; JAX in, JAX out).
    """
    density = (
        -0.5 * squared_norm / temperature - 0.5 * dim * np.log(2.0 * np.pi * temperature) + log_det
    )
    if np.ndim(density) < 2:
        return density
    if isinstance(density, np.ndarray):
        return special.logsumexp(density, axis=-1)
    return jax.scipy.special.logsumexp(density, axis=-1)


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

    def make_whitening(self, samples: np.ndarray, weights: np.ndarray) -> Whitening:
        """The map to whitened coordinates: by default fitted to the training draws."""
        return fit_whitening(samples, weights)

    @property
    def name(self) -> str:
        """Short name of the family."""
        return type(self).__name__


@dataclass(frozen=True, eq=False)
class PretrainedFlowTarget(TargetFamily):
    """A flow already trained on draws of this posterior, used as the target unchanged.

    Flow-enhanced MCMC trains a flow on its chains during its training loops and freezes
    it for production (:func:`astrobayes.sampling.run_flow_mcmc`); its production draws
    are independent of that flow's training, so the flow can serve directly as the
    learned harmonic mean's target with no second training (the "flow feeds the
    evidence" step of flowMC-style samplers). The flow's own standardisation
    ``theta = mean + scale * u`` is the whitening, and its bijection (standard-normal base)
    maps ``u`` to the base space, so the estimator's temperature concentrates its base
    exactly as for a target it trained itself. The training chains of ``estimate`` are
    then used only to choose the temperature.

    Attributes:
        flow: A flowjax distribution with a standard-normal base (``paramax`` wrappers
            allowed), e.g. ``FlowMCMCResult.proposal.flow``.
        mean: ``(dim,)`` standardisation offset.
        scale: ``(dim,)`` standardisation scale (positive).

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from flowjax.bijections import Affine
        >>> from flowjax.distributions import Normal, Transformed
        >>> from astrobayes.chains import Chains
        >>> from astrobayes.evidence import estimate
        >>> x = np.random.default_rng(0).normal(size=(4, 2000, 2))
        >>> chains = Chains(x, -0.5 * (x**2).sum(-1))  # z = 2 pi
        >>> flow = Transformed(Normal(jnp.zeros(2)), Affine(jnp.zeros(2), jnp.ones(2)))
        >>> target = PretrainedFlowTarget(flow, np.zeros(2), np.ones(2))
        >>> result = estimate(jax.random.key(0), chains, target=target)
        >>> bool(abs(result.log_evidence - np.log(2 * np.pi)) < 5 * result.log_evidence_std)
        True

    """

    flow: eqx.Module
    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, np.float64)
        scale = np.asarray(self.scale, np.float64)
        if mean.ndim != 1 or scale.shape != mean.shape:
            raise ValueError(
                f"mean and scale must be (dim,) arrays of one shape; got {mean.shape} and "
                f"{scale.shape}"
            )
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(np.isfinite(mean))):
            raise ValueError("scale must be finite and positive and mean finite")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)

    def make_whitening(self, samples, weights):  # noqa: D102
        if samples.shape[1] != self.mean.size:
            raise ValueError(
                f"the flow is {self.mean.size}-dimensional; the chains have {samples.shape[1]} "
                "parameters"
            )
        return Whitening(
            jnp.asarray(self.mean, jnp.float32),
            jnp.asarray(np.diag(self.scale), jnp.float32),
            jnp.asarray(np.sum(np.log(self.scale)), jnp.float32),
        )

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):  # noqa: D102
        return paramax.unwrap(self.flow).bijection, np.zeros(0)


@dataclass(frozen=True)
class GaussianTarget(TargetFamily):
    """The classical option: a Gaussian with the posterior's mean and covariance.

    Cheap and exact for Gaussian posteriors; too crude for curved or multimodal ones
    (which the diagnostics then report through a low effective sample size).
    """

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):  # noqa: D102
        return None, np.zeros(0)


@dataclass(frozen=True)
class GaussianMixtureTarget(TargetFamily):
    """A Gaussian mixture fitted by EM, for multimodal posteriors.

    A flow is one connected map of a Gaussian, so on well-separated modes it leaves thin
    bridges of mass between them, where the posterior is far smaller: the ratios
    ``phi_T / p`` then become heavy-tailed (measured on a 10-d three-mode mixture with
    exact posterior draws: Pareto ``k`` 0.58-0.60 and ln z biased by up to 6.6 of its
    reported errors; docs/probabilistic.md). Mixture components have no bridges. Every
    component's covariance is scaled by the temperature ``T``.

    The number of components is the smallest in ``1..max_components`` whose mean
    held-out log-likelihood (on the estimator's validation draws) is within
    ``selection_tolerance`` nats per draw of the best; all counts are fitted at once
    (``vmap`` over counts and ``num_inits`` initialisations), with the EM of
    :mod:`astrobayes.mixtures`.

    Attributes:
        max_components: Largest number of components tried.
        num_inits: Random EM initialisations per count (the best training likelihood wins).
        num_iterations: Cap on EM iterations.
        selection_tolerance: Nats per draw within which a smaller mixture is preferred.
        covariance_floor: Added to every whitened covariance's diagonal.

    Example:
        >>> import jax, numpy as np
        >>> from astrobayes import Chains
        >>> from astrobayes.evidence import estimate, GaussianMixtureTarget
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(4, 2000, 2)) + np.where(rng.random((4, 2000, 1)) < 0.5, -4, 4)
        >>> # two unit Gaussians at (-4,-4) and (4,4), equal weights: z = 2 pi
        >>> d2 = lambda m: ((x - m) ** 2).sum(-1)
        >>> chains = Chains(x, np.logaddexp(-0.5 * d2(-4), -0.5 * d2(4)) + np.log(0.5))
        >>> result = estimate(jax.random.key(0), chains, target=GaussianMixtureTarget(3))
        >>> bool(abs(result.log_evidence - np.log(2 * np.pi)) < 4 * result.log_evidence_std)
        True
    """

    max_components: int = 5
    num_inits: int = 3
    num_iterations: int = 300
    selection_tolerance: float = 0.01
    covariance_floor: float = 1e-6

    def __post_init__(self):
        for name in ("max_components", "num_inits", "num_iterations"):
            check_positive_int(getattr(self, name), name)
        for name in ("selection_tolerance", "covariance_floor"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")

    def fit(self, key, z_train, w_train, z_valid, w_valid, progress_fn):  # noqa: D102
        if progress_fn is not None:
            progress_fn("training", 0, 1)
        counts = jnp.arange(1, self.max_components + 1)
        mixtures, held_out = _fit_mixtures(
            key,
            jnp.asarray(z_train, jnp.float32),
            jnp.asarray(w_train / w_train.mean(), jnp.float32),
            jnp.asarray(z_valid, jnp.float32),
            jnp.asarray(w_valid / w_valid.sum(), jnp.float32),
            counts,
            num_slots=self.max_components,
            num_inits=self.num_inits,
            num_iterations=self.num_iterations,
            floor=float(self.covariance_floor),
        )
        held_out = np.asarray(held_out, np.float64)
        finite = np.where(np.isfinite(held_out), held_out, -np.inf)
        if not np.any(np.isfinite(finite)):
            return jax.tree_util.tree_map(lambda leaf: leaf[0], mixtures), np.full(1, np.nan)
        best = int(np.argmax(finite >= finite.max() - self.selection_tolerance))
        if progress_fn is not None:
            progress_fn("training", 1, 1)
        chosen = jax.tree_util.tree_map(lambda leaf: leaf[best], mixtures)
        # the chosen mixture's held-out loss (other counts may have failed harmlessly)
        return chosen, -held_out[best : best + 1]


@eqx.filter_jit
def _fit_mixtures(
    key, z, w, z_valid, w_valid, counts, *, num_slots, num_inits, num_iterations, floor
):
    """EM fits for every component count at once, and each one's held-out log-likelihood."""

    def one(count):
        mixture, _, _ = fit_em(
            jax.random.fold_in(key, count),
            z,
            w,
            count,
            num_slots=num_slots,
            num_inits=num_inits,
            num_iterations=num_iterations,
            floor=floor,
            tolerance=1e-5,
        )
        return mixture, jnp.sum(w_valid * mixture_log_density(mixture, z_valid))

    return jax.vmap(one)(counts)


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

    def training_config(self, dim: int) -> TrainingConfig:
        """The :class:`~astrobayes._training.TrainingConfig` of a ``dim``-dimensional flow.

        Clip the global gradient norm at 5, AdamW (``weight_decay``) with a cosine decay
        to 5% of ``learning_rate`` over all steps, early stopping after ``patience``
        epochs without a validation improvement larger than ``1e-4``; XLA's elemental
        CPU emitter up to 16 dimensions and LLVM's optimisation level 1 up to 4 (the
        options of :func:`astrobayes.compilation.network_compiler_options`, as for the
        flow's evaluation and sampling).
        """
        return TrainingConfig(
            cpu_emitter="elemental" if dim <= SMALL_NETWORK_MAX_DIM else "fusion",
            cpu_optimization_level=1 if dim <= TINY_NETWORK_MAX_DIM else None,
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
        init_key, train_key = jax.random.split(key)
        dim = z_train.shape[1]
        flow = self._build(init_key, dim, _standard_normal(dim))
        flow = shrink_final_layers(flow)
        # cast on the host: a cast on the device compiles a program per shape
        train = (
            jnp.asarray(np.asarray(z_train, np.float32)),
            jnp.asarray(np.asarray(w_train / w_train.mean(), np.float32)),
        )
        validation = (
            jnp.asarray(np.asarray(z_valid, np.float32)),
            jnp.asarray(np.asarray(w_valid / w_valid.sum(), np.float32)),
        )
        trained, info = fit(
            train_key,
            flow,
            _weighted_negative_log_likelihood,
            train,
            validation,
            config=self.training_config(dim),
            is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
            progress_fn=progress_fn,
        )
        return _unwrapped_bijection(trained), info.validation_losses


def _standard_normal(dim: int):
    """The flows' standard normal base (flowjax) in ``dim`` dimensions, in one program.

    Built eagerly, its construction compiles ~8 single-operation programs. One instance
    per session float type (its arrays have the type of the session that made it).
    """
    return _standard_normal_in(dim, jnp.dtype(jnp.result_type(float)).name)


@functools.lru_cache(maxsize=64)
def _standard_normal_in(dim: int, float_type: str):
    from flowjax.distributions import Normal

    return eqx.filter_jit(
        lambda: Normal(jnp.zeros(dim)), compiler_options=RUN_ONCE_COMPILER_OPTIONS
    )()


@eqx.filter_jit(compiler_options=RUN_ONCE_COMPILER_OPTIONS)
def _unwrapped_bijection(flow):
    """The trained flow's bijection with its ``paramax`` wrappers applied, in one program."""
    return paramax.unwrap(flow).bijection


def _weighted_negative_log_likelihood(flow, batch, key):
    """``-sum(w log q(x)) / sum(w)`` of a (wrapped) flowjax flow on ``batch = (x, w)``."""
    del key
    x, w = batch
    model = paramax.unwrap(flow)
    return -jnp.sum(w * model.log_prob(x)) / jnp.sum(w)


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
        from astrobayes._flows import (
            masked_autoregressive_flow,
            spline_transformer,
        )

        return masked_autoregressive_flow(
            key,
            base_dist=base,
            transformer=spline_transformer(self.knots, self.interval),
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
