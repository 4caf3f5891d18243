"""Gaussian-likelihood constraint sets for nested sampling: exact projection for a masked FFT.

Nested sampling replaces each dead point by a prior draw restricted to
``{ln L > L_i}``; the proximal moves of :mod:`~astrobayes.imaging.nested` need the
Euclidean projection onto that set. For the masked FFT operator the constraint
``{||Phi x - y|| <= r}`` is an ellipsoidal cylinder whose projection is computed exactly
in the Fourier domain (one scalar Lagrange multiplier, found by bisection), and the
likelihood depends only on the measured Fourier modes (:attr:`MaskConstraint.measured_projection_fn`).
Operators expose this through
:meth:`~astrobayes.imaging.operators.MeasurementOperator.likelihood_constraint`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex

from astrobayes.imaging.operators import FourierMaskOperator

__all__ = ["MaskConstraint", "gaussian_log_likelihood_constant", "mask_constraint"]


class MaskConstraint(NamedTuple):
    """Likelihood-constraint helpers for a masked-FFT operator (all pure functions).

    Attributes:
        log_likelihood_fn: ``x -> -||Phi x - y||^2 / (2 sigma^2)`` (unnormalised).
        projection_fn: ``(x, level) -> `` exact Euclidean projection of ``x`` onto
            ``{log_likelihood_fn >= level}``.
        measured_projection_fn: ``x -> P x``, the orthogonal projection onto the Fourier
            modes that the data constrain (``Phi x = Phi P x``).
        num_measured: Dimension of ``range(P)``.
    """

    log_likelihood_fn: Callable
    projection_fn: Callable
    measured_projection_fn: Callable
    num_measured: int


def gaussian_log_likelihood_constant(num_visibilities: int, sigma: float) -> float:
    """``-M ln(2 pi sigma^2)``: the normalisation of ``M`` complex Gaussian residuals.

    Computed as ``-M (ln 2 pi + 2 ln sigma)``, finite for any positive ``sigma`` (``sigma**2``
    underflows to 0 below ~1e-162, where ``ln`` of it failed).

    Example:
        >>> round(gaussian_log_likelihood_constant(10, 1e-200) / 1e4, 4)
        0.9192
    """
    return -num_visibilities * (math.log(2.0 * math.pi) + 2.0 * math.log(sigma))


def mask_constraint(
    operator: FourierMaskOperator,
    visibilities: Complex[Array, " num_visibilities"],
    sigma: float,
    *,
    num_bisection: int = 32,
) -> MaskConstraint:
    """Exact constraint projection and measured-mode projector for a masked FFT.

    With ``D = (p + p~) / 2`` (``p`` the mask, ``p~(k) = p(-k)``) the normal operator
    is ``Phi^H Phi = F^H D F``. The projection of ``x`` onto ``{||Phi z - y||^2 <= r^2}``
    is ``z(mu) = F^H [(F x + mu F Phi^H y) / (1 + mu D)]`` with the multiplier
    ``mu >= 0`` at which the residual equals ``r^2`` (the residual decreases with
    ``mu``); every quantity is elementwise in the Fourier domain, so the bisection on
    ``ln mu`` costs no extra FFT.

    Args:
        operator: The masked FFT operator.
        visibilities: Data ``y``.
        sigma: Noise standard deviation of each of the real and imaginary parts.
        num_bisection: Bisection steps on ``ln mu`` in ``[-40, 40]`` (32 give
            ``2e-8``, below single-precision resolution there).

    Returns:
        A :class:`MaskConstraint`.

    Raises:
        TypeError: If ``operator`` is not a :class:`FourierMaskOperator`.
        ValueError: If the data shape does not match or ``sigma`` is not positive.
    """
    if not isinstance(operator, FourierMaskOperator):
        raise TypeError(
            f"operator must be a FourierMaskOperator; got {type(operator).__name__} "
            "(no exact constraint projection is implemented for it)"
        )
    data = np.asarray(visibilities)
    if data.shape != (operator.num_visibilities,):
        raise ValueError(
            f"visibilities must have shape ({operator.num_visibilities},); got {data.shape}"
        )
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be positive and finite; got {sigma!r}")
    mask = np.asarray(operator.mask())
    mirrored = np.roll(mask[::-1, ::-1], shift=(1, 1), axis=(0, 1))
    weight_np = 0.5 * (mask.astype(float) + mirrored.astype(float))
    dtype = jnp.zeros(()).dtype
    weight = jnp.asarray(weight_np, dtype)
    measured = jnp.asarray(weight_np > 0, dtype)
    rows, cols = operator.rows, operator.cols
    y = jnp.asarray(data, jnp.result_type(dtype, jnp.complex64))
    back = jnp.fft.fft2(operator.adjoint(y), norm="ortho")  # F Phi^H y
    sigma = float(sigma)

    def log_likelihood_fn(x):
        residual = operator(x) - y
        return -jnp.sum(jnp.real(residual) ** 2 + jnp.imag(residual) ** 2) / (2 * sigma**2)

    def projection_fn(x, level):
        radius2 = -2.0 * sigma**2 * level
        spectrum = jnp.fft.fft2(x, norm="ortho")

        def residual2(log_mu):
            mu = jnp.exp(log_mu)
            z = (spectrum + mu * back) / (1 + mu * weight)
            r = z[rows, cols] - y
            return jnp.sum(jnp.real(r) ** 2 + jnp.imag(r) ** 2)

        def bisect(_, bounds):
            low, high = bounds
            middle = 0.5 * (low + high)
            too_far = residual2(middle) > radius2
            return jnp.where(too_far, middle, low), jnp.where(too_far, high, middle)

        _, log_mu = jax.lax.fori_loop(
            0, num_bisection, bisect, (jnp.asarray(-40.0, dtype), jnp.asarray(40.0, dtype))
        )
        mu = jnp.exp(log_mu)
        projected = jnp.real(
            jnp.fft.ifft2((spectrum + mu * back) / (1 + mu * weight), norm="ortho")
        )
        inside = log_likelihood_fn(x) >= level
        return jnp.where(inside, x, projected.astype(x.dtype))

    def measured_projection_fn(x):
        return jnp.real(
            jnp.fft.ifft2(measured * jnp.fft.fft2(x, norm="ortho"), norm="ortho")
        ).astype(x.dtype)

    return MaskConstraint(
        log_likelihood_fn=log_likelihood_fn,
        projection_fn=projection_fn,
        measured_projection_fn=measured_projection_fn,
        num_measured=int(np.sum(weight_np > 0)),
    )
