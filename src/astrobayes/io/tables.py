"""Numeric columns from a CSV table with a header row (for ``astrobayes symbolic``)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["read_csv_columns"]


def read_csv_columns(
    path: str | os.PathLike[str], columns: list[str] | tuple[str, ...]
) -> dict[str, np.ndarray]:
    r"""Read named numeric columns of a CSV file whose first row names the columns.

    Args:
        path: The CSV file (comma-separated; blank lines and lines starting with ``#``
            are skipped).
        columns: Column names to read.

    Returns:
        ``{name: float64 array}`` for each requested column.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file has no header, a column is missing (the message lists
            the available ones), a value is not a number, or a value is NaN/infinite.

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = path.write_text("x,y\n1,2\n3,4\n")
        >>> read_csv_columns(path, ["y"])["y"].tolist()
        [2.0, 4.0]
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"data file {str(file)!r} does not exist")
    with file.open(newline="") as handle:
        rows = [
            row
            for row in csv.reader(handle)
            if row and any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#")
        ]
    if not rows:
        raise ValueError(f"{file}: expected a header row naming the columns; the file is empty")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValueError(f"{file}: no column(s) {missing}; the columns are {header}")
    out = {}
    for name in columns:
        position = header.index(name)
        values = []
        for line, row in enumerate(rows[1:], start=2):
            cell = row[position].strip() if position < len(row) else ""
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(
                    f"{file}: column {name!r} must be numeric; row {line} has {cell!r}"
                ) from None
            if not math.isfinite(value):
                raise ValueError(f"{file}: column {name!r} has a non-finite value on row {line}")
            values.append(value)
        out[name] = np.asarray(values, np.float64)
    return out
