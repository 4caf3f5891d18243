"""The network every BNN method shares: an MLP with a heteroscedastic Gaussian output.

Example:
    >>> import jax, jax.numpy as jnp
    >>> net = HeteroscedasticMLP(5, width=8, key=jax.random.key(0))
    >>> mean, scale = net(jnp.zeros(5))
    >>> bool(scale > 0), net.num_parameters
    (True, 66)

"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_positive_int

__all__ = ["HeteroscedasticMLP", "gaussian_nll"]

MIN_SCALE = 0.02
"""Floor of the predicted standard deviation (standardised target units). A tiny floor
lets a network shrink the scale at single training points, which makes the posterior
extremely stiff (curvatures ~1e7 were measured with 1e-3) and breaks SGLD and NUTS."""


class HeteroscedasticMLP(eqx.Module):
    """``x -> (mean, scale)``: ``depth`` tanh hidden layers of ``width`` units.

    The last layer outputs the mean and ``softplus(.) + MIN_SCALE`` as the standard deviation
    of a Gaussian likelihood (a heteroscedastic regression, Nix & Weigend 1994). With
    ``dropout_rate > 0`` and a ``key``, each hidden layer's output is multiplied by an
    inverted-dropout Bernoulli mask (Gal & Ghahramani 2016, arXiv:1506.02142).

    Attributes:
        layers: The linear layers (``depth`` hidden, then the output layer of size 2).
        dropout_rate: Probability that a hidden unit is dropped (0: no dropout).

    """

    layers: tuple[eqx.nn.Linear, ...]
    dropout_rate: float = eqx.field(static=True, default=0.0)

    def __init__(
        self,
        in_size: int,
        *,
        width: int = 32,
        depth: int = 1,
        dropout_rate: float = 0.0,
        key: PRNGKeyArray,
    ):
        """Initialise the layers with equinox's default (uniform, fan-in scaled) weights.

        Args:
            in_size: Number of input features.
            width: Hidden units per layer.
            depth: Number of hidden layers.
            dropout_rate: Dropout probability in ``[0, 1)``.
            key: JAX PRNG key of the initial weights.

        Raises:
            ValueError: If a size is not a positive integer or ``dropout_rate`` is not in
                ``[0, 1)``.

        """
        check_positive_int(in_size, "in_size")
        check_positive_int(width, "width")
        check_positive_int(depth, "depth")
        if not (isinstance(dropout_rate, int | float) and 0.0 <= dropout_rate < 1.0):
            raise ValueError(f"dropout_rate must be in [0, 1); got {dropout_rate!r}")
        sizes = [in_size] + [width] * depth + [2]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )
        self.dropout_rate = float(dropout_rate)

    @property
    def num_parameters(self) -> int:
        """Number of trainable weights and biases."""
        return int(ravel_pytree(eqx.filter(self, eqx.is_inexact_array))[0].size)

    def features(
        self, x: Float[Array, " in_size"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " width"]:
        """Output of the last hidden layer (dropout applied when ``key`` is given)."""
        h = x
        for i, layer in enumerate(self.layers[:-1]):
            h = jnp.tanh(layer(h))
            if key is not None and self.dropout_rate > 0:
                keep = jax.random.bernoulli(
                    jax.random.fold_in(key, i), 1.0 - self.dropout_rate, h.shape
                )
                h = jnp.where(keep, h / (1.0 - self.dropout_rate), 0.0)
        return h

    def head(self, h: Float[Array, " width"]) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """``(mean, scale)`` from the last hidden layer's output."""
        out = self.layers[-1](h)
        return out[0], jax.nn.softplus(out[1]) + MIN_SCALE

    def __call__(
        self, x: Float[Array, " in_size"], *, key: PRNGKeyArray | None = None
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """``(mean, scale)`` of the Gaussian predictive at one input ``x``."""
        return self.head(self.features(x, key=key))

    def fold_dropout(self, key: PRNGKeyArray) -> HeteroscedasticMLP:
        """The deterministic network of one dropout draw: masks folded into the weights.

        The mask of hidden layer ``i`` (scaled by ``1 / (1 - rate)``) multiplies the
        input columns of layer ``i + 1``, so ``folded(x) == self(x, key=key)``.
        """
        if self.dropout_rate == 0:
            return self
        layers = list(self.layers)
        for i in range(len(layers) - 1):
            width = layers[i].out_features
            keep = jax.random.bernoulli(
                jax.random.fold_in(key, i), 1.0 - self.dropout_rate, (width,)
            )
            factor = jnp.where(keep, 1.0 / (1.0 - self.dropout_rate), 0.0)
            nxt = layers[i + 1]
            layers[i + 1] = eqx.tree_at(lambda lay: lay.weight, nxt, nxt.weight * factor[None, :])
        # the folded network is called without a key, so its dropout_rate is unused
        return eqx.tree_at(lambda n: n.layers, self, tuple(layers))


def gaussian_nll(
    mean: Float[Array, ...], scale: Float[Array, ...], y: Float[Array, ...]
) -> Float[Array, ...]:
    """Negative log density of ``y`` under ``N(mean, scale**2)``, elementwise."""
    z = (y - mean) / scale
    return 0.5 * z**2 + jnp.log(scale) + 0.5 * jnp.log(2.0 * jnp.pi)
