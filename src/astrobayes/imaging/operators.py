"""Measurement operators for radio-interferometric imaging, with exact adjoints.

Every operator maps a real image ``x`` of shape ``(height, width)`` to complex
visibilities ``y`` of shape ``(num_visibilities,)``. The adjoint is taken with respect
to the real inner products ``<x, x'> = sum(x * x')`` on images and
``<y, y'> = Re(sum(conj(y) * y'))`` on visibilities, so that the identity
``<Phi x, y> = <x, Phi^H y>`` holds exactly (to float rounding) and gradients of
``||y - Phi x||^2 / (2 sigma^2)`` are ``Phi^H (Phi x - y) / sigma^2``.

Two operators, each in its module; what differs between operators is behaviour on the
classes (:attr:`~MeasurementOperator.supports_vmap`,
:attr:`~MeasurementOperator.is_shift_invariant`, :meth:`~MeasurementOperator.norm`,
:meth:`~MeasurementOperator.norm_upper_bound`,
:meth:`~MeasurementOperator.measures_zero_frequency`,
:meth:`~MeasurementOperator.likelihood_constraint`), never ``isinstance`` tests in the
algorithms, so a new operator plugs in by subclassing :class:`MeasurementOperator`:

* :class:`FourierMaskOperator` (here) -- ``y = FFT2(x, norm="ortho")[mask]``, the protocol of
  the QuantifAI study (Liaudat et al. 2024). The mask is given in NumPy's FFT layout
  (zero frequency at index ``[0, 0]``); pass ``centred=True`` to
  :func:`fourier_mask_operator` for a mask drawn on the ``fftshift``-ed plane.
* :class:`~astrobayes.imaging.nufft.NufftOperator` -- visibilities at arbitrary ``(u, v)`` in wavelengths for an
  image with a given pixel size (radians), through jax-finufft.

References:
    Liaudat, Mars, Price, Pereyra, Betcke & McEwen 2024, RASTI, "Scalable Bayesian
    uncertainty quantification with data-driven priors for radio interferometric
    imaging" (arXiv:2312.00125).
    The NUFFT operator and natural weighting: see :mod:`astrobayes.imaging.nufft`.

"""

from __future__ import annotations

import abc
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Complex, Float, Int

from astrobayes._checks import check_key
from astrobayes.imaging.operator_norm import operator_norm

__all__ = [
    "ARCSEC_TO_RADIANS",
    "FourierMaskOperator",
    "MeasurementOperator",
    "add_complex_noise",
    "dirty_image",
    "fourier_mask_operator",
    "noise_sigma_from_isnr",
]

ARCSEC_TO_RADIANS = math.pi / (180.0 * 3600.0)


class MeasurementOperator(eqx.Module):
    """Abstract linear map from a real image to complex visibilities."""

    @property
    @abc.abstractmethod
    def image_shape(self) -> tuple[int, int]:
        """Shape ``(height, width)`` of the image domain."""

    @property
    @abc.abstractmethod
    def num_visibilities(self) -> int:
        """Number ``M`` of measured (complex) visibilities."""

    @abc.abstractmethod
    def __call__(self, image: Float[Array, "height width"]) -> Complex[Array, " num_visibilities"]:
        """Apply the forward operator ``Phi``."""

    @abc.abstractmethod
    def adjoint(
        self, visibilities: Complex[Array, " num_visibilities"]
    ) -> Float[Array, "height width"]:
        """Apply the adjoint ``Phi^H`` (real part: the image is real)."""

    def normal(self, image: Float[Array, "height width"]) -> Float[Array, "height width"]:
        """Apply ``Phi^H Phi``."""
        return self.adjoint(self(image))

    @property
    def supports_vmap(self) -> bool:
        """Whether :meth:`__call__` and :meth:`adjoint` can run under ``jax.vmap``.

        Samplers run several chains with ``vmap`` when this is true and one after
        another (``lax.map``) otherwise.
        """
        return True

    @property
    def is_shift_invariant(self) -> bool:
        """Whether ``Phi^H Phi`` commutes with circular shifts of the image.

        Then ``||Phi 1_B||^2`` is the same for every translate ``B`` of a super-pixel, so
        it is computed once (:mod:`~astrobayes.imaging.intervals`). Default ``False``.
        """
        return False

    def norm(self, *, tolerance: float = 1e-7) -> float:
        """Spectral norm ``||Phi||_2``: by power iteration unless a subclass knows it.

        Args:
            tolerance: Relative tolerance of the power iteration.

        Returns:
            The norm (an estimate from below for the power iteration).
        """
        return operator_norm(self.normal, self.image_shape, tolerance=tolerance).norm

    def norm_upper_bound(self) -> float:
        """A bound ``>= ||Phi||_2`` for step sizes: ``1.001`` times :meth:`norm`.

        The factor covers the power iteration's approach from below; operators whose
        :meth:`norm` is exact return it unchanged.
        """
        return self.norm(tolerance=1e-7) * 1.001

    def measures_zero_frequency(self) -> bool:
        """Whether the data depend on the image mean ``sum(x)``.

        Default: whether ``||Phi 1||^2 > 10^-6 ||Phi||^2 ||1||^2`` for the constant
        image ``1``.
        """
        ones = jnp.ones(self.image_shape) / math.sqrt(math.prod(self.image_shape))
        energy = float(jnp.sum(jnp.abs(self(ones)) ** 2))
        return energy > 1e-6 * self.norm(tolerance=1e-4) ** 2

    def likelihood_constraint(
        self, visibilities: Complex[Array, " num_visibilities"], sigma: float
    ) -> Any:
        """The Gaussian likelihood's constraint set ``{ln L >= level}`` and its projection.

        Needed by proximal nested sampling
        (:func:`~astrobayes.imaging.prior_evidence.prior_log_evidence`).

        Args:
            visibilities: Data ``y``.
            sigma: Noise standard deviation of each of the real and imaginary parts.

        Returns:
            A :class:`~astrobayes.imaging.constraints.MaskConstraint`.

        Raises:
            TypeError: When no exact projection is implemented for this operator (the
                default).
        """
        del visibilities, sigma
        raise TypeError(
            f"operator must be a FourierMaskOperator; got {type(self).__name__} "
            "(no exact constraint projection is implemented for it)"
        )


