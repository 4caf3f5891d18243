"""Binary chains: NumPy ``.npz``, emcee HDF5 backends and ArviZ netCDF."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from astrobayes.io._common import AS_GIVEN, LIKELIHOOD_ONLY, NORMALISED, FileChains

__all__ = [
    "hdf5_kind",
    "read_arviz",
    "read_emcee",
    "read_npz",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
NETCDF3_SIGNATURE = b"CDF"
NPY_SIGNATURE = b"\x93NUMPY"

#: Key under which :func:`astrobayes.io.write_chains_npz` records the convention.
NPZ_CONVENTION_KEY = "astrobayes_convention"


def _numeric(array: np.ndarray, path: Path, name: str) -> np.ndarray:
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        raise ValueError(f"{path}: array {name!r} must hold numbers; got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise ValueError(f"{path}: array {name!r} must be real; got dtype {array.dtype}")
    return array.astype(np.float64)


def _npz_shapes(path: Path, samples, log_posterior, weights, names):
    """Check and normalise the shapes of an npz archive's arrays (a single chain allowed)."""
    if samples.ndim == 2:  # a single chain
        samples = samples[None]
        log_posterior = log_posterior[None] if log_posterior.ndim == 1 else log_posterior
        weights = weights[None] if weights is not None and weights.ndim == 1 else weights
    if samples.ndim != 3:
        raise ValueError(
            f"{path}: array 'samples' must have shape (num_chains, num_samples, dim); got {samples.shape}"
        )
    if log_posterior.shape != samples.shape[:2]:
        raise ValueError(
            f"{path}: array 'log_posterior' must have shape {samples.shape[:2]} to match "
            f"'samples' {samples.shape}; got {log_posterior.shape}"
        )
    if weights is not None and weights.shape != samples.shape[:2]:
        raise ValueError(
            f"{path}: array 'weights' must have shape {samples.shape[:2]} to match "
            f"'samples' {samples.shape}; got {weights.shape}"
        )
    if names is None:
        name_tuple = tuple(f"p{i}" for i in range(samples.shape[2]))
    else:
        if names.dtype.kind not in "US" or names.ndim != 1 or names.shape[0] != samples.shape[2]:
            raise ValueError(
                f"{path}: array 'names' must hold dim = {samples.shape[2]} strings; got dtype "
                f"{names.dtype} and shape {names.shape}"
            )
        name_tuple = tuple(str(n.decode() if isinstance(n, bytes) else n) for n in names)
    return samples, log_posterior, weights, name_tuple


