"""Text chains: GetDist/CosmoMC, Cobaya, UltraNest and CSV."""

from __future__ import annotations

import csv
import math
import re
from functools import cache
from pathlib import Path

import numpy as np

from astrobayes.diagnostics import are_multiplicities
from astrobayes.io._common import (
    AS_GIVEN,
    FLAT_UNNORMALISED,
    LIKELIHOOD_ONLY,
    NORMALISED,
    FileChains,
    data_line_numbers,
    load_table,
    sniff_text,
)
from astrobayes.io._conventions import nested_weight_slope
from astrobayes.io.getdist_chains import PRIOR_NOT_FLAT_MARKER

__all__ = [
    "chain_file_roots",
    "expand_root",
    "first_content_line",
    "looks_like_cobaya",
    "looks_like_ultranest",
    "read_csv",
    "read_getdist",
    "read_paramnames",
    "read_ranges",
    "read_ultranest",
]

#: Column names accepted as the log posterior of a CSV file, in order of preference.
CSV_LOG_POSTERIOR_COLUMNS = ("log_posterior", "logp", "lp", "log_prob")
#: Columns of ``ln L`` and ``ln pi`` (their sum is the log posterior where no column above is).
CSV_LOG_TERM_COLUMNS = ("log_likelihood", "log_prior")
CSV_WEIGHT_COLUMNS = ("weight", "weights")
CSV_CHAIN_COLUMN = "chain"

_CHAIN_FILE = re.compile(r"^(?P<root>.+?)(?:[._](?P<index>\d+))?\.txt$")


def chain_file_roots(path: Path) -> list[Path]:
    """Candidate GetDist roots of a chain file, most specific first.

    ``run.1.txt`` and ``run_1.txt`` give ``[run.1, run]``; ``run.txt`` gives ``[run]``.
    """
    name = path.name
    candidates = []
    if name.endswith(".txt"):
        candidates.append(path.with_name(name[: -len(".txt")]))
    match = _CHAIN_FILE.match(name)
    if match is not None:
        root = path.with_name(match.group("root"))
        if root not in candidates:
            candidates.append(root)
    if not candidates:
        candidates.append(path.with_suffix(""))
    return candidates


def expand_root(path: Path) -> list[Path]:
    """Chain files of a GetDist/Cobaya root (``root.1.txt``, ``root_1.txt``, ``root.txt``)."""

    def index(p: Path) -> int:
        match = _CHAIN_FILE.match(p.name)
        return int(match.group("index")) if match and match.group("index") else 0

    parent, stem = path.parent, path.name
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(stem)}[._]\d+\.txt$")
    files = sorted((p for p in parent.iterdir() if pattern.match(p.name)), key=index)
    if files:
        return files
    single = path.with_name(stem + ".txt")
    return [single] if single.is_file() else []


def first_content_line(text: str) -> str | None:
    """First non-blank line of ``text``."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


def looks_like_cobaya(text: str) -> bool:
    """Whether the text starts with a Cobaya ``# weight minuslogpost ...`` header."""
    line = first_content_line(text)
    return (
        line is not None
        and line.startswith("#")
        and line[1:].split()[:2] == ["weight", "minuslogpost"]
    )


def read_getdist(path: Path) -> FileChains:
    """Read a GetDist/CosmoMC or Cobaya text chain (the Cobaya header decides)."""
    head = sniff_text(path)
    line = first_content_line(head)
    if line is None:
        raise ValueError(f"{path}: the file is empty")
    if line.startswith("#") and line[1:].split()[:1] == ["weight"]:
        columns = tuple(line[1:].split())
        if columns[:2] != ("weight", "minuslogpost"):
            raise ValueError(
                f"{path}, line 1: a Cobaya header must start with '# weight minuslogpost'; "
                f"got {line[:80]!r}"
            )
        return _read_cobaya(path, columns)
    return _read_plain_getdist(path)


def _line_locator(path: Path, *, skip_header: bool, rows_of_chain: list[np.ndarray] | None = None):
    @cache
    def lines() -> np.ndarray:
        return data_line_numbers(path, skip_header=skip_header)

    def locate(chain: int, row: int) -> str:
        index = row if rows_of_chain is None else int(rows_of_chain[chain][row])
        numbers = lines()
        where = f"line {int(numbers[index])}" if index < len(numbers) else f"data row {index + 1}"
        return where if rows_of_chain is None else f"chain {chain}, {where}"

    return locate