class FourierMaskOperator(MeasurementOperator):
    """``y = FFT2(x, norm="ortho")[mask]``: a masked unitary Fourier transform.

    Build it with :func:`fourier_mask_operator`, which validates the mask.

    Attributes:
        rows: Row indices of the sampled Fourier coefficients (NumPy FFT layout).
        cols: Column indices of the sampled Fourier coefficients.
        shape: Image shape ``(height, width)``.

    """

    rows: Int[Array, " num_visibilities"]
    cols: Int[Array, " num_visibilities"]
    shape: tuple[int, int] = eqx.field(static=True)

    @property
    def image_shape(self) -> tuple[int, int]:
        """Shape ``(height, width)`` of the image domain."""
        return self.shape

    @property
    def num_visibilities(self) -> int:
        """Number of sampled Fourier coefficients."""
        return int(self.rows.shape[0])

    def __call__(self, image: Float[Array, "height width"]) -> Complex[Array, " num_visibilities"]:
        """Return the sampled coefficients of ``FFT2(image, norm="ortho")``."""
        return jnp.fft.fft2(image, norm="ortho")[self.rows, self.cols]

    def adjoint(
        self, visibilities: Complex[Array, " num_visibilities"]
    ) -> Float[Array, "height width"]:
        """Zero-fill the plane, inverse FFT (ortho) and keep the real part."""
        plane = jnp.zeros(self.shape, dtype=jnp.result_type(visibilities, jnp.complex64))
        plane = plane.at[self.rows, self.cols].set(visibilities)
        return jnp.real(jnp.fft.ifft2(plane, norm="ortho"))

    @property
    def is_shift_invariant(self) -> bool:
        """``Phi^H Phi = F^H D F`` is a circular convolution: always ``True``."""
        return True

    def norm(self, *, tolerance: float = 1e-7) -> float:
        """Exact spectral norm (``tolerance`` is not used).

        ``Phi^H Phi = F^H diag((p + p~) / 2) F`` with ``p~(k) = p(-k)`` (the real part
        symmetrises the mask), so ``||Phi||^2`` is 1 when some sampled frequency has its
        mirror ``-k`` sampled too (for instance the zero frequency) and 1/2 otherwise.
        """
        del tolerance
        mask = np.asarray(self.mask())
        mirrored = np.roll(mask[::-1, ::-1], shift=(1, 1), axis=(0, 1))
        return 1.0 if bool(np.any(mask & mirrored)) else float(np.sqrt(0.5))

    def norm_upper_bound(self) -> float:
        """The exact :meth:`norm`."""
        return self.norm()

    def measures_zero_frequency(self) -> bool:
        """Whether the mask samples the zero frequency ``[0, 0]``."""
        return bool(self.mask()[0, 0])

    def likelihood_constraint(
        self, visibilities: Complex[Array, " num_visibilities"], sigma: float
    ) -> Any:
        """Exact constraint projection (:func:`~astrobayes.imaging.constraints.mask_constraint`)."""
        from astrobayes.imaging.constraints import mask_constraint

        return mask_constraint(self, visibilities, sigma)

    def mask(self) -> Bool[Array, "height width"]:
        """Return the boolean sampling mask in NumPy's FFT layout."""
        return jnp.zeros(self.shape, dtype=bool).at[self.rows, self.cols].set(True)


