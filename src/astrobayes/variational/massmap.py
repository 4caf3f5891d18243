"""Weak-lensing mass mapping on a flat masked patch with an exact Gaussian posterior.

Forward model (Kaiser & Squires 1993): the shear is ``gamma_hat(k) = D(k) kappa_hat(k)`` with
``D = (k1^2 - k2^2 + 2 i k1 k2) / |k|^2`` (``D(0) = 0``), observed as ``(gamma1, gamma2)`` in
the unmasked pixels with independent Gaussian shape noise of standard deviation
``noise_std`` per component. The prior on the convergence ``kappa`` is Gaussian with a
power spectrum ``P(k)`` (diagonal in the unitary Fourier basis). The posterior is then
Gaussian and exact: the Wiener filter, mean ``C A^T N^{-1} d`` and covariance
``C = (S^{-1} + A^T N^{-1} A)^{-1}``, computed densely in float64 with NumPy
(:func:`wiener_posterior`), which is the truth the variational families are checked
against (Jeffrey et al. 2018, arXiv:1801.08945; Whitney et al.).

A non-Gaussian prior: the shifted lognormal convergence (:func:`lognormal_convergence`,
Hilbert et al. 2011, arXiv:1105.3980; Clerkin et al. 2017, arXiv:1605.01056) with the same
shear likelihood (:func:`lognormal_logdensity`, in whitened coordinates), whose reference
posterior is MCMC.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_key

__all__ = [
    "MassMapProblem",
    "WienerPosterior",
    "gaussian_field",
    "kaiser_squires_shear",
    "lognormal_convergence",
    "lognormal_logdensity",
    "make_problem",
    "mass_map_logdensity",
    "simulate_lognormal_shear",
    "simulate_shear",
    "wiener_posterior",
]


class MassMapProblem(NamedTuple):
    """A flat, square, masked patch.

    Attributes:
        power: Prior power per unitary Fourier mode, ``(n, n)``, all positive.
        mask: ``True`` where shear is observed, ``(n, n)``.
        noise_std: Shape-noise standard deviation per shear component and pixel.

    """

    power: Float[np.ndarray, "n n"]
    mask: Bool[np.ndarray, "n n"]
    noise_std: float


class WienerPosterior(NamedTuple):
    """The exact Gaussian posterior: ``mean`` ``(n*n,)`` and ``covariance`` ``(n*n, n*n)``."""

    mean: Float[np.ndarray, " pixels"]
    covariance: Float[np.ndarray, "pixels pixels"]
    precision: Float[np.ndarray, "pixels pixels"]


def make_problem(
    size: int,
    *,
    slope: float = -2.0,
    amplitude: float = 1.0,
    noise_std: float = 0.5,
    mask_fraction: float = 0.25,
) -> MassMapProblem:
    """A patch with a power-law prior and a square hole in its centre.

    Args:
        size: Pixels per side (at least 4).
        slope: Power-law slope of ``P = amplitude (|k| + 1)^slope`` (``|k|`` in grid units).
        amplitude: Power amplitude.
        noise_std: Shape noise per shear component and pixel.
        mask_fraction: Area share of the central hole, in ``[0, 1)``.

    Returns:
        :class:`MassMapProblem`.

    Raises:
        ValueError: On a size below 4, a fraction outside ``[0, 1)`` or a non-positive noise.

    Example:
        >>> problem = make_problem(8)
        >>> problem.power.shape, int(problem.mask.sum())
        ((8, 8), 48)

    """
    if not (isinstance(size, int) and size >= 4):
        raise ValueError(f"size must be an integer >= 4; got {size!r}")
    if not 0.0 <= mask_fraction < 1.0:
        raise ValueError(f"mask_fraction must lie in [0, 1); got {mask_fraction}")
    if not noise_std > 0:
        raise ValueError(f"noise_std must be positive; got {noise_std}")
    k = np.fft.fftfreq(size) * size
    kk = np.hypot(*np.meshgrid(k, k, indexing="ij"))
    power = amplitude * (kk + 1.0) ** slope
    mask = np.ones((size, size), bool)
    hole = int(round(np.sqrt(mask_fraction) * size))
    start = (size - hole) // 2
    mask[start : start + hole, start : start + hole] = False
    return MassMapProblem(power, mask, float(noise_std))


def _kernel(size: int, xp):
    k = xp.fft.fftfreq(size)
    k1, k2 = xp.meshgrid(k, k, indexing="ij")
    k_sq = k1**2 + k2**2
    safe = xp.where(k_sq > 0, k_sq, 1.0)
    return xp.where(k_sq > 0, (k1**2 - k2**2 + 2j * k1 * k2) / safe, 0.0)


def kaiser_squires_shear(kappa: Float[Array, "n n"]) -> tuple[Array, Array]:
    """``(gamma1, gamma2)`` of a convergence map (flat sky, periodic, JAX).

    Example:
        >>> import jax.numpy as jnp
        >>> g1, g2 = kaiser_squires_shear(jnp.ones((4, 4)))
        >>> float(jnp.abs(g1).max()) < 1e-6
        True

    """
    gamma = jnp.fft.ifft2(_kernel(kappa.shape[0], jnp) * jnp.fft.fft2(kappa))
    return gamma.real, gamma.imag


def simulate_shear(
    key: PRNGKeyArray, problem: MassMapProblem
) -> tuple[Float[Array, "n n"], Float[Array, "2 n n"]]:
    """Draw ``kappa`` from the prior and noisy shear ``(2, n, n)`` (zero where masked)."""
    check_key(key)
    _, kappa, data = _simulate(key, problem.power, problem.mask, problem.noise_std, None)
    return kappa, data


@partial(jax.jit, static_argnums=(4,))
def _simulate(key, power, mask, noise_std, shift):
    """``(kappa, data)`` (Gaussian when ``shift`` is None) in one compiled program."""
    field_key, noise_key = jax.random.split(key)
    white = jax.random.normal(field_key, power.shape)
    if shift is None:
        kappa = gaussian_field(white, power)
    else:
        kappa = lognormal_convergence(white, power, shift)
    g1, g2 = kaiser_squires_shear(kappa)
    noise = noise_std * jax.random.normal(noise_key, (2, *kappa.shape))
    return white, kappa, (jnp.stack([g1, g2]) + noise) * mask


def _shear_loglike(problem: MassMapProblem, data, kappa):
    """Gaussian shape-noise log likelihood of a convergence map (JAX)."""
    g1, g2 = kaiser_squires_shear(kappa)
    residual = ((g1 - data[0]) ** 2 + (g2 - data[1]) ** 2) * jnp.asarray(problem.mask, kappa.dtype)
    return -0.5 * jnp.sum(residual) / problem.noise_std**2


def mass_map_logdensity(problem: MassMapProblem, data: Float[Array, "2 n n"]):
    """Unnormalised log posterior of the flattened convergence ``(n*n,)`` (JAX)."""
    size = problem.power.shape[0]
    inv_power = jnp.asarray(1.0 / problem.power, jnp.float32)
    data = jnp.asarray(data, jnp.float32)

    def logdensity(kappa_flat):
        kappa = kappa_flat.reshape(size, size)
        modes = jnp.fft.fft2(kappa, norm="ortho")
        return _shear_loglike(problem, data, kappa) - 0.5 * jnp.sum(jnp.abs(modes) ** 2 * inv_power)

    return logdensity


def gaussian_field(white: Float[Array, "n n"], power: Float[np.ndarray, "n n"]) -> Array:
    """The Gaussian field ``g = U^H sqrt(P) U w`` of a white-noise map ``w`` (JAX).

    ``U`` is the unitary 2-d DFT, so ``g`` has covariance ``U^H P U`` (pixel variance
    ``mean(P)``) when ``w`` is standard normal, and the map ``w -> g`` is the symmetric
    square root of that covariance (a constant Jacobian).

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> g = gaussian_field(jnp.eye(4), np.ones((4, 4)))  # P = 1: the identity
        >>> bool(jnp.allclose(g, jnp.eye(4), atol=1e-6))
        True

    """
    root = jnp.sqrt(jnp.asarray(power, jnp.float32))
    return jnp.fft.ifft2(root * jnp.fft.fft2(white, norm="ortho"), norm="ortho").real


def lognormal_convergence(
    white: Float[Array, "n n"], power: Float[np.ndarray, "n n"], shift: float
) -> Array:
    """The shifted lognormal convergence ``kappa = shift (exp(g - sigma^2 / 2) - 1)`` (JAX).

    ``g = gaussian_field(white, power)`` with pixel variance ``sigma^2 = mean(power)``, so
    ``kappa`` has zero mean and its minimum is ``-shift`` (the empty-beam convergence):
    the shifted lognormal model of the convergence of Hilbert, Hartlap & Schneider
    (2011, arXiv:1105.3980) and Clerkin et al. (2017, arXiv:1605.01056).

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> kappa = lognormal_convergence(jnp.zeros((4, 4)), np.full((4, 4), 0.5), 0.1)
        >>> round(float(kappa[0, 0]), 5)  # g = 0: shift * (exp(-0.25) - 1)
        -0.02212

    """
    if not shift > 0:
        raise ValueError(f"shift must be positive; got {shift}")
    variance = jnp.mean(jnp.asarray(power, jnp.float32))
    return shift * (jnp.exp(gaussian_field(white, power) - 0.5 * variance) - 1.0)


def simulate_lognormal_shear(
    key: PRNGKeyArray, problem: MassMapProblem, shift: float
) -> tuple[Float[Array, "n n"], Float[Array, "n n"], Float[Array, "2 n n"]]:
    """Draw white noise ``w``, the lognormal ``kappa`` (:func:`lognormal_convergence`) and shear.

    Returns:
        ``(white, kappa, data)``; ``data`` has shape ``(2, n, n)`` (zero where masked).

    """
    check_key(key)
    if not shift > 0:
        raise ValueError(f"shift must be positive; got {shift}")
    return _simulate(key, problem.power, problem.mask, problem.noise_std, float(shift))


def lognormal_logdensity(problem: MassMapProblem, data: Float[Array, "2 n n"], shift: float):
    """Unnormalised log posterior of the flattened white field ``w`` ``(n*n,)`` (JAX).

    The lognormal prior is written in its whitened coordinates: ``w ~ N(0, I)`` and
    ``kappa = lognormal_convergence(w, power, shift)``, observed through the same
    Kaiser-Squires shear, mask and shape noise as :func:`mass_map_logdensity`. The
    posterior of ``w`` (and of ``kappa``) is not Gaussian; there is no closed form.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> problem = make_problem(4)
        >>> _, _, data = simulate_lognormal_shear(jax.random.key(0), problem, 0.3)
        >>> bool(jnp.isfinite(lognormal_logdensity(problem, data, 0.3)(jnp.zeros(16))))
        True

    """
    if not shift > 0:
        raise ValueError(f"shift must be positive; got {shift}")
    size = problem.power.shape[0]
    data = jnp.asarray(data, jnp.float32)

    def logdensity(white_flat):
        white = white_flat.reshape(size, size)
        kappa = lognormal_convergence(white, problem.power, shift)
        return _shear_loglike(problem, data, kappa) - 0.5 * jnp.sum(white**2)

    return logdensity


def wiener_posterior(problem: MassMapProblem, data: Float[np.ndarray, "2 n n"]) -> WienerPosterior:
    """The exact posterior (dense, float64): the Wiener filter and its covariance."""
    data = as_float_array(data, "data", ndim=3)
    size = problem.power.shape[0]
    if data.shape != (2, size, size):
        raise ValueError(f"data must have shape (2, {size}, {size}); got {data.shape}")
    pixels = size * size
    basis = np.eye(pixels).reshape(pixels, size, size)
    kernel = _kernel(size, np)
    gamma = np.fft.ifft2(kernel * np.fft.fft2(basis), axes=(-2, -1))
    keep = problem.mask.ravel()
    # A: kappa -> observed (gamma1, gamma2); rows are observations.
    forward = np.concatenate(
        [gamma.real.reshape(pixels, pixels)[:, keep], gamma.imag.reshape(pixels, pixels)[:, keep]],
        axis=1,
    ).T
    modes = np.fft.fft2(basis, norm="ortho").reshape(pixels, pixels)  # column j = U e_j
    prior_precision = np.real(modes.conj().T @ (modes / problem.power.ravel()[:, None]))
    precision = prior_precision + forward.T @ forward / problem.noise_std**2
    covariance = np.linalg.inv(precision)
    covariance = 0.5 * (covariance + covariance.T)
    observed = np.concatenate([data[0].ravel()[keep], data[1].ravel()[keep]])
    mean = covariance @ (forward.T @ observed) / problem.noise_std**2
    return WienerPosterior(mean, covariance, precision)
