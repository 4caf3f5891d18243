"""Small convolutional networks for imaging: a multi-scale U-Net and a DnCNN stack.

One implementation of each, shared by every learned imaging component (denoisers for
data-driven priors, the stages of unrolled reconstruction networks). Both map a single
image with channels first, ``(C, H, W) -> (O, H, W)``; ``jax.vmap`` them for batches.

* :class:`UNet`: ``len(widths)`` resolutions; at each, ``convs_per_level`` 3×3
  convolutions with ReLU; 2×2 average pooling down, nearest-neighbour upsampling and
  skip concatenation up; a final 1×1 convolution to ``out_channels``.
* :class:`DnCNN`: a plain stack of ``depth`` 3×3 convolutions with ReLU between them
  (no batch normalisation). It has no residual connection: a denoiser that predicts the
  noise adds it itself.

With ``use_bias=False`` every convolution is bias-free and ReLU is positively
homogeneous, so the network is scale-equivariant, ``f(a x) = a f(x)`` for ``a > 0``,
which is what makes a denoiser generalise across noise levels (Mohan et al. 2020).

References:
    Ronneberger, Fischer & Brox 2015, "U-Net" (arXiv:1505.04597).
    Zhang et al. 2017, "Beyond a Gaussian denoiser: residual learning of deep CNN for
    image denoising" (DnCNN, arXiv:1608.03981).
    Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda 2020, "Robust and interpretable
    blind image denoising via bias-free convolutional neural networks"
    (arXiv:1906.05478).

Examples:
    >>> import jax
    >>> from astrobayes.imaging.networks import UNet, DnCNN, parameter_count
    >>> net = UNet(2, 1, key=jax.random.key(0), widths=(4, 8))
    >>> net(jax.numpy.ones((2, 8, 8))).shape
    (1, 8, 8)
    >>> cnn = DnCNN(1, 1, key=jax.random.key(1), width=4, depth=3, use_bias=False)
    >>> parameter_count(cnn)  # 9 * (1 * 4 + 4 * 4 + 4 * 1)
    216
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._checks import check_key, check_positive_int

__all__ = ["DnCNN", "UNet", "parameter_count"]


def parameter_count(model: eqx.Module) -> int:
    """Number of trainable (inexact array) parameters of ``model``."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(leaf.size for leaf in leaves))


def _check_common(key, in_channels, out_channels, kernel_size, padding_mode):
    """The settings both networks share, checked: ``(in, out, kernel_size, padding_mode)``."""
    check_key(key)
    in_channels = check_positive_int(in_channels, "in_channels")
    out_channels = check_positive_int(out_channels, "out_channels")
    kernel_size = check_positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd; got {kernel_size}")
    modes = ("ZEROS", "CIRCULAR", "REFLECT", "REPLICATE")
    if padding_mode not in modes:
        raise ValueError(f"padding_mode must be one of {modes}; got {padding_mode!r}")
    return in_channels, out_channels, kernel_size, padding_mode


def _conv(cin, cout, size, use_bias, padding_mode, rng) -> eqx.nn.Conv2d:
    """A ``Conv2d`` with equinox's default initialisation, drawn by NumPy.

    Equinox draws each new weight shape with a separately compiled ``jax.random``
    call, which costs seconds per layer on a CPU; the structure is built abstractly
    (no compilation) and filled with ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` draws from
    ``rng``, a NumPy generator seeded from the caller's JAX key.
    """
    abstract = eqx.filter_eval_shape(
        eqx.nn.Conv2d,
        cin,
        cout,
        size,
        padding="SAME",
        use_bias=use_bias,
        padding_mode=padding_mode,
        key=jax.random.key(0),
    )
    limit = 1.0 / np.sqrt(cin * size * size)
    dtype = abstract.weight.dtype
    weight = jnp.asarray(rng.uniform(-limit, limit, abstract.weight.shape), dtype=dtype)
    conv = eqx.tree_at(lambda c: c.weight, abstract, weight)
    if use_bias:
        bias = jnp.asarray(rng.uniform(-limit, limit, abstract.bias.shape), dtype=dtype)
        conv = eqx.tree_at(lambda c: c.bias, conv, bias)
    return conv


def _numpy_rng(key: Array) -> np.random.Generator:
    """A NumPy generator determined by the JAX ``key`` (explicit, reproducible)."""
    data = key if key.dtype == jnp.uint32 else jax.random.key_data(key)
    return np.random.default_rng(np.asarray(data).ravel().tolist())


def _check_input(x, in_channels: int, multiple: int, name: str) -> None:
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(
            f"{name} input must be one image with channels first, shape (C, H, W); "
            f"got shape {shape}"
        )
    if shape[0] != in_channels:
        raise ValueError(f"{name} expects {in_channels} input channels; got shape {shape}")
    if shape[1] % multiple or shape[2] % multiple:
        raise ValueError(
            f"{name} needs H and W divisible by {multiple} (one factor 2 per pooling); "
            f"got shape {shape}"
        )


