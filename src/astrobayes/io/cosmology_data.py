"""Readers of cosmological data files: SN Ia compilations and the shipped shear data.

The SN Ia readers parse the common public layouts into
:class:`~astrobayes.cosmology.SNData`; :func:`shipped_shear_data` and
:func:`shipped_shear_emulator` (and their shorthands :func:`des_y1_like_data`,
:func:`des_y1_like_emulator`, :func:`lsst_y1_like_data`, :func:`lsst_y1_like_emulator`)
read the package data of the cosmic-shear analyses (``astrobayes/cosmology/shear_data/``)
through :mod:`importlib.resources`. The numerical
core (:mod:`astrobayes.cosmology`) takes the arrays and Modules these return; it never
reads a file itself.
"""

from __future__ import annotations

import csv
import importlib.resources
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from astrobayes.cosmology.data import SNData
from astrobayes.cosmology.shear import ShearData
from astrobayes.emulators.network import Emulator
from astrobayes.io.emulators import load_emulator

__all__ = [
    "des_y1_like_data",
    "des_y1_like_emulator",
    "lsst_y1_like_data",
    "lsst_y1_like_emulator",
    "read_des_sn5yr",
    "read_pantheon_binned",
    "read_pantheon_plus",
    "read_union3",
    "shipped_shear_data",
    "shipped_shear_emulator",
]

PathLike = str | os.PathLike

_SHEAR_DATA_PACKAGE = "astrobayes.cosmology.shear_data"
_SHEAR_SURVEYS = ("des_y1_like", "lsst_y1_like")


def _read_whitespace_table(path: Path, required: Sequence[str]) -> dict[str, np.ndarray]:
    """Read a whitespace table whose first line is a header (leading ``#`` allowed)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with path.open() as handle:
        header = handle.readline().lstrip("#").split()
        rows = [line.split() for line in handle if line.strip() and not line.startswith("#")]
    return _columns(path, header, rows, required)


def _columns(path, header, rows, required) -> dict[str, np.ndarray]:
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; the header has {header}")
    if not rows:
        raise ValueError(f"{path}: no data rows")
    columns = {}
    for name in required:
        index = header.index(name)
        try:
            columns[name] = np.array([float(row[index]) for row in rows])
        except (IndexError, ValueError) as error:
            raise ValueError(f"{path}: column {name!r} is not numeric in every row") from error
    return columns


def _read_square_matrix(path: Path, size: int) -> np.ndarray:
    """Read the CosmoMC/Cobaya layout: first token N, then N*N numbers."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    tokens = path.read_text().split()
    try:
        values = np.array([float(token) for token in tokens])
    except ValueError as error:
        raise ValueError(f"{path}: expected numbers only ({error})") from error
    if values.size == 0 or values[0] != int(values[0]):
        raise ValueError(f"{path}: the first entry must be the matrix size N")
    declared = int(values[0])
    if values.size - 1 != declared * declared:
        raise ValueError(
            f"{path}: the first line declares N = {declared}, so {declared * declared} "
            f"entries were expected; got {values.size - 1}"
        )
    if declared != size:
        raise ValueError(
            f"{path}: covariance is {declared}x{declared} but the table has {size} rows"
        )
    return values[1:].reshape(size, size)


def read_union3(lcparam_path: PathLike, covmat_path: PathLike, *, offset: float = 0.0) -> SNData:
    """Read Union3 (or any CosmoMC ``lcparam`` + ``mag_covmat``) spline-node distance moduli.

    Uses columns ``zcmb`` (redshift), ``zhel`` and ``mb`` (distance modulus up to a
    constant) of ``lcparam_full.txt`` and the full covariance ``mag_covmat.txt`` (first
    entry N, then N*N numbers). ``dmb`` is not added: Union3's covariance is complete.

    Args:
        lcparam_path: Path of ``lcparam_full.txt``.
        covmat_path: Path of ``mag_covmat.txt``.
        offset: Constant added to every ``mb``.

    Returns:
        :class:`SNData` named ``"Union3"``.

    Raises:
        FileNotFoundError: If a file is missing.
        ValueError: Naming the file, on missing/non-numeric columns, a size mismatch or a
            covariance that is not symmetric positive definite.

    References:
        Rubin et al. 2023, "Union Through UNITY", arXiv:2311.12098.

    Example:
        >>> from astrobayes.io import read_union3
        >>> data = read_union3("lcparam_full.txt", "mag_covmat.txt")  # doctest: +SKIP

    """
    lcparam_path, covmat_path = Path(lcparam_path), Path(covmat_path)
    columns = _read_whitespace_table(lcparam_path, ("zcmb", "zhel", "mb"))
    covariance = _read_square_matrix(covmat_path, columns["mb"].size)
    return SNData(
        columns["zcmb"],
        columns["mb"] + offset,
        covariance,
        heliocentric_redshifts=columns["zhel"],
        name=f"Union3 ({covmat_path.name})",
        reference="arXiv:2311.12098",
    )