def _read_cobaya(path: Path, columns: tuple[str, ...]) -> FileChains:
    if len(set(columns)) != len(columns):
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        raise ValueError(f"{path}, line 1: the Cobaya header repeats columns {duplicated}")
    table = load_table(path, len(columns), delimiter=None, skip_header=False, column_names=columns)
    is_parameter = [
        i >= 2 and not (c.startswith("minuslogprior") or c == "chi2" or c.startswith("chi2__"))
        for i, c in enumerate(columns)
    ]
    names = tuple(c for c, keep in zip(columns, is_parameter, strict=True) if keep)
    if not names:
        raise ValueError(f"{path}: the Cobaya header names no parameter columns: {columns}")
    minuslogpost = table[:, 1]
    log_likelihood = None
    if "minuslogprior" in columns:
        log_likelihood = [table[:, columns.index("minuslogprior")] - minuslogpost]
    notes = []
    derived, known, ranges = _cobaya_derived(path, names, notes)
    return FileChains(
        path=path,
        format="cobaya",
        names=names,
        derived=derived,
        samples=[table[:, np.flatnonzero(is_parameter)]],
        log_posterior=[-minuslogpost],
        weights=[table[:, 0]],
        log_likelihood=log_likelihood,
        kind=NORMALISED,
        description="Cobaya minuslogpost (includes the normalised log prior)",
        notes=notes,
        ranges=ranges,
        locate=_line_locator(path, skip_header=False),
        all_sampled_known=known,
    )


def _cobaya_prior_edges(params: dict) -> dict[str, tuple[float, float]]:
    """Hard edges of the sampled parameters' priors in a Cobaya ``params`` block.

    ``prior: {min: a, max: b}`` and ``prior: {dist: uniform, loc: a, scale: s}``; other
    distributions (a Gaussian, say) are left open. The minuslogpost column carries the
    prior itself: these only tell the estimator where the support ends.
    """
    edges = {}
    for name, value in params.items():
        prior = value.get("prior") if isinstance(value, dict) else None
        if not isinstance(prior, dict):
            continue
        try:
            if "min" in prior and "max" in prior:
                edges[name] = (float(prior["min"]), float(prior["max"]))
            elif prior.get("dist") == "uniform":
                low, scale = float(prior.get("loc", 0.0)), float(prior.get("scale", 1.0))
                edges[name] = (low, low + scale)
        except (TypeError, ValueError):  # an expression or a string: no edge taken
            continue
    return edges


def _cobaya_derived(
    path: Path, names: tuple[str, ...], notes: list[str]
) -> tuple[tuple[bool, ...], bool, dict[str, tuple[float, float]] | None]:
    """Derived parameters and prior edges from the Cobaya ``root.updated.yaml`` beside the chain."""
    for root in chain_file_roots(path):
        for suffix in (".updated.yaml", ".input.yaml"):
            info_path = root.with_name(root.name + suffix)
            if not info_path.is_file():
                continue
            try:
                import yaml
            except ImportError:
                notes.append(
                    f"{info_path.name} was found but PyYAML is not installed, so derived "
                    f"parameters cannot be told apart: all of {', '.join(names)} are taken as "
                    "sampled; pass parameters=[...] to keep only the sampled ones"
                )
                return tuple(False for _ in names), False, None
            try:
                with info_path.open(encoding="utf-8") as handle:
                    info = yaml.safe_load(handle)
                params = info["params"]
                sampled = {n for n, v in params.items() if isinstance(v, dict) and "prior" in v}
            except Exception as error:
                raise ValueError(
                    f"{info_path}: could not read the Cobaya 'params' block "
                    f"({type(error).__name__}: {error})"
                ) from None
            derived = tuple(n not in sampled for n in names)
            if any(derived):
                excluded = ", ".join(n for n, d in zip(names, derived, strict=True) if d)
                notes.append(f"derived parameters ({excluded}) excluded, as {info_path.name} says")
            return derived, True, _cobaya_prior_edges(params)
    notes.append(
        "no Cobaya root.updated.yaml beside the chain, so derived parameters cannot be told "
        f"apart: all of {', '.join(names)} are taken as sampled; pass parameters=[...] to keep "
        "only the sampled ones"
    )
    return tuple(False for _ in names), False, None


def read_paramnames(path: Path) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """Names and derived flags (trailing ``*``) of a GetDist ``.paramnames`` file."""
    names, derived = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            name = stripped.split()[0]
            is_derived = name.endswith("*")
            name = name.rstrip("*")
            if not name:
                raise ValueError(f"{path}, line {number}: empty parameter name")
            names.append(name)
            derived.append(is_derived)
    if not names:
        raise ValueError(f"{path}: lists no parameters")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{path}: repeats parameter names {duplicated}")
    return tuple(names), tuple(derived)


