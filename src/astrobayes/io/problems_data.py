"""Readers of the data files behind :mod:`astrobayes.models.problems`.

The benchmark problems take arrays; these functions read the published tables into them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from jaxtyping import Float

__all__ = ["read_radiata_pine"]


def read_radiata_pine(path: str | os.PathLike) -> Float[np.ndarray, "num_specimens 4"]:
    r"""Read the radiata pine table (Williams 1959): columns ``id y x z``.

    A first line that is not all numbers is taken as a header and skipped; lines starting
    with ``#`` are comments.

    Args:
        path: ``radiata_pine.dat``.

    Returns:
        float64 array ``(num_specimens, 4)``: specimen id, strength ``y``, density ``x``
        and adjusted density ``z``; pass it to :func:`astrobayes.models.radiata_pine`.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: Naming the file, if it does not hold at least 4 numeric columns.

    Example:
        >>> import os, tempfile
        >>> from astrobayes.io import read_radiata_pine
        >>> path = os.path.join(tempfile.mkdtemp(), "pine.dat")
        >>> with open(path, "w") as handle:
        ...     _ = handle.write("id y x z\n1 3040 29.2 25.4\n2 2470 24.7 22.2\n")
        >>> read_radiata_pine(path).shape
        (2, 4)

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with path.open() as handle:
        first = handle.readline().split()
    try:
        [float(value) for value in first]
        skip = 0
    except ValueError:
        skip = 1
    try:
        table = np.loadtxt(path, skiprows=skip, ndmin=2)
    except ValueError as error:
        raise ValueError(f"{path}: expected numeric columns id y x z ({error})") from error
    if table.shape[1] < 4:
        raise ValueError(f"{path}: expected 4 columns (id y x z); got shape {table.shape}")
    return table
