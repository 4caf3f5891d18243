"""An unrolled, physics-informed reconstruction network for radio interferometry.

:class:`UnrolledNetwork` maps a dirty image ``d = Phi^H W y`` and the normal operator
``N = Phi^H W Phi`` of the observation to an image. It unrolls ``K`` stages of a learned
iterative scheme: at stage ``k`` a small multi-resolution U-Net
(:class:`~astrobayes.imaging.networks.UNet`) reads four images,

* the current estimate ``x_k``;
* the data-fidelity gradient ``g_k = N x_k - d`` (the gradient of
  ``||W^(1/2) (y - Phi x)||^2 / 2``);
* the filtered gradient ``f_k = F_k g_k``, with ``F_k`` the Tikhonov-regularised inverse
  of the point-spread function in Fourier space, ``H / (H^2 + (eps_k max|H|)^2)``
  (``H`` the transfer function of ``N``, ``eps_k`` learned per stage): a Newton-like,
  preconditioned step;
* the dirty image ``d``,

and returns an update, ``z_k = x_k + U_k(x_k, g_k, f_k, d)``. With ``dc_iterations = 0``
(the original architecture) ``x_{k+1} = z_k``; otherwise a data-consistency step
follows each stage (Aggarwal, Mani & Jacob 2019, MoDL, arXiv:1712.02862):
``x_{k+1} = argmin_x ||W^(1/2) (y - Phi x)||^2 / p + mu_k ||x - z_k||^2``, i.e.
``(N / p + mu_k) x = d / p + mu_k z_k``, solved by ``dc_iterations`` conjugate-gradient
steps from ``z_k`` (``mu_k`` learned per stage; gradients flow through the steps). The
start ``x_0`` is the Tikhonov-filtered dirty image; the output is ``max(x_K, 0)``
(positivity). Because
``N`` and ``d`` are *inputs*, the same weights serve any uv-coverage (Mars, Betcke &
McEwen 2024): nothing about one coverage is baked into the weights.

Normalisation makes the network transfer across coverages, noise levels and flux
scales: ``N`` and ``d`` are divided by the peak ``p`` of the point-spread function
``N delta`` (so ``d / p`` is the dirty image in units of the image), and every image is
divided by the peak ``s`` of ``|d / p|`` before the stages and multiplied by ``s``
after them. The reconstruction is therefore exactly equivariant to a positive factor
on the data (``reconstruct(N, a d) = a reconstruct(N, d)``) and to a positive factor on
the operator (weights ``W -> a W``), whatever the weights.

Weights are shared by all stages (``shared=True``) or one U-Net per stage. Files
(weights in equinox's serialisation and their settings as JSON) are read and written by
:mod:`astrobayes.io.unrolled_files`; the shipped weights were made by
``scripts/train_unrolled.py``.

References:
    Mars, Betcke & McEwen 2024, "Learned radio interferometric imaging for varying
    visibility coverage" (arXiv:2405.08958).
    Adler & Oktem 2017, "Solving ill-posed inverse problems using iterative deep neural
    networks" (arXiv:1704.04058): learned gradient schemes.
    Ronneberger, Fischer & Brox 2015, "U-Net" (arXiv:1505.04597).

Examples:
    >>> import jax, numpy as np
    >>> from astrobayes.imaging.operators import fourier_mask_operator
    >>> op = fourier_mask_operator(np.fft.ifftshift(np.pad(np.ones((8, 8), bool), 4)))
    >>> net = UnrolledNetwork(UnrolledSettings(num_stages=1, widths=(2, 4)), key=jax.random.key(0))
    >>> dirty = op.adjoint(op(np.ones((16, 16))))
    >>> reconstruct(net, op.normal, dirty).shape
    (16, 16)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._types import parameter_dtype
from astrobayes.imaging.map import snr_db
from astrobayes.imaging.networks import UNet
from astrobayes.imaging.nufft import NufftOperator
from astrobayes.imaging.operators import FourierMaskOperator, MeasurementOperator
from astrobayes.imaging.toeplitz import NormalOperator, normal_operator

__all__ = [
    "NUM_INPUTS",
    "UnrolledImagingResult",
    "UnrolledImagingStatus",
    "UnrolledNetwork",
    "UnrolledSettings",
    "check_image_shape",
    "data_consistency",
    "normal_operator_of",
    "normalised_problem",
    "reconstruct",
    "run_unrolled_imaging",
]

NUM_INPUTS = 4
"""Channels each stage reads: estimate, gradient, filtered gradient, dirty image."""

NormalFn = Callable[[Float[Array, "height width"]], Float[Array, "height width"]]


@dataclasses.dataclass(frozen=True)
class UnrolledSettings:
    """Architecture of an :class:`UnrolledNetwork` (stored beside its weights as JSON).

    Attributes:
        num_stages: Number ``K`` of unrolled stages.
        widths: U-Net channels per resolution, finest first (at least two resolutions).
        convs_per_level: Convolutions per resolution on each U-Net path.
        shared: One U-Net for all stages (``True``) or one per stage.
        use_bias: Biases in the convolutions.
        initial_eps: Initial relative Tikhonov level ``eps`` of the filters.
        dc_iterations: Conjugate-gradient steps of the data-consistency step after each
            stage (0: no such step, the original architecture).
        initial_mu: Initial weight ``mu_k`` of the stage's output in that step (in
            units of the point-spread function's peak).
    """

    num_stages: int = 4
    widths: tuple[int, ...] = (16, 32)
    convs_per_level: int = 2
    shared: bool = False
    use_bias: bool = True
    initial_eps: float = 0.05
    dc_iterations: int = 0
    initial_mu: float = 1.0

    def __post_init__(self):
        check_positive_int(self.num_stages, "num_stages")
        check_positive_int(self.dc_iterations, "dc_iterations", minimum=0)
        mu = self.initial_mu
        if isinstance(mu, bool) or not (isinstance(mu, int | float) and 0 < mu < math.inf):
            raise ValueError(f"initial_mu must be a positive finite number; got {mu!r}")
        check_positive_int(self.convs_per_level, "convs_per_level")
        widths = tuple(self.widths)
        if len(widths) < 2:
            raise ValueError(
                f"widths must give at least two resolutions (multi-scale); got {self.widths!r}"
            )
        for i, width in enumerate(widths):
            check_positive_int(width, f"widths[{i}]")
        object.__setattr__(self, "widths", widths)
        for name in ("shared", "use_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool; got {getattr(self, name)!r}")
        eps = self.initial_eps
        if isinstance(eps, bool) or not (isinstance(eps, int | float) and 0 < eps < 1):
            raise ValueError(f"initial_eps must lie in (0, 1); got {eps!r}")

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (one factor 2 per pooling)."""
        return 2 ** (len(self.widths) - 1)


