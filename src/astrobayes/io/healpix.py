"""HEALPix maps in FITS files: read with checks, write atomically (healpy).

Reads what ``healpy.write_map`` writes (a binary table, one map per column, RING or
NESTED order; NESTED maps are reordered to RING) and refuses, with a message that says
what to do, a file that is not a HEALPix map, a map with NaN or ``UNSEEN`` pixels
(unless a mask is given to leave them out), an nside that is not a power of two or is
outside the supported range, and a mask of another size.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from astrobayes.io.writers import write_atomic

__all__ = ["MAX_NSIDE", "MIN_NSIDE", "read_healpix_map", "read_healpix_mask", "write_healpix_maps"]

#: Smallest and largest nside accepted (textures need L = 2 nside >= 8).
MIN_NSIDE = 4
MAX_NSIDE = 1024


def _healpy():
    try:
        import healpy
    except ImportError as error:  # pragma: no cover - healpy is in the sphere extra
        raise ImportError(
            "reading HEALPix maps needs healpy: pip install 'astrobayes[sphere]'"
        ) from error
    return healpy


def _check_structure(path: Path) -> None:
    """Refuse files that are not FITS with a binary table in HDU 1 (healpy's layout)."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdus:
            is_table = len(hdus) > 1 and isinstance(hdus[1], fits.BinTableHDU)
            pixtype = str(hdus[1].header.get("PIXTYPE", "HEALPIX")).upper() if is_table else ""
    except OSError as error:
        raise ValueError(
            f"{path} is not a HEALPix map: not a readable FITS file ({error})"
        ) from error
    if not is_table:
        raise ValueError(
            f"{path} is not a HEALPix map: no binary table in HDU 1 "
            "(expected a file written by healpy.write_map)"
        )
    if pixtype != "HEALPIX":
        raise ValueError(f"{path} is not a HEALPix map: PIXTYPE = {pixtype!r}")


def _read_columns(path: Path) -> tuple[np.ndarray, str]:
    healpy = _healpy()
    if not path.is_file():
        raise FileNotFoundError(f"no such HEALPix FITS file: {path}")
    _check_structure(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            maps, header = healpy.read_map(path, field=None, h=True, nest=None, dtype=np.float64)
    except Exception as error:  # noqa: BLE001 - healpy raises many types for non-HEALPix files
        raise ValueError(
            f"{path} is not a HEALPix map (healpy.read_map failed: {type(error).__name__}: {error}); "
            "expected a FITS binary table as written by healpy.write_map"
        ) from error
    header = dict(header)
    ordering = str(header.get("ORDERING", "RING")).upper()
    maps = np.atleast_2d(np.asarray(maps, np.float64))
    if ordering.startswith("NEST"):
        maps = np.stack([healpy.reorder(m, n2r=True) for m in maps])
    return maps, str(header.get("TUNIT1", "")).strip()


def _check_nside(num_pixels: int, path: Path) -> int:
    healpy = _healpy()
    if not healpy.isnpixok(num_pixels):
        raise ValueError(f"{path}: {num_pixels} pixels is not 12 nside^2 for a power-of-two nside")
    nside = healpy.npix2nside(num_pixels)
    if not MIN_NSIDE <= nside <= MAX_NSIDE:
        raise ValueError(
            f"{path}: nside {nside} is unsupported; expected {MIN_NSIDE} <= nside <= {MAX_NSIDE} "
            "(use healpy.ud_grade to change the resolution)"
        )
    return nside


def read_healpix_map(
    path: str | os.PathLike[str], *, field: int = 0, mask: np.ndarray | None = None
) -> tuple[np.ndarray, int, str]:
    """Read one HEALPix map (RING order) from a FITS file, with checks.

    Args:
        path: FITS file written by ``healpy.write_map`` (or compatible).
        field: which column (0 = the first, e.g. temperature ``I``).
        mask: optional boolean map (True = keep) of the same nside; masked-out pixels may
            be NaN or ``UNSEEN`` and are set to the mean of the kept pixels.

    Returns:
        ``(map, nside, unit)``: ``float64`` map in RING order, its nside, and the unit
        string of the column (empty if absent).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a HEALPix map, a missing column, an unsupported nside, NaN or
            ``UNSEEN`` pixels outside the mask, a mask of another size.

    Examples:
        >>> import tempfile, healpy
        >>> path = tempfile.mkdtemp() + "/m.fits"
        >>> healpy.write_map(path, np.arange(192.0), dtype=np.float64)
        >>> m, nside, unit = read_healpix_map(path)
        >>> m.shape, nside
        ((192,), 4)
    """
    path = Path(path)
    maps, unit = _read_columns(path)
    if not 0 <= field < maps.shape[0]:
        raise ValueError(f"{path} has {maps.shape[0]} map column(s); field={field} does not exist")
    values = maps[field].copy()
    nside = _check_nside(values.size, path)
    bad = ~np.isfinite(values) | np.isclose(values, _healpy().UNSEEN)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != values.shape:
            raise ValueError(
                f"mask has {mask.size} pixels but the map {path} has {values.size} (nside {nside}); "
                "use a mask of the same nside (healpy.ud_grade)"
            )
        keep = mask.astype(bool)
        bad = bad & keep
        values[~keep] = np.nan
    if np.any(bad):
        raise ValueError(
            f"{path}: {int(bad.sum())} pixel(s) are NaN or UNSEEN; fill them or pass a mask that "
            "excludes them"
        )
    if mask is not None:
        keep = np.asarray(mask).astype(bool)
        if not keep.any():
            raise ValueError("mask keeps no pixel")
        values[~keep] = values[keep].mean()
    return values, nside, unit


def read_healpix_mask(path: str | os.PathLike[str], *, threshold: float = 0.5) -> np.ndarray:
    """Read a HEALPix mask (RING order) as booleans, ``True`` where the value > threshold.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_healpix_map`.
    """
    path = Path(path)
    maps, _ = _read_columns(path)
    values = maps[0]
    _check_nside(values.size, path)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"mask {path} has non-finite pixels")
    return values > threshold


def write_healpix_maps(
    path: str | os.PathLike[str],
    maps: np.ndarray,
    *,
    unit: str = "",
    column_names: list[str] | None = None,
) -> Path:
    """Write one or more RING-ordered HEALPix maps as columns of one FITS file, atomically.

    Readable with ``healpy.read_map(path, field=None)``.

    Args:
        path: destination ``.fits``.
        maps: ``(num_pixels,)`` or ``(num_maps, num_pixels)``.
        unit: unit string written to every column.
        column_names: optional names (default ``SAMPLE_0``, ``SAMPLE_1``, ...).

    Returns:
        The path written.

    Raises:
        ValueError: pixels that are not 12 nside^2, non-finite values, or a wrong number of
            column names.

    Examples:
        >>> import tempfile, healpy
        >>> path = write_healpix_maps(tempfile.mkdtemp() + "/s.fits", np.zeros((2, 192)))
        >>> healpy.read_map(path, field=None).shape
        (2, 192)
    """
    healpy = _healpy()
    maps = np.atleast_2d(np.asarray(maps, np.float64))
    if maps.ndim != 2 or not healpy.isnpixok(maps.shape[1]):
        raise ValueError(
            f"maps must be (num_maps, 12 nside^2) for a power-of-two nside, got {maps.shape}"
        )
    if not np.all(np.isfinite(maps)):
        raise ValueError("maps have non-finite values")
    names = column_names or [f"SAMPLE_{i}" for i in range(maps.shape[0])]
    if len(names) != maps.shape[0]:
        raise ValueError(f"{len(names)} column names for {maps.shape[0]} maps")
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder) / "maps.fits"
        healpy.write_map(
            scratch,
            list(maps),
            column_names=names,
            column_units=unit or None,
            dtype=np.float64,
            overwrite=True,
        )
        data = scratch.read_bytes()
    return write_atomic(path, lambda handle: handle.write(data))
