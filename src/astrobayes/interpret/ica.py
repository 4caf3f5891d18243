"""An unsupervised rotation of a β-VAE's latents by independent component analysis.

A β-VAE's factorised prior fixes its latent axes only up to a rotation when the
decoder's responses to the generating factors overlap (see docs/interpret.md, "Why the
shape latents do not separate"): its active latents are then close to a *linear mixture*
of monotone functions of the factors. When the factors are independent and at most one
of them is Gaussian, such a mixture is identifiable up to order, sign and scale (Comon
1994; Hyvärinen & Oja 2000): independent component analysis recovers the sources.
:func:`ica_rotation` fits FastICA (scikit-learn, symmetric, log-cosh contrast) on the
posterior means of the *training* profiles — it never sees the factors — and
:meth:`LatentRotation.apply` maps any latents (selection, test) onto the independent
components, which are then read with :func:`~astrobayes.interpret.latent_factor_mi`.

This is "β-VAE + ICA", a post-processing of the encoder; the encoder itself is unchanged.

Identifiability needs non-Gaussian sources: the status says so when two or more
components have an excess kurtosis within four standard errors (``4 √(24/n)``) of a
Gaussian's zero — their mutual rotation is then not determined by the data. (Four, not
three: ICA picks the most non-Gaussian directions, so on Gaussian data its components'
kurtosis is wider than a fixed direction's; measured on 2 or 3 Gaussian sources, n = 500
and 2,000, 40 repeats each: largest |kurtosis| up to 3.7 standard errors.)

References:
    Comon (1994), Signal Processing 36, 287, "Independent component analysis, a new
    concept?".
    Hyvärinen & Oja (2000), Neural Networks 13, 411, "Independent component analysis:
    algorithms and applications".
    Hyvärinen (1999), IEEE Trans. Neural Netw. 10, 626 (FastICA).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_finite, check_key, check_positive_int
from astrobayes._status import Severity, Status, check

__all__ = ["LatentRotation", "RotationStatus", "ica_rotation"]


class RotationStatus(Status):
    """Outcome of :func:`ica_rotation`."""

    OK = (Severity.OK, "FastICA converged; the components are non-Gaussian (identifiable)")
    NOT_CONVERGED = (
        Severity.WARNING,
        "warning: FastICA stopped at max_iterations before reaching its tolerance",
    )
    GAUSSIAN = (
        Severity.WARNING,
        "warning: two or more components are indistinguishable from Gaussian "
        "(|excess kurtosis| < 4 sqrt(24/n)); their rotation is not identifiable",
    )
    NON_FINITE = (Severity.FAILURE, "failure: the unmixing matrix is not finite")


class LatentRotation(NamedTuple):
    """An affine unmixing of latents: ``components = (latents − mean) @ unmixing.T``.

    Attributes:
        unmixing: Unmixing matrix (whitening included), ``(num_latents, num_latents)``;
            every row is signed so that its largest-magnitude entry is positive.
        mean: Mean of the training latents, ``(num_latents,)``.
        kurtosis: Excess kurtosis of every training component (0 for a Gaussian, −1.2
            for a uniform source), ``(num_latents,)``.
        kurtosis_error: Standard error of a Gaussian's sample excess kurtosis,
            ``√(24/n)``.
        num_iterations: FastICA iterations used.
        status: A :class:`RotationStatus`.
    """

    unmixing: np.ndarray
    mean: np.ndarray
    kurtosis: np.ndarray
    kurtosis_error: float
    num_iterations: int
    status: RotationStatus

    def apply(
        self, latents: Float[Array, "num_samples num_latents"]
    ) -> Float[np.ndarray, "num_samples num_latents"]:
        """The independent components of ``latents`` (unit variance on the training set).

        Raises:
            ValueError: If ``latents`` is not finite 2-D with ``num_latents`` columns.
        """
        z = as_float_array(latents, "latents", ndim=2)
        check_finite(z, "latents")
        if z.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"latents must have {self.mean.shape[0]} columns (the fitted rotation's); "
                f"got {z.shape[1]}"
            )
        return (z - self.mean) @ self.unmixing.T


def _excess_kurtosis(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    variance = np.mean(centred**2, axis=0)
    return np.mean(centred**4, axis=0) / variance**2 - 3.0


def ica_rotation(
    key: PRNGKeyArray,
    latents: Float[Array, "num_samples num_latents"],
    *,
    max_iterations: int = 1000,
    tolerance: float = 1e-5,
    throw: bool = False,
) -> LatentRotation:
    """Fit the FastICA unmixing of ``latents`` (e.g. a β-VAE's training posterior means).

    Fit on the *training* profiles' latents only and :meth:`~LatentRotation.apply` the
    result to held-out ones; the factors are never used. Components come in arbitrary
    order (a latent–factor matching reads them); their signs are fixed by the unmixing
    rows.

    Args:
        key: PRNG key (the initial unmixing matrix).
        latents: Latent values, ``(num_samples, num_latents)``; ``num_samples`` must
            exceed ``num_latents``.
        max_iterations: FastICA iteration cap (reaching it is a warning).
        tolerance: FastICA convergence tolerance.
        throw: Raise on a failure status.

    Returns:
        A :class:`LatentRotation`.

    Raises:
        ValueError: If ``latents`` is not finite 2-D with more rows than columns, or
            ``tolerance`` is not positive.

    Examples:
        >>> import jax, numpy as np
        >>> s = np.asarray(jax.random.uniform(jax.random.key(0), (500, 2))) - 0.5
        >>> mixed = s @ np.array([[1.0, 0.6], [-0.6, 1.0]])
        >>> rotation = ica_rotation(jax.random.key(1), mixed)
        >>> c = np.corrcoef(rotation.apply(mixed).T, s.T)[:2, 2:]
        >>> rotation.status.name, bool(np.all(np.abs(c).max(axis=1) > 0.99))
        ('OK', True)
    """
    check_key(key)
    z = as_float_array(latents, "latents", ndim=2)
    check_finite(z, "latents")
    num_samples, num_latents = z.shape
    if num_samples <= num_latents:
        raise ValueError(
            f"latents needs more rows (samples) than columns (latents); got shape {z.shape}"
        )
    check_positive_int(max_iterations, "max_iterations")
    if not (isinstance(tolerance, int | float) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number; got {tolerance!r}")
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
    ica = FastICA(
        n_components=num_latents, algorithm="parallel", whiten="unit-variance",
        fun="logcosh", max_iter=int(max_iterations), tol=float(tolerance), random_state=seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported through the status
        ica.fit(z)
    unmixing = np.asarray(ica.components_, np.float64)
    rows = np.arange(num_latents)
    unmixing *= np.sign(unmixing[rows, np.argmax(np.abs(unmixing), axis=1)])[:, None]
    mean = np.asarray(ica.mean_, np.float64)
    kurtosis = _excess_kurtosis((z - mean) @ unmixing.T)
    kurtosis_error = float(np.sqrt(24.0 / num_samples))
    if not np.all(np.isfinite(unmixing)):
        status = RotationStatus.NON_FINITE
    elif np.sum(np.abs(kurtosis) < 4 * kurtosis_error) >= 2:
        status = RotationStatus.GAUSSIAN
    elif ica.n_iter_ >= max_iterations:
        status = RotationStatus.NOT_CONVERGED
    else:
        status = RotationStatus.OK
    result = LatentRotation(
        unmixing=unmixing,
        mean=mean,
        kurtosis=kurtosis,
        kurtosis_error=kurtosis_error,
        num_iterations=int(ica.n_iter_),
        status=status,
    )
    return check(result, throw)
