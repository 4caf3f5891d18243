r"""Settings of the cosmic-shear setups (emulator, training script, likelihood).

Plain NumPy, no optional dependency. Two surveys:

* :data:`DES_Y1_LIKE`: four tomographic source bins with Smail-type redshift distributions
  :math:`n_i(z) \propto z^a \exp[-(z/z_{0,i})^b]` (Smail et al. 1994), whose mean
  redshifts (0.33, 0.54, 0.75, 1.02) are close to the DES-Y1 metacalibration bins; DES-Y1
  galaxy density and shape noise per bin; the DES-Y1 footprint (1321 deg^2) as sky
  fraction; 12 log-spaced multipoles in [30, 2000]; NLA intrinsic alignment with a
  constant amplitude. 14 (LCDM) and 16 (w0waCDM) parameters.
* :data:`LSST_Y1_LIKE`: ten equal-number tomographic bins of the LSST-DESC-SRD Year-1
  source distribution :math:`n(z) \propto z^2 \exp[-(z/0.26)^{0.94}]`, cut in photometric
  redshift with a Gaussian scatter :math:`0.05(1+z)` (The LSST DESC 2018,
  arXiv:1809.01669); 10 galaxies/arcmin^2 in all, :math:`\sigma_e = 0.26`, 12300 deg^2;
  sources with photometric redshift in [0, 4); 12 log-spaced multipoles in [30, 3000]; NLA with a redshift-dependent amplitude
  :math:`A_{IA} [(1+z)/(1+z_0)]^{\eta_{IA}}` (Troxel et al. 2018) and a one-parameter
  non-linear/baryonic modification of the matter power spectrum,
  :math:`P = P_L + A_{mod}(P_{NL} - P_L)` (Amon & Efstathiou 2022, arXiv:2206.11794).
  28 (LCDM) and 30 (w0waCDM) parameters.

Angular spectra of every bin pair ``i <= j`` in the order ``(0,0), (0,1), ..., (1,1), ...``.

References:
    Troxel et al. (2018), DES Y1 cosmic shear, arXiv:1708.01538 (setup, priors);
    Smail, Ellis & Fitchett (1994), MNRAS 270, 245 (n(z) shape); The LSST Dark Energy
    Science Collaboration (2018), Science Requirements Document, arXiv:1809.01669;
    Amon & Efstathiou (2022), arXiv:2206.11794.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaincinv

__all__ = [
    "COSMOLOGY_BOUNDS",
    "DES_Y1_LIKE",
    "EMULATOR_NAMES",
    "FIDUCIAL",
    "LSST_Y1_LIKE",
    "PHOTO_Z_BOUND",
    "SURVEYS",
    "ShearSurvey",
    "emulator_bounds",
    "emulator_names",
    "fiducial",
    "parameter_names",
]

_COSMOLOGY_NAMES = ("omega_m", "s8", "omega_b", "h", "n_s", "w0", "wa")

COSMOLOGY_BOUNDS = {
    "omega_m": (0.15, 0.50),
    "s8": (0.60, 1.00),
    "omega_b": (0.03, 0.07),
    "h": (0.55, 0.91),
    "n_s": (0.87, 1.07),
    "w0": (-1.5, -0.5),
    "wa": (-1.5, 0.5),
}
"""Uniform prior box of the cosmological parameters of :data:`DES_Y1_LIKE`.