def read_ranges(path: Path) -> dict[str, tuple[float, float]]:
    """Read a GetDist ``.ranges`` file: ``name lo hi`` per line, ``N`` for no bound (``nan``)."""

    def bound(cell: str, number: int, which: str) -> float:
        if cell.upper() in ("N", "NONE"):
            return math.nan
        try:
            return float(cell)
        except ValueError:
            raise ValueError(
                f"{path}, line {number}: expected a number or N for the {which} bound, got {cell!r}"
            ) from None

    ranges = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            cells = line.split()
            if not cells or cells[0].startswith("#"):
                continue
            if len(cells) != 3:
                raise ValueError(
                    f"{path}, line {number}: expected 'name low high', got {line.strip()!r}"
                )
            ranges[cells[0].rstrip("*")] = (
                bound(cells[1], number, "lower"),
                bound(cells[2], number, "upper"),
            )
    return ranges


def _read_plain_getdist(path: Path) -> FileChains:
    if path.name.endswith("_equal_weights.txt") or "post_equal_weights" in path.name:
        raise ValueError(
            f"{path}: a nested sampler's equal-weights file (PolyChord's root_equal_weights"
            ".txt holds -2 ln L in column 2, MultiNest's post_equal_weights.dat no weight "
            "column), read as CosmoMC's layout it would give a wrong evidence; read the "
            "weighted root.txt beside it (with its .paramnames and .ranges)"
        )
    paramnames = next(
        (
            r.with_name(r.name + ".paramnames")
            for r in chain_file_roots(path)
            if r.with_name(r.name + ".paramnames").is_file()
        ),
        None,
    )
    if paramnames is None:
        head = sniff_text(path)
        first = next(
            (ln for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), ""
        )
        num_columns = len(first.split())
        if num_columns < 3:
            raise ValueError(
                f"{path}: a GetDist chain needs at least 3 columns (weight, -log posterior, "
                f"parameters); the first data line has {num_columns}"
            )
        names = tuple(f"p{i}" for i in range(num_columns - 2))
        derived = tuple(False for _ in names)
        kind = AS_GIVEN
        description = "GetDist text chain with no .paramnames beside it: second column taken as -log posterior"
        known = False
    else:
        marker = next(
            (ln for ln in sniff_text(path).splitlines() if ln.startswith(PRIOR_NOT_FLAT_MARKER)),
            None,
        )
        if marker is not None:  # written by astrobayes run for a prior that is not flat
            carrier = path.parent / marker[len(PRIOR_NOT_FLAT_MARKER) :].strip()
            # until 2026-12-06 these were read with flat priors from .ranges: a planet
            # model with log-uniform amplitude, period and jitter gave ln z 2.8 too low
            raise ValueError(
                f"{path}: its header says its prior is not flat over {paramnames.with_suffix('.ranges').name} "
                "(log-uniform, normal or another shape), and a GetDist chain holds -ln L "
                f"alone; the evidence needs ln pi per draw: read {carrier} instead"
            )
        names, derived = read_paramnames(paramnames)
        num_columns = len(names) + 2
        kind = FLAT_UNNORMALISED
        description = f"CosmoMC/GetDist -log L (names from {paramnames.name}, flat priors assumed)"
        known = True
    columns = ("weight", "minus_log_posterior", *names)
    try:
        table = load_table(
            path, num_columns, delimiter=None, skip_header=False, column_names=columns
        )
    except ValueError as error:
        if paramnames is not None and "columns" in str(error):
            raise ValueError(
                f"{error} (weight, -log posterior and the {len(names)} parameters of {paramnames.name})"
            ) from None
        raise
    minus_log_l, notes = _minus_log_likelihood(table)
    ranges, ranges_path = None, None
    if paramnames is not None:
        ranges_path = paramnames.with_suffix(".ranges")
        ranges = read_ranges(ranges_path) if ranges_path.is_file() else None
        if ranges is None:
            ranges_path = None
    return FileChains(
        path=path,
        format="getdist",
        names=names,
        derived=derived,
        samples=[table[:, 2:]],
        log_posterior=[-minus_log_l],
        weights=[table[:, 0]],
        log_likelihood=[-minus_log_l] if kind == FLAT_UNNORMALISED else None,
        kind=kind,
        description=description,
        ranges=ranges,
        ranges_path=ranges_path,
        notes=notes,
        locate=_line_locator(path, skip_header=False),
        all_sampled_known=known,
    )


