"""Learned denoisers ``D_sigma`` and the prior score they give by Tweedie's formula.

Convention (one noise variable everywhere): ``sigma`` is the noise **standard
deviation** in image units, ``z = x + sigma n`` with ``n ~ N(0, I)``. The issue's
``epsilon`` (a variance, ``z ~ N(x, epsilon I)``) is ``sigma**2``. Tweedie's formula
(Robbins 1956; Efron 2011) says that the minimum-mean-squared-error denoiser of ``z`` is

    ``E[x | z] = z + sigma^2 grad log p_sigma(z)``,

with ``p_sigma = p * N(0, sigma^2 I)`` the prior smoothed at noise ``sigma``; hence a
trained denoiser gives the score of the smoothed prior,

    ``score(z, sigma) = grad log p_sigma(z) ~= (D_sigma(z) - z) / sigma^2``

(:func:`tweedie_score`, :func:`score_function`), the prior term of plug-and-play
Langevin samplers (PnP-ULA, Laumont et al. 2022) and of proximal nested sampling with
data-driven priors (McEwen et al. 2023).

The denoiser (:class:`Denoiser`) is a network of :mod:`astrobayes.imaging.networks` in
residual form: ``D_sigma(z) = z - sigma f([z, c(sigma)])`` when the noise level is an
input (``noise_input=True``: a constant channel ``c(sigma)``, ``log sigma`` mapped to
``[-1, 1]`` over the training range), or ``D(z) = z - f(z)`` for a blind denoiser
(``noise_input=False``; with ``use_bias=False`` it is scale-equivariant, which is what
lets a blind denoiser generalise across noise levels, Mohan et al. 2020). It is trained
by denoising score matching across noise levels (Vincent 2011; Song & Ermon 2019):
``sigma`` log-uniform on ``[sigma_min, sigma_max]``, loss
``||D_sigma(x + sigma n) - x||^2 / sigma^2`` per pixel (equivalently ``||f - n||^2``:
the weighting ``lambda(sigma) = sigma^2`` that balances the score-matching terms), through
:func:`astrobayes._training.fit` (:func:`train_denoiser`).

Files: :mod:`astrobayes.io.denoiser_files` (``save_denoiser``, ``load_denoiser``, the
shipped galaxy denoiser); training: ``scripts/train_denoiser.py`` on images of
``scripts/make_galaxy_images.py``.

References:
    Efron 2011, J. Am. Stat. Assoc. 106, 1602, "Tweedie's formula and selection bias".
    Vincent 2011, Neural Comput. 23, 1661, "A connection between score matching and
    denoising autoencoders".
    Song & Ermon 2019, "Generative modeling by estimating gradients of the data
    distribution" (arXiv:1907.05600).
    Mohan, Kadkhodaie, Simoncelli & Fernandez-Granda 2020 (arXiv:1906.05478): bias-free
    denoisers.
    Laumont, De Bortoli, Almansa, Delon, Durmus & Pereyra 2022, SIAM J. Imaging Sci.
    15(2), 701, "Bayesian imaging using plug & play priors" (arXiv:2103.04715).
    McEwen, Liaudat, Price, Cai & Pereyra 2023 (arXiv:2307.00056).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._training import TrainingConfig, TrainingInfo, fit
from astrobayes._types import ProgressFn, parameter_dtype
from astrobayes.imaging.networks import DnCNN, UNet

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_TRAINING",
    "DenoiseResult",
    "DenoiseStatus",
    "Denoiser",
    "DenoiserSettings",
    "TweedieScore",
    "denoise",
    "denoising_score_matching_loss",
    "init_denoiser",
    "score_function",
    "train_denoiser",
    "tweedie_score",
]

ARCHITECTURES = ("unet", "dncnn")

#: Default optimiser settings of :func:`train_denoiser` (Adam 1e-3, minibatches of 32).
DEFAULT_TRAINING = TrainingConfig(
    learning_rate=1e-3, batch_size=32, patience=10, epoch_loop="python"
)
"""Convolutional networks train step by step (``epoch_loop="python"``): ~15x faster on a CPU."""


@dataclasses.dataclass(frozen=True)
class DenoiserSettings:
    """Architecture and noise range of a :class:`Denoiser`.

    Attributes:
        architecture: ``"unet"`` (:class:`~astrobayes.imaging.networks.UNet`) or
            ``"dncnn"`` (:class:`~astrobayes.imaging.networks.DnCNN`).
        widths: U-Net channels per resolution (finest first).
        convs_per_level: U-Net convolutions per resolution.
        width: DnCNN hidden channels.
        depth: DnCNN convolutions.
        use_bias: ``False`` for bias-free convolutions.
        noise_input: Give the network the noise level as a constant input channel
            (``D_sigma(z) = z - sigma f([z, c(sigma)])``); ``False``: a blind denoiser
            ``D(z) = z - f(z)``.
        sigma_min: Smallest training noise standard deviation (image units).
        sigma_max: Largest training noise standard deviation.
        padding_mode: Convolution padding (``"ZEROS"`` for isolated objects on an empty
            background, ``"CIRCULAR"`` for periodic images).

    Example:
        >>> DenoiserSettings(widths=(8, 16)).architecture
        'unet'

    """

    architecture: str = "unet"
    widths: tuple[int, ...] = (32, 64, 64)
    convs_per_level: int = 2
    width: int = 32
    depth: int = 8
    use_bias: bool = True
    noise_input: bool = True
    sigma_min: float = 0.005
    sigma_max: float = 0.3
    padding_mode: str = "ZEROS"

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}; got {self.architecture!r}"
            )
        if not isinstance(self.widths, tuple) or not self.widths:
            raise ValueError(f"widths must be a non-empty tuple of ints; got {self.widths!r}")
        for i, w in enumerate(self.widths):
            check_positive_int(w, f"widths[{i}]")
        check_positive_int(self.convs_per_level, "convs_per_level")
        check_positive_int(self.width, "width")
        check_positive_int(self.depth, "depth", minimum=2)
        for name in ("use_bias", "noise_input"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool; got {getattr(self, name)!r}")
        for name in ("sigma_min", "sigma_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and math.isfinite(value) and value > 0
            ):
                raise ValueError(f"{name} must be a positive finite number; got {value!r}")
        if not self.sigma_min <= self.sigma_max:
            raise ValueError(
                f"sigma_min must be <= sigma_max; got {self.sigma_min} and {self.sigma_max}"
            )


class Denoiser(eqx.Module):
    """A learned Gaussian denoiser ``D_sigma(z) ~= E[x | z = x + sigma n]``.

    Build it with :func:`init_denoiser`. Call it on one image ``(H, W)`` or a batch
    ``(B, H, W)`` with a noise standard deviation ``sigma`` (a number, or one per image).

    Attributes:
        network: The U-Net or DnCNN predicting the (scaled) noise.
        settings: The :class:`DenoiserSettings` it was built from.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=2))
        >>> d(jnp.zeros((8, 8)), 0.1).shape
        (8, 8)

    """

    network: UNet | DnCNN
    settings: DenoiserSettings = eqx.field(static=True)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (one factor 2 per U-Net pooling)."""
        if self.settings.architecture == "unet":
            return 2 ** (len(self.settings.widths) - 1)
        return 1

    def _noise_channel(self, sigma: Array) -> Array:
        low, high = math.log(self.settings.sigma_min), math.log(self.settings.sigma_max)
        if high == low:
            return jnp.zeros_like(sigma)
        return 2.0 * (jnp.log(sigma) - low) / (high - low) - 1.0

    def _single(self, image: Array, sigma: Array) -> Array:
        # The network runs in its weights' dtype (float32 as shipped), whatever the image's:
        # with jax_enable_x64 on, float64 images reached the convolutions with float32
        # kernels and lax raised. The residual is added back in the image's dtype.
        x = image.astype(parameter_dtype(self.network))
        if self.settings.noise_input:
            channel = jnp.full_like(x, self._noise_channel(sigma))
            residual = self.network(jnp.stack([x, channel]))[0]
            return image - (sigma * residual).astype(image.dtype)
        return image - self.network(x[None])[0].astype(image.dtype)

    def __call__(
        self, image: Float[Array, "*batch height width"], sigma: float | Float[Array, "*batch"]
    ) -> Float[Array, "*batch height width"]:
        """``D_sigma(image)`` for one image ``(H, W)`` or a batch ``(B, H, W)``.

        Raises:
            ValueError: On an image that is not 2-d or 3-d, sides that are not multiples
                of :attr:`size_multiple`, or a concrete ``sigma`` that is not positive
                and finite.
        """
        image = jnp.asarray(image)
        if image.ndim not in (2, 3):
            raise ValueError(
                f"image must be (height, width) or (batch, height, width); got shape {image.shape}"
            )
        m = self.size_multiple
        if image.shape[-1] % m or image.shape[-2] % m:
            raise ValueError(
                f"image sides must be multiples of {m} for this denoiser; got shape {image.shape}"
            )
        sigma = _check_sigma(sigma)
        if image.ndim == 2 and sigma.ndim:
            raise ValueError(f"one image takes one sigma; got sigma shape {sigma.shape}")
        if image.ndim == 3:
            sigma = jnp.broadcast_to(sigma, image.shape[:1])
        return _apply(self, image, sigma)


