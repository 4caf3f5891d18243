"""BNN methods as strategy objects and the one entry point :func:`fit`.

Each method is a frozen dataclass (validated in ``__post_init__``) and :func:`fit`
turns it, a network and data into a :class:`~astrobayes.bayesnn.Predictive`: every
method ends as a stack of networks whose Gaussian outputs form an equal-weight mixture.
Every gradient training goes through :func:`astrobayes._training.fit`; the samplers are
blackjax's SGLD kernel and the house NUTS driver :func:`astrobayes.sampling.run_nuts`.

Methods (all on the heteroscedastic Gaussian likelihood of
:class:`~astrobayes.bayesnn.HeteroscedasticMLP`, in standardised units):

* :class:`DeepEnsemble`: independently initialised networks trained on the Gaussian
  negative log likelihood (Lakshminarayanan, Pritzel & Blundell 2017, arXiv:1612.01474).
* :class:`MCDropout`: one network trained with dropout; the predictive is a set of
  dropout masks at test time (Gal & Ghahramani 2016, arXiv:1506.02142).
* :class:`BayesByBackprop`: a mean-field Gaussian over all weights, trained on the
  reparameterised negative ELBO with the Gaussian prior's KL in closed form (Blundell
  et al. 2015, arXiv:1505.05424).
* :class:`LastLayerLaplace`: the MAP network, then a Gaussian over the *last layer* with
  the generalised Gauss-Newton (Fisher) precision of the Gaussian likelihood plus the
  prior precision; the prior precision is re-chosen by the Laplace evidence on a grid
  (Daxberger et al. 2021, "Laplace Redux", arXiv:2106.14806; MacKay 1992).
* :class:`SGLD`: stochastic-gradient Langevin dynamics (Welling & Teh 2011) with
  blackjax's kernel, chains started at independent MAP networks.
* :class:`NUTS`: the reference, full-batch NUTS on all weights (for small networks)
  through :func:`astrobayes.sampling.run_nuts`, chains started at independent MAP
  networks. Its convergence is judged in function space (split R-hat of the predictive
  means at the training inputs), because weight space has exact symmetries (hidden-unit
  permutations and sign flips) that make weight R-hat meaningless; weight R-hat is
  reported in the diagnostics.

Status: training that stops at ``max_epochs`` gives ``TRAINING_MAX_EPOCHS`` (warning),
function-space R-hat > 1.01 (SGLD, NUTS) ``HIGH_RHAT`` (warning).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from astrobayes._training import TrainingConfig
    >>> x = jnp.linspace(-1, 1, 64)[:, None]; y = jnp.sin(3 * x[:, 0])
    >>> net = HeteroscedasticMLP(1, width=8, key=jax.random.key(0))
    >>> method = DeepEnsemble(num_members=2, training=TrainingConfig(max_epochs=5))
    >>> pred = fit(jax.random.key(1), method, net, (x, y))
    >>> pred(x).means.shape, pred.status.name
    ((64, 2), 'TRAINING_MAX_EPOCHS')

"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PRNGKeyArray

from astrobayes._checks import as_float_array, check_finite, check_key, check_positive_int
from astrobayes._status import by_severity, check
from astrobayes._training import TrainingConfig, TrainingInfo, TrainingStatus, split_validation
from astrobayes._training import fit as train
from astrobayes._types import ProgressFn
from astrobayes.bayesnn.network import MIN_SCALE, HeteroscedasticMLP, gaussian_nll
from astrobayes.bayesnn.predictive import BNNStatus, Predictive
from astrobayes.diagnostics import effective_sample_size, split_rhat
from astrobayes.sampling import NUTSConfig, run_nuts

__all__ = [
    "NUTS",
    "SGLD",
    "BayesByBackprop",
    "BNNMethod",
    "DeepEnsemble",
    "LastLayerLaplace",
    "MCDropout",
    "fit",
]

# patience 200: the heteroscedastic Gaussian NLL often sits on a plateau for > 60 epochs
# before the mean fit improves (Seitzer et al. 2022, arXiv:2203.09168); with patience 60,
# 4 of 5 ensemble members stopped there on the photo-z problem (docs/probabilistic.md)
_DEFAULT_TRAINING = TrainingConfig(
    learning_rate=2e-3, batch_size=64, max_epochs=1500, patience=200, validation_fraction=0.15
)


def _check_training(training: Any) -> None:
    if not isinstance(training, TrainingConfig):
        raise TypeError(f"training must be a TrainingConfig; got {type(training).__name__}")


def _check_positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float) and value > 0):
        raise ValueError(f"{name} must be a positive number; got {value!r}")


@dataclass(frozen=True)
class DeepEnsemble:
    """Deep ensemble (Lakshminarayanan et al. 2017, arXiv:1612.01474).

    Attributes:
        num_members: Networks trained from independent initialisations (member 0 starts
            from the network passed to :func:`fit`).
        training: Settings of :func:`astrobayes._training.fit` for each member.

    """

    num_members: int = 5
    training: TrainingConfig = _DEFAULT_TRAINING

    def __post_init__(self):
        check_positive_int(self.num_members, "num_members")
        _check_training(self.training)


@dataclass(frozen=True)
class MCDropout:
    """Monte Carlo dropout (Gal & Ghahramani 2016, arXiv:1506.02142).

    Attributes:
        rate: Dropout probability of each hidden unit (training and prediction).
        num_samples: Dropout masks drawn for the predictive.
        training: Training settings (``weight_decay`` plays the role of the prior).

    """

    rate: float = 0.1
    num_samples: int = 100
    training: TrainingConfig = _DEFAULT_TRAINING

    def __post_init__(self):
        if isinstance(self.rate, bool) or not (
            isinstance(self.rate, int | float) and 0.0 < self.rate < 1.0
        ):
            raise ValueError(f"rate must be in (0, 1); got {self.rate!r}")
        check_positive_int(self.num_samples, "num_samples")
        _check_training(self.training)


@dataclass(frozen=True)
class BayesByBackprop:
    """Mean-field Gaussian variational posterior (Blundell et al. 2015, arXiv:1505.05424).

    Attributes:
        prior_scale: Standard deviation of the ``N(0, prior_scale**2)`` prior on every
            weight (standardised units).
        initial_scale: Initial posterior standard deviation of every weight.
        num_mc: Reparameterised draws per minibatch in the ELBO.
        num_samples: Posterior draws kept for the predictive.
        training: Training settings.

    """

    prior_scale: float = 1.0
    initial_scale: float = 1e-2
    num_mc: int = 4
    num_samples: int = 100
    training: TrainingConfig = TrainingConfig(
        learning_rate=3e-3, batch_size=64, max_epochs=1500, patience=100, validation_fraction=0.15
    )

    def __post_init__(self):
        _check_positive(self.prior_scale, "prior_scale")
        _check_positive(self.initial_scale, "initial_scale")
        check_positive_int(self.num_mc, "num_mc")
        check_positive_int(self.num_samples, "num_samples")
        _check_training(self.training)


@dataclass(frozen=True)
class LastLayerLaplace:
    """Last-layer Laplace approximation with the generalised Gauss-Newton precision.

    The MAP network is trained with the ``N(0, prior_scale**2)`` prior; the posterior over
    the output layer (mean head and scale head, blocks of ``width + 1``) is Gaussian with
    precision ``GGN + alpha I``, where the GGN uses the Gaussian likelihood's Fisher
    (``1 / sigma**2`` for the mean output, ``2 (d sigma / d s)**2 / sigma**2`` for the
    scale output ``s``). ``alpha`` maximises the Laplace evidence on a log grid
    (Daxberger et al. 2021, arXiv:2106.14806).

    Attributes:
        prior_scale: Prior standard deviation used for the MAP training.
        num_samples: Last-layer draws kept for the predictive.
        training: Training settings of the MAP network.

    """

    prior_scale: float = 1.0
    num_samples: int = 100
    training: TrainingConfig = _DEFAULT_TRAINING

    def __post_init__(self):
        _check_positive(self.prior_scale, "prior_scale")
        check_positive_int(self.num_samples, "num_samples")
        _check_training(self.training)


@dataclass(frozen=True)
class SGLD:
    """Preconditioned stochastic-gradient Langevin dynamics (Welling & Teh 2011).

    blackjax's SGLD kernel (``z += step_size * grad log p + sqrt(2 step_size) * noise``,
    minibatch gradient ``grad log prior + N / batch * sum grad log lik``) runs on
    ``z = sqrt(d) * (theta - theta_MAP)``, where ``d`` is the diagonal of the Gauss-Newton
    precision plus the prior precision at the chain's MAP start: a constant diagonal
    preconditioner, so the chain stays a valid SGLD chain. Without it the posterior is
    too stiff (largest curvature ~1e6 against ~1 for the prior-dominated directions on
    the photo-z problem) for any step size that also moves the soft directions.

    Attributes:
        prior_scale: Prior standard deviation of every weight (standardised units).
        step_size: Langevin step size in the preconditioned coordinates ``z`` (stable
            below ~2 / the largest curvature there; ~0.03 was the edge on the photo-z
            problem).
        num_chains: Chains, each started at its own MAP network.
        num_steps: Steps per chain after burn-in.
        num_burnin: Steps discarded per chain.
        batch_size: Minibatch size.
        num_samples: Draws kept for the predictive (all chains together, thinned).
        training: Settings of the MAP trainings that start the chains.

    """

    prior_scale: float = 1.0
    step_size: float = 0.01
    num_chains: int = 4
    num_steps: int = 4000
    num_burnin: int = 1000
    batch_size: int = 64
    num_samples: int = 100
    training: TrainingConfig = _DEFAULT_TRAINING

    def __post_init__(self):
        _check_positive(self.prior_scale, "prior_scale")
        _check_positive(self.step_size, "step_size")
        check_positive_int(self.num_chains, "num_chains")
        check_positive_int(self.num_steps, "num_steps", minimum=4)
        check_positive_int(self.num_burnin, "num_burnin", minimum=0)
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.num_samples, "num_samples")
        _check_training(self.training)


@dataclass(frozen=True)
class NUTS:
    """Full-batch NUTS on every weight: the reference for small networks (<= ~2k weights).

    Attributes:
        prior_scale: Prior standard deviation of every weight (standardised units).
        sampling: :class:`astrobayes.sampling.NUTSConfig` (chains, warm-up, draws).
        num_samples: Draws kept for the predictive (all chains together, thinned).
        max_parameters: Refuse networks with more weights than this.
        training: Settings of the MAP trainings that start the chains.

    """

    prior_scale: float = 1.0
    sampling: NUTSConfig = field(
        default_factory=lambda: NUTSConfig(num_chains=4, num_warmup=500, num_samples=500)
    )
    num_samples: int = 200
    max_parameters: int = 2000
    training: TrainingConfig = _DEFAULT_TRAINING

    def __post_init__(self):
        _check_positive(self.prior_scale, "prior_scale")
        if not isinstance(self.sampling, NUTSConfig):
            raise TypeError(f"sampling must be a NUTSConfig; got {type(self.sampling).__name__}")
        check_positive_int(self.num_samples, "num_samples")
        check_positive_int(self.max_parameters, "max_parameters")
        _check_training(self.training)


BNNMethod = DeepEnsemble | MCDropout | BayesByBackprop | LastLayerLaplace | SGLD | NUTS
"""Any of the method strategies."""


# ---------------------------------------------------------------------------- helpers


def _check_data(data: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, tuple) or len(data) != 2:
        raise TypeError(
            f"data must be a tuple (inputs, targets); got {type(data).__name__}"
            + (f" of length {len(data)}" if isinstance(data, tuple) else "")
        )
    x = as_float_array(data[0], "data inputs", ndim=2)
    y = as_float_array(data[1], "data targets", ndim=1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"data inputs and targets must have the same length; got {x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] < 8:
        raise ValueError(f"data must hold at least 8 points; got {x.shape[0]}")
    check_finite(x, "data inputs")
    check_finite(y, "data targets")
    return x, y


def _nll_loss(net, batch, key):
    x, y = batch
    mean, scale = jax.vmap(net)(x)
    return jnp.mean(gaussian_nll(mean, scale, y))


def _dropout_loss(net, batch, key):
    x, y = batch
    keys = jax.random.split(key, x.shape[0])
    mean, scale = jax.vmap(lambda xi, ki: net(xi, key=ki))(x, keys)
    return jnp.mean(gaussian_nll(mean, scale, y))


@functools.lru_cache(maxsize=32)
def _map_loss(prior_scale: float, num_train: int):
    # cached: the same loss object lets _training.fit reuse its compiled epoch
    def loss(net, batch, key):
        flat = ravel_pytree(eqx.filter(net, eqx.is_inexact_array))[0]
        penalty = 0.5 * jnp.sum(flat**2) / prior_scale**2 / num_train
        return _nll_loss(net, batch, key) + penalty

    return loss


def _reinitialise(net: HeteroscedasticMLP, key: PRNGKeyArray) -> HeteroscedasticMLP:
    return HeteroscedasticMLP(
        net.layers[0].in_features,
        width=net.layers[0].out_features,
        depth=len(net.layers) - 1,
        dropout_rate=net.dropout_rate,
        key=key,
    )


def _stack(nets: list) -> Any:
    params = [eqx.filter(n, eqx.is_array) for n in nets]
    static = eqx.partition(nets[0], eqx.is_array)[1]
    return eqx.combine(jax.tree.map(lambda *a: jnp.stack(a), *params), static)


def _training_statuses(infos: list[TrainingInfo]) -> list[BNNStatus]:
    out = []
    for info in infos:
        if info.status is TrainingStatus.NON_FINITE:
            out.append(BNNStatus.TRAINING_NON_FINITE)
        elif info.status is TrainingStatus.MAX_EPOCHS:
            out.append(BNNStatus.TRAINING_MAX_EPOCHS)
    return out


def _training_diagnostics(infos: list[TrainingInfo]) -> dict:
    return {
        "num_epochs": [int(i.num_epochs) for i in infos],
        "best_validation_loss": [float(np.min(i.validation_losses)) for i in infos],
        "training_status": [i.status.name for i in infos],
    }


def _train_maps(key, net, train_data, valid_data, training, loss, num, progress_fn):
    nets, infos = [], []
    for i in range(num):
        k_init, k_fit = jax.random.split(jax.random.fold_in(key, i))
        start = net if i == 0 else _reinitialise(net, k_init)
        fitted, info = train(
            k_fit, start, loss, train_data, valid_data, config=training, progress_fn=progress_fn
        )
        nets.append(fitted)
        infos.append(info)
    return nets, infos


def _function_rhat(draw_means: np.ndarray) -> float:
    """Max split R-hat of predictive means, ``(num_chains, num_draws, num_points)``."""
    rhat = split_rhat(draw_means)
    finite = rhat[np.isfinite(rhat)]
    return float(finite.max()) if finite.size else float("nan")


def _thin(draws: np.ndarray, num: int) -> np.ndarray:
    """Keep ``num`` draws of ``(num_chains, num_draws, dim)`` evenly, chains pooled."""
    flat = draws.reshape(-1, draws.shape[-1])
    index = np.linspace(0, flat.shape[0] - 1, min(num, flat.shape[0])).round().astype(int)
    return flat[index]


# ------------------------------------------------------------------------ the methods


def _fit_ensemble(key, method, net, train_data, valid_data, progress_fn):
    nets, infos = _train_maps(
        key,
        net,
        train_data,
        valid_data,
        method.training,
        _nll_loss,
        method.num_members,
        progress_fn,
    )
    return _stack(nets), _training_statuses(infos), _training_diagnostics(infos)


def _fit_dropout(key, method, net, train_data, valid_data, progress_fn):
    k_init, k_fit, k_masks = jax.random.split(key, 3)
    if net.dropout_rate != method.rate:
        net = HeteroscedasticMLP(
            net.layers[0].in_features,
            width=net.layers[0].out_features,
            depth=len(net.layers) - 1,
            dropout_rate=method.rate,
            key=k_init,
        )
    fitted, info = train(
        k_fit, net, _dropout_loss, train_data, valid_data, config=method.training,
        progress_fn=progress_fn,
    )  # fmt: skip
    masks = jax.random.split(k_masks, method.num_samples)
    nets = [fitted.fold_dropout(k) for k in masks]
    return _stack(nets), _training_statuses([info]), _training_diagnostics([info])


class _MeanField(eqx.Module):
    mean: Array
    raw_scale: Array

    def scale(self):
        return jax.nn.softplus(self.raw_scale)


def _fit_bbb(key, method, net, train_data, valid_data, progress_fn):
    params, static = eqx.partition(net, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    num_train = train_data[0].shape[0]
    prior_var = method.prior_scale**2
    q = _MeanField(
        mean=flat,
        raw_scale=jnp.full_like(flat, float(np.log(np.expm1(method.initial_scale)))),
    )

    def loss(q, batch, key):
        eps = jax.random.normal(key, (method.num_mc, flat.size), dtype=flat.dtype)
        scale = q.scale()

        def nll(e):
            return _nll_loss(eqx.combine(unravel(q.mean + scale * e), static), batch, None)

        expected_nll = jnp.mean(jax.vmap(nll)(eps))
        kl = 0.5 * jnp.sum(
            (scale**2 + q.mean**2) / prior_var - 1.0 - 2.0 * jnp.log(scale) + np.log(prior_var)
        )
        return expected_nll + kl / num_train

    fitted, info = train(
        key, q, loss, train_data, valid_data, config=method.training, progress_fn=progress_fn
    )
    eps = jax.random.normal(jax.random.fold_in(key, 7), (method.num_samples, flat.size))
    draws = fitted.mean + fitted.scale() * eps
    nets = eqx.combine(jax.vmap(unravel)(draws), static)
    diagnostics = _training_diagnostics([info])
    diagnostics["mean_posterior_scale"] = float(jnp.mean(fitted.scale()))
    return nets, _training_statuses([info]), diagnostics


def _fit_laplace(key, method, net, train_data, valid_data, progress_fn):
    num_train = train_data[0].shape[0]
    loss = _map_loss(method.prior_scale, num_train)
    (map_net,), infos = _train_maps(
        key, net, train_data, valid_data, method.training, loss, 1, progress_fn
    )
    x = jnp.concatenate([train_data[0], valid_data[0]])
    phi = jax.vmap(map_net.features)(x)
    phi1 = jnp.concatenate([phi, jnp.ones((phi.shape[0], 1), phi.dtype)], axis=1)
    last = map_net.layers[-1]
    out = phi @ last.weight.T + last.bias
    sigma = jax.nn.softplus(out[:, 1]) + MIN_SCALE
    dsigma = jax.nn.sigmoid(out[:, 1])
    fisher = (1.0 / sigma**2, 2.0 * dsigma**2 / sigma**2)
    w_star = (
        jnp.concatenate([last.weight[0], last.bias[:1]]),
        jnp.concatenate([last.weight[1], last.bias[1:]]),
    )
    phi64 = np.asarray(phi1, dtype=np.float64)
    ggn = [(phi64 * np.asarray(f, dtype=np.float64)[:, None]).T @ phi64 for f in fisher]
    dim = phi1.shape[1]
    grid = np.logspace(-4, 4, 81)

    def log_evidence(alpha):
        total = 0.0
        for g, w in zip(ggn, w_star, strict=True):
            sign, logdet = np.linalg.slogdet(g + alpha * np.eye(dim))
            total += -0.5 * alpha * float(np.sum(np.asarray(w) ** 2)) + 0.5 * dim * np.log(alpha)
            total += -0.5 * logdet
        return total

    evidences = np.array([log_evidence(a) for a in grid])
    alpha = float(grid[int(np.argmax(evidences))])
    k_draw = jax.random.fold_in(key, 11)
    heads = []
    for h, (g, w) in enumerate(zip(ggn, w_star, strict=True)):
        # precision = L L^T; a draw is w* + L^-T eps
        chol = np.linalg.cholesky(g + alpha * np.eye(dim))
        eps = np.asarray(
            jax.random.normal(jax.random.fold_in(k_draw, h), (dim, method.num_samples))
        )
        offsets = scipy.linalg.solve_triangular(chol.T, eps, lower=False).T
        heads.append(np.asarray(w, dtype=np.float64)[None, :] + offsets)
    weights = np.stack([heads[0][:, :-1], heads[1][:, :-1]], axis=1)  # (S, 2, width)
    biases = np.stack([heads[0][:, -1], heads[1][:, -1]], axis=1)  # (S, 2)
    stacked = _stack([map_net] * method.num_samples)
    dtype = last.weight.dtype
    stacked = eqx.tree_at(
        lambda n: (n.layers[-1].weight, n.layers[-1].bias),
        stacked,
        (jnp.asarray(weights, dtype), jnp.asarray(biases, dtype)),
    )
    diagnostics = _training_diagnostics(infos)
    diagnostics["prior_precision"] = alpha
    diagnostics["prior_precision_at_grid_edge"] = bool(alpha in (grid[0], grid[-1]))
    return stacked, _training_statuses(infos), diagnostics


def _flat_posterior(net, x, y, prior_scale):
    params, static = eqx.partition(net, eqx.is_inexact_array)
    _, unravel = ravel_pytree(params)

    def log_likelihood_point(theta, point):
        xi, yi = point
        mean, scale = eqx.combine(unravel(theta), static)(xi)
        return -gaussian_nll(mean, scale, yi)

    def log_prior(theta):
        return -0.5 * jnp.sum(theta**2) / prior_scale**2

    def logdensity(theta):
        mean, scale = jax.vmap(eqx.combine(unravel(theta), static))(x)
        return log_prior(theta) - jnp.sum(gaussian_nll(mean, scale, y))

    return unravel, static, log_prior, log_likelihood_point, logdensity


def _draw_means(unravel, static, draws, x):
    def one(theta):
        return jax.vmap(eqx.combine(unravel(theta), static))(x)[0]

    flat = draws.reshape(-1, draws.shape[-1])
    means = jax.lax.map(one, jnp.asarray(flat), batch_size=64)
    return np.asarray(means).reshape(*draws.shape[:2], x.shape[0])


def _mcmc_starts(key, method, net, train_data, valid_data, num_chains, progress_fn):
    num_train = train_data[0].shape[0]
    loss = _map_loss(method.prior_scale, num_train)
    nets, infos = _train_maps(
        key, net, train_data, valid_data, method.training, loss, num_chains, progress_fn
    )
    starts = jnp.stack([ravel_pytree(eqx.filter(n, eqx.is_inexact_array))[0] for n in nets])
    return starts, infos


def _fisher_diagonal(unravel, static, theta, x, prior_scale):
    """Diagonal of the Gauss-Newton (Fisher) precision plus the prior precision."""

    def out(th, xi):
        return eqx.combine(unravel(th), static)(xi)

    def one(xi):
        jac_mean, jac_scale = jax.jacfwd(out)(theta, xi)
        _, scale = out(theta, xi)
        return (jac_mean**2 + 2.0 * jac_scale**2) / scale**2

    return jnp.sum(jax.lax.map(one, x, batch_size=128), axis=0) + 1.0 / prior_scale**2


def _fit_sgld(key, method, net, train_data, valid_data, progress_fn):
    import blackjax

    k_start, k_run = jax.random.split(key)
    x = jnp.concatenate([train_data[0], valid_data[0]])
    y = jnp.concatenate([train_data[1], valid_data[1]])
    num = x.shape[0]
    starts, infos = _mcmc_starts(
        k_start, method, net, train_data, valid_data, method.num_chains, progress_fn
    )
    unravel, static, log_prior, log_lik, _ = _flat_posterior(net, x, y, method.prior_scale)
    # constant diagonal preconditioner per chain, as a change of variables
    # theta = start + z / sqrt(fisher diagonal at the start): blackjax's SGLD runs on z
    precision = jnp.stack(
        [_fisher_diagonal(unravel, static, s, x, method.prior_scale) for s in starts]
    )
    scales = 1.0 / jnp.sqrt(precision)
    batch = min(method.batch_size, num)
    total = method.num_burnin + method.num_steps
    thin = max(1, method.num_steps // max(1, -(-method.num_samples // method.num_chains)))

    def run_chain(k, theta0, scale):
        def prior_z(z):
            return log_prior(theta0 + scale * z)

        def lik_z(z, point):
            return log_lik(theta0 + scale * z, point)

        sgld = blackjax.sgld(blackjax.sgmcmc.gradients.grad_estimator(prior_z, lik_z, num))

        def step(z, k):
            k_batch, k_step = jax.random.split(k)
            index = jax.random.randint(k_batch, (batch,), 0, num)
            z = sgld.step(k_step, z, (x[index], y[index]), method.step_size)
            return z, z

        _, trace = jax.lax.scan(step, jnp.zeros_like(theta0), jax.random.split(k, total))
        return theta0 + scale * trace[method.num_burnin :][thin - 1 :: thin]

    draws = np.asarray(
        jax.jit(jax.vmap(run_chain))(jax.random.split(k_run, method.num_chains), starts, scales)
    )
    statuses = _training_statuses(infos)
    diagnostics = _training_diagnostics(infos)
    if not np.all(np.isfinite(draws)):
        statuses.append(BNNStatus.NON_FINITE_DRAWS)
        kept = _thin(np.nan_to_num(draws), method.num_samples)
    else:
        means = _draw_means(unravel, static, draws, x[: min(200, num)])
        rhat = _function_rhat(means)
        diagnostics["function_rhat_max"] = rhat
        diagnostics["function_ess_min"] = float(np.min(effective_sample_size(means)))
        if method.num_chains > 1 and np.isfinite(rhat) and rhat > 1.01:
            statuses.append(BNNStatus.HIGH_RHAT)
        kept = _thin(draws, method.num_samples)
    nets = eqx.combine(jax.vmap(unravel)(jnp.asarray(kept, dtype=starts.dtype)), static)
    return nets, statuses, diagnostics


def _fit_nuts(key, method, net, train_data, valid_data, progress_fn):
    num_parameters = net.num_parameters
    if num_parameters > method.max_parameters:
        raise ValueError(
            f"model has {num_parameters} weights; NUTS.max_parameters is {method.max_parameters} "
            "(use a smaller network or raise max_parameters)"
        )
    k_start, k_run = jax.random.split(key)
    x = jnp.concatenate([train_data[0], valid_data[0]])
    y = jnp.concatenate([train_data[1], valid_data[1]])
    num_chains = method.sampling.num_chains
    starts, infos = _mcmc_starts(
        k_start, method, net, train_data, valid_data, num_chains, progress_fn
    )
    unravel, static, _, _, logdensity = _flat_posterior(net, x, y, method.prior_scale)
    result = run_nuts(k_run, logdensity, starts, config=method.sampling, progress_fn=progress_fn)
    draws = np.asarray(result.samples)
    statuses = _training_statuses(infos)
    diagnostics = _training_diagnostics(infos)
    diagnostics.update(
        weight_rhat_max=float(np.nanmax(result.rhat)),
        sampler_status=result.status.name,
        num_divergent=int(np.sum(result.num_divergent)),
        acceptance_rate=float(np.mean(result.acceptance_rate)),
        step_size=[float(s) for s in result.step_size],
        num_parameters=num_parameters,
    )
    if not np.all(np.isfinite(draws)):
        statuses.append(BNNStatus.NON_FINITE_DRAWS)
        draws = np.nan_to_num(draws)
    means = _draw_means(unravel, static, draws, x[: min(200, x.shape[0])])
    rhat = _function_rhat(means)
    diagnostics["function_rhat_max"] = rhat
    diagnostics["function_ess_min"] = float(np.min(effective_sample_size(means)))
    if np.isfinite(rhat) and rhat > 1.01:
        statuses.append(BNNStatus.HIGH_RHAT)
    if diagnostics["num_divergent"] > 0:
        statuses.append(BNNStatus.DIVERGENT_TRANSITIONS)
    kept = _thin(draws, method.num_samples)
    nets = eqx.combine(jax.vmap(unravel)(jnp.asarray(kept, dtype=starts.dtype)), static)
    return nets, statuses, diagnostics


_FITTERS = {
    DeepEnsemble: ("deep ensemble", _fit_ensemble),
    MCDropout: ("MC dropout", _fit_dropout),
    BayesByBackprop: ("Bayes by backprop", _fit_bbb),
    LastLayerLaplace: ("last-layer Laplace", _fit_laplace),
    SGLD: ("SGLD", _fit_sgld),
    NUTS: ("NUTS", _fit_nuts),
}


def fit(
    key: PRNGKeyArray,
    method: BNNMethod,
    model: HeteroscedasticMLP,
    data: tuple,
    *,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> Predictive:
    """Fit ``model`` to ``data`` with ``method`` and return the predictive.

    Inputs and targets are standardised with the training data's mean and standard
    deviation; ``method.training.validation_fraction`` of the points is held out for
    early stopping (the samplers condition on all points).

    Args:
        key: JAX PRNG key.
        method: A strategy: :class:`DeepEnsemble`, :class:`MCDropout`,
            :class:`BayesByBackprop`, :class:`LastLayerLaplace`, :class:`SGLD` or
            :class:`NUTS`.
        model: The initial network (architecture and starting weights).
        data: ``(inputs (num, in_size), targets (num,))``.
        progress_fn: Passed to the training loop / sampler.
        throw: Raise :class:`~astrobayes.UnreliableResultError` on a failure status.

    Returns:
        :class:`~astrobayes.bayesnn.Predictive` (call it on new inputs).

    Raises:
        TypeError: If ``method``, ``model`` or ``data`` has the wrong type.
        ValueError: If ``data`` is malformed or non-finite, or the inputs do not match
            the model.

    """
    check_key(key)
    if type(method) not in _FITTERS:
        raise TypeError(
            "method must be one of DeepEnsemble, MCDropout, BayesByBackprop, LastLayerLaplace, "
            f"SGLD, NUTS; got {type(method).__name__}"
        )
    if not isinstance(model, HeteroscedasticMLP):
        raise TypeError(f"model must be a HeteroscedasticMLP; got {type(model).__name__}")
    x, y = _check_data(data)
    if x.shape[1] != model.layers[0].in_features:
        raise ValueError(
            f"data inputs have {x.shape[1]} features but model expects "
            f"{model.layers[0].in_features}"
        )
    start = time.perf_counter()
    x_mean, x_scale = x.mean(axis=0), x.std(axis=0)
    x_scale = np.where(x_scale > 0, x_scale, 1.0)
    y_mean, y_scale = float(y.mean()), float(y.std()) or 1.0
    dtype = model.layers[0].weight.dtype
    xs = jnp.asarray((x - x_mean) / x_scale, dtype=dtype)
    ys = jnp.asarray((y - y_mean) / y_scale, dtype=dtype)
    k_split, k_fit = jax.random.split(key)
    train_data, valid_data = split_validation(
        k_split, (xs, ys), method.training.validation_fraction
    )
    name, fitter = _FITTERS[type(method)]
    networks, statuses, diagnostics = fitter(
        k_fit, method, model, train_data, valid_data, progress_fn
    )
    messages = by_severity(statuses) if statuses else (BNNStatus.OK,)
    result = Predictive(
        networks=networks,
        input_mean=x_mean,
        input_scale=x_scale,
        target_mean=y_mean,
        target_scale=y_scale,
        method=name,
        status=messages[0],
        messages=tuple(dict.fromkeys(messages)),
        diagnostics=diagnostics,
        wall_time_s=time.perf_counter() - start,
    )
    return check(result, throw)