class UnrolledNetwork(eqx.Module):
    """``K`` unrolled stages of learned, physics-informed updates (see the module text).

    Build it from :class:`UnrolledSettings`; apply it with :func:`reconstruct` (which
    validates the inputs) or, inside ``jit``/``vmap``, by calling it.

    Attributes:
        stages: The U-Nets (one when ``settings.shared``, else ``num_stages``).
        log_eps: ``log eps_k`` of the Tikhonov filters: the start's, then each stage's.
        log_mu: ``log mu_k`` of each stage's data-consistency step (``None`` when
            ``settings.dc_iterations == 0``).
        settings: The architecture (static).
    """

    stages: tuple[UNet, ...]
    log_eps: Float[Array, " num_filters"]
    log_mu: Float[Array, " num_stages"] | None
    settings: UnrolledSettings = eqx.field(static=True)

    def __init__(self, settings: UnrolledSettings, *, key: Array):
        """Initialise the weights.

        Args:
            settings: The architecture.
            key: PRNG key of the initial weights.

        Raises:
            TypeError: If ``settings`` is not an :class:`UnrolledSettings` or ``key``
                is not a PRNG key.
        """
        if not isinstance(settings, UnrolledSettings):
            raise TypeError(f"settings must be an UnrolledSettings; got {type(settings).__name__}")
        check_key(key)
        count = 1 if settings.shared else settings.num_stages
        keys = jax.random.split(key, count)
        stages = []
        for k in keys:
            net = UNet(
                NUM_INPUTS,
                1,
                key=k,
                widths=settings.widths,
                convs_per_level=settings.convs_per_level,
                use_bias=settings.use_bias,
            )
            # start near the identity update: a small head (and no offset) keeps the
            # first stages gentle
            net = eqx.tree_at(lambda n: n.head.weight, net, net.head.weight * 0.1)
            if net.head.bias is not None:
                net = eqx.tree_at(lambda n: n.head.bias, net, jnp.zeros_like(net.head.bias))
            stages.append(net)
        self.stages = tuple(stages)
        self.log_eps = jnp.full((settings.num_stages + 1,), math.log(settings.initial_eps))
        self.log_mu = (
            jnp.full((settings.num_stages,), math.log(settings.initial_mu))
            if settings.dc_iterations
            else None
        )
        self.settings = settings

    def stage(self, index: int) -> UNet:
        """The U-Net of stage ``index``."""
        return self.stages[0 if self.settings.shared else index]

    def __call__(
        self, normal: NormalFn, dirty: Float[Array, "height width"]
    ) -> Float[Array, "height width"]:
        """Reconstruct from ``N`` and ``d`` (no validation; see :func:`reconstruct`)."""
        normal_unit, dirty_unit, scale, transfer = normalised_problem(normal, dirty)
        # the U-Nets run in their weights' dtype (float32 as shipped) also when the image
        # is float64 (jax_enable_x64); their output is added back in the image's dtype
        dtype = parameter_dtype(self.stages)
        peak = jnp.max(jnp.abs(transfer))
        x = _tikhonov(dirty_unit, transfer, jnp.exp(self.log_eps[0]) * peak)
        for k in range(self.settings.num_stages):
            gradient = normal_unit(x) - dirty_unit
            filtered = _tikhonov(gradient, transfer, jnp.exp(self.log_eps[k + 1]) * peak)
            inputs = jnp.stack([x, gradient, filtered, dirty_unit])
            x = x + self.stage(k)(inputs.astype(dtype))[0].astype(x.dtype)
            if self.log_mu is not None:
                x = data_consistency(
                    normal_unit, dirty_unit, x, jnp.exp(self.log_mu[k]), self.settings.dc_iterations
                )
        return scale * jax.nn.relu(x)


