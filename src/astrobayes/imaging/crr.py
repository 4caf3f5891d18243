"""The learned convex ridge regulariser (CRR) of Goujon et al. (2022), in JAX.

``R(x) = (strength / mu^2) sum_c sum_k psi_c(mu (h_c * x)[k])`` with

* ``h_c``: bias-free, zero-mean convolution kernels (circular boundary), normalised so
  that the stacked operator ``W = (h_1 *, ..., h_C *)`` has spectral norm one;
* ``psi_c``: convex, because ``psi_c' = sigma_c`` is a non-decreasing linear spline
  through the origin (slopes clipped to ``[0, 1]``), with ``psi_c(0) = 0``.

Hence ``R`` is convex, ``grad R = (strength / mu) W^T sigma(mu W x)`` and ``grad R`` is
Lipschitz with constant at most ``strength * ||W||^2 * max slope <= strength``.

The default weights (``weights/crr_default.npz``, package data) were made by
``scripts/train_crr.py`` (denoising of Hubble Deep Field patches and simulated radio
skies), stored as a plain ``.npz`` (no pickles). Files are read and written by
:mod:`astrobayes.io.imaging_files` (``read_convex_ridge``, ``write_convex_ridge``);
this module converts a regulariser to and from its arrays
(:func:`regulariser_to_arrays`, :func:`regulariser_from_arrays`).

References:
    Goujon, Neumayer, Bohra & Unser 2022, "A neural-network-based convex regularizer
    for inverse problems" (arXiv:2211.12461).
    Liaudat et al. 2024, RASTI (arXiv:2312.00125): the CRR for radio imaging with UQ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes.imaging.priors import SmoothPrior

__all__ = [
    "ConvexRidgePrior",
    "ConvexRidgeRegulariser",
    "ConvexRidgeWeights",
    "init_convex_ridge",
    "power_iteration_lipschitz",
    "regulariser_from_arrays",
    "regulariser_to_arrays",
]

DEFAULT_SIGMA_TRAIN = 0.02
"""Training noise level assumed when a weights file does not record ``sigma_train``."""


class ConvexRidgeRegulariser(eqx.Module):
    """Learnable parameters of the CRR (unconstrained), with the constrained views.

    Attributes:
        raw_kernels: ``(C, k, k)`` kernels before the zero-mean projection and the
            spectral normalisation.
        raw_slopes: ``(C, K - 1)`` spline slopes before clipping to ``[0, 1]``.
        knot_range: The spline knots are ``K`` uniform points on
            ``[-knot_range, knot_range]`` (``K`` odd, so 0 is a knot).
        log_mu: ``log mu`` (input scaling).
        log_strength: ``log lambda`` learned in denoising.
        norm_grid: Grid size for the spectral norm of ``W`` (see :meth:`kernels`).
    """

    raw_kernels: Float[Array, "channels size size"]
    raw_slopes: Float[Array, "channels intervals"]
    log_mu: Float[Array, ""]
    log_strength: Float[Array, ""]
    knot_range: float = eqx.field(static=True, default=0.1)
    norm_grid: int = eqx.field(static=True, default=128)
    is_normalised: bool = eqx.field(static=True, default=False)

    @property
    def num_channels(self) -> int:
        """Number of filters ``C``."""
        return int(self.raw_kernels.shape[0])

    def kernels(self) -> Float[Array, "channels size size"]:
        """Zero-mean kernels with ``||W||_2 = 1`` on a ``norm_grid``-periodic domain.

        For circular convolutions ``||W||^2 = max_omega sum_c |h_c^(omega)|^2``, computed
        exactly on the ``norm_grid x norm_grid`` DFT grid (on other grid sizes it is a
        close bound, checked by :func:`power_iteration_lipschitz`).
        """
        if self.is_normalised:
            return self.raw_kernels
        kernels = self.raw_kernels - jnp.mean(self.raw_kernels, axis=(1, 2), keepdims=True)
        spectrum = jnp.fft.fft2(kernels, s=(self.norm_grid, self.norm_grid))
        norm = jnp.sqrt(jnp.max(jnp.sum(jnp.abs(spectrum) ** 2, axis=0)))
        return kernels / norm

    def normalised(self) -> ConvexRidgeRegulariser:
        """The same regulariser with the constraints applied once (faster to evaluate).

        Differentiable: use it inside a loss to avoid recomputing the spectral norm at
        every evaluation.
        """
        if self.is_normalised:
            return self
        return ConvexRidgeRegulariser(
            raw_kernels=self.kernels(),
            raw_slopes=self.slopes(),
            log_mu=self.log_mu,
            log_strength=self.log_strength,
            knot_range=self.knot_range,
            norm_grid=self.norm_grid,
            is_normalised=True,
        )

    def slopes(self) -> Float[Array, "channels intervals"]:
        """Spline slopes in ``[0, 1]`` (so each ``sigma_c`` is non-decreasing)."""
        if self.is_normalised:
            return self.raw_slopes
        return jnp.clip(self.raw_slopes, 0.0, 1.0)

    @property
    def mu(self) -> Array:
        """Input scaling ``mu``."""
        return jnp.exp(self.log_mu)

    @property
    def strength(self) -> Array:
        """Regularisation strength learned for denoising."""
        return jnp.exp(self.log_strength)

    def spline_tables(self):
        """Knots ``t_j``, ``sigma(t_j)`` and ``psi(t_j)`` per channel."""
        slopes = self.slopes()
        num_knots = slopes.shape[1] + 1
        knots = jnp.linspace(-self.knot_range, self.knot_range, num_knots)
        step = knots[1] - knots[0]
        centre = num_knots // 2
        increments = slopes * step
        sigma = jnp.concatenate(
            [jnp.zeros((slopes.shape[0], 1)), jnp.cumsum(increments, axis=1)], axis=1
        )
        sigma = sigma - sigma[:, centre : centre + 1]
        psi_increments = 0.5 * (sigma[:, 1:] + sigma[:, :-1]) * step
        psi = jnp.concatenate(
            [jnp.zeros((slopes.shape[0], 1)), jnp.cumsum(psi_increments, axis=1)], axis=1
        )
        psi = psi - psi[:, centre : centre + 1]
        return knots, sigma, psi, slopes

    def convolve(
        self, image: Float[Array, "*batch height width"]
    ) -> Float[Array, "*batch height width channels"]:
        """``W x``: circular convolution with every kernel (channel axis last)."""
        return jnp.moveaxis(_circular_conv(image, self.kernels()), -3, -1)

    def convolve_transpose(
        self, coefficients: Float[Array, "*batch height width channels"]
    ) -> Float[Array, "*batch height width"]:
        """``W^T z``: the exact adjoint of :meth:`convolve` (correlation with flipped kernels)."""
        return _circular_conv_transpose(jnp.moveaxis(coefficients, -1, -3), self.kernels())

    def activation_potential(
        self, values: Float[Array, "*batch channels"]
    ) -> Float[Array, "*batch channels"]:
        """``psi_c(values)`` elementwise, channel on the last axis."""
        knots, sigma, psi, slopes = self.spline_tables()
        channel = jnp.arange(values.shape[-1])
        return _spline_potential(values, channel, knots, sigma, psi, slopes)

    def activation(
        self, values: Float[Array, "*batch channels"]
    ) -> Float[Array, "*batch channels"]:
        """``sigma_c(values) = psi_c'(values)`` elementwise, channel on the last axis."""
        knots, sigma, _, slopes = self.spline_tables()
        num_knots = knots.shape[0]
        step = knots[1] - knots[0]
        clipped = jnp.clip(values, knots[0], knots[-1])
        index = jnp.clip(jnp.floor((clipped - knots[0]) / step).astype(jnp.int32), 0, num_knots - 2)
        channel = jnp.broadcast_to(jnp.arange(values.shape[-1]), values.shape)
        return sigma[channel, index] + slopes[channel, index] * (clipped - knots[index])


