"""Uncertainty quantification from the MAP alone, for log-concave imaging posteriors.

* :func:`hpd_threshold` -- Pereyra's (2017) conservative bound on the highest posterior
  density region: for ``alpha in (4 exp(-N/3), 1)``,
  ``C_alpha subset {x : U(x) <= gamma_alpha}`` with
  ``gamma_alpha = U(x_MAP) + sqrt(N) tau_alpha + N`` and
  ``tau_alpha = sqrt(16 log(3 / alpha))``.
* :func:`~astrobayes.imaging.intervals.local_credible_intervals` (in
  :mod:`~astrobayes.imaging.intervals`) -- for each super-pixel ``B``, the range of
  values ``xi`` such that ``U(x_MAP + xi 1_B) <= gamma_alpha`` (Cai, Pereyra & McEwen
  2018).
* :func:`hypothesis_test` -- test whether a structure is physical: replace it by an
  inpainted or blurred surrogate and reject "the structure is not physical" when
  ``U(surrogate) > gamma_alpha``; :func:`wavelet_scale_tests` does the same for each
  wavelet scale.

References:
    Pereyra 2017, SIAM J. Imaging Sci. 10, 285, "Maximum-a-posteriori estimation with
    Bayesian confidence regions" (arXiv:1602.03022).
    Cai, Pereyra & McEwen 2018, MNRAS 480, 4170, "Uncertainty quantification for radio
    interferometric imaging II: MAP estimation" (arXiv:1711.04819).
    Liaudat et al. 2024, RASTI, "Scalable Bayesian uncertainty quantification with
    data-driven priors for radio interferometric imaging" (arXiv:2312.00125).

"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from astrobayes._checks import check_positive_int
from astrobayes.imaging.posterior import ImagingPosterior
from astrobayes.imaging.wavelets import WaveletTransform

__all__ = [
    "HpdResult",
    "HypothesisTestResult",
    "blur_region",
    "hpd_threshold",
    "hypothesis_test",
    "inpaint_region",
    "wavelet_scale_tests",
]


class HpdResult(NamedTuple):
    """The HPD-region bound.

    Attributes:
        gamma_alpha: Threshold ``gamma_alpha`` on the potential.
        potential_at_map: ``U(x_MAP)``.
        tau_alpha: ``sqrt(16 log(3 / alpha))``.
        increment: ``gamma_alpha - U(x_MAP) = sqrt(N) tau_alpha + N``.
        alpha: ``1 - alpha`` is the credibility level.
        dimension: ``N``.

    """

    gamma_alpha: float
    potential_at_map: float
    tau_alpha: float
    increment: float
    alpha: float
    dimension: int


def hpd_threshold(potential_at_map: float, dimension: int, alpha: float = 0.01) -> HpdResult:
    """Pereyra's (2017) conservative HPD threshold ``gamma_alpha``.

    Args:
        potential_at_map: ``U(x_MAP)`` (negative log posterior at the MAP, with the
            same additive constant as the potential used afterwards).
        dimension: Number of pixels ``N``.
        alpha: ``1 - alpha`` credibility; must lie in ``(4 exp(-N/3), 1)``.

    Returns:
        An :class:`HpdResult`.

    Raises:
        ValueError: If ``alpha`` is outside the range where the bound holds, or the
            potential is not finite.

    References:
        Pereyra 2017, arXiv:1602.03022, Theorem 3.1.

    Example:
        >>> round(hpd_threshold(0.0, 100, 0.05).increment, 2)
        180.94

    """
    dimension = check_positive_int(dimension, "dimension")
    if not np.isfinite(potential_at_map):
        raise ValueError(f"potential_at_map must be finite; got {potential_at_map}")
    low = 4 * math.exp(-dimension / 3)
    if isinstance(alpha, bool) or not (low < float(alpha) < 1):
        raise ValueError(
            f"alpha must lie in (4 exp(-N/3), 1) = ({low:.3g}, 1) for N = {dimension}; got {alpha!r}"
        )
    tau = math.sqrt(16 * math.log(3 / alpha))
    increment = math.sqrt(dimension) * tau + dimension
    return HpdResult(
        gamma_alpha=float(potential_at_map) + increment,
        potential_at_map=float(potential_at_map),
        tau_alpha=tau,
        increment=increment,
        alpha=float(alpha),
        dimension=dimension,
    )


class HypothesisTestResult(NamedTuple):
    """Result of :func:`hypothesis_test`.

    Attributes:
        reject_null: ``True`` when ``U(surrogate) > gamma_alpha``: the surrogate without
            the structure lies outside the credible region, so "the structure is not
            physical" is rejected at level ``alpha``.
        potential_surrogate: ``U(surrogate)``.
        potential_map: ``U(x_MAP)``.
        gamma_alpha: The threshold.
        message: A sentence stating the conclusion.

    """

    reject_null: bool
    potential_surrogate: float
    potential_map: float
    gamma_alpha: float
    message: str


def hypothesis_test(
    posterior: ImagingPosterior,
    surrogate: Float[Array, "height width"],
    hpd: HpdResult,
) -> HypothesisTestResult:
    """Knowledge-free test of a structure (Cai, Pereyra & McEwen 2018, section 4.3).

    Args:
        posterior: The posterior.
        surrogate: ``x_MAP`` with the structure removed (see :func:`inpaint_region` and
            :func:`blur_region`).
        hpd: The HPD bound for this posterior.

    Returns:
        :class:`HypothesisTestResult`.

    Raises:
        ValueError: If the surrogate has the wrong shape or is not finite.

    """
    s = np.asarray(surrogate)
    if s.shape != posterior.image_shape:
        raise ValueError(f"surrogate must have shape {posterior.image_shape}; got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("surrogate must be finite")
    value = float(posterior.potential(jnp.asarray(s, jnp.zeros(()).dtype)))
    reject = value > hpd.gamma_alpha
    level = 100 * (1 - hpd.alpha)
    if reject:
        message = (
            f"U(surrogate) = {value:.6g} > gamma_alpha = {hpd.gamma_alpha:.6g}: the structure is "
            f"physical at {level:g}% credibility"
        )
    else:
        message = (
            f"U(surrogate) = {value:.6g} <= gamma_alpha = {hpd.gamma_alpha:.6g}: the data cannot "
            f"rule out that the structure is an artefact ({level:g}% credibility)"
        )
    return HypothesisTestResult(
        reject_null=bool(reject),
        potential_surrogate=value,
        potential_map=hpd.potential_at_map,
        gamma_alpha=hpd.gamma_alpha,
        message=message,
    )


def wavelet_scale_tests(
    posterior: ImagingPosterior,
    map_image: Float[Array, "height width"],
    hpd: HpdResult,
    transform: WaveletTransform,
) -> tuple[HypothesisTestResult, ...]:
    """Test, scale by scale, whether the wavelet structure of the MAP is needed by the data.

    For each level ``j = 1..levels`` the surrogate is ``x_MAP`` with its level-``j``
    detail coefficients set to zero (``Psi`` orthonormal, so this removes exactly that
    scale); rejecting the null hypothesis (``U(surrogate) > gamma_alpha``) means the
    scale's structure is supported by the data at credibility ``1 - alpha``.

    Args:
        posterior: The posterior.
        map_image: ``x_MAP``.
        hpd: The HPD bound.
        transform: A :class:`~astrobayes.imaging.wavelets.WaveletTransform`.

    Returns:
        One :class:`HypothesisTestResult` per level, finest first.
    """
    coefficients = transform(jnp.asarray(map_image))
    height, width = coefficients.shape
    results = []
    for level in range(1, transform.levels + 1):
        h, w = height >> level, width >> level
        band = np.zeros((height, width), bool)
        band[: 2 * h, : 2 * w] = True
        band[:h, :w] = False
        surrogate = transform.inverse(jnp.where(jnp.asarray(band), 0.0, coefficients))
        results.append(hypothesis_test(posterior, surrogate, hpd))
    return tuple(results)


def inpaint_region(
    image: Float[Array, "height width"],
    region: Bool[Array, "height width"],
    *,
    num_iterations: int = 2000,
) -> Float[Array, "height width"]:
    """Harmonic inpainting: replace ``region`` by the solution of Laplace's equation.

    The boundary values come from the pixels around the region (periodic edges), so the
    surrogate interpolates the background smoothly across the removed structure.

    Args:
        image: The image (typically ``x_MAP``).
        region: Boolean mask of the structure to remove.
        num_iterations: Jacobi iterations.

    Returns:
        The surrogate image.

    Raises:
        ValueError: If the shapes differ or the region is empty.

    """
    x, mask = _check_region(image, region)
    background = jnp.sum(jnp.where(mask, 0.0, x)) / jnp.sum(~mask)
    fill = jnp.where(mask, background, x)

    def body(_, current):
        average = 0.25 * (
            jnp.roll(current, 1, 0)
            + jnp.roll(current, -1, 0)
            + jnp.roll(current, 1, 1)
            + jnp.roll(current, -1, 1)
        )
        return jnp.where(mask, average, x)

    return jax.lax.fori_loop(0, num_iterations, body, fill)


def blur_region(
    image: Float[Array, "height width"],
    region: Bool[Array, "height width"],
    *,
    width_pixels: float = 3.0,
) -> Float[Array, "height width"]:
    """Replace ``region`` by a Gaussian-blurred version of the image.

    Args:
        image: The image.
        region: Boolean mask of the structure to smooth away.
        width_pixels: Standard deviation of the Gaussian kernel in pixels.

    Returns:
        The surrogate image.

    Raises:
        ValueError: If the shapes differ, the region is empty or the width is not
            positive.

    """
    x, mask = _check_region(image, region)
    if not (np.isfinite(width_pixels) and width_pixels > 0):
        raise ValueError(f"width_pixels must be positive; got {width_pixels}")
    height, width = x.shape
    fy = jnp.fft.fftfreq(height)[:, None]
    fx = jnp.fft.fftfreq(width)[None, :]
    transfer = jnp.exp(-2 * (jnp.pi * width_pixels) ** 2 * (fx**2 + fy**2))
    blurred = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(x) * transfer))
    return jnp.where(mask, blurred, x)


def _check_region(image, region):
    x = np.asarray(image)
    mask = np.asarray(region)
    if x.ndim != 2 or mask.shape != x.shape:
        raise ValueError(f"region must have the image's shape {x.shape}; got {mask.shape}")
    if mask.dtype != bool:
        raise ValueError(f"region must be boolean; got dtype {mask.dtype}")
    if not mask.any():
        raise ValueError("region is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("image must be finite")
    return jnp.asarray(x, jnp.zeros(()).dtype), jnp.asarray(mask)