@eqx.filter_jit
def _apply(denoiser: Denoiser, image: Array, sigma: Array) -> Array:
    """``D_sigma`` on one image or a batch, compiled (also when called eagerly)."""
    if image.ndim == 2:
        return denoiser._single(image, sigma)
    return jax.vmap(denoiser._single)(image, sigma)


def _check_sigma(sigma) -> Array:
    """``sigma`` as an array; concrete values must be positive and finite."""
    if isinstance(sigma, bool):
        raise TypeError(f"sigma must be a number or an array; got {sigma!r}")
    array = jnp.asarray(sigma)
    if not jnp.issubdtype(array.dtype, jnp.floating) and not jnp.issubdtype(
        array.dtype, jnp.integer
    ):
        raise TypeError(f"sigma must be real; got dtype {array.dtype}")
    array = array.astype(jnp.result_type(float))
    if array.ndim > 1:
        raise ValueError(f"sigma must be a number or one per image; got shape {array.shape}")
    try:
        values = np.asarray(array)
    except jax.errors.TracerArrayConversionError:  # traced: checked by the caller's data
        return array
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise ValueError(f"sigma must be positive and finite; got {values}")
    return array


def _check_number(sigma) -> float:
    """A concrete positive finite noise level, as a float."""
    if isinstance(sigma, bool) or not (
        isinstance(sigma, int | float | np.floating | np.integer)
        and math.isfinite(sigma)
        and sigma > 0
    ):
        raise ValueError(f"sigma must be a positive finite number; got {sigma!r}")
    return float(sigma)