def _circular_conv(image, kernels):
    size = kernels.shape[-1]
    pad = size // 2
    squeeze = image.ndim == 2
    x = image[None] if squeeze else image
    batch_shape = x.shape[:-2]
    x = x.reshape((-1, 1) + x.shape[-2:])
    x = jnp.pad(x, ((0, 0), (0, 0), (pad, size - 1 - pad), (pad, size - 1 - pad)), mode="wrap")
    out = jax.lax.conv_general_dilated(x, kernels[:, None].astype(x.dtype), (1, 1), "VALID")
    out = out.reshape(batch_shape + out.shape[1:])
    return out[0] if squeeze else out


def _circular_conv_transpose(coefficients, kernels):
    size = kernels.shape[-1]
    pad = size // 2
    batch_shape = coefficients.shape[:-3]
    z = coefficients.reshape((-1,) + coefficients.shape[-3:])
    z = jnp.pad(z, ((0, 0), (0, 0), (size - 1 - pad, pad), (size - 1 - pad, pad)), mode="wrap")
    flipped = kernels[None, :, ::-1, ::-1].astype(z.dtype)
    out = jax.lax.conv_general_dilated(z, flipped, (1, 1), "VALID")[:, 0]
    return out.reshape(batch_shape + out.shape[-2:])