def read_pantheon_binned(
    lcparam_path: PathLike, sys_path: PathLike, *, offset: float = 0.0
) -> SNData:
    """Read the binned Pantheon compilation: ``lcparam_DS17f.txt`` + ``sys_DS17f.txt``.

    Total covariance = ``diag(dmb**2) + sys`` (the systematic file: first entry N, then
    N*N numbers).

    Args:
        lcparam_path: Path of ``lcparam_DS17f.txt`` (columns ``zcmb``, ``zhel``, ``mb``,
            ``dmb``).
        sys_path: Path of ``sys_DS17f.txt``.
        offset: Constant added to every ``mb`` (e.g. 19.3 to turn apparent magnitudes into
            distance moduli for a conventional offset prior).

    Returns:
        :class:`SNData` named ``"Pantheon binned"``.

    Raises:
        FileNotFoundError: If a file is missing.
        ValueError: Naming the file, on missing/non-numeric columns, a size mismatch or a
            covariance that is not symmetric positive definite.

    References:
        Scolnic et al. 2018, arXiv:1710.00845.

    Example:
        >>> from astrobayes.io import read_pantheon_binned
        >>> data = read_pantheon_binned("lcparam_DS17f.txt", "sys_DS17f.txt")  # doctest: +SKIP

    """
    lcparam_path, sys_path = Path(lcparam_path), Path(sys_path)
    columns = _read_whitespace_table(lcparam_path, ("zcmb", "zhel", "mb", "dmb"))
    systematic = _read_square_matrix(sys_path, columns["mb"].size)
    covariance = systematic + np.diag(columns["dmb"] ** 2)
    return SNData(
        columns["zcmb"],
        columns["mb"] + offset,
        covariance,
        heliocentric_redshifts=columns["zhel"],
        name=f"Pantheon binned ({sys_path.name})",
        reference="arXiv:1710.00845",
    )


def _diagonal_warning(name: str) -> None:
    warnings.warn(
        f"{name}: no covariance given, so only the diagonal (statistical) errors are used; "
        "the authors advise against fitting cosmology this way (systematics and "
        "correlations are missing, errors are underestimated).",
        UserWarning,
        stacklevel=3,
    )


def read_pantheon_plus(
    path: PathLike, *, min_redshift: float = 0.01, offset: float = 0.0
) -> SNData:
    """Read the Pantheon+SH0ES table with diagonal errors only (warns).

    Uses ``zHD`` (redshift), ``zHEL``, ``m_b_corr`` and ``m_b_corr_err_DIAG``; keeps
    ``zHD > min_redshift`` (the Hubble-flow cut of the cosmology-only analysis). Without
    the published STAT+SYS covariance this likelihood is only indicative.

    Args:
        path: Path of ``Pantheon+SH0ES.dat``.
        min_redshift: Keep supernovae with ``zHD`` strictly above this.
        offset: Constant added to every magnitude.

    Returns:
        :class:`SNData` named ``"Pantheon+ (diagonal)"``.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: Naming the file, on missing/non-numeric columns or no row left.

    Warns:
        UserWarning: Always: diagonal errors only, which the authors advise against.

    References:
        Scolnic et al. 2022 (arXiv:2112.03863); Brout et al. 2022 (arXiv:2202.04077).

    Example:
        >>> from astrobayes.io import read_pantheon_plus
        >>> data = read_pantheon_plus("Pantheon+SH0ES.dat")  # doctest: +SKIP

    """
    path = Path(path)
    columns = _read_whitespace_table(path, ("zHD", "zHEL", "m_b_corr", "m_b_corr_err_DIAG"))
    keep = columns["zHD"] > min_redshift
    if not keep.any():
        raise ValueError(f"{path}: no supernova has zHD > min_redshift = {min_redshift}")
    _diagonal_warning(f"{path.name}")
    return SNData(
        columns["zHD"][keep],
        columns["m_b_corr"][keep] + offset,
        np.diag(columns["m_b_corr_err_DIAG"][keep] ** 2),
        heliocentric_redshifts=columns["zHEL"][keep],
        name="Pantheon+ (diagonal)",
        reference="arXiv:2202.04077",
    )