def init_denoiser(key: PRNGKeyArray, settings: DenoiserSettings = DenoiserSettings()) -> Denoiser:
    """An untrained :class:`Denoiser` with the given architecture.

    Args:
        key: JAX PRNG key of the initial weights.
        settings: :class:`DenoiserSettings`.

    Returns:
        The denoiser.

    Raises:
        TypeError: If ``settings`` is not a :class:`DenoiserSettings`.

    Example:
        >>> import jax
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=3))
        >>> d.size_multiple
        1

    """
    check_key(key)
    if not isinstance(settings, DenoiserSettings):
        raise TypeError(f"settings must be a DenoiserSettings; got {type(settings).__name__}")
    channels = 2 if settings.noise_input else 1
    if settings.architecture == "unet":
        network = UNet(
            channels,
            1,
            key=key,
            widths=settings.widths,
            convs_per_level=settings.convs_per_level,
            use_bias=settings.use_bias,
            padding_mode=settings.padding_mode,
        )
    else:
        network = DnCNN(
            channels,
            1,
            key=key,
            width=settings.width,
            depth=settings.depth,
            use_bias=settings.use_bias,
            padding_mode=settings.padding_mode,
        )
    return Denoiser(network=network, settings=settings)


def tweedie_score(
    denoiser: Denoiser, image: Float[Array, "*batch height width"], sigma: float
) -> Float[Array, "*batch height width"]:
    """The smoothed prior's score ``grad log p_sigma(image) ~= (D_sigma(image) - image) / sigma^2``.

    ``sigma`` is a standard deviation (the issue's ``epsilon = sigma^2``). Non-finite
    inputs give non-finite outputs (check them with :func:`denoise` or ``jnp.isfinite``).

    Args:
        denoiser: The trained denoiser.
        image: One image ``(H, W)`` or a batch ``(B, H, W)``.
        sigma: Noise standard deviation of the smoothing (positive).

    Returns:
        The score, shaped like ``image``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=2))
        >>> tweedie_score(d, jnp.zeros((2, 8, 8)), 0.1).shape
        (2, 8, 8)

    """
    sigma_array = _check_sigma(sigma)
    return (denoiser(image, sigma_array) - image) / sigma_array[..., None, None] ** 2


