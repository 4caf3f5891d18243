"""Read posterior chains from disk into :class:`~astrobayes.chains.Chains`.

The evidence estimator needs ``log L + log pi`` with the prior *normalised*. Every file
format stores something slightly different, so :func:`read_chains` returns, next to the
chains, a sentence saying which convention it used; it never guesses silently.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from astrobayes.chains import Chains, chains_from_list
from astrobayes.io._binary import (
    HDF5_SIGNATURE,
    NETCDF3_SIGNATURE,
    NPY_SIGNATURE,
    ZIP_SIGNATURE,
    hdf5_kind,
    read_arviz,
    read_emcee,
    read_npz,
)
from astrobayes.io._common import FLAT_UNNORMALISED, NORMALISED, FileChains, sniff_text
from astrobayes.io._text import (
    expand_root,
    first_content_line,
    looks_like_cobaya,
    read_csv,
    read_getdist,
)

__all__ = ["FORMATS", "ChainsFile", "detect_format", "read_chains"]

#: Formats :func:`read_chains` understands.
FORMATS = ("npz", "getdist", "cobaya", "emcee", "arviz", "csv")

_READERS = {
    "npz": read_npz,
    "getdist": read_getdist,
    "cobaya": read_getdist,
    "emcee": read_emcee,
    "arviz": read_arviz,
    "csv": read_csv,
}

#: Relative slack (of ``hi - lo``) allowed when checking draws against prior bounds, for
#: the rounding of text chains.
BOUNDS_TOLERANCE = 1e-6

_AS_GIVEN_SENTENCE = (
    "taken as log L + log prior, normalised, as given; pass log_prior_volume if the prior "
    "was left unnormalised"
)


class ChainsFile(NamedTuple):
    """Chains read from disk, and how their log posterior was obtained.

    Attributes:
        chains: The :class:`~astrobayes.chains.Chains`, ``log_posterior`` being
            ``log L + log pi`` with the prior normalised (as far as ``convention`` says).
        convention: A sentence saying which log-posterior and prior convention was used.
        format: The format read (one of :data:`FORMATS`).
        paths: The files read, in chain order.

    """

    chains: Chains
    convention: str
    format: str
    paths: tuple[Path, ...]


def detect_format(path: str | os.PathLike[str]) -> str:
    """Detect the chain format of a file from its content (and extension).

    Args:
        path: A chain file.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the content matches no known format.

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "c.npz")
        >>> np.savez(path, samples=np.zeros((1, 3, 2)), log_posterior=np.zeros((1, 3)))
        >>> detect_format(path)
        'npz'

    """
    path = _existing_file(Path(path))
    with path.open("rb") as handle:
        magic = handle.read(8)
    if magic.startswith(HDF5_SIGNATURE):
        return hdf5_kind(path)
    if magic.startswith(ZIP_SIGNATURE):
        return "npz"
    if magic.startswith(NPY_SIGNATURE):
        raise ValueError(
            f"{path}: a single .npy array; save samples and log_posterior together with numpy.savez"
        )
    if magic.startswith(NETCDF3_SIGNATURE):
        raise ValueError(
            f"{path}: a netCDF3 classic file; only netCDF4 (HDF5) is read: re-save it with "
            "InferenceData.to_netcdf(path, engine='h5netcdf')"
        )
    text = sniff_text(path)
    line = first_content_line(text)
    if line is None:
        raise ValueError(f"{path}: the file is empty")
    if looks_like_cobaya(text):
        return "cobaya"
    if path.suffix.lower() == ".csv" or ("," in line and not line.startswith("#")):
        return "csv"
    data = next(
        (ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), ""
    )
    try:
        [float(cell) for cell in data.split()]
    except ValueError:
        raise ValueError(
            f"{path}: not a recognised chain format (npz, GetDist/Cobaya text, emcee HDF5, ArviZ "
            f"netCDF, CSV with a header); its first data line is {data[:80]!r}"
        ) from None
    return "getdist"


def _existing_file(path: Path) -> Path:
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; pass chain files (or a GetDist root)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such chain file")
    return path


def _expand_paths(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not isinstance(paths, Sequence) or len(paths) == 0:
        raise ValueError(f"paths must be a file or a non-empty list of files; got {paths!r}")
    files: list[Path] = []
    for entry in paths:
        if not isinstance(entry, str | os.PathLike):
            raise TypeError(f"paths must hold file paths; got {type(entry).__name__} {entry!r}")
        path = Path(entry)
        if not path.exists():
            expanded = expand_root(path)
            if not expanded:
                raise FileNotFoundError(
                    f"{path}: no such chain file (nor GetDist chains {path.name}.1.txt, "
                    f"{path.name}_1.txt or {path.name}.txt beside it)"
                )
            files.extend(expanded)
        else:
            files.append(_existing_file(path))
    return files


def _apply_burn_in(data: FileChains, burn_in: float) -> list[int]:
    offsets = []
    for c in range(len(data.samples)):
        start = int(math.floor(burn_in * len(data.samples[c])))
        if start >= len(data.samples[c]):
            raise ValueError(
                f"{data.path}: burn_in = {burn_in} leaves no draws in chain {c} of {len(data.samples[c])}"
            )
        offsets.append(start)
        data.samples[c] = data.samples[c][start:]
        data.log_posterior[c] = data.log_posterior[c][start:]
        if data.weights is not None:
            data.weights[c] = data.weights[c][start:]
        if data.log_likelihood is not None:
            data.log_likelihood[c] = data.log_likelihood[c][start:]
    return offsets


def _check_values(data: FileChains, offsets: list[int]) -> None:
    for c in range(len(data.samples)):
        used = np.ones(len(data.samples[c]), bool)
        if data.weights is not None:
            weights = data.weights[c]
            bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
            if bad.size:
                raise ValueError(
                    f"{data.path}, {data.locate(c, offsets[c] + bad[0])}: weights must be finite and "
                    f"non-negative; got {float(weights[bad[0]])!r}"
                )
            if not (weights > 0).any():
                raise ValueError(f"{data.path}: every weight of chain {c} is zero")
            used = weights > 0
        log_posterior = data.log_posterior[c]
        bad = np.flatnonzero(used & ~np.isfinite(log_posterior))
        if bad.size:
            hint = (
                " (an emcee walker started outside the prior support? pass burn_in to drop early steps)"
                if data.format == "emcee"
                else ""
            )
            raise ValueError(
                f"{data.path}, {data.locate(c, offsets[c] + bad[0])}: the log posterior is "
                f"{float(log_posterior[bad[0]])!r}; every draw needs a finite log posterior "
                f"({bad.size} draws are not){hint}"
            )
        samples = data.samples[c]
        bad_rows, bad_columns = np.nonzero(used[:, None] & ~np.isfinite(samples))
        if bad_rows.size:
            row, column = bad_rows[0], bad_columns[0]
            raise ValueError(
                f"{data.path}, {data.locate(c, offsets[c] + row)}: parameter {data.names[column]!r} "
                f"is {float(samples[row, column])!r}; every draw must be finite"
            )


def _select(data: FileChains, parameters: Sequence[str] | None) -> list[int]:
    if parameters is None:
        keep = [i for i, d in enumerate(data.derived) if not d]
        if not keep:
            raise ValueError(
                f"{data.path}: every parameter is marked derived; none is left to sample"
            )
        return keep
    if isinstance(parameters, str) or not all(isinstance(p, str) for p in parameters):
        raise TypeError(f"parameters must be a list of parameter names; got {parameters!r}")
    if len(parameters) == 0 or len(set(parameters)) != len(parameters):
        raise ValueError(
            f"parameters must be a non-empty list of distinct names; got {list(parameters)}"
        )
    keep = []
    for name in parameters:
        if name not in data.names:
            raise ValueError(
                f"{data.path}: parameter {name!r} (from parameters) is not in the file; "
                f"it holds {list(data.names)}"
            )
        index = data.names.index(name)
        if data.derived[index]:
            raise ValueError(
                f"{data.path}: parameter {name!r} is derived; the evidence needs the sampled "
                "parameters only"
            )
        keep.append(index)
    if data.all_sampled_known:
        dropped = [
            n
            for n, d in zip(data.names, data.derived, strict=True)
            if not d and n not in parameters
        ]
        if dropped:
            raise ValueError(
                f"{data.path}: parameters leaves out sampled parameters {dropped}; the log "
                "posterior is a density over all of them, so the evidence would be wrong"
            )
    return keep


def _check_inside(
    data: FileChains,
    names: Sequence[str],
    bounds: Mapping[str, tuple[float, float]],
    offsets: list[int],
    source: str,
) -> None:
    for j, name in enumerate(names):
        lo, hi = bounds[name]
        slack = BOUNDS_TOLERANCE * (hi - lo)
        for c, samples in enumerate(data.samples):
            used = np.ones(len(samples), bool) if data.weights is None else data.weights[c] > 0
            outside = np.flatnonzero(
                used & ((samples[:, j] < lo - slack) | (samples[:, j] > hi + slack))
            )
            if outside.size:
                row = outside[0]
                raise ValueError(
                    f"{data.path}, {data.locate(c, offsets[c] + row)}: parameter {name!r} = "
                    f"{float(samples[row, j])!r} lies outside its prior bounds ({lo}, {hi}) from {source} "
                    f"({outside.size} draws do)"
                )


def _log_volume(
    names: Sequence[str], bounds: Mapping[str, tuple[float, float]], source: str
) -> float:
    total = 0.0
    for name in names:
        lo, hi = bounds[name]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(
                f"the prior range of sampled parameter {name!r} in {source} is ({lo}, {hi}); a flat "
                "prior needs finite bounds. Pass prior_bounds={name: (lo, hi), ...} or "
                "log_prior_volume"
            )
        if not hi > lo:
            raise ValueError(
                f"the prior range of {name!r} in {source} must have hi > lo; got ({lo}, {hi})"
            )
        total += math.log(hi - lo)
    return total


def _check_prior_bounds(prior_bounds: Mapping[str, Sequence[float]], names: Sequence[str]) -> dict:
    if not isinstance(prior_bounds, Mapping):
        raise TypeError(
            f"prior_bounds must be a dict name -> (lo, hi); got {type(prior_bounds).__name__}"
        )
    bounds = {}
    for name, pair in prior_bounds.items():
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(
                f"prior_bounds[{name!r}] must be a pair (lo, hi) of numbers; got {pair!r}"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(
                f"prior_bounds[{name!r}] must be finite with hi > lo; got ({lo}, {hi})"
            )
        bounds[name] = (lo, hi)
    missing = [n for n in names if n not in bounds]
    unknown = [n for n in bounds if n not in names]
    if missing or unknown:
        raise ValueError(
            f"prior_bounds must give (lo, hi) for exactly the sampled parameters {list(names)}; "
            f"missing {missing}, unknown {unknown}"
        )
    return bounds


def read_chains(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    format: str | None = None,
    log_prior_volume: float | None = None,
    prior_bounds: Mapping[str, tuple[float, float]] | None = None,
    parameters: Sequence[str] | None = None,
    burn_in: float = 0.0,
) -> ChainsFile:
    r"""Read posterior chains from one or several files.

    Every file gives one chain or several (an npz ``samples`` array, emcee walkers,
    ArviZ chains, a CSV ``chain`` column); several files give their chains in order, of
    possibly unequal lengths (padded with zero weight by
    :func:`~astrobayes.chains.chains_from_list`).

    Formats (detected from the content, or given as ``format``):

    * ``"npz"``: arrays ``samples`` (num_chains, num_samples, dim), ``log_posterior``
      (num_chains, num_samples), optional ``weights`` and ``names``. Never unpickles.
    * ``"getdist"``/``"cobaya"``: text columns weight, -log posterior, parameters, with
      names from ``root.paramnames`` (``*`` marks derived parameters, excluded) or a
      Cobaya ``# weight minuslogpost ...`` header (derived parameters from
      ``root.updated.yaml`` when present). A root ``chains/run`` stands for
      ``chains/run.1.txt, chains/run.2.txt, ...`` (or ``run_1.txt``, ``run.txt``).
    * ``"emcee"``: an ``emcee.backends.HDFBackend`` file; each walker is a chain.
    * ``"arviz"``: ArviZ ``InferenceData`` netCDF; posterior variables flattened as
      ``x[0]``, ``x[1]``, ...; log posterior from ``log_likelihood`` + ``log_prior``
      summed, else ``sample_stats.lp``.
    * ``"csv"``: a header line, a column ``log_posterior`` (or ``logp``, ``lp``,
      ``log_prob``), optional ``weight``/``weights`` and ``chain`` columns; the other
      columns are parameters.

    Prior normalisation: Cobaya's ``minuslogpost`` and ArviZ's ``log_likelihood +
    log_prior`` already hold the normalised prior and are used as they are. CosmoMC-style
    GetDist chains (``.paramnames``, no Cobaya header) hold ``-log L`` with flat priors
    left unnormalised: the log volume of the ranges in ``root.ranges`` is subtracted. A
    ``log_prior_volume`` or ``prior_bounds`` overrides this, and is then subtracted from
    ``log L`` where the file holds it separately (Cobaya, ArviZ), else from the file's log
    posterior. Where the file cannot tell (npz, CSV, emcee, ``sample_stats.lp``), the
    value is taken as the normalised log posterior. ``convention`` says which applied.

    Args:
        paths: A file, a GetDist root, or a list of them.
        format: One of :data:`FORMATS`; detected from each file when ``None``.
        log_prior_volume: Natural log of the prior volume to subtract (a flat prior left
            unnormalised by the sampler). Exclusive with ``prior_bounds``.
        prior_bounds: ``name -> (lo, hi)`` of a flat prior over exactly the sampled
            parameters; ``sum(log(hi - lo))`` is subtracted and every draw is checked to
            lie inside (to a relative slack of :data:`BOUNDS_TOLERANCE`).
        parameters: Names of the parameters to keep as samples, in order (default: all
            that are not derived). Formats without names call them ``p0``, ``p1``, ...
        burn_in: Fraction in ``[0, 1)`` of the rows of every chain to drop from the start.
            (You can also slice afterwards: ``Chains(c.samples[:, n:], ...)``.)

    Returns:
        A :class:`ChainsFile` with fields ``chains``, ``convention``, ``format`` and
        ``paths``.

    Raises:
        FileNotFoundError: If a file (or the chains of a root) does not exist.
        ValueError: On an unknown or malformed file (naming file, line and column), a
            non-finite log posterior (naming file and row), files that disagree in
            format or parameters, a prior range that is missing or infinite, or draws
            outside ``prior_bounds``.
        TypeError: On arguments of the wrong type.

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "c.csv")
        >>> with open(path, "w") as f:
        ...     _ = f.write("x,log_posterior\n0.1,-1.0\n0.3,-1.2\n")
        >>> result = read_chains(path)
        >>> result.format, result.chains.samples.shape
        ('csv', (1, 2, 1))

    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS} or None; got {format!r}")
    if log_prior_volume is not None and prior_bounds is not None:
        raise ValueError("give log_prior_volume or prior_bounds, not both")
    if log_prior_volume is not None:
        if isinstance(log_prior_volume, bool) or not isinstance(
            log_prior_volume, int | float | np.number
        ):
            raise TypeError(
                f"log_prior_volume must be a number; got {type(log_prior_volume).__name__}"
            )
        if not math.isfinite(log_prior_volume):
            raise ValueError(f"log_prior_volume must be finite; got {log_prior_volume}")
    if isinstance(burn_in, bool) or not isinstance(burn_in, int | float | np.number):
        raise TypeError(f"burn_in must be a number in [0, 1); got {type(burn_in).__name__}")
    if not 0.0 <= burn_in < 1.0:
        raise ValueError(f"burn_in must lie in [0, 1) (a fraction of every chain); got {burn_in}")

    files = _expand_paths(paths)
    formats = [format or detect_format(p) for p in files]
    # "getdist" and "cobaya" share a reader: the header decides.
    read = [_READERS[f](p) for f, p in zip(formats, files, strict=True)]
    found = {d.format for d in read}
    if len(found) > 1:
        listing = ", ".join(f"{d.path.name}: {d.format}" for d in read)
        raise ValueError(f"all files must have one format; got {listing}")
    first = read[0]
    for data in read[1:]:
        if data.names != first.names:
            raise ValueError(
                f"{data.path}: parameters {list(data.names)} differ from those of {first.path} "
                f"{list(first.names)}; every file must hold the same parameters"
            )
        if data.kind != first.kind or data.ranges != first.ranges:
            raise ValueError(
                f"{data.path}: its log posterior convention ({data.description}) differs from that "
                f"of {first.path} ({first.description})"
            )

    all_samples, all_log_posterior, all_weights = [], [], []
    log_volume, sentence = 0.0, ""
    for data in read:
        keep = _select(data, parameters)
        names = [data.names[i] for i in keep]
        offsets = _apply_burn_in(data, burn_in) if burn_in > 0 else [0] * len(data.samples)
        data.samples = [s[:, keep] for s in data.samples]
        data.names, data.derived = tuple(names), tuple(data.derived[i] for i in keep)
        _check_values(data, offsets)
        base = data.log_posterior
        if log_prior_volume is not None or prior_bounds is not None:
            if data.log_likelihood is not None:
                base = data.log_likelihood
                source = "log L from the file"
            else:
                source = f"{data.description}, taken as log L + a constant prior"
            if prior_bounds is not None:
                bounds = _check_prior_bounds(prior_bounds, names)
                _check_inside(data, names, bounds, offsets, "prior_bounds")
                log_volume = _log_volume(names, bounds, "prior_bounds")
                sentence = (
                    f"{source}; flat prior from the user-given prior_bounds over {', '.join(names)}, "
                    f"log prior volume {log_volume:.6g} subtracted"
                )
            else:
                log_volume = float(log_prior_volume)
                sentence = f"{source}; user-given log prior volume {log_volume:.6g} subtracted"
        elif data.kind == FLAT_UNNORMALISED:
            if data.ranges is None:
                raise ValueError(
                    f"{data.path}: a CosmoMC-style chain holds -log L with flat priors left "
                    "unnormalised, and no .ranges file sits beside it to normalise them. Pass "
                    "prior_bounds={name: (lo, hi), ...} or log_prior_volume (0.0 to take the "
                    "values as they are)"
                )
            missing = [n for n in names if n not in data.ranges]
            if missing:
                raise ValueError(
                    f"{data.ranges_path}: no prior range for sampled parameters {missing}; pass "
                    "prior_bounds={name: (lo, hi), ...} or log_prior_volume"
                )
            log_volume = _log_volume(names, data.ranges, str(data.ranges_path))
            _check_inside(data, names, data.ranges, offsets, str(data.ranges_path))
            sentence = (
                f"{data.description}; flat priors from {data.ranges_path.name}, "
                f"log prior volume {log_volume:.6g} subtracted"
            )
        elif data.kind == NORMALISED:
            sentence = data.description
        else:  # AS_GIVEN
            sentence = f"{data.description}, {_AS_GIVEN_SENTENCE}"
        for c in range(len(data.samples)):
            all_samples.append(data.samples[c])
            all_log_posterior.append(base[c] - log_volume)
            all_weights.append(
                np.ones(len(data.samples[c])) if data.weights is None else data.weights[c]
            )
        final_names = names
    notes = []
    for data in read:
        notes.extend(n for n in data.notes if n not in notes)
    convention = sentence + "".join(f"; {n}" for n in notes)
    if burn_in > 0:
        convention += f"; first {burn_in:g} of every chain dropped as burn-in"
    chains = chains_from_list(all_samples, all_log_posterior, all_weights, names=final_names)
    return ChainsFile(chains=chains, convention=convention, format=first.format, paths=tuple(files))
