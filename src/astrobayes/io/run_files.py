"""Files of ``astrobayes run``: the user's data arrays in, posterior chains out.

:func:`read_data_arrays` reads the ``data`` table of a model (``.npy``, ``.npz`` or a text
table). :func:`write_posterior_npz` and :func:`write_arviz_netcdf` write a
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
            ``name``); anything else a whitespace or comma separated text table read by
            ``numpy.loadtxt`` (``#`` comments).
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
            else:
                delimiter = "," if path.suffix == ".csv" else None
                array = np.loadtxt(path, delimiter=delimiter, ndmin=1)
            array = np.asarray(array, dtype=float)
        except ValueError as error:
            raise ValueError(f"data file {name!r} ({path}): cannot read numbers: {error}") from None
        out[name] = array
    return out


def write_posterior_npz(path: str | os.PathLike, table: PosteriorTable) -> Path:
    """Write a posterior table as an ``.npz`` chains archive (read by ``read_chains``).

    The archive holds the :func:`~astrobayes.io.write_chains_npz` arrays over the
    sampled columns (``samples``, ``log_posterior = ln L + ln pi``, ``weights``,
    ``names``) plus ``derived`` (the derived columns), ``derived_names``,
    ``log_likelihood``, ``log_prior`` and ``labels``.

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
    (``ln L + ln pi``). :func:`astrobayes.io.read_chains` reads it back with the prior
    normalised and the derived columns excluded.

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
    target = Path(path)
    with tempfile.TemporaryDirectory(dir=target.parent) as folder:
        temporary = Path(folder) / "posterior.nc"
        data.to_netcdf(str(temporary))
        content = temporary.read_bytes()
    return write_atomic(target, lambda handle: handle.write(content))