Omega_b, h and n_s take the DES-Y1 ranges (Troxel et al. 2018, Table I); Omega_m and S8
a box around the shear posterior; w0, wa a box with w0 + wa <= 0 everywhere (no early
dark-energy domination) containing LCDM (-1, 0) in its interior.
"""

PHOTO_Z_BOUND = 0.1
"""The DES-Y1-like emulator covers photo-z shifts in [-0.1, 0.1]; priors are truncated there."""


@dataclass(frozen=True)
class ShearSurvey:
    r"""A tomographic cosmic-shear survey and its nuisance model (all fields immutable).

    Attributes:
        name: Short name (file names of the shipped data, ``--survey`` options).
        ell: Multipoles of the band powers (log-spaced).
        smail_z0: Smail :math:`z_0` of each tomographic bin; with ``bin_edges``, one value:
            the parent distribution's.
        smail_a: Smail :math:`a` (power of z), common to all bins.
        smail_b: Smail :math:`b` (exponent of the cut-off), common to all bins.
        zmax: Largest redshift of the n(z) integrals.
        galaxies_per_arcmin2: Effective source density per bin [arcmin^-2].
        sigma_e: Intrinsic ellipticity dispersion per component.
        f_sky: Observed sky fraction (for the Gaussian covariance).
        bin_edges: Photometric-redshift edges of the bins (``num_bins + 1``), or ``()`` for
            one Smail distribution per bin.
        photo_z_scatter: Gaussian photo-z scatter :math:`\sigma_z / (1 + z)` of the binning.
        cosmology_bounds: ``((name, low, high), ...)``: uniform priors of the seven
            cosmological parameters (the emulator's box).
        photo_z_sigma: Prior width of each bin's photo-z shift.
        photo_z_bound: Photo-z shift priors are truncated to ``[-bound, bound]`` (the
            emulator's range).
        multiplicative_bias_sigma: Prior width of each shear calibration ``m_i``.
        a_ia_bounds: Uniform prior of the NLA amplitude.
        ia_pivot_redshift: ``None`` for a constant NLA amplitude; else the pivot
            :math:`z_0` of :math:`A_{IA}[(1+z)/(1+z_0)]^{\eta_{IA}}` (``eta_ia`` becomes
            a parameter and an emulator input).
        eta_ia_bounds: Uniform prior of ``eta_ia``.
        a_mod_bounds: ``None`` for no baryonic nuisance; else the uniform prior of
            ``a_mod`` in :math:`P = P_L + A_{mod}(P_{NL} - P_L)` (an emulator input).

    """

    name: str = "des_y1_like"
    ell: tuple[float, ...] = tuple(float(v) for v in np.geomspace(30.0, 2000.0, 12))
    smail_z0: tuple[float, ...] = (0.22, 0.36, 0.50, 0.68)
    smail_a: float = 2.0
    smail_b: float = 1.5
    zmax: float = 3.0
    galaxies_per_arcmin2: float = 1.5
    sigma_e: float = 0.26
    f_sky: float = 1321.0 / 41252.96
    bin_edges: tuple[float, ...] = ()
    photo_z_scatter: float = 0.0
    cosmology_bounds: tuple[tuple[str, float, float], ...] = tuple(
        (name, *COSMOLOGY_BOUNDS[name]) for name in _COSMOLOGY_NAMES
    )
    photo_z_sigma: tuple[float, ...] = (0.016, 0.013, 0.011, 0.022)
    photo_z_bound: float = PHOTO_Z_BOUND
    multiplicative_bias_sigma: float = 0.023
    a_ia_bounds: tuple[float, float] = (-5.0, 5.0)
    ia_pivot_redshift: float | None = None
    eta_ia_bounds: tuple[float, float] = (-5.0, 5.0)
    a_mod_bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.bin_edges:
            if len(self.smail_z0) != 1:
                raise ValueError(
                    "with bin_edges, smail_z0 must hold the parent's single z0; "
                    f"got {len(self.smail_z0)} values"
                )
            if len(self.bin_edges) < 2 or np.any(np.diff(self.bin_edges) <= 0):
                raise ValueError(f"bin_edges must increase; got {self.bin_edges}")
            if self.photo_z_scatter <= 0:
                raise ValueError(
                    f"photo_z_scatter must be > 0 with bin_edges; got {self.photo_z_scatter}"
                )
        if len(self.photo_z_sigma) != self.num_bins:
            raise ValueError(
                f"photo_z_sigma must have one width per bin ({self.num_bins}); "
                f"got {len(self.photo_z_sigma)}"
            )
        if tuple(row[0] for row in self.cosmology_bounds) != _COSMOLOGY_NAMES:
            raise ValueError(
                f"cosmology_bounds must name {_COSMOLOGY_NAMES} in order; "
                f"got {tuple(row[0] for row in self.cosmology_bounds)}"
            )

    @property
    def num_bins(self) -> int:
        """Number of tomographic bins."""
        return len(self.bin_edges) - 1 if self.bin_edges else len(self.smail_z0)

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
"""The DES-Y1-like survey (see the module docstring)."""


def _smail_quantiles(z0: float, a: float, b: float, num_bins: int) -> tuple[float, ...]:
    """Edges of equal-number bins of a Smail n(z) (its CDF is P((a+1)/b, (z/z0)^b))."""
    inner = z0 * gammaincinv((a + 1.0) / b, np.arange(1, num_bins) / num_bins) ** (1.0 / b)
    return (0.0, *(round(float(v), 4) for v in inner), 4.0)


_LSST_EDGES = _smail_quantiles(0.26, 2.0, 0.94, 10)

LSST_Y1_LIKE = ShearSurvey(
    name="lsst_y1_like",
    ell=tuple(float(v) for v in np.geomspace(30.0, 3000.0, 12)),
    smail_z0=(0.26,),
    smail_a=2.0,
    smail_b=0.94,
    zmax=3.5,
    galaxies_per_arcmin2=1.0,
    sigma_e=0.26,
    f_sky=12300.0 / 41252.96,
    bin_edges=_LSST_EDGES,
    photo_z_scatter=0.05,
    cosmology_bounds=(
        ("omega_m", 0.20, 0.42),
        ("s8", 0.70, 0.90),
        ("omega_b", 0.03, 0.07),
        ("h", 0.55, 0.91),
        ("n_s", 0.87, 1.07),
        ("w0", -1.5, -0.5),
        ("wa", -1.5, 0.5),
    ),
    # 0.005 (1 + z) at each bin's centre: of the order of the SRD Y1 requirement.
    photo_z_sigma=tuple(
        round(0.005 * (1.0 + 0.5 * (lo + min(hi, 2.5))), 4)
        for lo, hi in zip(_LSST_EDGES[:-1], _LSST_EDGES[1:], strict=True)
    ),
    photo_z_bound=0.06,
    multiplicative_bias_sigma=0.013,
    a_ia_bounds=(-5.0, 5.0),
    ia_pivot_redshift=0.62,
    eta_ia_bounds=(-4.0, 4.0),
    a_mod_bounds=(0.6, 1.2),
)
"""The LSST-Y1-like survey with redshift-dependent IA and a baryonic nuisance (docstring)."""

SURVEYS = {survey.name: survey for survey in (DES_Y1_LIKE, LSST_Y1_LIKE)}
"""The surveys by name."""


def _check_survey(survey: ShearSurvey) -> None:
    if not isinstance(survey, ShearSurvey):
        raise TypeError(f"survey must be a ShearSurvey; got {type(survey).__name__}")


def emulator_names(survey: ShearSurvey = DES_Y1_LIKE) -> tuple[str, ...]:
    """Emulator inputs: cosmology, ``eta_ia`` and ``a_mod`` where present, photo-z shifts.

    Example:
        >>> emulator_names(LSST_Y1_LIKE)[5:10]
        ('w0', 'wa', 'eta_ia', 'a_mod', 'delta_z_1')

    """
    _check_survey(survey)
    names = list(_COSMOLOGY_NAMES)
    if survey.ia_pivot_redshift is not None:
        names.append("eta_ia")
    if survey.a_mod_bounds is not None:
        names.append("a_mod")
    return (*names, *(f"delta_z_{i + 1}" for i in range(survey.num_bins)))


def parameter_names(survey: ShearSurvey = DES_Y1_LIKE, model: str = "w0wacdm") -> tuple[str, ...]:
    """Parameters of the ``"lcdm"`` or ``"w0wacdm"`` model of a survey, in vector order.

    Cosmology (``w0``, ``wa`` only for w0waCDM), ``a_ia``, ``eta_ia`` and ``a_mod`` where
    the survey has them, then the photo-z shifts and the shear calibrations.

    Example:
        >>> len(parameter_names(LSST_Y1_LIKE, "lcdm")), len(parameter_names(LSST_Y1_LIKE))
        (28, 30)

    """
    _check_survey(survey)
    if model not in ("lcdm", "w0wacdm"):
        raise ValueError(f"model must be 'lcdm' or 'w0wacdm'; got {model!r}")
    cosmology = _COSMOLOGY_NAMES if model == "w0wacdm" else _COSMOLOGY_NAMES[:5]
    nuisance = ["a_ia"]
    if survey.ia_pivot_redshift is not None:
        nuisance.append("eta_ia")
    if survey.a_mod_bounds is not None:
        nuisance.append("a_mod")
    n = survey.num_bins
    return (
        *cosmology,
        *nuisance,
        *(f"delta_z_{i + 1}" for i in range(n)),
        *(f"m_{i + 1}" for i in range(n)),
    )


def fiducial(survey: ShearSurvey = DES_Y1_LIKE) -> dict[str, float]:
    """Parameters of the synthetic data vector (flat LCDM, no systematic shifts).

    Example:
        >>> fiducial(LSST_Y1_LIKE)["a_mod"], len(fiducial(LSST_Y1_LIKE))
        (1.0, 30)

    """
    values = {
        "omega_m": 0.3,
        "s8": 0.8,
        "omega_b": 0.05,
        "h": 0.7,
        "n_s": 0.96,
        "w0": -1.0,
        "wa": 0.0,
        "a_ia": 0.5,
        "eta_ia": 0.0,
        "a_mod": 1.0,
    }
    return {name: values.get(name, 0.0) for name in parameter_names(survey)}


EMULATOR_NAMES = emulator_names(DES_Y1_LIKE)
"""Emulator inputs of :data:`DES_Y1_LIKE` (S8 = sigma8 sqrt(Omega_m / 0.3), photo-z shifts)."""

FIDUCIAL = fiducial(DES_Y1_LIKE)
"""Parameters of the DES-Y1-like synthetic data vector (flat LCDM)."""


def emulator_bounds(survey: ShearSurvey = DES_Y1_LIKE) -> np.ndarray:
    """The emulator's input box: ``(num_inputs, 2)`` rows ``(low, high)``.

    Rows in :func:`emulator_names` order.

    Example:
        >>> emulator_bounds().shape, emulator_bounds(LSST_Y1_LIKE).shape
        ((11, 2), (19, 2))

    """
    _check_survey(survey)
    rows = [(low, high) for _, low, high in survey.cosmology_bounds]
    if survey.ia_pivot_redshift is not None:
        rows.append(survey.eta_ia_bounds)
    if survey.a_mod_bounds is not None:
        rows.append(survey.a_mod_bounds)
    rows += [(-survey.photo_z_bound, survey.photo_z_bound)] * survey.num_bins
    return np.asarray(rows, dtype=np.float64)
