"""Embedding networks that compress data before an estimator, trained jointly with it.

Each embedding maps **one** observation (no batch axis) to a vector of ``out_size``
summaries; the estimators ``vmap`` it. Use :class:`MLPEmbedding` for vectors,
:class:`CNN1dEmbedding` for spectra / time series of shape ``(length,)`` or
``(channels, length)`` and :class:`CNN2dEmbedding` for maps of shape ``(height, width)``
or ``(channels, height, width)``. Their weights are part of the estimator Module, so the
neural compression is trained by the same loss (Jeffrey, Alsing & Lanusse 2021,
arXiv:2009.08459).

The CNNs halve the resolution after each block either by max-pooling
(``downsample="max"``, the default) or by giving the convolution a stride of 2
(``downsample="stride"``, the all-convolutional net of Springenberg et al. 2015,
arXiv:1412.6806). On the CPU the strided form trains about 6x faster for 64 x 64 maps
(XLA's max-pool gradient is slow, and the convolutions run on 4x fewer pixels).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int

_DOWNSAMPLE = ("max", "stride")


def _check_downsample(downsample: str) -> str:
    if downsample not in _DOWNSAMPLE:
        raise ValueError(f"downsample must be one of {_DOWNSAMPLE}; got {downsample!r}")
    return downsample


def _conv_layout(downsample: str, kernel_size: int) -> tuple[int, str | int]:
    """Stride and padding of each convolution layer (see :func:`_convolve`)."""
    if downsample == "stride":
        return 2, kernel_size // 2
    return 1, "SAME"


def _pads(downsample: str, kernel_size: int, num_dims: int) -> tuple[tuple[int, int], ...]:
    """Padding of each spatial axis (``"SAME"`` at stride 1, symmetric at stride 2)."""
    if downsample == "stride":
        low = high = kernel_size // 2
    else:
        low = (kernel_size - 1) // 2
        high = kernel_size - 1 - low
    return ((low, high),) * num_dims


def _convolve(conv: eqx.nn.Conv, h: Array, downsample: str) -> Array:
    """``conv(h)`` computed as patches times a matrix (im2col).

    The same numbers as calling the equinox layer, but XLA's CPU convolution runs about
    10x slower inside a ``lax.scan`` body (as in the training loop) than outside one,
    while the gathers and one matrix product used here keep their speed.
    """
    weight = conv.weight
    kernel = weight.shape[2:]
    stride = 2 if downsample == "stride" else 1
    padded = jnp.pad(h, ((0, 0), *_pads(downsample, kernel[0], len(kernel))))
    out = [(padded.shape[1 + d] - k) // stride + 1 for d, k in enumerate(kernel)]
    columns = []
    for offsets in itertools.product(*(range(k) for k in kernel)):
        index = tuple(
            slice(o, o + stride * (n - 1) + 1, stride) for o, n in zip(offsets, out, strict=True)
        )
        columns.append(padded[(slice(None), *index)])
    patches = jnp.stack(columns, axis=1)  # (in_channels, prod(kernel), *out)
    matrix = weight.reshape(weight.shape[0], weight.shape[1], -1)
    y = jnp.tensordot(matrix, patches, axes=((1, 2), (0, 1)))
    return y + conv.bias if conv.use_bias else y


def _max_pool(h: Array) -> Array:
    """Max over non-overlapping windows of 2 along every spatial axis (floor)."""
    spatial = h.shape[1:]
    h = h[(slice(None), *(slice(0, 2 * (n // 2)) for n in spatial))]
    shape = [h.shape[0]]
    for n in spatial:
        shape += [n // 2, 2]
    return jnp.max(h.reshape(shape), axis=tuple(range(2, 2 + 2 * len(spatial), 2)))


def _halved(size: int, downsample: str, kernel_size: int) -> int:
    """Length of one axis after a block."""
    if downsample == "stride":
        return (size + 2 * (kernel_size // 2) - kernel_size) // 2 + 1
    return size // 2


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
        downsample: ``"max"`` (max-pool by 2 after each convolution) or ``"stride"``
            (convolutions of stride 2, faster).
        global_pool: Average the last feature maps over position before the head
            (translation-invariant summaries, far fewer weights) instead of flattening.

    Raises:
        ValueError: If ``length`` is shorter than ``2**len(channels)`` or
            ``downsample`` is unknown.

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
    downsample: str = eqx.field(static=True)
    global_pool: bool = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        length: int,
        out_size: int,
        in_channels: int = 1,
        channels: Sequence[int] = (8, 16),
        kernel_size: int = 5,
        downsample: str = "max",
        global_pool: bool = False,
    ):
        check_key(key)
        downsample = _check_downsample(downsample)
        length = check_positive_int(length, "length")
        out_size = check_positive_int(out_size, "out_size")
        if length < 2 ** len(channels):
            raise ValueError(
                f"length must be >= 2**len(channels) = {2 ** len(channels)}; got {length}"
            )
        keys = jax.random.split(key, len(channels) + 1)
        convs, previous, size = [], in_channels, length
        stride, padding = _conv_layout(downsample, kernel_size)
        for k, c in zip(keys[:-1], channels, strict=True):
            convs.append(
                eqx.nn.Conv1d(previous, c, kernel_size, stride=stride, padding=padding, key=k)
            )
            previous, size = c, _halved(size, downsample, kernel_size)
        self.convs = tuple(convs)
        self.head = eqx.nn.MLP(
            previous * (1 if global_pool else size),
            out_size,
            64,
            1,
            activation=jax.nn.gelu,
            key=keys[-1],
        )
        self.in_channels = in_channels
        self.out_size = out_size
        self.downsample = downsample
        self.global_pool = bool(global_pool)

    def __call__(self, x: Array) -> Float[Array, " out_size"]:
        """Summaries of one observation."""
        h = x[None] if x.ndim == 1 else x
        for conv in self.convs:
            h = jax.nn.gelu(_convolve(conv, h, self.downsample))
            if self.downsample == "max":
                h = _max_pool(h)
        if self.global_pool:
            h = jnp.mean(h, axis=tuple(range(1, h.ndim)))
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
        downsample: ``"max"`` (max-pool by 2 after each convolution) or ``"stride"``
            (convolutions of stride 2, about 6x faster to train on the CPU).
        global_pool: Average the last feature maps over position before the head
            (translation-invariant summaries for statistically homogeneous fields, far
            fewer weights) instead of flattening them.

    Raises:
        ValueError: If ``shape`` is not 2-d or smaller than ``2**len(channels)`` per
            side, or ``downsample`` is unknown.

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
    downsample: str = eqx.field(static=True)
    global_pool: bool = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        shape: Sequence[int],
        out_size: int,
        in_channels: int = 1,
        channels: Sequence[int] = (8, 16, 32),
        kernel_size: int = 3,
        downsample: str = "max",
        global_pool: bool = False,
    ):
        check_key(key)
        downsample = _check_downsample(downsample)
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
        stride, padding = _conv_layout(downsample, kernel_size)
        for k, c in zip(keys[:-1], channels, strict=True):
            convs.append(
                eqx.nn.Conv2d(previous, c, kernel_size, stride=stride, padding=padding, key=k)
            )
            previous = c
            height = _halved(height, downsample, kernel_size)
            width = _halved(width, downsample, kernel_size)
        self.convs = tuple(convs)
        self.head = eqx.nn.MLP(
            previous * (1 if global_pool else height * width),
            out_size,
            128,
            1,
            activation=jax.nn.gelu,
            key=keys[-1],
        )
        self.in_channels = in_channels
        self.out_size = out_size
        self.downsample = downsample
        self.global_pool = bool(global_pool)

    def __call__(self, x: Array) -> Float[Array, " out_size"]:
        """Summaries of one map."""
        h = x[None] if x.ndim == 2 else x
        for conv in self.convs:
            h = jax.nn.gelu(_convolve(conv, h, self.downsample))
            if self.downsample == "max":
                h = _max_pool(h)
        if self.global_pool:
            h = jnp.mean(h, axis=tuple(range(1, h.ndim)))
        return self.head(jnp.reshape(h, (-1,)))