class TweedieScore(eqx.Module):
    """``image -> (D_sigma(image) - image) / sigma^2`` at a fixed ``sigma``, as a PyTree.

    Built by :func:`score_function`. Being an equinox Module, it passes through
    ``jax.jit`` as data: samplers compiled for one score reuse their compilation for
    another ``sigma`` or other weights of the same architecture.

    Attributes:
        denoiser: The trained denoiser.
        sigma: Smoothing noise standard deviation (a 0-d array).
    """

    denoiser: Denoiser
    sigma: Float[Array, ""]

    def __call__(
        self, image: Float[Array, "*batch height width"]
    ) -> Float[Array, "*batch height width"]:
        """The score of the smoothed prior at ``image`` (``(H, W)`` or ``(B, H, W)``)."""
        return (self.denoiser(image, self.sigma) - image) / self.sigma**2


def score_function(denoiser: Denoiser, sigma: float) -> TweedieScore:
    """``image -> tweedie_score(denoiser, image, sigma)`` at a fixed ``sigma``: a pure callable.

    The prior term of a Langevin sampler: ``grad log pi_sigma(x)``. The callable (a
    :class:`TweedieScore` Module) is jit-able, vmap-able and differentiable, and takes
    ``(H, W)`` or ``(B, H, W)``. Pass it to compiled code as an argument
    (``eqx.filter_jit``) or close over it (``jax.jit(lambda x: score(x))``); being a
    Module holding arrays it is not hashable, so not ``jax.jit(score)`` itself.

    Args:
        denoiser: The trained denoiser.
        sigma: Smoothing noise standard deviation (``epsilon = sigma**2``).

    Returns:
        The score function.

    Raises:
        TypeError: If ``denoiser`` is not a :class:`Denoiser`.
        ValueError: If ``sigma`` is not a positive finite number.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=2))
        >>> score = score_function(d, 0.05)
        >>> bool(jnp.all(jnp.isfinite(jax.jit(lambda x: score(x))(jnp.ones((8, 8))))))
        True

    """
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser must be a Denoiser; got {type(denoiser).__name__}")
    sigma = _check_number(sigma)
    return TweedieScore(denoiser=denoiser, sigma=jnp.asarray(sigma, jnp.result_type(float)))


class DenoiseStatus(Status):
    """Outcome of :func:`denoise`."""

    OK = (Severity.OK, "denoised within the training noise range")
    OUT_OF_RANGE = (
        Severity.WARNING,
        "warning: sigma lies outside the denoiser's training range [sigma_min, sigma_max]; "
        "the output is an extrapolation",
    )
    NON_FINITE = (
        Severity.FAILURE,
        "failure: the denoised image has non-finite pixels (non-finite input or weights)",
    )


class DenoiseResult(NamedTuple):
    """Result of :func:`denoise`.

    Attributes:
        image: ``D_sigma(z)``, the MMSE estimate under the learned prior.
        score: ``(D_sigma(z) - z) / sigma^2``.
        sigma: The noise standard deviation used.
        num_non_finite: Pixels of ``image`` that are not finite.
        status: :class:`DenoiseStatus`.
    """

    image: Float[Array, "*batch height width"]
    score: Float[Array, "*batch height width"]
    sigma: float
    num_non_finite: int
    status: DenoiseStatus


def denoise(
    denoiser: Denoiser,
    noisy: Float[Array, "*batch height width"],
    sigma: float,
    *,
    throw: bool = False,
) -> DenoiseResult:
    """Denoise ``noisy`` at noise level ``sigma`` and check the output.

    For pure Gaussian denoising ``D_sigma(z)`` *is* the posterior mean ``E[x | z]`` under
    the prior the denoiser learned (Tweedie), so this is the data-driven MMSE estimate
    without sampling.

    Args:
        denoiser: The trained denoiser.
        noisy: One image ``(H, W)`` or a batch ``(B, H, W)``.
        sigma: Noise standard deviation of ``noisy``.
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` on a failure.

    Returns:
        A :class:`DenoiseResult`; a non-finite output is a failure, a ``sigma`` outside
        the training range a warning.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=2))
        >>> denoise(d, jnp.full((8, 8), jnp.nan), 0.1).status.name
        'NON_FINITE'

    """
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser must be a Denoiser; got {type(denoiser).__name__}")
    sigma = _check_number(sigma)
    noisy = jnp.asarray(noisy)
    image = denoiser(noisy, float(sigma))
    num_bad = int(jnp.sum(~jnp.isfinite(image)))
    if num_bad:
        status = DenoiseStatus.NON_FINITE
    elif not denoiser.settings.sigma_min <= sigma <= denoiser.settings.sigma_max:
        status = DenoiseStatus.OUT_OF_RANGE
    else:
        status = DenoiseStatus.OK
    result = DenoiseResult(
        image=image,
        score=(image - noisy) / float(sigma) ** 2,
        sigma=float(sigma),
        num_non_finite=num_bad,
        status=status,
    )
    return check(result, throw)


