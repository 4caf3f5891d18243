r"""Summary statistics that validate generated fields: spectra, moments, Minkowski functionals.

NumPy on the host (these are checks, not losses). The three Minkowski functionals of the
excursion sets :math:`\{u > \nu\}` of the standardised field :math:`u = (f - \bar f)/
\sigma` follow Schmalzing & Gorski 1998 (astro-ph/9710185):

* :math:`V_0(\nu)` the area fraction,
* :math:`V_1(\nu) = \frac{1}{16\pi}\int \delta(u-\nu)|\nabla u|\,dA` (a quarter of
  the boundary length per area),
* :math:`V_2(\nu) = \frac{1}{8\pi^2}\int \delta(u-\nu)\,\frac{2u_\theta u_\phi
  u_{\theta\phi} - u_\theta^2 u_{\phi\phi} - u_\phi^2 u_{\theta\theta}}{u_\theta^2
  + u_\phi^2}\,dA` (the Euler characteristic per area over 2 pi),

with covariant first and second derivatives in the orthonormal frame computed exactly in
harmonic space (spin-1 and spin-2 transforms of :math:`\sqrt{\ell(\ell+1)} a_{\ell m}`
and :math:`\sqrt{(\ell-1)\ell(\ell+1)(\ell+2)} a_{\ell m}`), and the delta function
replaced by a bin of width ``bin_width``. For a Gaussian field with
:math:`\tau = \langle|\nabla u|^2\rangle/2` they are
:math:`V_0 = \tfrac12\mathrm{erfc}(\nu/\sqrt2)`, :math:`V_1 = \tfrac18\sqrt\tau
e^{-\nu^2/2}`, :math:`V_2 = \tau\nu e^{-\nu^2/2}/(2\pi)^{3/2}`
(:func:`gaussian_minkowski`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from astrobayes.sphere.transforms import SphereGrid, _analysis_one, _synthesis_one, ell_m

__all__ = [
    "Minkowski",
    "band_powers",
    "gaussian_minkowski",
    "minkowski_functionals",
    "pixel_moments",
    "power_spectrum",
]


class Minkowski(NamedTuple):
    """Minkowski functionals at each threshold.

    Attributes:
        thresholds: ``nu`` in units of the field's standard deviation.
        v0, v1, v2: arrays of the thresholds' length.
        tau: half the mean squared gradient of the standardised field.
    """

    thresholds: np.ndarray
    v0: np.ndarray
    v1: np.ndarray
    v2: np.ndarray
    tau: float


def _alm(f: np.ndarray, grid: SphereGrid) -> np.ndarray:
    return _analysis_one(np.asarray(f, np.float64)[None], grid, 0)[0]


def power_spectrum(f: np.ndarray, grid: SphereGrid) -> np.ndarray:
    r"""Angular power spectrum :math:`C_\ell`, ``ell = 0 .. L - 1``, of one real map.

    Examples:
        >>> grid = SphereGrid(4, "gl")
        >>> theta, _ = grid.coordinates()
        >>> cl = power_spectrum(np.cos(theta), grid)  # (4 pi / 3) / 3 at ell = 1
        >>> round(float(cl[1]), 6) == round(4 * np.pi / 9, 6)
        True
    """
    alm = _alm(f, grid)
    ells, ms = ell_m(grid.band_limit)
    weights = np.where(ms == 0, 1.0, 2.0) * np.abs(alm) ** 2
    power = np.bincount(ells, weights=weights, minlength=grid.band_limit)
    return power / (2 * np.arange(grid.band_limit) + 1)


def band_powers(cl: np.ndarray, bands: list[tuple[int, int]]) -> np.ndarray:
    r"""Mode-weighted mean of :math:`C_\ell` in each band ``[lo, hi)``.

    Examples:
        >>> band_powers(np.ones(8), [(2, 4), (4, 8)]).tolist()
        [1.0, 1.0]
    """
    ells = np.arange(cl.shape[-1])
    out = []
    for lo, hi in bands:
        sel = (ells >= lo) & (ells < hi)
        modes = 2 * ells[sel] + 1
        out.append(np.sum(cl[..., sel] * modes, axis=-1) / modes.sum())
    return np.stack(out, axis=-1)


def pixel_moments(f: np.ndarray, grid: SphereGrid) -> dict[str, float]:
    """Area-weighted mean, variance, skewness and excess kurtosis of one map.

    Examples:
        >>> grid = SphereGrid(8, "healpix", nside=4)
        >>> f = np.random.default_rng(0).normal(size=grid.map_shape)
        >>> sorted(pixel_moments(f, grid))
        ['kurtosis', 'mean', 'skewness', 'variance']
    """
    weights = grid.pixel_weights() / (4 * np.pi)
    f = np.asarray(f, np.float64)
    mean = float(np.sum(weights * f))
    centred = f - mean
    variance = float(np.sum(weights * centred**2))
    skewness = float(np.sum(weights * centred**3) / variance**1.5)
    kurtosis = float(np.sum(weights * centred**4) / variance**2 - 3.0)
    return {"mean": mean, "variance": variance, "skewness": skewness, "kurtosis": kurtosis}


def minkowski_functionals(
    f: np.ndarray, grid: SphereGrid, thresholds: np.ndarray | None = None, bin_width: float = 0.2
) -> Minkowski:
    """The three Minkowski functionals of the excursion sets of one map.

    Args:
        f: one real map on ``grid`` (treated as band-limited to ``grid.band_limit``).
        grid: the :class:`~astrobayes.sphere.SphereGrid`.
        thresholds: ``nu`` values in standard deviations (default ``-3 .. 3`` step 0.25).
        bin_width: width of the bin that stands for the delta function.

    Returns:
        :class:`Minkowski`.

    References:
        Schmalzing & Gorski 1998 (astro-ph/9710185).

    Examples:
        >>> grid = SphereGrid(16, "healpix", nside=8)
        >>> f = np.random.default_rng(0).normal(size=grid.map_shape)
        >>> mf = minkowski_functionals(f, grid, thresholds=np.array([0.0]))
        >>> round(float(mf.v0[0]), 1)
        0.5
    """
    if thresholds is None:
        thresholds = np.linspace(-3.0, 3.0, 25)
    thresholds = np.asarray(thresholds, float)
    if not bin_width > 0:
        raise ValueError(f"bin_width must be > 0, got {bin_width!r}")
    weights = grid.pixel_weights()
    alm = _alm(f, grid)
    alm[0] = 0.0
    ells, _ = ell_m(grid.band_limit)
    ell = ells.astype(float)
    u = _synthesis_one(alm[None], grid, 0)[0]
    sigma = np.sqrt(np.sum(weights * u**2) / (4 * np.pi))
    alm, u = alm / sigma, u / sigma
    zero = np.zeros_like(alm)
    grad_theta, grad_phi = _synthesis_one(np.stack([np.sqrt(ell * (ell + 1)) * alm, zero]), grid, 1)
    laplacian = _synthesis_one((-ell * (ell + 1) * alm)[None], grid, 0)[0]
    factor = np.sqrt(np.clip((ell - 1) * ell * (ell + 1) * (ell + 2), 0.0, None))
    q, w = _synthesis_one(np.stack([factor * alm, zero]), grid, 2)
    difference, mixed = -q, -w / 2.0  # spin-2 conventions checked in the tests
    h_tt, h_pp = (laplacian + difference) / 2.0, (laplacian - difference) / 2.0
    gradient2 = grad_theta**2 + grad_phi**2
    curvature = (
        2 * grad_theta * grad_phi * mixed - grad_theta**2 * h_pp - grad_phi**2 * h_tt
    ) / np.maximum(gradient2, 1e-300)
    tau = float(np.sum(weights * gradient2) / (4 * np.pi) / 2.0)
    v0, v1, v2 = [], [], []
    for nu in thresholds:
        v0.append(np.sum(weights * (u > nu)) / (4 * np.pi))
        delta = (np.abs(u - nu) < bin_width / 2) / bin_width
        v1.append(np.sum(weights * delta * np.sqrt(gradient2)) / (16 * np.pi))
        v2.append(np.sum(weights * delta * curvature) / (8 * np.pi**2))
    return Minkowski(thresholds, np.array(v0), np.array(v1), np.array(v2), tau)


def gaussian_minkowski(thresholds: np.ndarray, tau: float) -> Minkowski:
    """Expected Minkowski functionals of a Gaussian field with the given ``tau``.

    Examples:
        >>> float(gaussian_minkowski(np.array([0.0]), 1.0).v1[0])
        0.125
    """
    nu = np.asarray(thresholds, float)
    g = np.exp(-(nu**2) / 2)
    return Minkowski(
        nu,
        0.5 * special.erfc(nu / np.sqrt(2)),
        np.sqrt(tau) * g / 8.0,
        tau * nu * g / (2 * np.pi) ** 1.5,
        float(tau),
    )
