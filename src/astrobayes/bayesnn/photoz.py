"""Simulated galaxy photometry for photometric-redshift regression (offline, analytic).

A one-parameter family of smooth rest-frame spectral energy distributions (SEDs),
indexed by a galaxy type ``t`` in ``[0, 1]`` (0: old, red, elliptical-like; 1: young,
blue, starburst-like), is redshifted through five Gaussian survey bands and observed
with flux noise. Nothing is downloaded: every number below is typed in with where it
comes from, and the templates are deliberately simple (no emission lines, no dust law,
no stellar-population synthesis), so the regression problem has the same structure as
real photometric redshifts (breaks moving through the bands, type-redshift degeneracies,
magnitude-dependent noise) without claiming their detailed colours.

The rest-frame SED, in ``f_lambda``:

* continuum ``lambda ** beta(t)`` with ``beta`` from ``+1.0`` (t = 0, red) to ``-2.0``
  (t = 1): ultraviolet slopes of starbursts lie between about -2.5 and 0 (Calzetti,
  Kinney & Storchi-Bergmann 1994, ApJ 429, 582);
* the 4000 A break: flux below 4000 A divided by ``D4000(t)``, from 2.0 (t = 0) to 1.1
  (t = 1), the range of the break strength from young to old populations in SDSS
  galaxies (Kauffmann et al. 2003, MNRAS 341, 33, their D_n(4000) ~ 1.1-2.2), as a
  logistic step 150 A wide;
* the Lyman limit: no flux below 912 A rest (a logistic step 20 A wide);
* intergalactic Lyman-alpha forest absorption between 912 A and 1216 A rest with the
  mean optical depth ``tau = 0.0036 (lambda_obs / 1216 A) ** 3.46`` (Madau 1995,
  ApJ 441, 18, Lyman-alpha term).

Bands: Gaussian filters at the SDSS ugriz effective wavelengths (3551, 4686, 6166,
7480, 8932 A; Fukugita et al. 1996, AJ 111, 1748; Doi et al. 2010, AJ 139, 1628) with
round full widths at half maximum (600, 1300, 1200, 1300, 1000 A): an approximation of
the SDSS bandpasses, not the measured curves. Band fluxes are ``f_nu`` averaged over the
filter with weight ``T(lambda) / lambda``. Noise: Gaussian in flux with 5-sigma depths
of one LSST visit (u 23.9, g 25.0, r 24.7, i 24.0, z 23.3; Ivezic et al. 2019,
arXiv:0805.2366, table 1); fluxes are turned into asinh magnitudes (Lupton, Gunn &
Szalay 1999, AJ 118, 1406) with the softening set to the flux noise, so faint and
negative fluxes stay finite.

Features (what a network sees): the asinh r magnitude and the four asinh colours
u-g, g-r, r-i, i-z. Target: the redshift. The out-of-distribution set is a redshift
range excluded from training (by default ``z > 2``, where the Lyman-alpha forest and
Lyman limit enter the u band and the colours leave the training region).

Example:
    >>> import jax
    >>> data = simulate_photometry(jax.random.key(0), 4)
    >>> data.features.shape, data.redshift.shape
    ((4, 5), (4,))

"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int

__all__ = [
    "BAND_CENTRES",
    "BAND_DEPTHS",
    "BAND_FWHM",
    "BAND_NAMES",
    "FEATURE_NAMES",
    "PhotometryData",
    "rest_frame_sed",
    "simulate_photometry",
]

BAND_NAMES = ("u", "g", "r", "i", "z")
#: Effective wavelengths of the SDSS ugriz bands, in Angstrom (Fukugita et al. 1996).
BAND_CENTRES = (3551.0, 4686.0, 6166.0, 7480.0, 8932.0)
#: Round full widths at half maximum of the Gaussian stand-in filters, in Angstrom.
BAND_FWHM = (600.0, 1300.0, 1200.0, 1300.0, 1000.0)
#: 5-sigma point-source depths of one LSST visit, AB magnitudes (Ivezic et al. 2019).
BAND_DEPTHS = (23.9, 25.0, 24.7, 24.0, 23.3)
FEATURE_NAMES = ("r", "u-g", "g-r", "r-i", "i-z")

_WAVELENGTHS = np.linspace(2500.0, 11500.0, 361)  # observed frame, Angstrom
_LN10_OVER_2P5 = np.log(10.0) / 2.5


class PhotometryData(NamedTuple):
    """Simulated galaxies.

    Attributes:
        features: ``(num, 5)``: asinh r magnitude and the colours u-g, g-r, r-i, i-z.
        redshift: ``(num,)`` true redshifts.
        galaxy_type: ``(num,)`` template parameter ``t`` in ``[0, 1]``.
        magnitudes: ``(num, 5)`` noisy asinh magnitudes in ugriz.
        true_magnitudes: ``(num, 5)`` noiseless AB magnitudes.

    """

    features: Float[Array, "num 5"]
    redshift: Float[Array, " num"]
    galaxy_type: Float[Array, " num"]
    magnitudes: Float[Array, "num 5"]
    true_magnitudes: Float[Array, "num 5"]


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def rest_frame_sed(
    wavelength: Float[ArrayLike, " num_wavelengths"], galaxy_type: Float[ArrayLike, ...]
) -> Float[np.ndarray, " num_wavelengths"]:
    """Rest-frame ``f_lambda`` (arbitrary units) of the template ``t = galaxy_type`` (NumPy).

    Args:
        wavelength: Rest-frame wavelengths in Angstrom.
        galaxy_type: Template parameter in ``[0, 1]``.

    Returns:
        ``f_lambda`` at ``wavelength`` (continuum, 4000 A break and Lyman limit; the
        intergalactic absorption is applied in :func:`simulate_photometry`).

    Example:
        >>> sed = rest_frame_sed(np.array([3800.0, 4200.0]), 0.0)
        >>> bool(sed[1] / sed[0] > 1.8)  # the old template's 4000 A break
        True

    """
    wavelength = np.asarray(wavelength, dtype=np.float64)
    galaxy_type = np.asarray(galaxy_type, dtype=np.float64)
    beta = 1.0 - 3.0 * galaxy_type
    d4000 = 2.0 - 0.9 * galaxy_type
    continuum = (wavelength / 5000.0) ** beta
    below_break = _sigmoid((4000.0 - wavelength) / 150.0 * 4.0)
    break_factor = 1.0 - (1.0 - 1.0 / d4000) * below_break
    lyman_limit = _sigmoid((wavelength - 912.0) / 20.0 * 4.0)
    return continuum * break_factor * lyman_limit


def _band_weights() -> np.ndarray:
    centres = np.asarray(BAND_CENTRES)[:, None]
    sigma = np.asarray(BAND_FWHM)[:, None] / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    response = np.exp(-0.5 * ((_WAVELENGTHS[None, :] - centres) / sigma) ** 2)
    weights = response / _WAVELENGTHS[None, :]
    return weights / weights.sum(axis=1, keepdims=True)


def _band_magnitudes(redshift: np.ndarray, galaxy_type: np.ndarray) -> np.ndarray:
    """Noiseless AB magnitudes up to a constant, ``(num, 5)`` (NumPy, float64)."""
    rest = _WAVELENGTHS[None, :] / (1.0 + redshift[:, None])
    f_lambda = np.asarray(rest_frame_sed(rest, galaxy_type[:, None]), dtype=np.float64)
    in_forest = (rest > 912.0) & (rest < 1216.0)
    tau = np.where(in_forest, 0.0036 * (_WAVELENGTHS[None, :] / 1216.0) ** 3.46, 0.0)
    f_nu = f_lambda * np.exp(-tau) * rest**2
    flux = f_nu @ _band_weights().T
    return -2.5 * np.log10(np.maximum(flux, 1e-300))


def simulate_photometry(
    key: PRNGKeyArray,
    num: int,
    *,
    redshift_range: tuple[float, float] = (0.02, 2.0),
    r_magnitude_range: tuple[float, float] = (19.0, 23.0),
) -> PhotometryData:
    """Draw ``num`` galaxies and their noisy ugriz photometry.

    Redshifts follow ``p(z) ~ z**2 exp(-(z / 0.6) ** 1.5)`` (the Smail et al. 1994,
    MNRAS 270, 245 form of survey redshift distributions) truncated to
    ``redshift_range``; types are uniform in ``[0, 1]``; true r magnitudes uniform in
    ``r_magnitude_range``.

    Args:
        key: JAX PRNG key.
        num: Number of galaxies.
        redshift_range: ``(z_min, z_max)``, ``0 <= z_min < z_max <= 6``.
        r_magnitude_range: ``(bright, faint)`` limits of the true r magnitude.

    Returns:
        :class:`PhotometryData`.

    Raises:
        ValueError: If ``num`` or a range is invalid.

    """
    check_key(key)
    num = check_positive_int(num, "num")
    z_min, z_max = (float(v) for v in redshift_range)
    if not 0.0 <= z_min < z_max <= 6.0:
        raise ValueError(
            f"redshift_range must satisfy 0 <= z_min < z_max <= 6; got {redshift_range!r}"
        )
    bright, faint = (float(v) for v in r_magnitude_range)
    if not 10.0 <= bright < faint <= 30.0:
        raise ValueError(
            f"r_magnitude_range must satisfy 10 <= bright < faint <= 30; got {r_magnitude_range!r}"
        )
    # NumPy draws seeded by the key's data (no per-shape compilation; same key, same data)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    # inverse-CDF draw of the truncated Smail distribution on a fine grid
    grid = np.linspace(z_min, z_max, 2001)
    density = grid**2 * np.exp(-((grid / 0.6) ** 1.5))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    redshift = np.interp(rng.uniform(size=num), cdf, grid)
    galaxy_type = rng.uniform(size=num)
    r_true = rng.uniform(bright, faint, size=num)
    shape = _band_magnitudes(redshift, galaxy_type)
    true_mags = shape - shape[:, 2:3] + r_true[:, None]
    flux = 10.0 ** (-0.4 * true_mags)
    noise = 10.0 ** (-0.4 * np.asarray(BAND_DEPTHS)) / 5.0
    observed = flux + noise * rng.normal(size=flux.shape)
    # asinh magnitudes with softening b = the 1-sigma flux noise (Lupton et al. 1999)
    mags = -(np.arcsinh(observed / (2.0 * noise)) + np.log(noise)) / _LN10_OVER_2P5
    colours = mags[:, :-1] - mags[:, 1:]
    features = np.concatenate([mags[:, 2:3], colours], axis=1)
    return PhotometryData(
        features=jnp.asarray(features),
        redshift=jnp.asarray(redshift),
        galaxy_type=jnp.asarray(galaxy_type),
        magnitudes=jnp.asarray(mags),
        true_magnitudes=jnp.asarray(true_mags),
    )
