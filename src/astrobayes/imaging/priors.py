"""Convex priors for imaging, as potentials ``R(x) = -log p(x)`` up to a constant.

Every prior here has the *ridge* form ``R(x) = sum_i rho_i((L x)_i)`` with a linear
analysis operator ``L`` and scalar convex functions ``rho_i``: the wavelet sparsity prior
(``L = Psi``, ``rho = lam |.|``) and the learned convex ridge regulariser
(``L`` = a bank of convolutions, ``rho_i = psi_c``). The uncertainty-quantification code
uses this form to evaluate ``R`` along a line exactly and cheaply (see
:mod:`astrobayes.imaging.uq`).

Two kinds: :class:`NonSmoothPrior` (gives ``prox``) and :class:`SmoothPrior` (gives
``gradient`` and its Lipschitz constant).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar

from astrobayes.imaging.wavelets import WaveletTransform, prox_l1_orthonormal

__all__ = ["NonSmoothPrior", "Prior", "SmoothPrior", "WaveletSparsityPrior"]


class Prior(eqx.Module):
    """Abstract convex prior potential of ridge form ``sum_i rho_i((L x)_i)``."""

    @abc.abstractmethod
    def analysis(self, image: Float[Array, "height width"]) -> Float[Array, ...]:
        """Apply the linear analysis operator ``L``."""

    @abc.abstractmethod
    def coefficient_potential(self, coefficients: Float[Array, ...]) -> Float[Array, ...]:
        """Elementwise ``rho_i(z_i)`` on an array shaped like ``L x``."""

    def potential(self, image: Float[Array, "height width"]) -> Scalar:
        """``R(x) = sum_i rho_i((L x)_i)``."""
        return jnp.sum(self.coefficient_potential(self.analysis(image)))


class NonSmoothPrior(Prior):
    """A prior used through its proximal operator."""

    @abc.abstractmethod
    def prox(
        self, image: Float[Array, "height width"], step: float
    ) -> Float[Array, "height width"]:
        """``argmin_u step * R(u) + ||u - image||^2 / 2``."""


class SmoothPrior(Prior):
    """A prior with a Lipschitz gradient."""

    @abc.abstractmethod
    def gradient(self, image: Float[Array, "height width"]) -> Float[Array, "height width"]:
        """``grad R(x)``."""

    @property
    @abc.abstractmethod
    def lipschitz(self) -> float:
        """An upper bound on the Lipschitz constant of ``grad R``."""


class WaveletSparsityPrior(NonSmoothPrior):
    """``R(x) = strength * ||Psi x||_1`` with an orthonormal Daubechies ``Psi``.

    Attributes:
        strength: Regularisation strength ``lam`` (``> 0``), in units of inverse image
            units.
        transform: The orthonormal wavelet transform.

    Example:
        >>> import numpy as np
        >>> prior = WaveletSparsityPrior(2.0, WaveletTransform(order=2, levels=1))
        >>> float(prior.potential(np.zeros((4, 4))))
        0.0

    """

    strength: float
    transform: WaveletTransform = WaveletTransform()

    def __check_init__(self):
        try:
            value = float(self.strength)
        except TypeError:  # traced
            return
        if not (value > 0 and jnp.isfinite(value)):
            raise ValueError(f"strength must be positive and finite; got {value}")

    def analysis(self, image):
        """Wavelet coefficients ``Psi x``."""
        return self.transform(image)

    def coefficient_potential(self, coefficients):
        """``strength * |c|`` elementwise."""
        return self.strength * jnp.abs(coefficients)

    def prox(self, image, step):
        """Exact prox: ``Psi^T soft(Psi x, step * strength)``."""
        return prox_l1_orthonormal(image, step * self.strength, self.transform)
