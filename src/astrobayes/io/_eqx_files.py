"""The one layout of astrobayes weight files: a JSON header line, then equinox leaves.

Emulators, chemistry surrogates, denoisers and unrolled networks are all stored as one
line of sorted-key JSON (format name, version, the architecture), a newline, then the
bytes of :func:`equinox.tree_serialise_leaves`; no pickles. The header tells the reader
which skeleton to build before the leaves are read into it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import equinox as eqx
import jax
import jax.numpy as jnp

from astrobayes.io.writers import write_atomic

__all__ = ["read_eqx_header", "skeleton_in_saved_dtype", "write_eqx_with_header"]


def skeleton_in_saved_dtype(skeleton: Any, header: dict) -> Any:
    """``skeleton`` with its floating-point leaves in the file's dtype, before reading into it.

    ``header["dtype"]`` (``"float32"`` for files that do not record one). A skeleton built
    while ``jax_enable_x64`` is on has float64 leaves, and equinox refuses to read float32
    weights into them; float64 weights are read as float32 when x64 is off.
    """
    dtype = jnp.dtype(header.get("dtype", "float32"))
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        dtype = jnp.dtype(jnp.float32)
    return _floats_as(skeleton, dtype)


def _floats_as(tree: Any, dtype) -> Any:
    """``tree`` with its floating-point array leaves cast to ``dtype``."""
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


def _in_one_float_dtype(tree: Any) -> tuple[Any, str]:
    """``tree`` with every floating-point leaf in the widest of their dtypes, and its name.

    A model built while ``jax_enable_x64`` is on can hold float64 layers beside float32
    arrays made elsewhere (a standardiser from NumPy float32 data, a network grown from
    float32 weights), and :func:`skeleton_in_saved_dtype` reads every leaf in the one
    recorded dtype. Widening is exact.
    """
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    if not leaves:
        raise ValueError("the model holds no floating-point array")
    dtype = jnp.result_type(*leaves)
    return _floats_as(tree, dtype), str(jnp.dtype(dtype))


def write_eqx_with_header(path: str | Path, header: dict, tree: Any) -> Path:
    """Write ``header`` as one JSON line, then the leaves of ``tree``, atomically.

    The leaves are written in one floating-point dtype, the widest of the tree's, recorded
    as ``header["dtype"]`` for :func:`skeleton_in_saved_dtype`.
    """
    tree, dtype = _in_one_float_dtype(tree)
    line = json.dumps({**header, "dtype": dtype}, sort_keys=True).encode("utf-8") + b"\n"

    def write(handle) -> None:
        handle.write(line)
        eqx.tree_serialise_leaves(handle, tree)

    return write_atomic(path, write)


def read_eqx_header(
    handle: IO[bytes], path: Path, *, file_format: str, version: int, what: str
) -> dict:
    """Read and check the header line; ``handle`` is left at the start of the leaves.

    Args:
        handle: The file, opened for binary reading at its start.
        path: The file's path (for messages).
        file_format: The expected ``"format"`` value.
        version: The version this astrobayes reads.
        what: The kind of file, with its article, e.g. ``"a denoiser file"``.

    Returns:
        The header.

    Raises:
        ValueError: Without a JSON header line, with another format, or another version.
    """
    try:
        header = json.loads(handle.readline().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: not {what} (no JSON header line)") from None
    if not isinstance(header, dict) or header.get("format") != file_format:
        raise ValueError(f"{path}: not {what} (format {file_format!r} expected)")
    if header.get("version") != version:
        raise ValueError(
            f"{path}: {what} of version {header.get('version')!r}; this astrobayes reads "
            f"version {version}"
        )
    return header