def data_consistency(
    normal: NormalFn,
    dirty: Float[Array, "height width"],
    anchor: Float[Array, "height width"],
    mu: Float[Array, ""],
    iterations: int,
) -> Float[Array, "height width"]:
    """``argmin_x <x, N x> / 2 - <d, x> + mu ||x - z||^2 / 2`` by conjugate gradients.

    Solves ``(N + mu I) x = d + mu z`` with ``iterations`` conjugate-gradient steps from
    ``x = z`` (a fixed count, so the step is differentiable and compiles to a fixed
    program). ``N`` must be symmetric positive semi-definite (a normal operator).
    ``jax.scipy.sparse.linalg.cg`` (used for the converged solve of
    :func:`~astrobayes.imaging.learned_uq.tikhonov_reconstruction`) is not used here:
    its gradient is the implicit one of an exact solve, while the stages are trained
    through the truncated iterations that actually run.

    Args:
        normal: ``N`` (image to image).
        dirty: ``d``.
        anchor: ``z``.
        mu: ``mu > 0``.
        iterations: Conjugate-gradient steps.

    Returns:
        The approximate solution.

    Raises:
        TypeError: If ``iterations`` is not an integer.
        ValueError: If ``iterations < 0`` or ``dirty`` and ``anchor`` are not images of
            one shape.

    Example:
        >>> import jax.numpy as jnp
        >>> x = data_consistency(lambda v: 2.0 * v, jnp.ones((2, 2)), jnp.zeros((2, 2)), 1.0, 3)
        >>> [round(float(v), 6) for v in x.reshape(-1)]  # (2 + 1) x = 1
        [0.333333, 0.333333, 0.333333, 0.333333]
    """
    iterations = check_positive_int(iterations, "iterations", minimum=0)
    if jnp.shape(dirty) != jnp.shape(anchor) or jnp.ndim(anchor) != 2:
        raise ValueError(
            f"dirty and anchor must be images of one shape; got {jnp.shape(dirty)} and "
            f"{jnp.shape(anchor)}"
        )
    tiny = jnp.finfo(anchor.dtype).tiny

    def apply(v):
        return normal(v) + mu * v

    x = anchor
    residual = dirty + mu * anchor - apply(x)
    direction = residual
    power = jnp.sum(residual**2)
    for _ in range(iterations):
        image = apply(direction)
        curvature = jnp.sum(direction * image)
        alpha = jnp.where(curvature > tiny, power / jnp.maximum(curvature, tiny), 0.0)
        x = x + alpha * direction
        residual = residual - alpha * image
        new_power = jnp.sum(residual**2)
        beta = jnp.where(power > tiny, new_power / jnp.maximum(power, tiny), 0.0)
        direction = residual + beta * direction
        power = new_power
    return x


