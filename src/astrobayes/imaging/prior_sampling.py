"""Independent draws from normalised imaging priors: the initial live points of nested sampling.

* **Wavelets** (:class:`~astrobayes.imaging.priors.WaveletSparsityPrior`):
  ``p(x) = (lam / 2)^N exp(-lam ||Psi x||_1)`` with ``Psi`` orthonormal (Jacobian 1):
  independent Laplace coefficients, drawn exactly.
* **Learned convex ridge regulariser** (:class:`~astrobayes.imaging.crr.ConvexRidgePrior`):
  ``exp(-R(x))`` is integrable on zero-mean images because every ``psi_c`` grows
  linearly in both directions and the kernels' joint spectrum vanishes only at zero
  frequency (checked here); its kernels are zero-mean, so ``R`` ignores the image mean
  ``c = sum(x) / sqrt(N)``, on which a Gaussian ``N(0, mean_scale^2)`` is put to make
  the prior proper. Draws come from Metropolis-adjusted Langevin chains (one independent
  chain per draw, from zero, zero-mean moves, preconditioned in the Fourier domain by
  the CRR's inverse curvature so that the smooth, weakly regularised frequencies mix as
  fast as the rough ones) with the mean drawn exactly; the R-hat across chains of a few
  summaries, including the slowest Fourier mode, is reported.

References:
    Goujon, Neumayer, Bohra & Unser 2022, "A neural-network-based convex regularizer
    for inverse problems" (arXiv:2211.12461).
    Roberts & Tweedie 1996, Bernoulli 2, 341 (Metropolis-adjusted Langevin algorithm).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._checks import check_key, check_positive_int
from astrobayes.diagnostics import split_rhat
from astrobayes.imaging.priors import ImagingPrior, WaveletSparsityPrior

__all__ = [
    "PriorSamples",
    "crr_fourier_preconditioner",
    "crr_value_and_grad",
    "evidence_prior_potential",
    "sample_prior",
]


class PriorSamples(NamedTuple):
    """Independent prior draws (the initial live points of nested sampling).

    Attributes:
        images: ``(num_samples, height, width)`` draws.
        is_exact: ``True`` when drawn exactly (wavelet prior), ``False`` for MCMC.
        acceptance_rate: Mean Metropolis acceptance (``nan`` when exact).
        rhat: Split R-hat across the chains of a few summaries (``nan`` when exact):
            values near 1 say the chains forgot their common start.
        num_steps: Langevin steps per chain (0 when exact).
    """

    images: Float[Array, "num_samples height width"]
    is_exact: bool
    acceptance_rate: float
    rhat: float
    num_steps: int


def crr_value_and_grad(
    prior: ImagingPrior,
) -> Callable[[Float[Array, "height width"]], tuple[Array, Float[Array, "height width"]]]:
    """``x -> (R(x), grad R(x))`` for a CRR, by one flat table gather (same values).

    With uniform knots ``t_j = t_0 + j h`` the interval of ``t`` is
    ``j = clip(floor((t - t_0) / h), 0, K - 1)`` and, with ``u = t - t_j``,
    ``psi_c(t) = psi_c(t_j) + sigma_c(t_j) u + s_{c,j} u^2 / 2`` and
    ``sigma_c(t) = sigma_c(t_j) + s_{c,j} u``, where the slope ``s`` is set to zero
    below ``t_0`` (``j = 0``, ``u < 0``) and above ``t_{K-1}`` (``j = K - 1``): exact,
    including the linear continuation outside the knots. The tables are flattened to
    one row per (channel, knot) so that each of the three lookups is a single 1-D
    gather; on this machine's CPU this costs 0.17 ms for a 16x16 image and 16
    channels, against 0.80 ms for the gather-free sum over the ``K - 1`` intervals that
    it replaces and more for the 2-D gathers of :meth:`ConvexRidgePrior.potential`.

    Args:
        prior: A :class:`~astrobayes.imaging.crr.ConvexRidgePrior`.

    Returns:
        ``x -> (R(x), grad R(x))`` on images.
    """
    regulariser = prior.regulariser
    knots, sigma, psi, slopes = regulariser.spline_tables()
    num_channels, num_knots = sigma.shape
    first, width = knots[0], knots[1] - knots[0]
    sigma_flat, psi_flat = sigma.reshape(-1), psi.reshape(-1)
    knots_flat = jnp.tile(knots, num_channels)
    # slope of the interval starting at knot j; zero past the last knot
    slopes_flat = jnp.concatenate([slopes, jnp.zeros((num_channels, 1))], axis=1).reshape(-1)
    row = jnp.arange(num_channels) * num_knots
    mu = regulariser.mu
    scale = prior.strength / mu**2

    def value_and_grad(x):
        z = mu * regulariser.convolve(x)  # (H, W, C)
        j = jnp.clip(jnp.floor((z - first) / width), 0, num_knots - 1).astype(jnp.int32)
        flat = row + j
        u = z - knots_flat[flat]
        slope = jnp.where(z < first, 0.0, slopes_flat[flat])
        sigma_j = sigma_flat[flat]
        activation = sigma_j + slope * u
        potential = psi_flat[flat] + sigma_j * u + 0.5 * slope * u * u
        value = scale * jnp.sum(potential)
        gradient = prior.strength / mu * regulariser.convolve_transpose(activation)
        return value, gradient

    return value_and_grad


def evidence_prior_potential(prior: ImagingPrior, mean_scale: float) -> tuple[Callable, Callable]:
    """``-ln p(x)`` up to a constant and ``x -> (value, gradient)``.

    For the CRR both include the Gaussian on the image mean.

    Args:
        prior: A :class:`WaveletSparsityPrior` or a
            :class:`~astrobayes.imaging.crr.ConvexRidgePrior`.
        mean_scale: CRR only: standard deviation of the prior on ``sum(x) / sqrt(N)``.

    Returns:
        ``(potential_fn, value_and_grad_fn)`` on images.

    Raises:
        TypeError: For another prior.
    """
    from astrobayes.imaging.crr import ConvexRidgePrior

    if isinstance(prior, WaveletSparsityPrior):
        return prior.potential, jax.value_and_grad(prior.potential)
    if isinstance(prior, ConvexRidgePrior):
        crr = crr_value_and_grad(prior)

        def value_and_grad(x):
            value, gradient = crr(x)
            mean = jnp.sum(x) / math.sqrt(x.size)
            return (
                value + mean**2 / (2 * mean_scale**2),
                gradient + mean / (mean_scale**2 * math.sqrt(x.size)),
            )

        return (lambda x: value_and_grad(x)[0]), value_and_grad
    raise TypeError(
        f"prior must be a WaveletSparsityPrior or a ConvexRidgePrior; got {type(prior).__name__}"
    )


def _check_crr_proper(prior, image_shape) -> None:
    """Raise unless ``exp(-R)`` is integrable on zero-mean images of ``image_shape``."""
    _, sigma, _, _ = prior.regulariser.spline_tables()
    sigma = np.asarray(sigma)
    growing = (sigma[:, 0] < 0) & (sigma[:, -1] > 0)
    if not growing.any():
        raise ValueError("the CRR is improper: no activation grows in both directions")
    kernels = np.asarray(prior.regulariser.kernels())[growing]
    spectrum = np.sum(np.abs(np.fft.fft2(kernels, s=image_shape)) ** 2, axis=0)
    spectrum[0, 0] = np.inf
    if spectrum.min() <= 1e-8 * spectrum[np.isfinite(spectrum)].max():
        raise ValueError(
            "the CRR is improper on this grid: its kernels do not see some non-zero frequency"
        )


def sample_prior(
    key: jax.Array,
    prior: ImagingPrior,
    image_shape: tuple[int, int],
    num_samples: int,
    *,
    mean_scale: float = 1.0,
    num_steps: int = 2000,
) -> PriorSamples:
    """Independent draws from a normalised imaging prior.

    Wavelet prior: exact (Laplace coefficients of scale ``1 / strength``, synthesised by
    ``Psi^T``). CRR: ``num_samples`` independent Metropolis-adjusted Langevin chains from
    the zero image, moving in the zero-mean subspace, preconditioned by the circulant
    inverse curvature of the CRR (:func:`crr_fourier_preconditioner`; the Metropolis
    ratio keeps them exact), with a step adapted during the first half, the last state
    of each kept; the mean is drawn from ``N(0, mean_scale^2)`` (see the module
    docstring).

    Args:
        key: JAX PRNG key.
        prior: A :class:`WaveletSparsityPrior` or a
            :class:`~astrobayes.imaging.crr.ConvexRidgePrior`.
        image_shape: ``(height, width)``.
        num_samples: Number of draws.
        mean_scale: Standard deviation of the CRR prior on ``sum(x) / sqrt(N)``.
        num_steps: Langevin steps per chain (CRR).

    Returns:
        :class:`PriorSamples`.

    Raises:
        TypeError: For another prior.
        ValueError: On bad counts, or a CRR that is improper on this grid.
    """
    from astrobayes.imaging.crr import ConvexRidgePrior

    check_key(key)
    num_samples = check_positive_int(num_samples, "num_samples")
    shape = tuple(int(n) for n in image_shape)
    dtype = jnp.zeros(()).dtype
    if isinstance(prior, WaveletSparsityPrior):
        coefficients = jax.random.laplace(key, (num_samples, *shape), dtype) / prior.strength
        return PriorSamples(
            images=prior.transform.inverse(coefficients),
            is_exact=True,
            acceptance_rate=float("nan"),
            rhat=float("nan"),
            num_steps=0,
        )
    if not isinstance(prior, ConvexRidgePrior):
        raise TypeError(
            f"prior must be a WaveletSparsityPrior or a ConvexRidgePrior; got {type(prior).__name__}"
        )
    if not (np.isfinite(mean_scale) and mean_scale > 0):
        raise ValueError(f"mean_scale must be positive and finite; got {mean_scale!r}")
    num_steps = check_positive_int(num_steps, "num_steps", minimum=2)
    _check_crr_proper(prior, shape)
    key_chains, key_mean = jax.random.split(key)
    images, acceptance, summaries = _crr_prior_chains(
        key_chains, prior, shape, num_samples, num_steps
    )
    mean = mean_scale * jax.random.normal(key_mean, (num_samples, 1, 1), dtype)
    images = images + mean / math.sqrt(shape[0] * shape[1])
    rhat = float("nan")
    if num_samples >= 2:
        rhat = float(np.max(split_rhat(np.asarray(summaries, np.float64))))
    return PriorSamples(
        images=images,
        is_exact=False,
        acceptance_rate=float(acceptance),
        rhat=rhat,
        num_steps=num_steps,
    )


def crr_fourier_preconditioner(
    prior: ImagingPrior, shape: tuple[int, int]
) -> Float[np.ndarray, "height width"]:
    """Diagonal (Fourier) inverse curvature of the CRR, zero at the zero frequency.

    ``grad^2 R = strength W^T diag(sigma'(mu W x)) W`` is circulant when the slopes are
    replaced by each channel's mean slope ``s_c``: its eigenvalues are
    ``strength sum_c s_c |h_c^(omega)|^2``. Their inverse (capped at ``10^4`` times the
    smallest) rescales every frequency to unit curvature, so that a Langevin step is
    not limited by the stiffest frequency while the smoothest ones barely move.

    Args:
        prior: A :class:`~astrobayes.imaging.crr.ConvexRidgePrior`.
        shape: Image shape ``(height, width)``.

    Returns:
        The preconditioner on the DFT grid (NumPy FFT layout), ``0`` at ``[0, 0]``.
    """
    kernels = np.asarray(prior.regulariser.kernels(), np.float64)
    slopes = np.asarray(prior.regulariser.slopes(), np.float64).mean(axis=1)
    spectrum = np.abs(np.fft.fft2(kernels, s=shape)) ** 2
    curvature = float(prior.strength) * np.tensordot(slopes, spectrum, axes=1)
    curvature = np.maximum(curvature, 1e-4 * curvature.max())
    preconditioner = 1.0 / curvature
    preconditioner[0, 0] = 0.0  # the chains move in the zero-mean subspace
    return preconditioner


def _crr_prior_chains(key, prior, shape, num_chains, num_steps):
    """Fourier-preconditioned MALA chains on zero-mean images, from zero.

    The proposal ``x' = x - h P grad R(x) + sqrt(2 h) P^(1/2) xi`` with ``P`` the
    circulant :func:`crr_fourier_preconditioner` (applied by FFT) and the
    Metropolis-Hastings ratio in the ``P^-1`` norm: exact for any ``P``.
    """
    dtype = jnp.zeros(()).dtype
    value_and_grad = crr_value_and_grad(prior)
    warmup = num_steps // 2
    preconditioner_np = crr_fourier_preconditioner(prior, shape)
    preconditioner = jnp.asarray(preconditioner_np, dtype)
    root = jnp.sqrt(preconditioner)
    positive = preconditioner_np > 0
    inverse = jnp.asarray(
        np.divide(1.0, preconditioner_np, out=np.zeros_like(preconditioner_np), where=positive),
        dtype,
    )

    # the zero-mean mode of largest prior variance: cos(2 pi (k . r) / n) at the argmax
    index = np.unravel_index(np.argmax(preconditioner_np), shape)
    grid = np.indices(shape)
    phase = 2 * np.pi * (index[0] * grid[0] / shape[0] + index[1] * grid[1] / shape[1])
    lowest_mode = jnp.asarray(np.cos(phase) / np.linalg.norm(np.cos(phase)), dtype)

    def apply(weights, v):
        return jnp.real(
            jnp.fft.ifft2(weights * jnp.fft.fft2(v, norm="ortho"), norm="ortho")
        ).astype(dtype)

    def inverse_norm2(v):
        return jnp.sum(inverse * jnp.abs(jnp.fft.fft2(v, norm="ortho")) ** 2)

    def step_fn(carry, inputs):
        x, value, gradient, step = carry
        k, adapt = inputs
        k_noise, k_accept = jax.random.split(k)
        forward = x - step * apply(preconditioner, gradient)
        noise = apply(root, jax.random.normal(k_noise, shape, dtype))
        proposal = forward + jnp.sqrt(2 * step) * noise
        new_value, new_gradient = value_and_grad(proposal)
        backward = proposal - step * apply(preconditioner, new_gradient)
        log_ratio = (
            value
            - new_value
            - inverse_norm2(x - backward) / (4 * step)
            + inverse_norm2(proposal - forward) / (4 * step)
        )
        accept = jnp.log(jax.random.uniform(k_accept, (), dtype)) < log_ratio
        x = jnp.where(accept, proposal, x)
        value = jnp.where(accept, new_value, value)
        gradient = jnp.where(accept, new_gradient, gradient)
        rate = jnp.minimum(1.0, jnp.exp(jnp.minimum(log_ratio, 0.0)))
        step = jnp.where(adapt, step * jnp.exp(rate - 0.574), step)
        # summaries for R-hat: the power, a pixel and the smoothest (slowest) Fourier mode
        smoothest = jnp.sum(x * lowest_mode)
        return (x, value, gradient, step), (
            accept,
            jnp.stack([jnp.mean(x * x), x[0, 0], smoothest]),
        )

    def chain(k):
        x = jnp.zeros(shape, dtype)
        value, gradient = value_and_grad(x)
        step = jnp.asarray(1.0, dtype)
        adapt = jnp.arange(num_steps) < warmup
        (x, _, _, _), (accepted, summaries) = jax.lax.scan(
            step_fn, (x, value, gradient, step), (jax.random.split(k, num_steps), adapt)
        )
        tail = slice(warmup, None)
        thinned = summaries[tail][:: max(1, (num_steps - warmup) // 100)]
        return x, jnp.mean(accepted[tail]), thinned

    images, acceptance, summaries = jax.jit(jax.vmap(chain))(jax.random.split(key, num_chains))
    return images, jnp.mean(acceptance), summaries
