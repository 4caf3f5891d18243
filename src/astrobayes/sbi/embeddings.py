"""Embedding networks that compress data before an estimator, trained jointly with it.

Each embedding maps **one** observation (no batch axis) to a vector of ``out_size``
summaries; the estimators ``vmap`` it. Use :class:`MLPEmbedding` for vectors,
:class:`CNN1dEmbedding` for spectra / time series of shape ``(length,)`` or
``(channels, length)`` and :class:`CNN2dEmbedding` for maps of shape ``(height, width)``
or ``(channels, height, width)``. Their weights are part of the estimator Module, so the
neural compression is trained by the same loss (Jeffrey, Alsing & Lanusse 2021,
arXiv:2009.08459).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int

__all__ = [
    "AbstractEmbedding",
    "CNN1dEmbedding",
    "CNN2dEmbedding",
    "IdentityEmbedding",
    "MLPEmbedding",
]


class AbstractEmbedding(eqx.Module):
    """Maps one observation to ``out_size`` summaries."""

    out_size: eqx.AbstractVar[int]

    def __call__(self, x: Array) -> Float[Array, " out_size"]:
        """Summaries of one observation."""
        raise NotImplementedError


class IdentityEmbedding(AbstractEmbedding):
    """No compression: flattens the observation.

    Example:
        >>> import jax.numpy as jnp
        >>> IdentityEmbedding((2, 3))(jnp.ones((2, 3))).shape
        (6,)

    """

    out_size: int = eqx.field(static=True)

    def __init__(self, data_shape: Sequence[int] | int):
        shape = (data_shape,) if isinstance(data_shape, int) else tuple(data_shape)
        size = 1
        for s in shape:
            size *= int(s)
        self.out_size = size

    def __call__(self, x: Array) -> Float[Array, " out_size"]:
        """Flattened observation."""
        return jnp.reshape(x, (-1,))


class MLPEmbedding(AbstractEmbedding):
    """Multilayer perceptron on the flattened observation.

    Args:
        key: JAX PRNG key for the weights.
        in_size: Number of data values.
        out_size: Number of summaries.
        width: Hidden width.
        depth: Hidden layers.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> net = MLPEmbedding(jax.random.key(0), 10, 3)
        >>> net(jnp.ones(10)).shape
        (3,)

    """

    mlp: eqx.nn.MLP
    out_size: int = eqx.field(static=True)

    def __init__(
        self, key: PRNGKeyArray, in_size: int, out_size: int, width: int = 64, depth: int = 2
    ):
        check_key(key)
        in_size = check_positive_int(in_size, "in_size")
        out_size = check_positive_int(out_size, "out_size")
        self.mlp = eqx.nn.MLP(in_size, out_size, width, depth, activation=jax.nn.gelu, key=key)
        self.out_size = out_size

    def __call__(self, x: Array) -> Float[Array, " out_size"]:
        """Summaries of one observation."""
        return self.mlp(jnp.reshape(x, (-1,)))


class CNN1dEmbedding(AbstractEmbedding):
    """1-d convolutional network (conv, GELU, max-pool by 2 per block) then a linear head.

    Args:
        key: JAX PRNG key.
        length: Number of samples along the axis.
        out_size: Number of summaries.
        in_channels: Channels of the input (``1`` for shape ``(length,)``).
        channels: Output channels of each convolutional block.
        kernel_size: Kernel width.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> net = CNN1dEmbedding(jax.random.key(0), 32, 4)
        >>> net(jnp.ones(32)).shape
        (4,)

    """

    convs: tuple[eqx.nn.Conv1d, ...]
    head: eqx.nn.MLP
    in_channels: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        length: int,
        out_size: int,
        in_channels: int = 1,
        channels: Sequence[int] = (8, 16),
        kernel_size: int = 5,
    ):
        check_key(key)
        length = check_positive_int(length, "length")
        out_size = check_positive_int(out_size, "out_size")
        if length < 2 ** len(channels):
            raise ValueError(
                f"length must be >= 2**len(channels) = {2 ** len(channels)}; got {length}"
            )
        keys = jax.random.split(key, len(channels) + 1)
        convs, previous, size = [], in_channels, length
        for k, c in zip(keys[:-1], channels, strict=True):
            convs.append(eqx.nn.Conv1d(previous, c, kernel_size, padding="SAME", key=k))
            previous, size = c, size // 2
        self.convs = tuple(convs)
        self.head = eqx.nn.MLP(
            previous * size, out_size, 64, 1, activation=jax.nn.gelu, key=keys[-1]
        )
        self.in_channels = in_channels
        self.out_size = out_size

    def __call__(self, x: Array) -> Float[Array, " out_size"]:
        """Summaries of one observation."""
        h = x[None] if x.ndim == 1 else x
        for conv in self.convs:
            h = jax.nn.gelu(conv(h))
            h = eqx.nn.MaxPool1d(2, 2)(h)
        return self.head(jnp.reshape(h, (-1,)))


class CNN2dEmbedding(AbstractEmbedding):
    """2-d convolutional network for maps (conv, GELU, max-pool by 2 per block), linear head.

    Args:
        key: JAX PRNG key.
        shape: ``(height, width)`` of the map.
        out_size: Number of summaries.
        in_channels: Channels (``1`` for a plain ``(height, width)`` map).
        channels: Output channels of each convolutional block.
        kernel_size: Kernel size.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> net = CNN2dEmbedding(jax.random.key(0), (16, 16), 2)
        >>> net(jnp.ones((16, 16))).shape
        (2,)

    """

    convs: tuple[eqx.nn.Conv2d, ...]
    head: eqx.nn.MLP
    in_channels: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        shape: Sequence[int],
        out_size: int,
        in_channels: int = 1,
        channels: Sequence[int] = (8, 16, 32),
        kernel_size: int = 3,
    ):
        check_key(key)
        if len(shape) != 2:
            raise ValueError(f"shape must be (height, width); got {tuple(shape)}")
        out_size = check_positive_int(out_size, "out_size")
        height, width = (check_positive_int(int(s), "shape") for s in shape)
        if min(height, width) < 2 ** len(channels):
            raise ValueError(
                f"shape must be at least 2**len(channels) = {2 ** len(channels)} per side; got {tuple(shape)}"
            )
        keys = jax.random.split(key, len(channels) + 1)
        convs, previous = [], in_channels
        for k, c in zip(keys[:-1], channels, strict=True):
            convs.append(eqx.nn.Conv2d(previous, c, kernel_size, padding="SAME", key=k))
            previous, height, width = c, height // 2, width // 2
        self.convs = tuple(convs)
        self.head = eqx.nn.MLP(
            previous * height * width, out_size, 128, 1, activation=jax.nn.gelu, key=keys[-1]
        )
        self.in_channels = in_channels
        self.out_size = out_size

    def __call__(self, x: Array) -> Float[Array, " out_size"]:
        """Summaries of one map."""
        h = x[None] if x.ndim == 2 else x
        for conv in self.convs:
            h = jax.nn.gelu(conv(h))
            h = eqx.nn.MaxPool2d(2, 2)(h)
        return self.head(jnp.reshape(h, (-1,)))