def _spline_potential(values, channel, knots, sigma, psi, slopes):
    """psi_c(t) for values ``t`` and broadcastable channel indices; tables (C, K)."""
    num_knots = knots.shape[0]
    step = knots[1] - knots[0]
    index = jnp.clip(jnp.floor((values - knots[0]) / step).astype(jnp.int32), 0, num_knots - 2)
    channel = jnp.broadcast_to(channel, values.shape)
    u = values - knots[index]
    inside = psi[channel, index] + sigma[channel, index] * u + 0.5 * slopes[channel, index] * u * u
    # linear continuation outside [t_0, t_{K-1}]: sigma is constant there
    below = psi[channel, 0] + sigma[channel, 0] * (values - knots[0])
    above = psi[channel, -1] + sigma[channel, -1] * (values - knots[-1])
    return jnp.where(values < knots[0], below, jnp.where(values > knots[-1], above, inside))


class ConvexRidgePrior(SmoothPrior):
    """``R(x) = (strength / mu^2) sum psi_c(mu (h_c * x))``, a smooth convex prior.

    Attributes:
        strength: Regularisation strength (``> 0``).
        regulariser: The trained :class:`ConvexRidgeRegulariser` (its ``mu`` is used;
            its learned strength is only a starting value).

    Example:
        >>> from astrobayes.io.imaging_files import read_convex_ridge
        >>> prior = ConvexRidgePrior(1.0, read_convex_ridge().regulariser)
        >>> abs(float(prior.potential(np.zeros((16, 16))))) < 1e-9
        True
    """

    strength: float
    regulariser: ConvexRidgeRegulariser

    def __check_init__(self):
        try:
            value = float(self.strength)
        except TypeError:
            return
        if not (value > 0 and np.isfinite(value)):
            raise ValueError(f"strength must be positive and finite; got {value}")

    def analysis(self, image):
        """``mu W x`` with shape ``(H, W, C)``."""
        return self.regulariser.mu * self.regulariser.convolve(image)

    def coefficient_potential(self, coefficients):
        """``(strength / mu^2) psi_c(z)`` elementwise (channel last)."""
        scale = self.strength / self.regulariser.mu**2
        return scale * self.regulariser.activation_potential(coefficients)

    def coefficient_potential_at(self, values, flat_indices):
        """Per-channel ``psi_c`` at flat indices of the ``(H, W, C)`` coefficients."""
        knots, sigma, psi, slopes = self.regulariser.spline_tables()
        channel = flat_indices % self.regulariser.num_channels
        value = _spline_potential(values, channel, knots, sigma, psi, slopes)
        return self.strength / self.regulariser.mu**2 * value

    def gradient(self, image):
        """``grad R = (strength / mu) W^T sigma(mu W x)``."""
        regulariser = self.regulariser
        activation = regulariser.activation(regulariser.mu * regulariser.convolve(image))
        return self.strength / regulariser.mu * regulariser.convolve_transpose(activation)

    @property
    def lipschitz(self) -> float:
        """``strength * max slope`` (``||W|| = 1``), a bound on the Lipschitz constant."""
        return self.strength * jnp.max(self.regulariser.slopes()) * 1.05

    @property
    def shift_period(self) -> int:
        """Circular convolutions commute with every shift."""
        return 1

    def shift_indices(self, flat_indices, image_shape, row_shift, col_shift):
        """Roll every channel by ``(row_shift, col_shift)`` in the ``(H, W, C)`` layout."""
        height, width = image_shape
        channels = self.regulariser.num_channels
        pixel, channel = np.divmod(np.asarray(flat_indices), channels)
        rows, cols = np.divmod(pixel, width)
        pixel = ((rows + row_shift) % height) * width + (cols + col_shift) % width
        return pixel * channels + channel


def power_iteration_lipschitz(
    regulariser: ConvexRidgeRegulariser, image_shape: tuple[int, int], *, num_iterations: int = 200
) -> float:
    """``||W||_2^2`` on a given image grid by power iteration on ``W^T W``.

    Args:
        regulariser: The regulariser.
        image_shape: Grid on which ``W`` acts (circular boundary).
        num_iterations: Power iterations.

    Returns:
        The estimate of ``||W||^2`` (times ``max slope`` it bounds ``Lip(grad R)/strength``).
    """
    from astrobayes.imaging.operators import operator_norm

    def normal(x):
        return regulariser.convolve_transpose(regulariser.convolve(x))

    result = operator_norm(normal, image_shape, num_iterations=num_iterations, tolerance=1e-7)
    return result.norm**2


