"""Parametric galaxy images (bulge + disk, PSF-convolved) rendered with GalSim.

Training and held-out images for the data-driven galaxy prior (issue 12): each galaxy is
an exponential disk plus a de Vaucouleurs bulge, each sheared to a random ellipticity
with a common (jittered) orientation, shifted by a sub-pixel offset and convolved with a
Moffat point-spread function of random width and ellipticity. Images are normalised to
a peak of one. Every random number is drawn from the JAX key (GalSim only renders, with
no noise), so the same key gives the same images, and disjoint keys give disjoint,
independent sets: :func:`galaxy_images` at ``fold_in(key, 0)`` trains and at
``fold_in(key, 1)`` is held out (see ``scripts/make_galaxy_images.py``).

GalSim (``galsim`` in the ``imaging`` extra) is imported only when images are rendered.

References:
    Rowe et al. 2015, Astron. Comput. 10, 121, "GalSim: The modular galaxy image
    simulation toolkit" (arXiv:1407.7676).
    McEwen et al. 2023, "Proximal nested sampling with data-driven priors for physical
    scientists" (arXiv:2307.00056): the galaxy denoising case.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int

__all__ = ["GalaxySettings", "galaxy_images", "galaxy_parameters"]


@dataclasses.dataclass(frozen=True)
class GalaxySettings:
    """Ranges of the random galaxy and PSF parameters, in pixels.

    Attributes:
        size: Image side (pixels); the images are ``size x size``.
        disk_radius: ``(low, high)`` of the disk half-light radius, drawn log-uniformly.
        bulge_ratio: ``(low, high)`` of the bulge half-light radius over the disk's.
        bulge_fraction: ``(low, high)`` of the bulge's share of the flux.
        disk_shear: Largest reduced shear ``|g|`` of the disk (drawn uniformly).
        bulge_shear: Largest ``|g|`` of the bulge.
        angle_jitter: Standard deviation (radians) of the bulge's position angle about
            the disk's.
        max_offset: Largest centre offset (pixels) along each axis.
        psf_fwhm: ``(low, high)`` of the Moffat FWHM (pixels).
        psf_beta: ``(low, high)`` of the Moffat ``beta``.
        psf_shear: Largest ``|g|`` of the PSF.

    Example:
        >>> GalaxySettings(size=16).size
        16

    """

    size: int = 32
    disk_radius: tuple[float, float] = (1.5, 6.0)
    bulge_ratio: tuple[float, float] = (0.15, 0.6)
    bulge_fraction: tuple[float, float] = (0.0, 0.8)
    disk_shear: float = 0.6
    bulge_shear: float = 0.3
    angle_jitter: float = 0.2
    max_offset: float = 2.0
    psf_fwhm: tuple[float, float] = (1.5, 3.5)
    psf_beta: tuple[float, float] = (2.5, 4.5)
    psf_shear: float = 0.05

    def __post_init__(self) -> None:
        check_positive_int(self.size, "size", minimum=8)
        for name in ("disk_radius", "bulge_ratio", "psf_fwhm", "psf_beta"):
            low, high = _pair(getattr(self, name), name)
            if not (0 < low <= high):
                raise ValueError(f"{name} must satisfy 0 < low <= high; got {(low, high)}")
        low, high = _pair(self.bulge_fraction, "bulge_fraction")
        if not (0 <= low <= high <= 1):
            raise ValueError(
                f"bulge_fraction must satisfy 0 <= low <= high <= 1; got {(low, high)}"
            )
        for name in ("disk_shear", "bulge_shear", "psf_shear"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < 1):
                raise ValueError(f"{name} must lie in [0, 1); got {value!r}")
        for name in ("angle_jitter", "max_offset"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < np.inf):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")


def _pair(value: Any, name: str) -> tuple[float, float]:
    if not (isinstance(value, tuple | list) and len(value) == 2):
        raise ValueError(f"{name} must be a (low, high) pair; got {value!r}")
    return float(value[0]), float(value[1])


def galaxy_parameters(
    key: PRNGKeyArray, num: int, settings: GalaxySettings = GalaxySettings()
) -> dict[str, Float[Array, " num"]]:
    """Draw the parameters of ``num`` random galaxies and their PSFs.

    Args:
        key: JAX PRNG key.
        num: Number of galaxies.
        settings: Parameter ranges.

    Returns:
        Arrays of shape ``(num,)``: ``disk_radius``, ``bulge_radius``,
        ``bulge_fraction``, ``disk_g``, ``bulge_g``, ``disk_angle``, ``bulge_angle``,
        ``offset_x``, ``offset_y``, ``psf_fwhm``, ``psf_beta``, ``psf_g``,
        ``psf_angle`` (radii in pixels, angles in radians).

    Example:
        >>> import jax
        >>> p = galaxy_parameters(jax.random.key(0), 3)
        >>> p["disk_radius"].shape
        (3,)

    """
    check_key(key)
    num = check_positive_int(num, "num")
    if not isinstance(settings, GalaxySettings):
        raise TypeError(f"settings must be a GalaxySettings; got {type(settings).__name__}")
    keys = jax.random.split(key, 13)
    s = settings

    def uniform(k, low, high):
        return jax.random.uniform(k, (num,), minval=low, maxval=high)

    log_low, log_high = np.log(s.disk_radius[0]), np.log(s.disk_radius[1])
    disk_radius = jnp.exp(uniform(keys[0], log_low, log_high))
    disk_angle = uniform(keys[1], 0.0, np.pi)
    return {
        "disk_radius": disk_radius,
        "bulge_radius": disk_radius * uniform(keys[2], *s.bulge_ratio),
        "bulge_fraction": uniform(keys[3], *s.bulge_fraction),
        "disk_g": uniform(keys[4], 0.0, s.disk_shear),
        "bulge_g": uniform(keys[5], 0.0, s.bulge_shear),
        "disk_angle": disk_angle,
        "bulge_angle": disk_angle + s.angle_jitter * jax.random.normal(keys[6], (num,)),
        "offset_x": uniform(keys[7], -s.max_offset, s.max_offset),
        "offset_y": uniform(keys[8], -s.max_offset, s.max_offset),
        "psf_fwhm": uniform(keys[9], *s.psf_fwhm),
        "psf_beta": uniform(keys[10], *s.psf_beta),
        "psf_g": uniform(keys[11], 0.0, s.psf_shear),
        "psf_angle": uniform(keys[12], 0.0, np.pi),
    }


def _import_galsim():
    try:
        import galsim
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "galaxy_images needs GalSim: pip install 'astrobayes[imaging]' (or pip install "
            "galsim>=2.5)"
        ) from error
    return galsim


def galaxy_images(
    key: PRNGKeyArray,
    num: int,
    settings: GalaxySettings = GalaxySettings(),
) -> np.ndarray:
    """Render ``num`` random bulge + disk galaxies convolved with random Moffat PSFs.

    Args:
        key: JAX PRNG key (all parameters come from :func:`galaxy_parameters` with it).
        num: Number of images.
        settings: Parameter ranges and image size.

    Returns:
        ``float32`` array ``(num, size, size)``, each image non-negative with peak 1.

    Raises:
        ImportError: If GalSim is not installed.
        ValueError: On invalid ``num`` or settings.

    Example:
        >>> import jax
        >>> images = galaxy_images(jax.random.key(0), 2, GalaxySettings(size=16))
        >>> images.shape, float(images.max(axis=(1, 2)).min())
        ((2, 16, 16), 1.0)

    """
    params = {
        k: np.asarray(v, np.float64) for k, v in galaxy_parameters(key, num, settings).items()
    }
    galsim = _import_galsim()
    size = settings.size
    images = np.empty((num, size, size), np.float32)
    for i in range(num):
        p = {k: float(v[i]) for k, v in params.items()}
        disk = galsim.Exponential(half_light_radius=p["disk_radius"]).shear(
            g=p["disk_g"], beta=p["disk_angle"] * galsim.radians
        )
        bulge = galsim.DeVaucouleurs(half_light_radius=p["bulge_radius"]).shear(
            g=p["bulge_g"], beta=p["bulge_angle"] * galsim.radians
        )
        galaxy = (1.0 - p["bulge_fraction"]) * disk + p["bulge_fraction"] * bulge
        galaxy = galaxy.shift(p["offset_x"], p["offset_y"])
        psf = galsim.Moffat(beta=p["psf_beta"], fwhm=p["psf_fwhm"]).shear(
            g=p["psf_g"], beta=p["psf_angle"] * galsim.radians
        )
        image = galsim.Convolve(galaxy, psf).drawImage(nx=size, ny=size, scale=1.0).array
        image = np.clip(image, 0.0, None)
        images[i] = image / image.max()
    return images