def _pool(x: Array) -> Array:
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def _upsample(x: Array) -> Array:
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class UNet(eqx.Module):
    """A small U-Net, ``(in_channels, H, W) -> (out_channels, H, W)``.

    Attributes:
        encoder: Per resolution (fine to coarse), its convolutions.
        decoder: Per resolution except the coarsest (coarse to fine), its convolutions
            after the skip concatenation.
        head: The final 1×1 convolution.
        in_channels: Number of input channels.
        out_channels: Number of output channels.
    """

    encoder: tuple[tuple[eqx.nn.Conv2d, ...], ...]
    decoder: tuple[tuple[eqx.nn.Conv2d, ...], ...]
    head: eqx.nn.Conv2d
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        key: Array,
        widths: Sequence[int] = (16, 32),
        convs_per_level: int = 2,
        kernel_size: int = 3,
        use_bias: bool = True,
        padding_mode: str = "ZEROS",
    ):
        """Build the network.

        Args:
            in_channels: Channels of the input image.
            out_channels: Channels of the output image.
            key: PRNG key for the initial weights.
            widths: Channels at each resolution, finest first; ``len(widths) - 1``
                poolings, so H and W must be divisible by ``2 ** (len(widths) - 1)``.
            convs_per_level: Convolutions per resolution on each path.
            kernel_size: Odd side of the square kernels.
            use_bias: ``False`` for a bias-free (scale-equivariant) network.
            padding_mode: ``"ZEROS"``, ``"CIRCULAR"`` (periodic images), ``"REFLECT"``
                or ``"REPLICATE"``.

        Raises:
            TypeError: If a count is not an integer or ``key`` is not a PRNG key.
            ValueError: If a count is not positive, ``widths`` is empty or
                ``kernel_size`` is even.
        """
        self.in_channels, self.out_channels, kernel_size, padding_mode = _check_common(
            key, in_channels, out_channels, kernel_size, padding_mode
        )
        convs_per_level = check_positive_int(convs_per_level, "convs_per_level")
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths must hold at least one channel count; got ()")
        for i, width in enumerate(widths):
            check_positive_int(width, f"widths[{i}]")
        rng = _numpy_rng(key)

        def block(cin, cout):
            convs = []
            for _ in range(convs_per_level):
                convs.append(_conv(cin, cout, kernel_size, use_bias, padding_mode, rng))
                cin = cout
            return tuple(convs)

        encoder, cin = [], self.in_channels
        for width in widths:
            encoder.append(block(cin, width))
            cin = width
        decoder = []
        for level in range(len(widths) - 2, -1, -1):
            decoder.append(block(widths[level + 1] + widths[level], widths[level]))
        self.encoder = tuple(encoder)
        self.decoder = tuple(decoder)
        self.head = _conv(widths[0], self.out_channels, 1, use_bias, "ZEROS", rng)

    @property
    def size_multiple(self) -> int:
        """H and W of an input must be multiples of this."""
        return 2 ** (len(self.encoder) - 1)

    def __call__(self, x: Float[Array, "c h w"]) -> Float[Array, "o h w"]:
        """Apply the network to one image ``(in_channels, H, W)``."""
        _check_input(x, self.in_channels, self.size_multiple, "UNet")
        skips = []
        for level, convs in enumerate(self.encoder):
            if level:
                x = _pool(x)
            for conv in convs:
                x = jax.nn.relu(conv(x))
            skips.append(x)
        for convs, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            x = jnp.concatenate([_upsample(x), skip], axis=0)
            for conv in convs:
                x = jax.nn.relu(conv(x))
        return self.head(x)


class DnCNN(eqx.Module):
    """A plain convolution stack, ``(in_channels, H, W) -> (out_channels, H, W)``.

    Attributes:
        convs: The ``depth`` convolutions; ReLU between them, none after the last.
        in_channels: Number of input channels.
        out_channels: Number of output channels.
    """

    convs: tuple[eqx.nn.Conv2d, ...]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        key: Array,
        width: int = 32,
        depth: int = 8,
        kernel_size: int = 3,
        use_bias: bool = True,
        padding_mode: str = "ZEROS",
    ):
        """Build the network.

        Args:
            in_channels: Channels of the input image.
            out_channels: Channels of the output image.
            key: PRNG key for the initial weights.
            width: Channels of the hidden layers.
            depth: Number of convolutions (at least 2).
            kernel_size: Odd side of the square kernels.
            use_bias: ``False`` for a bias-free (scale-equivariant) network.
            padding_mode: As for :class:`UNet`.

        Raises:
            TypeError: If a count is not an integer or ``key`` is not a PRNG key.
            ValueError: If a count is out of range or ``kernel_size`` is even.
        """
        self.in_channels, self.out_channels, kernel_size, padding_mode = _check_common(
            key, in_channels, out_channels, kernel_size, padding_mode
        )
        width = check_positive_int(width, "width")
        depth = check_positive_int(depth, "depth", minimum=2)
        channels = [self.in_channels] + [width] * (depth - 1) + [self.out_channels]
        rng = _numpy_rng(key)
        self.convs = tuple(
            _conv(channels[i], channels[i + 1], kernel_size, use_bias, padding_mode, rng)
            for i in range(depth)
        )

    def __call__(self, x: Float[Array, "c h w"]) -> Float[Array, "o h w"]:
        """Apply the network to one image ``(in_channels, H, W)``."""
        _check_input(x, self.in_channels, 1, "DnCNN")
        for conv in self.convs[:-1]:
            x = jax.nn.relu(conv(x))
        return self.convs[-1](x)
