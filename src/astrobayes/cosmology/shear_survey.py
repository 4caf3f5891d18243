r"""Settings of the DES-Y1-like cosmic-shear setup (emulator, training script, likelihood).

Plain NumPy, no optional dependency.

Four tomographic source bins with Smail-type redshift distributions
:math:`n_i(z) \propto z^a \exp[-(z/z_{0,i})^b]` (Smail et al. 1994), whose mean
redshifts (0.33, 0.54, 0.75, 1.02) are close to the DES-Y1 metacalibration bins; DES-Y1
galaxy density and shape noise per bin; the DES-Y1 footprint (1321 deg^2) as sky fraction;
12 log-spaced multipoles in [30, 2000]. Angular spectra of every bin pair ``i <= j`` in the
order ``(0,0), (0,1), ..., (0,3), (1,1), ...``.

References:
    Troxel et al. (2018), DES Y1 cosmic shear, arXiv:1708.01538 (setup, priors);
    Smail, Ellis & Fitchett (1994), MNRAS 270, 245 (n(z) shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "COSMOLOGY_BOUNDS",
    "DES_Y1_LIKE",
    "EMULATOR_NAMES",
    "FIDUCIAL",
    "PHOTO_Z_BOUND",
    "ShearSurvey",
    "emulator_bounds",
]


@dataclass(frozen=True)
class ShearSurvey:
    """A tomographic cosmic-shear survey (all fields immutable).

    Attributes:
        ell: Multipoles of the band powers (log-spaced).
        smail_z0: Smail :math:`z_0` of each tomographic bin.
        smail_a: Smail :math:`a` (power of z), common to all bins.
        smail_b: Smail :math:`b` (exponent of the cut-off), common to all bins.
        zmax: Largest redshift of the n(z) integrals.
        galaxies_per_arcmin2: Effective source density per bin [arcmin^-2].
        sigma_e: Intrinsic ellipticity dispersion per component.
        f_sky: Observed sky fraction (for the Gaussian covariance).

    """

    ell: tuple[float, ...] = tuple(float(v) for v in np.geomspace(30.0, 2000.0, 12))
    smail_z0: tuple[float, ...] = (0.22, 0.36, 0.50, 0.68)
    smail_a: float = 2.0
    smail_b: float = 1.5
    zmax: float = 3.0
    galaxies_per_arcmin2: float = 1.5
    sigma_e: float = 0.26
    f_sky: float = 1321.0 / 41252.96

    @property
    def num_bins(self) -> int:
        """Number of tomographic bins."""
        return len(self.smail_z0)

    @property
    def num_ell(self) -> int:
        """Number of multipoles."""
        return len(self.ell)

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """Bin pairs ``(i, j)``, ``i <= j``, in data-vector order."""
        n = self.num_bins
        return tuple((i, j) for i in range(n) for j in range(i, n))

    @property
    def num_pairs(self) -> int:
        """Number of bin pairs."""
        return self.num_bins * (self.num_bins + 1) // 2

    @property
    def num_data(self) -> int:
        """Length of the data vector (pairs x multipoles)."""
        return self.num_pairs * self.num_ell


DES_Y1_LIKE = ShearSurvey()
"""The default survey (see the module docstring)."""

EMULATOR_NAMES = (
    "omega_m",
    "s8",
    "omega_b",
    "h",
    "n_s",
    "w0",
    "wa",
    "delta_z_1",
    "delta_z_2",
    "delta_z_3",
    "delta_z_4",
)
"""Emulator inputs: cosmology (S8 = sigma8 sqrt(Omega_m / 0.3)) and photo-z shifts."""

COSMOLOGY_BOUNDS = {
    "omega_m": (0.15, 0.50),
    "s8": (0.60, 1.00),
    "omega_b": (0.03, 0.07),
    "h": (0.55, 0.91),
    "n_s": (0.87, 1.07),
    "w0": (-1.5, -0.5),
    "wa": (-1.5, 0.5),
}
"""Uniform prior box of the cosmological parameters, which the emulator covers.

Omega_b, h and n_s take the DES-Y1 ranges (Troxel et al. 2018, Table I); Omega_m and S8
a box around the shear posterior; w0, wa a box with w0 + wa <= 0 everywhere (no early
dark-energy domination) containing LCDM (-1, 0) in its interior.
"""

PHOTO_Z_BOUND = 0.1
"""The emulator covers photo-z shifts in [-0.1, 0.1]; their priors are truncated there."""

FIDUCIAL = {
    "omega_m": 0.3,
    "s8": 0.8,
    "omega_b": 0.05,
    "h": 0.7,
    "n_s": 0.96,
    "w0": -1.0,
    "wa": 0.0,
    "a_ia": 0.5,
    "delta_z_1": 0.0,
    "delta_z_2": 0.0,
    "delta_z_3": 0.0,
    "delta_z_4": 0.0,
    "m_1": 0.0,
    "m_2": 0.0,
    "m_3": 0.0,
    "m_4": 0.0,
}
"""Parameters of the synthetic data vector (flat LCDM)."""


def emulator_bounds() -> np.ndarray:
    """The emulator's input box, ``(11, 2)`` rows ``(low, high)`` in EMULATOR_NAMES order."""
    rows = [COSMOLOGY_BOUNDS[name] for name in EMULATOR_NAMES[:7]]
    rows += [(-PHOTO_Z_BOUND, PHOTO_Z_BOUND)] * 4
    return np.asarray(rows, dtype=np.float64)
