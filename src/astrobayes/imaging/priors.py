"""Convex priors for imaging, as potentials ``R(x) = -log p(x)`` up to a constant.

Every prior here has the *ridge* form ``R(x) = sum_i rho_i((L x)_i)`` with a linear
analysis operator ``L`` and scalar convex functions ``rho_i``: the wavelet sparsity prior
(``L = Psi``, ``rho = lam |.|``) and the learned convex ridge regulariser
(``L`` = a bank of convolutions, ``rho_i = psi_c``). The uncertainty-quantification code
uses this form to evaluate ``R`` along a line exactly and cheaply (see
:mod:`astrobayes.imaging.uq`).

Two kinds: :class:`NonSmoothPrior` (gives ``prox``) and :class:`SmoothPrior` (gives
``gradient`` and its Lipschitz constant), under the abstract :class:`ImagingPrior`
(named apart from the SBI parameter prior ``astrobayes.sbi.Prior``).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, Scalar

from astrobayes.imaging.wavelets import WaveletTransform, prox_l1_orthonormal

__all__ = ["ImagingPrior", "NonSmoothPrior", "SmoothPrior", "WaveletSparsityPrior"]


class ImagingPrior(eqx.Module):
    """Abstract convex prior potential of ridge form ``sum_i rho_i((L x)_i)``."""

    @abc.abstractmethod
    def analysis(self, image: Float[Array, "height width"]) -> Float[Array, ...]:
        """Apply the linear analysis operator ``L``."""

    @abc.abstractmethod
    def coefficient_potential(self, coefficients: Float[Array, ...]) -> Float[Array, ...]:
        """Elementwise ``rho_i(z_i)`` on an array shaped like ``L x``."""

    def coefficient_potential_at(
        self, values: Float[Array, ...], flat_indices: Int[Array, ...]
    ) -> Float[Array, ...]:
        """``rho_i(values)`` for coefficients at the given flat indices of ``L x``.

        The default assumes the same ``rho`` for every coefficient; priors whose
        ``rho_i`` depend on ``i`` override it.
        """
        del flat_indices
        return self.coefficient_potential(values)

    def shift_indices(
        self, flat_indices: np.ndarray, image_shape: tuple[int, int], row_shift: int, col_shift: int
    ) -> np.ndarray | None:
        """Map flat indices of ``L x`` to those of ``L roll(x, (row_shift, col_shift))``.

        Shift-covariant analysis operators (circular convolutions; periodised wavelets
        for shifts by multiples of ``2^levels``) permute their coefficients when the
        image is rolled; knowing the permutation lets the uncertainty code compute
        ``L 1_B`` for a few super-pixels only. Returns ``None`` when unknown (the
        default), in which case every ``L 1_B`` is computed.
        """
        del flat_indices, image_shape, row_shift, col_shift
        return None

    @property
    def shift_period(self) -> int:
        """Smallest shift (pixels) for which :meth:`shift_indices` is defined."""
        return 1

    def potential(self, image: Float[Array, "height width"]) -> Scalar:
        """``R(x) = sum_i rho_i((L x)_i)``."""
        return jnp.sum(self.coefficient_potential(self.analysis(image)))


class NonSmoothPrior(ImagingPrior):
    """A prior used through its proximal operator."""

    @abc.abstractmethod
    def prox(
        self, image: Float[Array, "height width"], step: float
    ) -> Float[Array, "height width"]:
        """``argmin_u step * R(u) + ||u - image||^2 / 2``."""


class SmoothPrior(ImagingPrior):
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

    @property
    def shift_period(self) -> int:
        """``2^levels``: rolling the image by it permutes the coefficients."""
        return 2**self.transform.levels

    def shift_indices(self, flat_indices, image_shape, row_shift, col_shift):
        """Roll each sub-band by ``shift / 2^j`` (level ``j``; the approximation by ``2^-L``)."""
        height, width = image_shape
        levels = self.transform.levels
        if row_shift % 2**levels or col_shift % 2**levels:
            return None
        rows, cols = np.divmod(np.asarray(flat_indices), width)
        new_rows, new_cols = rows.copy(), cols.copy()
        assigned = np.zeros(rows.shape, bool)
        for level in range(1, levels + 1):
            h, w = height >> level, width >> level
            # detail sub-bands of this level occupy [0, 2h) x [0, 2w) minus [0, h) x [0, w)
            in_level = (rows < 2 * h) & (cols < 2 * w) & ~((rows < h) & (cols < w)) & ~assigned
            band_r, band_c = rows // h, cols // w
            dr, dc = row_shift >> level, col_shift >> level
            new_rows = np.where(in_level, band_r * h + (rows - band_r * h + dr) % h, new_rows)
            new_cols = np.where(in_level, band_c * w + (cols - band_c * w + dc) % w, new_cols)
            assigned |= in_level
        h, w = height >> levels, width >> levels
        approx = ~assigned
        new_rows = np.where(approx, (rows + (row_shift >> levels)) % h, new_rows)
        new_cols = np.where(approx, (cols + (col_shift >> levels)) % w, new_cols)
        return new_rows * width + new_cols

    def prox(self, image, step):
        """Exact prox: ``Psi^T soft(Psi x, step * strength)``."""
        return prox_l1_orthonormal(image, step * self.strength, self.transform)