def _minus_log_likelihood(table: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The second column as ``-ln L``, and a note where it was ``-2 ln L``.

    CosmoMC writes ``-ln L``; PolyChord and MultiNest write ``-2 ln L`` in the same
    layout. Weighted draws of a nested sampler (fractional weights) tell which by how
    their weights grow with the column over the highest-likelihood rows, its final live
    points (:func:`nested_weight_slope`, on the rows sorted by the column, in whatever
    order the file lists them); an MCMC chain (integer weights) cannot, and is read as
    CosmoMC's, as are weighted rows that cannot tell (``convention`` says so).
    """
    column, weights = table[:, 1], table[:, 0]
    if len(column) < 20 or are_multiplicities(weights):
        return column, []
    order = np.argsort(-column, kind="stable")
    slope = nested_weight_slope(weights[order], -column[order])
    if np.isnan(slope):
        return column, [
            "fractional weights that do not tell, over the highest-likelihood rows, -ln L "
            "(CosmoMC, assumed) from -2 ln L (PolyChord, MultiNest) in column 2"
        ]
    if abs(slope - 1.0) < 0.15:
        return column, []
    if abs(slope - 0.5) < 0.075:
        return column / 2.0, [
            f"column 2 is -2 ln L (PolyChord's and MultiNest's convention: the nested "
            f"sampler's weights grow as exp({slope:.3f} x -column 2)), halved"
        ]
    return column, [
        f"fractional weights that grow as exp({slope:.3f} x -column 2) over the "
        "highest-likelihood rows, not as a nested sampler's final live points do (1 for "
        "-ln L, 0.5 for -2 ln L): column 2 read as -ln L (CosmoMC), unchecked"
    ]


def looks_like_ultranest(text: str) -> bool:
    """Whether the text starts with UltraNest's ``weight logl <names>`` header line."""
    line = first_content_line(text)
    return line is not None and line.split()[:2] == ["weight", "logl"]


def read_ultranest(path: Path) -> FileChains:
    """Read UltraNest's ``chains/weighted_post.txt`` (or ``weighted_post_untransformed.txt``).

    Columns: weight, logl, parameters, under a header line of their names; the rows are
    a nested sampler's weighted draws, by increasing likelihood. The file holds ``ln L``
    only: the prior is the run's transform. On the unit cube
    (``weighted_post_untransformed.txt``) the prior is uniform with volume 1, so
    ``ln L`` is the normalised log posterior there and the evidence is the run's.
    """
    line = first_content_line(sniff_text(path))
    columns = tuple(line.split()) if line else ()
    if columns[:2] != ("weight", "logl") or len(columns) < 3:
        raise ValueError(
            f"{path}, line 1: an UltraNest posterior starts with a header 'weight logl "
            f"<parameters>'; got {line!r}"
        )
    table = load_table(path, len(columns), delimiter=None, skip_header=True, column_names=columns)
    on_cube = "untransformed" in path.name
    if on_cube:
        kind = NORMALISED
        description = (
            "UltraNest logl on the unit cube (weighted_post_untransformed.txt), where the "
            "prior is uniform with volume 1: ln pi = 0"
        )
    else:
        kind = LIKELIHOOD_ONLY
        description = (
            "UltraNest logl, the likelihood alone (the prior is the run's transform; on the "
            "unit cube, weighted_post_untransformed.txt, it is uniform and needs nothing)"
        )
    return FileChains(
        path=path,
        format="ultranest",
        names=columns[2:],
        derived=tuple(False for _ in columns[2:]),
        samples=[table[:, 2:]],
        log_posterior=[table[:, 1]],
        weights=[table[:, 0]],
        log_likelihood=[table[:, 1]],
        kind=kind,
        description=description,
        locate=_line_locator(path, skip_header=True),
        all_sampled_known=True,
    )


def read_csv(path: Path) -> FileChains:
    """Read a CSV chain with a header line (see :func:`astrobayes.io.read_chains`)."""
    sniff_text(path)
    with path.open(encoding="utf-8", newline="") as handle:
        lines = (ln for ln in handle if ln.strip() and not ln.lstrip().startswith("#"))
        header = next(csv.reader(lines), None)
    if header is None:
        raise ValueError(f"{path}: the file is empty")
    columns = tuple(c.strip() for c in header)
    notes = []
    drop_first = columns[0] in ("", "Unnamed: 0")
    if drop_first:
        notes.append("the unnamed first column (a pandas index) was ignored")
    named = columns[1:] if drop_first else columns
    if any(not c for c in named):
        raise ValueError(f"{path}: header line has an empty column name: {list(columns)}")
    if len(set(named)) != len(named):
        duplicated = sorted({c for c in named if named.count(c) > 1})
        raise ValueError(f"{path}: header line repeats columns {duplicated}")
    found = [c for c in CSV_LOG_POSTERIOR_COLUMNS if c in named]
    # Stan's sampler columns (CmdStan, CmdStanPy, PyStan CSV): lp__, accept_stat__, ...
    sampler_columns = [c for c in named if c.endswith("__")]
    if not found and "lp__" in named:
        raise ValueError(
            f"{path}: a Stan CSV file. Its lp__ cannot give an evidence: it is the log density "
            "of the unconstrained parameters, and `~` statements drop their normalising "
            "constants. Add a generated quantity with the normalised log posterior on the "
            "constrained parameters, with every constant (the _lpdf functions, e.g. "
            "`real log_posterior = normal_lpdf(y | a + b * x, sigma) + normal_lpdf(a | 0, 5) "
            "+ ...;`), and its column log_posterior is read"
        )
    # ln L and ln pi in two columns (bilby's posterior table, written with pandas)
    split_terms = [c for c in CSV_LOG_TERM_COLUMNS if c in named]
    if not found and len(split_terms) == 2:
        found = list(CSV_LOG_TERM_COLUMNS)
    elif not found:
        raise ValueError(
            f"{path}: no log posterior column; expected one named "
            f"{' or '.join(CSV_LOG_POSTERIOR_COLUMNS)}, or the two columns "
            f"{' and '.join(CSV_LOG_TERM_COLUMNS)}; got columns {list(named)}"
        )
    elif len(found) > 1:
        raise ValueError(f"{path}: several log posterior columns {found}; keep exactly one")
    weight_found = [c for c in CSV_WEIGHT_COLUMNS if c in named]
    if len(weight_found) > 1:
        raise ValueError(f"{path}: several weight columns {weight_found}; keep exactly one")
    table = load_table(path, len(columns), delimiter=",", skip_header=True, column_names=columns)
    if drop_first:
        table = table[:, 1:]
    log_columns = [named.index(c) for c in found]
    weight_column = named.index(weight_found[0]) if weight_found else None
    chain_column = named.index(CSV_CHAIN_COLUMN) if CSV_CHAIN_COLUMN in named else None
    special = {*log_columns, weight_column, chain_column} - {None}
    # never parameters, even beside a log_posterior column
    special |= {named.index(c) for c in [*sampler_columns, *split_terms]}
    if sampler_columns:
        notes.append(f"Stan's sampler columns ({', '.join(sampler_columns)}) are not parameters")
    parameter_columns = [i for i in range(len(named)) if i not in special]
    if not parameter_columns:
        raise ValueError(
            f"{path}: no parameter columns besides {[named[i] for i in sorted(special)]}"
        )
    if chain_column is None:
        rows_of_chain = [np.arange(table.shape[0])]
        locate = _line_locator(path, skip_header=True)
    else:
        labels = table[:, chain_column]
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad.size:
            line = data_line_numbers(path, skip_header=True)[bad[0]]
            raise ValueError(
                f"{path}, line {line}, column {chain_column + 1 + drop_first} ('chain'): "
                f"expected an integer chain label, got {float(labels[bad[0]])!r}"
            )
        rows_of_chain = [np.flatnonzero(labels == value) for value in np.unique(labels)]
        locate = _line_locator(path, skip_header=True, rows_of_chain=rows_of_chain)
        notes.append(f"{len(rows_of_chain)} chains from the 'chain' column")
    return FileChains(
        path=path,
        format="csv",
        names=tuple(named[i] for i in parameter_columns),
        derived=tuple(False for _ in parameter_columns),
        samples=[table[rows][:, parameter_columns] for rows in rows_of_chain],
        log_posterior=[table[rows][:, log_columns].sum(axis=1) for rows in rows_of_chain],
        weights=None
        if weight_column is None
        else [table[rows, weight_column] for rows in rows_of_chain],
        log_likelihood=None
        if "log_likelihood" not in named
        else [table[rows, named.index("log_likelihood")] for rows in rows_of_chain],
        kind=AS_GIVEN,
        description=f"CSV column {found[0]!r}"
        if len(found) == 1
        else "CSV columns 'log_likelihood' + 'log_prior', summed",
        notes=notes,
        locate=locate,
    )
