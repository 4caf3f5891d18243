"""The imaging posterior ``U(x) = ||y - Phi x||^2 / (2 sigma^2) + R(x) [+ i_{x >= 0}]``.

``U`` is the negative log posterior up to a constant. With complex Gaussian noise whose
real and imaginary parts each have standard deviation ``sigma`` the data term is the
exact negative log likelihood (up to a constant).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float, Scalar

from astrobayes.imaging.operators import MeasurementOperator
from astrobayes.imaging.priors import ImagingPrior, NonSmoothPrior, SmoothPrior

__all__ = ["ImagingPosterior", "imaging_posterior"]


class ImagingPosterior(eqx.Module):
    """Negative log posterior for linear imaging with a convex prior.

    Build it with :func:`imaging_posterior`, which validates its input.

    Attributes:
        operator: The measurement operator ``Phi``.
        visibilities: Observed data ``y``.
        sigma: Noise standard deviation of each of the real and imaginary parts.
        prior: A :class:`~astrobayes.imaging.priors.ImagingPrior`.
        positivity: Whether the prior includes the constraint ``x >= 0``.
        operator_norm: ``||Phi||_2``.

    """

    operator: MeasurementOperator
    visibilities: Complex[Array, " num_visibilities"]
    sigma: float
    prior: ImagingPrior
    positivity: bool = eqx.field(static=True)
    operator_norm: float
    num_prox_iterations: int = eqx.field(static=True, default=10)

    @property
    def image_shape(self) -> tuple[int, int]:
        """Shape of the image."""
        return self.operator.image_shape

    @property
    def dimension(self) -> int:
        """Number ``N`` of pixels."""
        height, width = self.image_shape
        return height * width

    def residual(self, image: Float[Array, "height width"]) -> Complex[Array, " num_visibilities"]:
        """``Phi x - y``."""
        return self.operator(image) - self.visibilities

    def data_fidelity(self, image: Float[Array, "height width"]) -> Scalar:
        """``||y - Phi x||^2 / (2 sigma^2)``."""
        residual = self.residual(image)
        return jnp.sum(jnp.real(residual) ** 2 + jnp.imag(residual) ** 2) / (2 * self.sigma**2)

    def data_gradient(self, image: Float[Array, "height width"]) -> Float[Array, "height width"]:
        """``Phi^H (Phi x - y) / sigma^2``."""
        return self.operator.adjoint(self.residual(image)) / self.sigma**2

    def potential(self, image: Float[Array, "height width"]) -> Scalar:
        """``U(x)``; ``+inf`` outside the positive orthant when ``positivity``."""
        value = self.data_fidelity(image) + self.prior.potential(image)
        if self.positivity:
            value = jnp.where(jnp.all(image >= 0), value, jnp.inf)
        return value

    def smooth_gradient(self, image: Float[Array, "height width"]) -> Float[Array, "height width"]:
        """Gradient of the smooth part (data term, plus the prior when smooth)."""
        gradient = self.data_gradient(image)
        if isinstance(self.prior, SmoothPrior):
            gradient = gradient + self.prior.gradient(image)
        return gradient

    @property
    def smooth_lipschitz(self) -> float:
        """Lipschitz constant of :meth:`smooth_gradient`."""
        value = self.operator_norm**2 / self.sigma**2
        if isinstance(self.prior, SmoothPrior):
            value = value + self.prior.lipschitz
        return value

    def prox(
        self, image: Float[Array, "height width"], step: float
    ) -> Float[Array, "height width"]:
        """Prox of the non-smooth part (non-smooth prior and/or positivity).

        With both a non-smooth prior and positivity, the prox of the sum is computed by
        the Dykstra-like proximal algorithm (Combettes & Pesquet 2011,
        arXiv:0912.3522, Algorithm 10.18), which converges to the exact prox of the
        sum; ``num_prox_iterations`` of it are run (its result is feasible: ``>= 0``).
        """
        smooth = not isinstance(self.prior, NonSmoothPrior)
        if smooth:
            return jnp.maximum(image, 0.0) if self.positivity else image
        if not self.positivity:
            return self.prior.prox(image, step)

        def body(_, state):
            x, p, q = state
            y = self.prior.prox(x + p, step)
            p = x + p - y
            x_new = jnp.maximum(y + q, 0.0)
            q = y + q - x_new
            return x_new, p, q

        zeros = jnp.zeros_like(image)
        x, _, _ = jax.lax.fori_loop(0, self.num_prox_iterations, body, (image, zeros, zeros))
        return x


def imaging_posterior(
    operator: MeasurementOperator,
    visibilities: Complex[Array, " num_visibilities"],
    sigma: float,
    prior: ImagingPrior,
    *,
    positivity: bool = False,
    num_prox_iterations: int = 10,
) -> ImagingPosterior:
    """Validate the inputs and build an :class:`ImagingPosterior`.

    Args:
        operator: The measurement operator.
        visibilities: Observed visibilities, shape ``(operator.num_visibilities,)``.
        sigma: Noise standard deviation of each of the real and imaginary parts.
        prior: A convex prior.
        positivity: Add the constraint ``x >= 0`` (with a non-smooth prior the prox of
            the sum is computed iteratively, see :meth:`ImagingPosterior.prox`).
        num_prox_iterations: Dykstra-like iterations for the composite prox.

    Returns:
        The posterior.

    Raises:
        ValueError: On a shape mismatch, non-finite data or a bad ``sigma``.
        TypeError: If ``prior`` is not an :class:`~astrobayes.imaging.priors.ImagingPrior`.

    Example:
        >>> import numpy as np
        >>> from astrobayes.imaging.operators import fourier_mask_operator
        >>> from astrobayes.imaging.priors import WaveletSparsityPrior
        >>> from astrobayes.imaging.wavelets import WaveletTransform
        >>> op = fourier_mask_operator(np.ones((8, 8), dtype=bool))
        >>> post = imaging_posterior(op, np.zeros(64, complex), 0.1,
        ...                          WaveletSparsityPrior(1.0, WaveletTransform(1, 1)))
        >>> float(post.potential(np.zeros((8, 8))))
        0.0

    """
    if not isinstance(operator, MeasurementOperator):
        raise TypeError(f"operator must be a MeasurementOperator; got {type(operator).__name__}")
    if not isinstance(prior, ImagingPrior):
        raise TypeError(f"prior must be an ImagingPrior; got {type(prior).__name__}")
    data = np.asarray(visibilities)
    if data.shape != (operator.num_visibilities,):
        raise ValueError(
            f"visibilities must have shape ({operator.num_visibilities},) to match the operator; "
            f"got {data.shape}"
        )
    if not np.all(np.isfinite(data)):
        bad = int(np.sum(~np.isfinite(data)))
        raise ValueError(f"visibilities must be finite; {bad} entries are not")
    if isinstance(sigma, bool) or not np.isscalar(sigma) or not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number; got {sigma!r}")
    norm = operator.norm_upper_bound()
    complex_dtype = jnp.result_type(jnp.zeros(()).dtype, jnp.complex64)
    return ImagingPosterior(
        operator=operator,
        visibilities=jnp.asarray(data, dtype=complex_dtype),
        sigma=float(sigma),
        prior=prior,
        positivity=bool(positivity),
        operator_norm=float(norm),
        num_prox_iterations=int(num_prox_iterations),
    )
