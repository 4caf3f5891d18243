"""Multivariate Gaussian likelihood with a validated covariance and its normalisation.

The covariance is checked and factorised once, in float64 NumPy, outside ``jit``; the
likelihood itself is a matrix-vector product with the whitening matrix
:math:`W = L^{-1}` (:math:`C = L L^T`), which is cheap and accurate in float32 too.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jaxtyping import Array, ArrayLike, Float

from astrobayes._checks import as_float_array, check_finite

__all__ = ["GaussianLikelihood", "gaussian_log_likelihood", "validate_covariance"]

_SYMMETRY_RTOL = 1e-8


def validate_covariance(
    covariance: Float[ArrayLike, "n n"], name: str = "covariance", *, size: int | None = None
) -> np.ndarray:
    """Check that a covariance matrix is square, finite, symmetric and positive definite.

    Args:
        covariance: Candidate covariance, shape ``(n, n)``.
        name: Name used in error messages (an argument name or a file name).
        size: Expected ``n`` (the number of data points), or ``None``.

    Returns:
        The covariance as a float64 NumPy array, exactly symmetrised.

    Raises:
        TypeError: If it is not numeric.
        ValueError: If it is not 2-d and square, has the wrong size, is not finite, is not
            symmetric (relative tolerance 1e-8 of the largest entry) or is not positive
            definite (the message gives the smallest eigenvalue).

    Example:
        >>> import numpy as np
        >>> from astrobayes.cosmology import validate_covariance
        >>> validate_covariance(np.eye(2)).shape
        (2, 2)

    """
    matrix = as_float_array(covariance, name, ndim=2)
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {matrix.shape}")
    if size is not None and matrix.shape[0] != size:
        raise ValueError(
            f"{name} must be {size}x{size} to match the {size} data points; got shape "
            f"{matrix.shape}"
        )
    check_finite(matrix, name)
    scale = float(np.max(np.abs(matrix))) if matrix.size else 0.0
    asymmetry = float(np.max(np.abs(matrix - matrix.T))) if matrix.size else 0.0
    if asymmetry > _SYMMETRY_RTOL * scale:
        raise ValueError(
            f"{name} must be symmetric; max |C - C^T| = {asymmetry:.3g} (largest entry {scale:.3g})"
        )
    matrix = 0.5 * (matrix + matrix.T)
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh(matrix)[0])
        raise ValueError(
            f"{name} must be positive definite; its smallest eigenvalue is {smallest:.3g}"
        ) from None
    return matrix


class GaussianLikelihood(eqx.Module):
    r"""Gaussian likelihood :math:`\mathcal{N}(d \mid m, C)` of a fixed data vector.

    :math:`\ln L(m) = -\tfrac12 (d-m)^T C^{-1} (d-m) - \tfrac12 \ln\det(2\pi C)`,
    normalisation included, so that it can be used in evidences.

    Args:
        data: Observed data vector ``d``, shape ``(n,)``.
        covariance: Its covariance ``C``, shape ``(n, n)``; validated by
            :func:`validate_covariance`.
        name: Name of the covariance used in error messages.

    Attributes:
        data: ``d`` as float64 NumPy (read-only).
        whitening: :math:`L^{-1}` with :math:`C = L L^T`, float64 NumPy (read-only).
        log_normalisation: :math:`-\tfrac12 \ln\det(2\pi C)`.

    Raises:
        ValueError: If ``data`` is not a finite 1-d vector or ``covariance`` is invalid.

    Example:
        >>> import numpy as np
        >>> from astrobayes.cosmology import GaussianLikelihood
        >>> likelihood = GaussianLikelihood(np.zeros(2), np.eye(2))
        >>> round(float(likelihood(np.zeros(2))), 6)  # -log(2 pi)
        -1.837877

    """

    data: np.ndarray
    whitening: np.ndarray
    log_normalisation: float

    def __init__(
        self,
        data: Float[ArrayLike, " n"],
        covariance: Float[ArrayLike, "n n"],
        name: str = "covariance",
    ):
        vector = as_float_array(data, "data", ndim=1)
        check_finite(vector, "data")
        matrix = validate_covariance(covariance, name, size=vector.shape[0])
        cholesky = np.linalg.cholesky(matrix)
        whitening = scipy.linalg.solve_triangular(
            cholesky, np.eye(matrix.shape[0]), lower=True, check_finite=False
        )
        log_det = 2.0 * float(np.sum(np.log(np.diag(cholesky))))
        vector.setflags(write=False)
        whitening.setflags(write=False)
        self.data = vector
        self.whitening = whitening
        self.log_normalisation = -0.5 * (log_det + vector.shape[0] * np.log(2.0 * np.pi))

    @property
    def num_data(self) -> int:
        """Number of data points ``n``."""
        return int(self.data.shape[0])

    def __call__(self, prediction: Float[ArrayLike, " n"]) -> Float[Array, ""]:
        """Log-likelihood of a model prediction ``m`` (shape ``(n,)``), jit/grad friendly."""
        residual = jnp.asarray(self.data) - jnp.asarray(prediction)
        white = jnp.asarray(self.whitening) @ residual
        return self.log_normalisation - 0.5 * jnp.sum(white * white)


def gaussian_log_likelihood(
    residual: Float[ArrayLike, " n"], covariance: Float[ArrayLike, "n n"]
) -> Float[Array, ""]:
    r"""One-off Gaussian log density :math:`-\tfrac12 r^T C^{-1} r - \tfrac12\ln\det(2\pi C)`.

    Validates and factorises ``covariance`` on every call (eagerly, so not inside
    ``jit``); build a :class:`GaussianLikelihood` once for repeated evaluation.

    Args:
        residual: Data minus model, shape ``(n,)``.
        covariance: Covariance, shape ``(n, n)``.

    Returns:
        The log density (scalar).

    Raises:
        ValueError: If the shapes disagree or the covariance is not symmetric positive
            definite.

    Example:
        >>> import numpy as np
        >>> from astrobayes.cosmology import gaussian_log_likelihood
        >>> value = gaussian_log_likelihood(np.ones(3), np.eye(3))

    """
    residual = as_float_array(residual, "residual", ndim=1)
    return GaussianLikelihood(np.zeros_like(residual), covariance)(-residual)