def read_des_sn5yr(path: PathLike, *, offset: float = 0.0) -> SNData:
    """Read the DES-SN5YR Hubble diagram ``DES-SN5YR_HD.csv`` with diagonal errors (warns).

    Uses ``zHD``, ``zHEL`` (if present), ``MU`` and ``MUERR_FINAL`` (or ``MUERR``).

    Args:
        path: Path of the CSV file.
        offset: Constant added to every ``MU``.

    Returns:
        :class:`SNData` named ``"DES-SN5YR (diagonal)"``.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: Naming the file, on missing/non-numeric columns.

    Warns:
        UserWarning: Always: the systematic covariance is not included.

    References:
        DES Collaboration 2024, arXiv:2401.02929.

    Example:
        >>> from astrobayes.io import read_des_sn5yr
        >>> data = read_des_sn5yr("DES-SN5YR_HD.csv")  # doctest: +SKIP

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        rows = [row for row in reader if row]
    error_column = "MUERR_FINAL" if "MUERR_FINAL" in header else "MUERR"
    required = ["zHD", "MU", error_column] + (["zHEL"] if "zHEL" in header else [])
    columns = _columns(path, header, rows, required)
    _diagonal_warning(path.name)
    return SNData(
        columns["zHD"],
        columns["MU"] + offset,
        np.diag(columns[error_column] ** 2),
        heliocentric_redshifts=columns.get("zHEL"),
        name="DES-SN5YR (diagonal)",
        reference="arXiv:2401.02929",
    )


# ----------------------------------------------------------------------- shear package data


def _shear_file(survey: str, suffix: str):
    if survey not in _SHEAR_SURVEYS:
        raise ValueError(f"survey must be one of {_SHEAR_SURVEYS}; got {survey!r}")
    return importlib.resources.files(_SHEAR_DATA_PACKAGE) / f"{survey}{suffix}"


def shipped_shear_data(survey: str) -> ShearData:
    """The shipped synthetic shear data vector of a survey (noiseless, at its fiducial).

    Made by ``scripts/make_shear_training_set.py --survey NAME`` with a direct jax-cosmo
    call at ``astrobayes.cosmology.shear_survey.fiducial(survey)`` (flat LCDM,
    ``omega_m = 0.3``, ``s8 = 0.8``, ``omega_b = 0.05``, ``h = 0.7``, ``n_s = 0.96``,
    ``a_ia = 0.5``, ``eta_ia = 0``, ``a_mod = 1``, no photo-z shift or shear calibration)
    and the Gaussian covariance with shape noise.

    Args:
        survey: ``"des_y1_like"`` or ``"lsst_y1_like"``
            (``astrobayes.cosmology.shear_survey.SURVEYS``).

    Returns:
        :class:`~astrobayes.cosmology.shear.ShearData` (``ell``, ``data_vector``,
        ``covariance``).

    Raises:
        ValueError: For an unknown survey name.

    Example:
        >>> from astrobayes.io import shipped_shear_data
        >>> shipped_shear_data("des_y1_like").data_vector.shape
        (120,)

    """
    path = _shear_file(survey, ".npz")
    with importlib.resources.as_file(path) as file, np.load(file, allow_pickle=False) as npz:
        return ShearData(
            ell=np.array(npz["ell"]),
            data_vector=np.array(npz["data_vector"]),
            covariance=np.array(npz["covariance"]),
        )


def shipped_shear_emulator(survey: str) -> Emulator:
    """The shipped emulator of a survey's GG, GI, II shear spectra (positive outputs).

    Inputs: ``astrobayes.cosmology.shear_survey.emulator_names(survey)``; outputs
    ``[C_GG, -C_GI, C_II]``, each pair-major ``(num_pairs * num_ell,)``.

    Args:
        survey: ``"des_y1_like"`` or ``"lsst_y1_like"``.

    Returns:
        The :class:`~astrobayes.emulators.Emulator`.

    Raises:
        ValueError: For an unknown survey name.

    Example:
        >>> from astrobayes.io import shipped_shear_emulator
        >>> shipped_shear_emulator("des_y1_like").num_parameters
        11

    """
    with importlib.resources.as_file(_shear_file(survey, "_emulator.eqx")) as file:
        return load_emulator(file)


def des_y1_like_data() -> ShearData:
    """The shipped synthetic DES-Y1-like shear data vector: ``shipped_shear_data("des_y1_like")``.

    Returns:
        :class:`~astrobayes.cosmology.shear.ShearData` (``ell``, ``data_vector``,
        ``covariance``).

    Example:
        >>> from astrobayes.io import des_y1_like_data
        >>> des_y1_like_data().data_vector.shape
        (120,)

    """
    return shipped_shear_data("des_y1_like")


def des_y1_like_emulator() -> Emulator:
    """The shipped DES-Y1-like emulator (11 inputs, 360 positive outputs).

    Returns:
        The :class:`~astrobayes.emulators.Emulator`.

    Example:
        >>> from astrobayes.io import des_y1_like_emulator
        >>> des_y1_like_emulator().num_parameters
        11

    """
    return shipped_shear_emulator("des_y1_like")


def lsst_y1_like_data() -> ShearData:
    """The shipped synthetic LSST-Y1-like data vector: ``shipped_shear_data("lsst_y1_like")``.

    Returns:
        :class:`~astrobayes.cosmology.shear.ShearData` (660 band powers: 55 bin pairs x
        12 multipoles).

    Example:
        >>> from astrobayes.io import lsst_y1_like_data
        >>> lsst_y1_like_data().data_vector.shape
        (660,)

    """
    return shipped_shear_data("lsst_y1_like")


def lsst_y1_like_emulator() -> Emulator:
    """The shipped LSST-Y1-like emulator (19 inputs, 1980 positive outputs).

    Returns:
        The :class:`~astrobayes.emulators.Emulator`.

    Example:
        >>> from astrobayes.io import lsst_y1_like_emulator
        >>> lsst_y1_like_emulator().num_parameters
        19

    """
    return shipped_shear_emulator("lsst_y1_like")
