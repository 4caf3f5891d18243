"""What a network uses: gradient saliency, integrated gradients, permutation importance.

* :func:`vanilla_gradients`: the Jacobian ``d f_j / d x`` of each output with respect to
  each input feature or pixel (Simonyan, Vedaldi & Zisserman 2014).
* :func:`integrated_gradients`: ``(x - x0) * mean_alpha grad f(x0 + alpha (x - x0))``
  along the straight path from a baseline (Sundararajan, Taly & Yan 2017); its
  completeness error ``sum IG - (f(x) - f(x0))`` is returned as a diagnostic.
* :func:`permutation_importance`: the increase of a loss when one input feature is
  shuffled across samples (Breiman 2001), mean and standard error over repeats.
* :func:`randomisation_check`: the sanity check of Adebayo et al. (2018): the saliency
  of the trained model must differ from that of the same architecture with its weights
  re-drawn; a map that survives randomisation explains the input, not the model.

All functions take a plain callable ``fn(x) -> outputs`` for one input (an equinox
Module, an emulator, an SBI embedding network), so they apply to any of them.

References:
    Simonyan, Vedaldi & Zisserman (2014), arXiv:1312.6034.
    Sundararajan, Taly & Yan (2017), ICML, arXiv:1703.01365.
    Breiman (2001), Machine Learning 45, 5.
    Adebayo et al. (2018), NeurIPS, arXiv:1810.03292.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check

__all__ = [
    "ImportanceResult",
    "RandomisationCheck",
    "RandomisationStatus",
    "integrated_gradients",
    "permutation_importance",
    "randomisation_check",
    "vanilla_gradients",
]


def vanilla_gradients(
    fn: Callable[[Array], Array], inputs: Float[Array, "num_inputs ..."]
) -> Float[Array, "num_inputs ..."]:
    """Jacobian of ``fn`` at each input: saliency of every feature for every output.

    Args:
        fn: Maps one input of shape ``shape`` to outputs (a scalar or an array).
        inputs: A batch of inputs, shape ``(num_inputs, *shape)``.

    Returns:
        ``d fn(x) / d x`` for each input, shape ``(num_inputs, *out_shape, *shape)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> g = vanilla_gradients(lambda x: jnp.sum(x**2), jnp.array([[1.0, 2.0]]))
        >>> g.tolist()
        [[2.0, 4.0]]
    """
    return jax.jit(jax.vmap(jax.jacrev(fn)))(jnp.asarray(inputs))


def integrated_gradients(
    fn: Callable[[Array], Array],
    inputs: Float[Array, "num_inputs ..."],
    baseline: Float[Array, "*shape"] | None = None,
    *,
    num_steps: int = 64,
) -> tuple[Array, Array]:
    """Integrated gradients of ``fn`` from ``baseline`` to each input.

    Args:
        fn: Maps one input to outputs (a scalar or an array).
        inputs: A batch of inputs, shape ``(num_inputs, *shape)``.
        baseline: The reference input (default zeros).
        num_steps: Points of the trapezoid rule along the path.

    Returns:
        ``(attributions, completeness_error)``: attributions of shape
        ``(num_inputs, *out_shape, *shape)``, and ``sum(attributions) - (fn(x) -
        fn(baseline))`` per input and output (zero for an exact path integral).

    Examples:
        >>> import jax.numpy as jnp
        >>> ig, err = integrated_gradients(lambda x: jnp.sum(x**2), jnp.array([[1.0, 2.0]]))
        >>> [round(v, 3) for v in ig[0].tolist()], bool(abs(float(err[0])) < 1e-3)
        ([1.0, 4.0], True)
    """
    check_positive_int(num_steps, "num_steps", minimum=2)
    inputs = jnp.asarray(inputs)
    base = jnp.zeros_like(inputs[0]) if baseline is None else jnp.asarray(baseline)
    if base.shape != inputs.shape[1:]:
        raise ValueError(
            f"baseline must have the shape of one input {inputs.shape[1:]}; got {base.shape}"
        )
    alphas = jnp.linspace(0.0, 1.0, num_steps)
    weights = jnp.full(num_steps, 1.0 / (num_steps - 1)).at[jnp.array([0, -1])].multiply(0.5)
    jacobian = jax.jacrev(fn)

    def one(x):
        path = base + alphas.reshape((-1,) + (1,) * x.ndim) * (x - base)
        grads = jax.vmap(jacobian)(path)  # (steps, *out, *shape)
        mean_grad = jnp.tensordot(weights, grads, axes=1)
        attribution = mean_grad * (x - base)
        total = jnp.sum(
            attribution.reshape(attribution.shape[: attribution.ndim - x.ndim] + (-1,)), -1
        )
        return attribution, total - (fn(x) - fn(base))

    return jax.jit(jax.vmap(one))(inputs)


class ImportanceResult(NamedTuple):
    """Permutation feature importance.

    Attributes:
        importance: Mean increase of the loss when each feature is shuffled,
            shape ``(num_features,)``.
        error: Standard error of ``importance`` over the repeats.
        baseline_loss: The loss with no feature shuffled.
    """

    importance: np.ndarray
    error: np.ndarray
    baseline_loss: float


def permutation_importance(
    key: PRNGKeyArray,
    fn: Callable[[Array], Array],
    inputs: Float[Array, "num_inputs num_features"],
    targets: Array,
    loss_fn: Callable[[Array, Array], Array],
    *,
    num_repeats: int = 10,
) -> ImportanceResult:
    """Increase of ``loss_fn(fn(inputs), targets)`` when each feature is shuffled.

    Args:
        key: PRNG key for the permutations.
        fn: Maps one input ``(num_features,)`` to a prediction.
        inputs: Inputs, shape ``(num_inputs, num_features)``.
        targets: What the predictions are compared with (leading axis ``num_inputs``).
        loss_fn: ``loss_fn(predictions, targets) -> scalar`` (e.g. mean squared error).
        num_repeats: Independent shuffles per feature.

    Returns:
        An :class:`ImportanceResult`.

    Raises:
        ValueError: If ``inputs`` is not 2-D or ``targets`` has another leading length.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.key(0), (200, 2))
        >>> mse = lambda p, t: jnp.mean((p - t) ** 2)
        >>> r = permutation_importance(jax.random.key(1), lambda v: 3 * v[0], x, 3 * x[:, 0], mse)
        >>> bool(r.importance[0] > 10), abs(float(r.importance[1])) < 1e-6
        (True, True)
    """
    check_key(key, "key")
    check_positive_int(num_repeats, "num_repeats")
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 2:
        raise ValueError(f"inputs must be 2-D (num_inputs, num_features); got {inputs.shape}")
    targets = jnp.asarray(targets)
    if targets.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"targets must have {inputs.shape[0]} rows like inputs; got {targets.shape[0]}"
        )
    predict = jax.vmap(fn)
    baseline = loss_fn(predict(inputs), targets)
    num_inputs, num_features = inputs.shape

    def shuffled(feature, repeat_key):
        order = jax.random.permutation(repeat_key, num_inputs)
        column = inputs[order, feature]
        return loss_fn(predict(inputs.at[:, feature].set(column)), targets) - baseline

    keys = jax.random.split(key, (num_features, num_repeats))
    increases = jax.jit(jax.vmap(lambda f, ks: jax.vmap(lambda k: shuffled(f, k))(ks)))(
        jnp.arange(num_features), keys
    )
    increases = np.asarray(increases, np.float64)
    error = (
        increases.std(axis=1, ddof=1) / np.sqrt(num_repeats)
        if num_repeats > 1
        else 0 * increases[:, 0]
    )
    return ImportanceResult(
        importance=increases.mean(axis=1), error=error, baseline_loss=float(baseline)
    )


class RandomisationStatus(Status):
    """Outcome of :func:`randomisation_check`."""

    PASSED = (Severity.OK, "saliency depends on the trained weights (sanity check passed)")
    FAILED = (
        Severity.FAILURE,
        "failure: the saliency of a randomised network resembles the trained one's; "
        "the map does not explain the model",
    )


class RandomisationCheck(NamedTuple):
    """The model-randomisation sanity check of a saliency method.

    Attributes:
        rank_correlation: Spearman correlation between |saliency| of the trained and of
            the randomised model, over all inputs and features.
        threshold: The correlation below which the check passes.
        status: A :class:`RandomisationStatus`.
    """

    rank_correlation: float
    threshold: float
    status: RandomisationStatus


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    rank_a = np.argsort(np.argsort(a)).astype(np.float64)
    rank_b = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def randomisation_check(
    key: PRNGKeyArray,
    model: eqx.Module,
    inputs: Array,
    *,
    saliency_fn: Callable[[Callable, Array], Array] = vanilla_gradients,
    threshold: float = 0.5,
    throw: bool = False,
) -> RandomisationCheck:
    """Compare a model's saliency with that of the model with re-drawn weights.

    Every floating-point array of ``model`` is replaced by Gaussian draws with the same
    mean and standard deviation (per array); the saliency maps (absolute values) of the
    two models are compared by Spearman rank correlation (Adebayo et al. 2018).

    Args:
        key: PRNG key for the new weights.
        model: A callable equinox Module (one input -> outputs).
        inputs: A batch of inputs.
        saliency_fn: ``saliency_fn(fn, inputs) -> maps`` (default :func:`vanilla_gradients`).
        threshold: The check passes when the rank correlation is below this.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` on failure.

    Returns:
        A :class:`RandomisationCheck`.

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp
        >>> net = eqx.nn.MLP(3, "scalar", 8, 1, key=jax.random.key(0))
        >>> x = jax.random.normal(jax.random.key(1), (8, 3))
        >>> check_ = randomisation_check(jax.random.key(2), net, x)
        >>> check_.rank_correlation < 1.0
        True
    """
    check_key(key, "key")
    leaves, treedef = jax.tree_util.tree_flatten(model)
    keys = jax.random.split(key, max(len(leaves), 1))
    new_leaves = []
    for leaf, leaf_key in zip(leaves, keys, strict=False):
        if eqx.is_inexact_array(leaf) and leaf.size > 1:
            scale = jnp.std(leaf)
            scale = jnp.where(scale > 0, scale, 1.0)
            leaf = jnp.mean(leaf) + scale * jax.random.normal(leaf_key, leaf.shape, leaf.dtype)
        new_leaves.append(leaf)
    randomised = jax.tree_util.tree_unflatten(treedef, new_leaves)
    trained_map = np.abs(np.asarray(saliency_fn(model, inputs), np.float64)).ravel()
    random_map = np.abs(np.asarray(saliency_fn(randomised, inputs), np.float64)).ravel()
    correlation = _spearman(trained_map, random_map)
    status = RandomisationStatus.PASSED if correlation < threshold else RandomisationStatus.FAILED
    result = RandomisationCheck(rank_correlation=correlation, threshold=threshold, status=status)
    return check(result, throw)