def read_npz(path: Path) -> FileChains:
    """Read ``samples``, ``log_posterior`` and optional ``weights``/``names`` arrays."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable .npz archive ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path}: a single .npy array, not an .npz archive; save samples and "
            "log_posterior together with numpy.savez"
        )

    def get(name: str) -> np.ndarray:
        try:
            return archive[name]
        except ValueError as error:
            if "allow_pickle" in str(error) or "Object arrays" in str(error):
                raise ValueError(
                    f"{path}: array {name!r} holds Python objects; refusing to unpickle it "
                    "(loading never unpickles: it could run arbitrary code). Save plain numeric "
                    "arrays, and names as a string array (numpy.array(names, dtype=str))"
                ) from None
            raise ValueError(f"{path}: array {name!r} cannot be read ({error})") from None
        except (OSError, zipfile.BadZipFile, EOFError) as error:
            raise ValueError(f"{path}: array {name!r} cannot be read ({error})") from None

    with archive:
        keys = set(archive.files)
        missing = [k for k in ("samples", "log_posterior") if k not in keys]
        if missing:
            raise ValueError(
                f"{path}: the .npz archive must hold arrays 'samples' (num_chains, num_samples, dim) "
                f"and 'log_posterior' (num_chains, num_samples); missing {missing}, found {sorted(keys)}"
            )
        samples = _numeric(get("samples"), path, "samples")
        log_posterior = _numeric(get("log_posterior"), path, "log_posterior")
        weights = _numeric(get("weights"), path, "weights") if "weights" in keys else None
        names = get("names") if "names" in keys else None
        convention = get(NPZ_CONVENTION_KEY) if NPZ_CONVENTION_KEY in keys else None
        edges = (
            (
                _numeric(get("range_low"), path, "range_low"),
                _numeric(get("range_high"), path, "range_high"),
            )
            if {"range_low", "range_high"} <= keys
            else None
        )
    samples, log_posterior, weights, name_tuple = _npz_shapes(
        path, samples, log_posterior, weights, names
    )
    if convention is not None and convention.dtype.kind == "U" and convention.ndim == 0:
        kind, description = NORMALISED, f"npz written by astrobayes ({convention.item()})"
    else:
        kind, description = AS_GIVEN, "npz array 'log_posterior'"
    ranges = None
    if edges is not None and edges[0].shape == edges[1].shape == (len(name_tuple),):
        ranges = {n: (float(lo), float(hi)) for n, lo, hi in zip(name_tuple, *edges, strict=True)}
    return FileChains(
        path=path,
        format="npz",
        names=name_tuple,
        derived=tuple(False for _ in name_tuple),
        samples=list(samples),
        log_posterior=list(log_posterior),
        weights=None if weights is None else list(weights),
        log_likelihood=None,
        kind=kind,
        description=description,
        ranges=ranges,
        locate=lambda chain, row: f"chain {chain}, draw {row}",
    )


def _open_hdf5(path: Path):
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is in the io extra
        raise ImportError("reading HDF5 files needs h5py: pip install 'astrobayes[io]'") from None
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error})") from None


def hdf5_kind(path: Path) -> str:
    """``"emcee"`` or ``"arviz"`` from the groups of an HDF5 file, else ``ValueError``."""
    with _open_hdf5(path) as handle:
        groups = sorted(k for k in handle if hasattr(handle[k], "keys"))
        if _emcee_groups(handle):
            return "emcee"
        if "posterior" in groups:
            return "arviz"
    raise ValueError(
        f"{path}: an HDF5 file that is neither an emcee backend (a group with datasets "
        f"'chain' and 'log_prob') nor ArviZ netCDF (a 'posterior' group); found groups {groups}"
    )


def _emcee_groups(handle) -> list[str]:
    return sorted(
        k
        for k in handle
        if hasattr(handle[k], "keys") and "chain" in handle[k] and "log_prob" in handle[k]
    )


def read_emcee(path: Path) -> FileChains:
    """Read an ``emcee.backends.HDFBackend`` file; each walker becomes a chain."""
    with _open_hdf5(path) as handle:
        candidates = _emcee_groups(handle)
        if not candidates:
            raise ValueError(
                f"{path}: no emcee backend group (with datasets 'chain' and 'log_prob'); "
                f"found {sorted(handle)}"
            )
        if "mcmc" in candidates:
            name = "mcmc"
        elif len(candidates) == 1:
            name = candidates[0]
        else:
            raise ValueError(
                f"{path}: several emcee backend groups {candidates} and none is the default "
                "'mcmc'; copy the one you want into a file of its own"
            )
        group = handle[name]
        chain_set, log_prob_set = group["chain"], group["log_prob"]
        iteration = int(group.attrs.get("iteration", chain_set.shape[0]))
        if chain_set.ndim != 3 or log_prob_set.shape != chain_set.shape[:2]:
            raise ValueError(
                f"{path}: group {name!r} must hold 'chain' (num_steps, num_walkers, dim) and "
                f"'log_prob' (num_steps, num_walkers); got {chain_set.shape} and {log_prob_set.shape}"
            )
        if iteration < 1:
            raise ValueError(f"{path}: the emcee backend holds no steps (iteration = {iteration})")
        chain = _numeric(chain_set[:iteration], path, f"{name}/chain")
        log_prob = _numeric(log_prob_set[:iteration], path, f"{name}/log_prob")
    names = tuple(f"p{i}" for i in range(chain.shape[2]))
    return FileChains(
        path=path,
        format="emcee",
        names=names,
        derived=tuple(False for _ in names),
        samples=[chain[:, w] for w in range(chain.shape[1])],
        log_posterior=[log_prob[:, w] for w in range(chain.shape[1])],
        weights=None,
        log_likelihood=None,
        kind=AS_GIVEN,
        description=f"emcee log_prob (group {name!r}, {chain.shape[1]} walkers as chains)",
        locate=lambda chain, row: f"walker {chain}, step {row}",
    )


def _open_group(path: Path, group: str):
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is in the io extra
        raise ImportError(
            "reading ArviZ netCDF needs xarray and h5netcdf: pip install 'astrobayes[io]'"
        ) from None
    try:
        with xr.open_dataset(path, group=group) as dataset:
            return dataset.load()
    except Exception as error:
        raise ValueError(
            f"{path}: group {group!r} cannot be read as netCDF ({type(error).__name__}: {error})"
        ) from None


def _draw_values(dataset, path: Path, group: str, shape: tuple[int, int]) -> np.ndarray:
    """Sum every variable of a group over all dimensions but (chain, draw)."""
    total = np.zeros(shape)
    for var_name, variable in dataset.data_vars.items():
        dims = variable.dims
        if dims[:2] != ("chain", "draw"):
            raise ValueError(
                f"{path}: variable {var_name!r} of group {group!r} must have leading dimensions "
                f"(chain, draw); got {dims}"
            )
        values = _numeric(np.asarray(variable.values), path, f"{group}/{var_name}")
        if values.shape[:2] != shape:
            raise ValueError(
                f"{path}: variable {var_name!r} of group {group!r} has (chain, draw) = "
                f"{values.shape[:2]}; the posterior has {shape}"
            )
        total += values.reshape(shape + (-1,)).sum(axis=-1)
    return total


def _arviz_posterior(
    path: Path,
) -> tuple[np.ndarray, list[str], list[str], tuple[int, int], dict[str, tuple[float, float]]]:
    """Posterior variables flattened to columns, and the prior edges of scalar ones.

    Returns samples, column names, each column's variable, ``(chain, draw)``, and the
    edges from the attributes ``prior_low`` / ``prior_high`` that ``astrobayes run``
    writes (``nan`` for an open side).
    """
    posterior = _open_group(path, "posterior")
    columns, names, variable_of_column = [], [], []
    ranges = {}
    shape = None
    for var_name, variable in posterior.data_vars.items():
        if variable.dims[:2] != ("chain", "draw"):
            raise ValueError(
                f"{path}: posterior variable {var_name!r} must have leading dimensions (chain, draw); "
                f"got {variable.dims}"
            )
        values = _numeric(np.asarray(variable.values), path, f"posterior/{var_name}")
        shape = values.shape[:2]
        flat = values.reshape(shape + (-1,))
        rest = values.shape[2:]
        for k, index in enumerate(np.ndindex(*rest)):
            columns.append(flat[..., k])
            names.append(
                f"{var_name}[{','.join(str(i) for i in index)}]" if rest else str(var_name)
            )
            variable_of_column.append(str(var_name))
        low, high = variable.attrs.get("prior_low"), variable.attrs.get("prior_high")
        if not rest and (low is not None or high is not None):
            ranges[str(var_name)] = (
                float("nan") if low is None else float(low),
                float("nan") if high is None else float(high),
            )
    if shape is None:
        raise ValueError(f"{path}: the posterior group holds no variables")
    return np.stack(columns, axis=-1), names, variable_of_column, shape, ranges


def _arviz_lp(path: Path, groups: list[str], shape: tuple[int, int]) -> np.ndarray | None:
    """``sample_stats.lp``, the fallback log density, or ``None`` beside a log_likelihood."""
    if "sample_stats" in groups:
        stats = _open_group(path, "sample_stats")
        if "lp" in stats.data_vars:
            lp = _numeric(np.asarray(stats["lp"].values), path, "sample_stats/lp")
            if lp.shape != shape:
                raise ValueError(
                    f"{path}: sample_stats/lp has shape {lp.shape}; the posterior has (chain, draw) = {shape}"
                )
            return lp
    if "log_likelihood" in groups:
        return None
    raise ValueError(
        f"{path}: no log posterior: expected groups 'log_likelihood' and 'log_prior', or "
        f"'sample_stats' with variable 'lp'; found groups {groups}"
    )


def read_arviz(path: Path) -> FileChains:
    """Read an ArviZ ``InferenceData`` netCDF file."""
    with _open_hdf5(path) as handle:
        groups = sorted(k for k in handle if hasattr(handle[k], "keys"))
    if "posterior" not in groups:
        raise ValueError(f"{path}: ArviZ netCDF needs a 'posterior' group; found groups {groups}")
    samples, names, variable_of_column, shape, ranges = _arviz_posterior(path)
    notes = []
    log_likelihood = None
    if "log_likelihood" in groups:
        log_likelihood = _draw_values(
            _open_group(path, "log_likelihood"), path, "log_likelihood", shape
        )
    if "log_prior" in groups:
        log_prior_set = _open_group(path, "log_prior")
        sampled = {str(v) for v in log_prior_set.data_vars}
        derived = tuple(v not in sampled for v in variable_of_column)
        known = True
        if any(derived):
            excluded = sorted({v for v, d in zip(variable_of_column, derived, strict=True) if d})
            notes.append(
                f"posterior variables without a log_prior entry ({', '.join(excluded)}) excluded as deterministic"
            )
    else:
        derived, known = tuple(False for _ in names), False
    if log_likelihood is not None and "log_prior" in groups:
        log_posterior = log_likelihood + _draw_values(log_prior_set, path, "log_prior", shape)
        kind = NORMALISED
        description = "ArviZ log_likelihood + log_prior groups, summed (the log prior taken as normalised, as given)"
    elif (log_posterior := _arviz_lp(path, groups, shape)) is not None:
        kind = AS_GIVEN
        description = (
            "ArviZ sample_stats.lp (PyMC and NumPyro store the log density of the unconstrained "
            "parameters, Jacobian included: it matches these samples only if no parameter was transformed)"
        )
    else:  # az.from_numpyro and az.from_emcee write the likelihood and no prior
        log_posterior = log_likelihood
        kind = LIKELIHOOD_ONLY
        description = (
            "ArviZ log_likelihood group, summed; no log_prior group (az.from_numpyro and "
            "az.from_emcee write none)"
        )
    if not known:
        notes.append(
            "ArviZ cannot mark deterministic variables without a log_prior group: all posterior variables are taken as sampled"
        )
    return FileChains(
        path=path,
        format="arviz",
        names=tuple(names),
        derived=derived,
        samples=list(samples),
        log_posterior=list(log_posterior),
        weights=None,
        log_likelihood=None if log_likelihood is None else list(log_likelihood),
        kind=kind,
        description=description,
        notes=notes,
        ranges=ranges or None,
        locate=lambda chain, row: f"chain {chain}, draw {row}",
        all_sampled_known=known,
    )