class ConvexRidgeWeights(NamedTuple):
    """A trained regulariser with the metadata stored beside it.

    Attributes:
        regulariser: The :class:`ConvexRidgeRegulariser`.
        metadata: Extra entries saved with it (``meta_<name>`` in the file), e.g.
            ``sigma_train``, the noise level of the denoising training.
    """

    regulariser: ConvexRidgeRegulariser
    metadata: Mapping[str, np.ndarray]

    @property
    def sigma_train(self) -> float:
        """The training noise level (:data:`DEFAULT_SIGMA_TRAIN` when not recorded)."""
        value = self.metadata.get("sigma_train")
        return DEFAULT_SIGMA_TRAIN if value is None else float(value)


def regulariser_to_arrays(regulariser: ConvexRidgeRegulariser, **metadata) -> dict[str, np.ndarray]:
    """The arrays that describe ``regulariser`` (plus ``meta_<key>`` entries).

    Args:
        regulariser: The regulariser.
        **metadata: Extra scalar or string entries (e.g. the training noise level).

    Returns:
        ``{name: array}`` ready for a plain ``.npz`` (no pickles).
    """
    arrays = {
        "raw_kernels": np.asarray(regulariser.raw_kernels, np.float32),
        "raw_slopes": np.asarray(regulariser.raw_slopes, np.float32),
        "log_mu": np.asarray(regulariser.log_mu, np.float32),
        "log_strength": np.asarray(regulariser.log_strength, np.float32),
        "knot_range": np.asarray(regulariser.knot_range, np.float64),
        "norm_grid": np.asarray(regulariser.norm_grid, np.int64),
    }
    for key, value in metadata.items():
        arrays[f"meta_{key}"] = np.asarray(value)
    return arrays


def regulariser_from_arrays(arrays: Mapping[str, np.ndarray]) -> ConvexRidgeWeights:
    """Rebuild a regulariser from :func:`regulariser_to_arrays`'s entries.

    Args:
        arrays: ``{name: array}`` (e.g. an opened ``.npz``).

    Returns:
        :class:`ConvexRidgeWeights` (metadata without the ``meta_`` prefix).

    Raises:
        ValueError: If an entry is missing, naming it.
    """
    try:
        regulariser = ConvexRidgeRegulariser(
            raw_kernels=jnp.asarray(arrays["raw_kernels"]),
            raw_slopes=jnp.asarray(arrays["raw_slopes"]),
            log_mu=jnp.asarray(arrays["log_mu"]),
            log_strength=jnp.asarray(arrays["log_strength"]),
            knot_range=float(arrays["knot_range"]),
            norm_grid=int(arrays["norm_grid"]),
        )
    except KeyError as error:
        raise ValueError(f"CRR weights are missing entry {error}") from None
    metadata = {
        name[len("meta_") :]: np.asarray(arrays[name])
        for name in arrays
        if name.startswith("meta_")
    }
    return ConvexRidgeWeights(regulariser=regulariser, metadata=metadata)


def init_convex_ridge(
    key: jax.Array,
    *,
    num_channels: int = 16,
    kernel_size: int = 7,
    num_knots: int = 41,
    knot_range: float = 0.1,
) -> ConvexRidgeRegulariser:
    """Random initial regulariser for training.

    Args:
        key: JAX PRNG key.
        num_channels: Number of filters ``C``.
        kernel_size: Odd kernel side.
        num_knots: Odd number of spline knots.
        knot_range: Knots on ``[-knot_range, knot_range]``.

    Returns:
        A :class:`ConvexRidgeRegulariser` with slopes 1/2 (a scaled Huber-like start).
    """
    if kernel_size % 2 == 0 or num_knots % 2 == 0:
        raise ValueError("kernel_size and num_knots must be odd")
    kernels = jax.random.normal(key, (num_channels, kernel_size, kernel_size)) / kernel_size
    slopes = jnp.full((num_channels, num_knots - 1), 0.5)
    return ConvexRidgeRegulariser(
        raw_kernels=kernels,
        raw_slopes=slopes,
        log_mu=jnp.asarray(0.0),
        log_strength=jnp.asarray(0.0),
        knot_range=knot_range,
    )