def normalised_problem(normal: NormalFn, dirty: Float[Array, "height width"]):
    """The scale-free problem the stages see.

    Args:
        normal: The normal operator ``N = Phi^H W Phi`` (image to image).
        dirty: The dirty image ``d = Phi^H W y``.

    Returns:
        ``(normal_unit, dirty_unit, scale, transfer)``: ``N / (p s)`` applied to images
        in units of ``s`` (i.e. ``x -> N(x) / p``), ``d / (p s)``, the scale ``s`` (peak
        of ``|d| / p``) and the transfer function ``H`` of ``N / p`` on the image grid
        (the FFT of the centred point-spread function, real part). ``p`` is the peak of
        the point-spread function ``N delta``.
    """
    height, width = dirty.shape
    impulse = jnp.zeros((height, width), dirty.dtype).at[height // 2, width // 2].set(1.0)
    psf = normal(impulse)
    psf_peak = psf[height // 2, width // 2]
    dirty_psf = dirty / psf_peak
    scale = jnp.maximum(jnp.max(jnp.abs(dirty_psf)), jnp.finfo(dirty.dtype).tiny)

    def normal_unit(x):
        return normal(x) / psf_peak

    transfer = jnp.real(jnp.fft.fft2(jnp.fft.ifftshift(psf / psf_peak)))
    return normal_unit, dirty_psf / scale, scale, transfer


def _tikhonov(image, transfer, eps):
    """``ifft(H / (H^2 + eps^2) fft(image))``: the regularised inverse filter."""
    response = transfer / (transfer**2 + eps**2)
    return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(image) * response)).astype(image.dtype)


def check_image_shape(network: UnrolledNetwork, shape: tuple[int, ...]) -> tuple[int, int]:
    """Check that images of ``shape`` fit ``network``.

    Args:
        network: The network.
        shape: The image shape.

    Returns:
        ``(height, width)``.

    Raises:
        ValueError: If the shape is not 2-d, a side is below ``4 * size_multiple`` or
            not a multiple of ``size_multiple`` (one factor 2 per U-Net pooling).
    """
    multiple = network.settings.size_multiple
    if len(shape) != 2:
        raise ValueError(f"dirty must be a 2-d image (height, width); got shape {tuple(shape)}")
    height, width = (int(n) for n in shape)
    if height % multiple or width % multiple or min(height, width) < 4 * multiple:
        raise ValueError(
            f"image shape {(height, width)} does not fit the network: both sides must be "
            f"multiples of {multiple} and at least {4 * multiple} (its U-Nets pool "
            f"{len(network.settings.widths) - 1} times)"
        )
    return height, width