def fourier_mask_operator(
    mask: Bool[Array, "height width"], *, centred: bool = False
) -> FourierMaskOperator:
    """Build the masked-FFT measurement operator from a boolean mask.

    Args:
        mask: Boolean (or 0/1) array of shape ``(height, width)``: ``True`` where a
            Fourier coefficient is measured.
        centred: ``False`` (default) when the mask is in NumPy's FFT layout (zero
            frequency at ``[0, 0]``), which is the layout of the QuantifAI study's
            MATLAB masks; ``True`` when it is drawn on the ``fftshift``-ed plane (zero
            frequency at the centre), in which case it is ``ifftshift``-ed here.

    Returns:
        The :class:`FourierMaskOperator`.

    Raises:
        ValueError: If the mask is not 2-d, not boolean-valued or selects nothing.

    Example:
        >>> import numpy as np
        >>> op = fourier_mask_operator(np.eye(8, dtype=bool))
        >>> op.num_visibilities
        8

    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must be 2-d (height, width); got shape {array.shape}")
    if array.dtype != bool:
        if not np.all(np.isin(array, (0, 1))):
            raise ValueError("mask must be boolean or contain only 0 and 1")
        array = array.astype(bool)
    if not array.any():
        raise ValueError("mask selects no Fourier coefficient")
    if centred:
        array = np.fft.ifftshift(array)
    rows, cols = np.nonzero(array)
    return FourierMaskOperator(
        rows=jnp.asarray(rows), cols=jnp.asarray(cols), shape=tuple(int(n) for n in array.shape)
    )


def noise_sigma_from_isnr(
    clean_visibilities: Complex[Array, " num_visibilities"],
    isnr_db: float,
    *,
    split_complex: bool = False,
) -> float:
    """Noise level for an input signal-to-noise ratio in dB.

    ``s = 10^(-ISNR/20) * ||y||_2 / sqrt(M)``. By default ``s`` is returned as the
    standard deviation of each of the real and imaginary parts of the complex Gaussian
    noise, so ``E||n||^2 = 2 M s^2`` and ``||y||^2 / E||n||^2`` is ``ISNR - 3.01`` dB.
    With ``split_complex=True`` ``s`` is the standard deviation of the complex noise,
    split equally between the two parts (each ``s / sqrt(2)``, which is returned), so
    ``||y||^2 / E||n||^2`` is exactly the ISNR: the QuantifAI study's definition
    (``compute_complex_sigma_noise``, Liaudat et al. 2024, arXiv:2312.00125), used by
    its gridded and MeerKAT tables.

    Args:
        clean_visibilities: Noise-free visibilities ``Phi x`` (``M`` of them).
        isnr_db: Input SNR in dB; must be finite and positive.
        split_complex: Split ``s`` between the real and imaginary parts (see above).

    Returns:
        The standard deviation of each of the real and imaginary parts, a Python float.

    Raises:
        ValueError: If ``isnr_db`` is not a finite positive number or the visibilities
            are empty or not finite.

    Example:
        >>> import numpy as np
        >>> noise_sigma_from_isnr(np.ones(4, dtype=complex), 20.0)
        0.1
        >>> round(noise_sigma_from_isnr(np.ones(4, dtype=complex), 20.0, split_complex=True), 6)
        0.070711

    """
    if isinstance(isnr_db, bool) or not isinstance(isnr_db, int | float | np.floating | np.integer):
        raise ValueError(f"isnr_db must be a number (dB); got {isnr_db!r}")
    isnr_db = float(isnr_db)
    if not np.isfinite(isnr_db) or isnr_db <= 0:
        raise ValueError(f"isnr_db must be a finite positive number of dB; got {isnr_db}")
    y = np.asarray(clean_visibilities)
    if y.size == 0:
        raise ValueError("clean_visibilities is empty")
    if not np.all(np.isfinite(y)):
        raise ValueError("clean_visibilities must be finite")
    sigma = float(10.0 ** (-isnr_db / 20.0) * np.linalg.norm(y.ravel()) / np.sqrt(y.size))
    return float(sigma / np.sqrt(2.0)) if split_complex else sigma


def add_complex_noise(
    key: jax.Array, visibilities: Complex[Array, " num_visibilities"], sigma: float
) -> Complex[Array, " num_visibilities"]:
    """Add complex Gaussian noise, ``Re, Im ~ N(0, sigma^2)`` independently.

    Args:
        key: JAX PRNG key.
        visibilities: Clean visibilities.
        sigma: Standard deviation of each of the real and imaginary parts.

    Returns:
        Noisy visibilities.

    Raises:
        ValueError: If ``sigma`` is not positive and finite.

    """
    check_key(key)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be positive and finite; got {sigma}")
    visibilities = jnp.asarray(visibilities)
    key_real, key_imag = jax.random.split(key)
    real_dtype = jnp.real(visibilities).dtype
    noise = jax.random.normal(key_real, visibilities.shape, real_dtype) + 1j * jax.random.normal(
        key_imag, visibilities.shape, real_dtype
    )
    return visibilities + sigma * noise


def dirty_image(
    operator: MeasurementOperator, visibilities: Complex[Array, " num_visibilities"]
) -> Float[Array, "height width"]:
    """Dirty image ``Phi^H y`` normalised by the peak of the point-spread function.

    Args:
        operator: The measurement operator.
        visibilities: Observed visibilities.

    Returns:
        ``Phi^H y / max(Phi^H Phi delta)`` with ``delta`` a unit impulse at the centre.

    """
    height, width = operator.image_shape
    impulse = jnp.zeros((height, width)).at[height // 2, width // 2].set(1.0)
    psf_peak = jnp.max(operator.normal(impulse))
    return operator.adjoint(visibilities) / psf_peak