def denoising_score_matching_loss(
    denoiser: Denoiser, batch: tuple[Float[Array, "batch height width"], ...], key: PRNGKeyArray
) -> Float[Array, ""]:
    """Denoising score matching across noise levels, per pixel.

    ``sigma ~ LogUniform(sigma_min, sigma_max)`` per image, ``z = x + sigma n``, loss
    ``mean ||D_sigma(z) - x||^2 / sigma^2`` (the weighting ``lambda(sigma) = sigma^2`` of
    Song & Ermon 2019): for ``noise_input`` denoisers it equals ``mean ||f - n||^2``. A
    perfect denoiser of the data distribution minimises it; the identity scores 1.

    Args:
        denoiser: The denoiser being trained.
        batch: ``(clean_images,)``, shape ``(B, H, W)``.
        key: Key of the noise levels and the noise.

    Returns:
        The scalar loss.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=2))
        >>> loss = denoising_score_matching_loss(d, (jnp.zeros((3, 8, 8)),), jax.random.key(1))
        >>> loss.shape
        ()

    """
    (clean,) = batch
    s = denoiser.settings
    key_sigma, key_noise = jax.random.split(key)
    log_sigma = jax.random.uniform(
        key_sigma,
        clean.shape[:1],
        minval=math.log(s.sigma_min),
        maxval=math.log(s.sigma_max),
    )
    sigma = jnp.exp(log_sigma)
    noise = jax.random.normal(key_noise, clean.shape, clean.dtype)
    noisy = clean + sigma[:, None, None] * noise
    denoised = jax.vmap(denoiser._single)(noisy, sigma)
    return jnp.mean(((denoised - clean) / sigma[:, None, None]) ** 2)


def train_denoiser(
    key: PRNGKeyArray,
    denoiser: Denoiser,
    train_images: Float[Array, "num height width"],
    validation_images: Float[Array, "num_validation height width"],
    *,
    config: TrainingConfig = DEFAULT_TRAINING,
    progress_fn: ProgressFn | None = None,
) -> tuple[Denoiser, TrainingInfo]:
    """Train ``denoiser`` by :func:`denoising_score_matching_loss` through ``_training.fit``.

    Args:
        key: JAX PRNG key (shuffling, noise levels and noise).
        denoiser: The denoiser to train (e.g. from :func:`init_denoiser`, or a checkpoint
            to continue).
        train_images: Clean training images ``(N, H, W)``.
        validation_images: Clean held-out images ``(M, H, W)`` for early stopping.
        config: :class:`~astrobayes._training.TrainingConfig`.
        progress_fn: ``progress_fn("training", epoch, max_epochs)``.

    Returns:
        ``(trained_denoiser, info)`` as from :func:`~astrobayes._training.fit`.

    Raises:
        TypeError: If ``denoiser`` is not a :class:`Denoiser`.
        ValueError: If the images are not ``(N, H, W)`` with finite values and sides
            the network accepts.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes._training import TrainingConfig
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=2))
        >>> x = jnp.zeros((8, 8, 8))
        >>> cfg = TrainingConfig(batch_size=4, max_epochs=2)
        >>> d, info = train_denoiser(jax.random.key(1), d, x[:6], x[6:], config=cfg)
        >>> info.num_epochs
        2

    """
    check_key(key)
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser must be a Denoiser; got {type(denoiser).__name__}")
    arrays = []
    for name, images in (("train_images", train_images), ("validation_images", validation_images)):
        images = jnp.asarray(images, jnp.result_type(float))
        if images.ndim != 3 or images.shape[0] < 1:
            raise ValueError(f"{name} must have shape (num, height, width); got {images.shape}")
        m = denoiser.size_multiple
        if images.shape[1] % m or images.shape[2] % m:
            raise ValueError(
                f"{name} sides must be multiples of {m} for this denoiser; got {images.shape}"
            )
        if not bool(jnp.all(jnp.isfinite(images))):
            raise ValueError(f"{name} must be finite")
        arrays.append(images)
    return fit(
        key,
        denoiser,
        denoising_score_matching_loss,
        (arrays[0],),
        (arrays[1],),
        config=config,
        progress_fn=progress_fn,
    )
