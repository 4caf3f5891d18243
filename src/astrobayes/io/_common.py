"""Internal pieces shared by the chain readers: the per-file result and text parsing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "FileChains",
    "data_line_numbers",
    "load_table",
    "sniff_text",
]

#: How the log posterior stored in a file relates to ``log L + log pi`` (prior normalised).
NORMALISED = "normalised"  # the file says so (Cobaya, ArviZ log_likelihood + log_prior)
FLAT_UNNORMALISED = "flat_unnormalised"  # CosmoMC: -log L, flat priors left unnormalised
AS_GIVEN = "as_given"  # the file cannot tell: taken as normalised, and said so
LIKELIHOOD_ONLY = "likelihood_only"  # ln L and no prior (ArviZ without log_prior or lp)


@dataclass
class FileChains:
    """Everything one file holds, before parameter selection and prior normalisation.

    Attributes:
        path: The file.
        format: Format name (``"npz"``, ``"getdist"``, ``"cobaya"``, ...).
        names: Names of all parameter columns.
        derived: For each name, whether it is a derived parameter (never an evidence sample).
        samples: One ``(num_samples_c, len(names))`` array per chain.
        log_posterior: One ``(num_samples_c,)`` array per chain, as the file gives it
            (sign already turned into +log density).
        weights: One ``(num_samples_c,)`` array per chain, or ``None``.
        log_likelihood: One ``(num_samples_c,)`` array per chain when the file holds
            ``log L`` separately (used when the user overrides the prior), else ``None``.
        kind: One of :data:`NORMALISED`, :data:`FLAT_UNNORMALISED`, :data:`AS_GIVEN`,
            :data:`LIKELIHOOD_ONLY` (the prior must come from the user).
        description: Sentence fragment saying where the log posterior came from.
        ranges: Prior ranges read beside the file (``name -> (lo, hi)``, ``nan`` when
            missing), or ``None``.
        ranges_path: The file the ranges came from.
        notes: Further sentences for the convention (e.g. excluded parameters).
        locate: ``(chain, row) -> str`` naming where a draw sits in the file.
        all_sampled_known: Whether ``derived`` is known to mark every non-sampled column,
            so that dropping a non-derived parameter would be an error.

    """

    path: Path
    format: str
    names: tuple[str, ...]
    derived: tuple[bool, ...]
    samples: list[np.ndarray]
    log_posterior: list[np.ndarray]
    weights: list[np.ndarray] | None
    log_likelihood: list[np.ndarray] | None
    kind: str
    description: str
    ranges: dict[str, tuple[float, float]] | None = None
    ranges_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    locate: Callable[[int, int], str] = lambda chain, row: f"chain {chain}, row {row}"
    all_sampled_known: bool = False


def sniff_text(path: Path, num_bytes: int = 65536) -> str:
    """Return the start of a text file, or raise ``ValueError`` if it is not text."""
    with path.open("rb") as handle:
        head = handle.read(num_bytes)
    if b"\x00" in head:
        raise ValueError(
            f"{path}: not a text file (it holds NUL bytes) and not a known binary format"
        )
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        # The cut may fall inside a multi-byte character; retry without the last bytes.
        try:
            return head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text and not a known binary format") from None


def data_line_numbers(path: Path, *, skip_header: bool, comment: str = "#") -> np.ndarray:
    """Line numbers (1-based) of the data rows of a text table, in order."""
    numbers = []
    header_seen = not skip_header
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith(comment):
                continue
            if not header_seen:
                header_seen = True
                continue
            numbers.append(number)
    return np.asarray(numbers, dtype=int)


def load_table(
    path: Path,
    num_columns: int,
    *,
    delimiter: str | None,
    skip_header: bool,
    column_names: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Read a numeric text table of ``num_columns`` columns.

    A fast :func:`numpy.loadtxt` first; on failure, a line-by-line scan that names the
    line and column at fault.

    Raises:
        ValueError: Naming the file, line and column of a wrong number of cells or a
            non-numeric cell, or an empty table.

    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": checked below
            if skip_header:
                table = _loadtxt_after_header(path, delimiter)
            else:
                table = np.loadtxt(
                    path, comments="#", delimiter=delimiter, ndmin=2, dtype=np.float64
                )
    except (ValueError, IndexError, UnicodeDecodeError):
        _scan_table(
            path,
            num_columns,
            delimiter=delimiter,
            skip_header=skip_header,
            column_names=column_names,
        )
        raise ValueError(
            f"{path}: could not be read as a numeric table"
        ) from None  # pragma: no cover
    if table.size == 0:
        raise ValueError(f"{path}: holds no data rows")
    if table.shape[1] != num_columns:
        _scan_table(
            path,
            num_columns,
            delimiter=delimiter,
            skip_header=skip_header,
            column_names=column_names,
        )
    return table


def _loadtxt_after_header(path: Path, delimiter: str | None) -> np.ndarray:
    with path.open(encoding="utf-8") as handle:
        # Skip comments and blank lines, then the header line.
        for line in handle:
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                break
        return np.loadtxt(handle, comments="#", delimiter=delimiter, ndmin=2, dtype=np.float64)


def _column_label(index: int, column_names: tuple[str, ...] | None) -> str:
    if column_names is not None and index < len(column_names):
        return f"column {index + 1} ({column_names[index]!r})"
    return f"column {index + 1}"


def _scan_table(
    path: Path,
    num_columns: int,
    *,
    delimiter: str | None,
    skip_header: bool,
    column_names: tuple[str, ...] | None,
) -> None:
    header_seen = not skip_header
    num_rows = 0
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:  # pragma: no cover - checked before
        raise ValueError(f"{path}: cannot be opened ({error})") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                if not header_seen:
                    header_seen = True
                    continue
                cells = [c.strip() for c in stripped.split(delimiter)]
                if len(cells) != num_columns:
                    raise ValueError(
                        f"{path}, line {number}: expected {num_columns} columns, got {len(cells)}"
                    )
                for index, cell in enumerate(cells):
                    try:
                        float(cell)
                    except ValueError:
                        raise ValueError(
                            f"{path}, line {number}, {_column_label(index, column_names)}: "
                            f"expected a number, got {cell!r}"
                        ) from None
                num_rows += 1
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text") from None
    if num_rows == 0:
        raise ValueError(f"{path}: holds no data rows")