def reconstruct(
    network: UnrolledNetwork, normal: NormalFn, dirty: Float[Array, "height width"]
) -> Float[Array, "height width"]:
    """Reconstruct an image with the unrolled network (validated, compiled).

    Args:
        network: An :class:`UnrolledNetwork` (e.g. read with
            :func:`astrobayes.io.unrolled_files.read_unrolled`).
        normal: The normal operator ``N = Phi^H W Phi`` as a function or equinox Module
            mapping an image to an image (``operator.normal``, or the Toeplitz
            operator of :mod:`astrobayes.imaging.toeplitz`).
        dirty: The dirty image ``d = Phi^H W y`` (not normalised), ``(height, width)``.

    Returns:
        The reconstructed image (non-negative), ``(height, width)``.

    Raises:
        TypeError: If ``network`` is not an :class:`UnrolledNetwork` or ``normal`` is
            not callable.
        ValueError: If ``dirty`` is not a finite 2-d image of a size the network
            takes, or ``normal`` does not return a finite image of the same shape
            with a positive point-spread-function peak.
    """
    if not isinstance(network, UnrolledNetwork):
        raise TypeError(f"network must be an UnrolledNetwork; got {type(network).__name__}")
    if not callable(normal):
        raise TypeError(f"normal must be callable (image -> image); got {type(normal).__name__}")
    dirty = jnp.asarray(dirty)
    if not jnp.issubdtype(dirty.dtype, jnp.floating):
        raise ValueError(f"dirty must be a real floating-point image; got dtype {dirty.dtype}")
    shape = check_image_shape(network, dirty.shape)
    if not bool(jnp.all(jnp.isfinite(dirty))):
        count = int(jnp.sum(~jnp.isfinite(dirty)))
        raise ValueError(
            f"dirty has {count} non-finite pixels (NaN or inf visibilities?); "
            "the network needs finite data"
        )
    impulse = jnp.zeros(shape, dirty.dtype).at[shape[0] // 2, shape[1] // 2].set(1.0)
    psf = jnp.asarray(normal(impulse))
    if psf.shape != shape:
        raise ValueError(f"normal must map a {shape} image to one; got shape {psf.shape}")
    peak = float(psf[shape[0] // 2, shape[1] // 2])
    if not (np.isfinite(peak) and peak > 0) or not bool(jnp.all(jnp.isfinite(psf))):
        raise ValueError(
            "normal(impulse) must be finite with a positive peak (a normal operator "
            f"Phi^H W Phi); got peak {peak}"
        )
    return _apply(network, normal, dirty)


@eqx.filter_jit
def _apply(network, normal, dirty):
    return network(normal, dirty)


class UnrolledImagingStatus(Status):
    """How an unrolled reconstruction went; values are the messages."""

    OK = (Severity.OK, "reconstructed; the data residual is consistent with the noise level")
    RESIDUAL_FAR_FROM_NOISE = (
        Severity.WARNING,
        "warning: the data residual ||y - Phi x||^2 / (2 M sigma^2) is far from 1 (below "
        "1/4 or above 4): the reconstruction does not fit the data as a noise-level fit "
        "would (data unlike the training set?)",
    )
    NOT_FINITE = (Severity.FAILURE, "failure: the reconstruction is not finite")


class UnrolledImagingResult(NamedTuple):
    """Output of :func:`run_unrolled_imaging`.

    Attributes:
        image: The reconstruction (non-negative).
        dirty: ``Phi^H y`` divided by the peak of the point-spread function.
        snr_db: Reconstruction SNR when the truth is given, else ``None``.
        discrepancy_ratio: ``||y - Phi x||^2 / (2 M sigma^2)`` (about 1 for a fit at
            the noise level).
        timings: Seconds per stage (``normal_operator_s``, ``reconstruct_s``, the
            latter including compilation on a first call, ``total_s``).
        status: :class:`UnrolledImagingStatus`.
    """

    image: Float[Array, "height width"]
    dirty: Float[Array, "height width"]
    snr_db: float | None
    discrepancy_ratio: float
    timings: dict[str, float]
    status: UnrolledImagingStatus


def normal_operator_of(operator: MeasurementOperator) -> NormalFn:
    """The fastest exact normal operator ``Phi^H Phi`` of ``operator``.

    A NUFFT or masked FFT gets the convolution form of
    :mod:`astrobayes.imaging.toeplitz` (two FFTs per application); any other
    :class:`~astrobayes.imaging.operators.MeasurementOperator` its own ``normal``.

    Args:
        operator: The measurement operator.

    Returns:
        A callable (an equinox Module) mapping an image to an image.

    Raises:
        TypeError: If ``operator`` is not a ``MeasurementOperator``.
    """
    if isinstance(operator, NufftOperator | FourierMaskOperator):
        return normal_operator(operator)
    if isinstance(operator, MeasurementOperator):
        return operator.normal
    raise TypeError(f"operator must be a MeasurementOperator; got {type(operator).__name__}")


def run_unrolled_imaging(
    network: UnrolledNetwork,
    operator: MeasurementOperator,
    visibilities: Complex[Array, " num_visibilities"],
    sigma: float,
    *,
    truth: Float[Array, "height width"] | None = None,
    throw: bool = False,
) -> UnrolledImagingResult:
    """Reconstruct an image from visibilities with the unrolled network.

    Args:
        network: The network (read with :func:`astrobayes.io.unrolled_files.read_unrolled`).
        operator: The (whitened) measurement operator.
        visibilities: The (whitened) visibilities ``y``.
        sigma: Noise standard deviation of each of their real and imaginary parts.
        truth: Optional ground truth, for the reported SNR only.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` (carrying the
            result) on a failure status.

    Returns:
        An :class:`UnrolledImagingResult`.

    Raises:
        TypeError: If ``network`` or ``operator`` has the wrong type.
        ValueError: If the visibilities are not finite or do not match the operator,
            ``sigma`` is not positive, or the image size does not fit the network.
        UnreliableResultError: With ``throw=True`` on a failure status.
    """
    if not isinstance(network, UnrolledNetwork):
        raise TypeError(f"network must be an UnrolledNetwork; got {type(network).__name__}")
    if not isinstance(operator, MeasurementOperator):
        raise TypeError(f"operator must be a MeasurementOperator; got {type(operator).__name__}")
    check_image_shape(network, operator.image_shape)
    y = jnp.asarray(visibilities)
    if y.shape != (operator.num_visibilities,):
        raise ValueError(
            f"visibilities must have shape ({operator.num_visibilities},); got {y.shape}"
        )
    if not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError(
            f"visibilities has {int(jnp.sum(~jnp.isfinite(y)))} non-finite entries (NaN or "
            "inf); flag or remove them before imaging"
        )
    if isinstance(sigma, bool) or not (np.isscalar(sigma) and np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number; got {sigma!r}")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    normal = normal_operator_of(operator)
    backprojected = operator.adjoint(y)
    backprojected.block_until_ready()
    timings["normal_operator_s"] = time.perf_counter() - start
    tic = time.perf_counter()
    image = reconstruct(network, normal, backprojected)
    image.block_until_ready()
    timings["reconstruct_s"] = time.perf_counter() - tic
    residual = y - operator(image.astype(jnp.real(y).dtype))
    ratio = float(jnp.sum(jnp.abs(residual) ** 2)) / (2 * y.shape[0] * float(sigma) ** 2)
    timings["total_s"] = time.perf_counter() - start
    if isinstance(normal, NormalOperator):
        peak = normal.psf_peak()
    else:
        h, w = operator.image_shape
        peak = normal(jnp.zeros((h, w)).at[h // 2, w // 2].set(1.0))[h // 2, w // 2]
    finite = bool(jnp.all(jnp.isfinite(image)))
    if not finite:
        status = UnrolledImagingStatus.NOT_FINITE
    elif not 0.25 <= ratio <= 4.0:
        status = UnrolledImagingStatus.RESIDUAL_FAR_FROM_NOISE
    else:
        status = UnrolledImagingStatus.OK
    result = UnrolledImagingResult(
        image=image,
        dirty=backprojected / peak,
        snr_db=None if truth is None or not finite else snr_db(truth, image),
        discrepancy_ratio=ratio,
        timings=timings,
        status=status,
    )
    return check(result, throw)
