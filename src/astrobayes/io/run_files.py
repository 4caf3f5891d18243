"""Files of ``astrobayes run``: the user's data arrays in, posterior chains out.

:func:`read_data_arrays` reads the ``data`` table of a model (``.npy``, ``.npz``, FITS or a
text table). :func:`write_posterior_npz` and :func:`write_arviz_netcdf` write a
:class:`~astrobayes.runconfig.PosteriorTable` (draws in the original space, ``ln L`` and
the normalised ``ln pi`` per draw) so that :func:`astrobayes.io.read_chains` reads them
back with the prior normalised, and ArviZ opens the netCDF as ``InferenceData``
(groups ``posterior``, ``log_likelihood``, ``log_prior`` and ``sample_stats.lp``). Both
are written atomically through :func:`astrobayes.io.write_atomic`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from astrobayes.chains import Chains
from astrobayes.io.writers import write_atomic, write_chains_npz
from astrobayes.runconfig import PosteriorTable

__all__ = ["read_data_arrays", "write_arviz_netcdf", "write_posterior_npz"]

_CONVENTION = "log_posterior = ln L + ln prior, the prior normalised (astrobayes run)"


def read_data_arrays(
    paths: Mapping[str, str | os.PathLike], base: str | os.PathLike = "."
) -> dict[str, np.ndarray]:
    """Read ``{name: path}`` data files into ``{name: array}``.

    Args:
        paths: File per name: ``.npy``; ``.npz`` (its only array, or the one called
            ``name``); FITS (``.fits``, ``.fit``, ``.fts``, optionally ``.gz``: the HDU
            whose ``EXTNAME`` is ``name``, else the first with data; an image as it is,
            a table as ``(rows, columns)`` of its numeric scalar columns in their order);
            anything else a whitespace (comma for ``.csv``) separated text table read by
            ``numpy.loadtxt`` (``#`` comments; a first row of column names, as pandas
            and spreadsheets write, is skipped).
        base: Folder relative paths are taken from (the config file's folder).

    Returns:
        ``{name: float array}``.

    Raises:
        FileNotFoundError: If a file does not exist (the name and path given).
        ValueError: If a file cannot be read as numbers.

    Example:
        >>> import tempfile, os, numpy as np
        >>> folder = tempfile.mkdtemp()
        >>> np.savetxt(os.path.join(folder, "y.txt"), [1.0, 2.0])
        >>> read_data_arrays({"y": "y.txt"}, folder)["y"].tolist()
        [1.0, 2.0]

    """
    out = {}
    for name, given in paths.items():
        path = Path(given)
        if not path.is_absolute():
            path = Path(base) / path
        if not path.is_file():
            raise FileNotFoundError(f"data file {name!r}: {path} does not exist")
        try:
            if path.suffix == ".npy":
                array = np.load(path, allow_pickle=False)
            elif path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    if name in archive.files:
                        array = archive[name]
                    elif len(archive.files) == 1:
                        array = archive[archive.files[0]]
                    else:
                        raise ValueError(
                            f"holds {archive.files}; name one of them {name!r} or keep one array"
                        )
            elif _is_fits(path):
                array = _read_fits_array(path, name)
            else:
                delimiter = "," if path.suffix == ".csv" else None
                array = np.loadtxt(
                    path, delimiter=delimiter, ndmin=1, skiprows=_header_rows(path, delimiter)
                )
            array = np.asarray(array, dtype=float)
        except ValueError as error:
            raise ValueError(f"data file {name!r} ({path}): cannot read numbers: {error}") from None
        out[name] = array
    return out


def _is_fits(path: Path) -> bool:
    suffixes = [x.lower() for x in path.suffixes[-2:]]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in (".fits", ".fit", ".fts")


def _header_rows(path: Path, delimiter: str | None) -> int:
    """Lines to skip: up to a first content row of column names (no field a number)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for index, line in enumerate(handle):
            content = line.split("#", 1)[0].strip()
            if not content:
                continue
            fields = [f.strip() for f in content.split(delimiter)]

            def is_number(field: str) -> bool:
                try:
                    float(field)
                except ValueError:
                    return False
                return True

            # a row of names ("t,v,err"), never a row with one bad number among numbers
            return index + 1 if not any(is_number(f) for f in fields) else 0
    return 0


def _read_fits_array(path: Path, name: str) -> np.ndarray:
    """The HDU called ``name`` (else the first with data) as a float array."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdus:
        named = [h for h in hdus if h.name.lower() == name.lower() and h.data is not None]
        with_data = named or [h for h in hdus if h.data is not None]
        if not with_data:
            raise ValueError("holds no HDU with data")
        hdu = with_data[0]
        if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
            columns, skipped = [], []
            for column in hdu.columns:
                values = np.asarray(hdu.data[column.name])
                if values.ndim == 1 and np.issubdtype(values.dtype, np.number):
                    columns.append(values.astype(float))
                else:
                    skipped.append(column.name)
            if skipped:
                raise ValueError(
                    f"HDU {hdu.name!r} has columns that are not numeric scalars: {skipped}; "
                    "write a table of numeric columns only (or a .npy/.npz array)"
                )
            return np.stack(columns, axis=-1)
        return np.asarray(hdu.data, dtype=float)


def _edge(ranges, name: str, side: int) -> float:
    value = ranges.get(name, (None, None))[side]
    return float("nan") if value is None else float(value)


def write_posterior_npz(path: str | os.PathLike, table: PosteriorTable) -> Path:
    """Write a posterior table as an ``.npz`` chains archive (read by ``read_chains``).

    The archive holds the :func:`~astrobayes.io.write_chains_npz` arrays over the
    sampled columns (``samples``, ``log_posterior = ln L + ln pi``, ``weights``,
    ``names``) plus ``derived`` (the derived columns), ``derived_names``,
    ``log_likelihood``, ``log_prior``, ``labels`` and ``range_low`` / ``range_high`` (the
    prior's hard edges per sampled parameter, ``nan`` for an open side).

    Args:
        path: Destination file.
        table: The posterior.

    Returns:
        The path written.

    """
    sampled = [i for i, d in enumerate(table.is_derived) if not d]
    derived = [i for i, d in enumerate(table.is_derived) if d]
    chains = Chains(
        table.samples[..., sampled],
        table.log_posterior,
        names=tuple(table.names[i] for i in sampled),
    )
    extra = {
        "derived": table.samples[..., derived],
        "derived_names": np.array([table.names[i] for i in derived], dtype=str),
        "log_likelihood": table.log_likelihood,
        "log_prior": table.log_prior,
        "labels": np.array(table.labels, dtype=str),
        # the prior's hard edges per sampled parameter (nan: open), which read_chains
        # returns as `bounds` for an estimate without edges
        "range_low": np.array([_edge(table.ranges, table.names[i], 0) for i in sampled]),
        "range_high": np.array([_edge(table.ranges, table.names[i], 1) for i in sampled]),
    }
    with tempfile.TemporaryDirectory(dir=Path(path).parent) as folder:
        first = write_chains_npz(Path(folder) / "chains.npz", chains, convention=_CONVENTION)
        with np.load(first, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    arrays.update(extra)
    return write_atomic(path, lambda handle: np.savez(handle, **arrays))


def write_arviz_netcdf(path: str | os.PathLike, table: PosteriorTable) -> Path:
    """Write a posterior table as an ArviZ ``InferenceData`` netCDF file.

    Groups: ``posterior`` (every column, ``(chain, draw)``), ``log_likelihood``
    (``ln L``), ``log_prior`` (``ln pi`` of the draw under the variable of the first
    sampled parameter, zeros for the other sampled ones, so its sum is ``ln pi`` and
    its variables mark which columns were sampled) and ``sample_stats.lp``
    (``ln L + ln pi``). A sampled variable's hard prior edges are its attributes
    ``prior_low`` / ``prior_high``. :func:`astrobayes.io.read_chains` reads it back with
    the prior normalised, the derived columns excluded and the edges as ``bounds``.

    Args:
        path: Destination file (``.nc``).
        table: The posterior.

    Returns:
        The path written.

    Raises:
        ImportError: If ArviZ is not installed (extra ``dev``/``io``).

    """
    import arviz as az

    sampled = [name for name, d in zip(table.names, table.is_derived, strict=True) if not d]
    posterior = {name: table.samples[..., i] for i, name in enumerate(table.names)}
    log_prior = {name: np.zeros_like(table.log_prior) for name in sampled}
    log_prior[sampled[0]] = table.log_prior
    data = az.from_dict(
        posterior=posterior,
        log_likelihood={"log_likelihood": table.log_likelihood},
        sample_stats={"lp": table.log_posterior},
        attrs={"astrobayes_convention": _CONVENTION},
    )
    data.add_groups({"log_prior": az.from_dict(posterior=log_prior).posterior})
    for name in sampled:  # the prior's hard edges, which read_chains returns as `bounds`
        low, high = table.ranges.get(name, (None, None))
        if low is not None:
            data.posterior[name].attrs["prior_low"] = float(low)
        if high is not None:
            data.posterior[name].attrs["prior_high"] = float(high)
    target = Path(path)
    with tempfile.TemporaryDirectory(dir=target.parent) as folder:
        temporary = Path(folder) / "posterior.nc"
        data.to_netcdf(str(temporary))
        content = temporary.read_bytes()
    return write_atomic(target, lambda handle: handle.write(content))
