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

from astrobayes.chains import Chains, chains_from_list, is_nested_sampling_order, prior_edges
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
from astrobayes.io._common import FileChains, sniff_text
from astrobayes.io._conventions import (
    BOUNDS_TOLERANCE,
    NESTED_SAMPLING_NOTE,
    apply_burn_in,
    check_values,
    normalise,
    select,
)
from astrobayes.io._cosmosis import looks_like_cosmosis, read_cosmosis
from astrobayes.io._text import (
    expand_root,
    first_content_line,
    looks_like_cobaya,
    looks_like_ultranest,
    read_csv,
    read_getdist,
    read_ultranest,
)

__all__ = ["BOUNDS_TOLERANCE", "FORMATS", "ChainsFile", "detect_format", "read_chains"]

#: Formats :func:`read_chains` understands.
FORMATS = ("npz", "getdist", "cobaya", "emcee", "arviz", "csv", "ultranest", "cosmosis")

_READERS = {
    "npz": read_npz,
    "getdist": read_getdist,
    "cobaya": read_getdist,
    "emcee": read_emcee,
    "arviz": read_arviz,
    "csv": read_csv,
    "ultranest": read_ultranest,
    "cosmosis": read_cosmosis,
}


class ChainsFile(NamedTuple):
    """Chains read from disk, and how their log posterior was obtained.

    Attributes:
        chains: The :class:`~astrobayes.chains.Chains`, ``log_posterior`` being
            ``log L + log pi`` with the prior normalised (as far as ``convention`` says).
        convention: A sentence saying which log-posterior and prior convention was used.
        format: The format read (one of :data:`FORMATS`).
        paths: The files read, in chain order.
        bounds: ``{name: (lo, hi)}`` hard prior edges of the sampled parameters where
            ``prior_bounds`` or the files give them (GetDist ``.ranges``, Cobaya's
            ``updated.yaml`` uniform priors, CosmoSIS's values file, the ``.npz`` and
            ``.nc`` of ``astrobayes run``), ``None`` for an open side. Pass them to
            :func:`astrobayes.evidence.estimate` (``bounds=``), which then estimates on
            coordinates without edges.

    """

    chains: Chains
    convention: str
    format: str
    paths: tuple[Path, ...]
    bounds: dict[str, tuple[float | None, float | None]] = {}


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
    if looks_like_ultranest(text):
        return "ultranest"
    if looks_like_cosmosis(text):
        return "cosmosis"
    if path.suffix.lower() == ".csv" or ("," in line and not line.startswith("#")):
        return "csv"
    data = next(
        (ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), ""
    )
    try:
        [float(cell) for cell in data.split()]
    except ValueError:
        if path.name.startswith("equal_weighted_post"):
            raise ValueError(
                f"{path}: UltraNest's equal-weighted posterior holds no likelihood; read "
                "chains/weighted_post_untransformed.txt (the unit cube: nothing else needed) "
                "or chains/weighted_post.txt (with prior_bounds for flat priors)"
            ) from None
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
    * ``"cosmosis"``: CosmoSIS text output (``#sec--name ... prior like post``); the
      first ``#n_varied`` columns are sampled; the prior's normalisation is checked
      against the run's values file copied into the header (``prior`` was 0 for flat
      priors before 2017); emcee's interleaved walkers become chains.
    * ``"ultranest"``: UltraNest's ``chains/weighted_post*.txt`` (``ln L`` alone, except
      on the unit cube).
    * ``"arviz"``: ArviZ ``InferenceData`` netCDF; posterior variables flattened as
      ``x[0]``, ``x[1]``, ...; log posterior from ``log_likelihood`` + ``log_prior``
      summed, else ``sample_stats.lp``. A ``log_likelihood`` group alone (what
      ``az.from_numpyro`` writes) needs the prior from ``prior_bounds`` or
      ``log_prior_volume``; without them the error names the remedies.
    * ``"csv"``: a header line, a column ``log_posterior`` (or ``logp``, ``lp``,
      ``log_prob``) or the two columns ``log_likelihood`` and ``log_prior`` (summed),
      optional ``weight``/``weights`` and ``chain`` columns; the other columns are
      parameters, except Stan's sampler columns (names ending in ``__``). Stan's
      ``lp__`` is never the log posterior (it drops constants): a Stan file without a
      ``log_posterior`` column is refused with the remedy.

    Nested-sampling output (fractional weights, rows by increasing likelihood: PolyChord's
    or MultiNest's ``root.txt``, dynesty's samples written out) is a set of weighted
    independent draws; its rows are shuffled with a fixed seed, and ``convention`` says so.

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
    _check_arguments(format, log_prior_volume, burn_in, prior_bounds)
    files = _expand_paths(paths)
    read = _read_consistent(files, format)
    all_samples, all_log_posterior, all_weights = [], [], []
    for data in read:
        keep = select(data, parameters)
        names = [data.names[i] for i in keep]
        offsets = apply_burn_in(data, burn_in) if burn_in > 0 else [0] * len(data.samples)
        data.samples = [s[:, keep] for s in data.samples]
        data.names, data.derived = tuple(names), tuple(data.derived[i] for i in keep)
        check_values(data, offsets)
        base, log_volume, sentence = normalise(data, names, offsets, log_prior_volume, prior_bounds)
        for c in range(len(data.samples)):
            order = np.arange(len(data.samples[c]))
            likelihood = base[c] if data.log_likelihood is None else data.log_likelihood[c]
            weights = None if data.weights is None else data.weights[c]
            if is_nested_sampling_order(likelihood, weights):
                order = np.random.default_rng(0).permutation(order)
                if NESTED_SAMPLING_NOTE not in data.notes:
                    data.notes.append(NESTED_SAMPLING_NOTE)
            all_samples.append(data.samples[c][order])
            all_log_posterior.append(base[c][order] - log_volume)
            all_weights.append(
                np.ones(len(order)) if data.weights is None else data.weights[c][order]
            )
    notes = []
    for data in read:
        notes.extend(n for n in data.notes if n not in notes)
    convention = sentence + "".join(f"; {n}" for n in notes)
    if burn_in > 0:
        convention += f"; first {burn_in:g} of every chain dropped as burn-in"
    chains = chains_from_list(all_samples, all_log_posterior, all_weights, names=names)
    return ChainsFile(
        chains=chains,
        convention=convention,
        format=read[0].format,
        paths=tuple(files),
        bounds=_bounds(read[0].ranges if prior_bounds is None else prior_bounds, names),
    )


def _bounds(ranges, names) -> dict[str, tuple[float | None, float | None]]:
    """The finite edges among ``ranges`` of the sampled ``names`` (``None``: open)."""
    out = {}
    for name in names:
        low, high = prior_edges(*(ranges or {}).get(name, (None, None)))
        if low is not None or high is not None:
            out[name] = (low, high)
    return out


def _check_arguments(format, log_prior_volume, burn_in, prior_bounds) -> None:
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


def _read_consistent(files: list[Path], format: str | None) -> list[FileChains]:
    """Read every file; they must share one format, parameters and convention."""
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
    return read
