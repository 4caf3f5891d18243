"""Save and load emulators without pickle: a JSON header line, then equinox leaves.

File layout: one line of UTF-8 JSON (format name and version, architecture, shapes,
dtype), a newline, then the bytes written by :func:`equinox.tree_serialise_leaves`.
Loading rebuilds an empty :class:`~astrobayes.emulators.Emulator` of the recorded
architecture and fills in its leaves, so the file alone suffices (no code is executed
from it). Saving is atomic (temporary file beside the target, then rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

from astrobayes.emulators.network import Emulator
from astrobayes.io._eqx_files import (
    read_eqx_header,
    skeleton_in_saved_dtype,
    write_eqx_with_header,
)

__all__ = ["load_emulator", "save_emulator"]

_FORMAT = "astrobayes-emulator"
_VERSION = 1


def _header(emulator: Emulator) -> dict:
    return {
        "format": _FORMAT,
        "version": _VERSION,
        "num_parameters": emulator.num_parameters,
        "num_outputs": emulator.num_outputs,
        "num_components": emulator.num_components,
        "hidden": list(emulator.hidden),
        "activation": emulator.activation,
        "log_outputs": emulator.log_outputs,
    }


def save_emulator(path: str | os.PathLike, emulator: Emulator) -> Path:
    """Write an emulator to ``path`` atomically (JSON header + serialised leaves; no pickle).

    Args:
        path: Destination file (conventionally ``*.eqx``).
        emulator: The emulator.

    Returns:
        The path written.

    Raises:
        TypeError: If ``emulator`` is not an :class:`Emulator`.

    Example:
        >>> import jax, jax.numpy as jnp, tempfile, os
        >>> from astrobayes.emulators import train_emulator
        >>> from astrobayes.io import load_emulator, save_emulator
        >>> x = jnp.linspace(0.0, 1.0, 32)[:, None]
        >>> emulator, _ = train_emulator(jax.random.key(0), x, x, hidden=(8,), num_epochs=2)
        >>> path = save_emulator(os.path.join(tempfile.mkdtemp(), "e.eqx"), emulator)
        >>> bool(jnp.all(load_emulator(path)(x) == emulator(x)))
        True

    """
    if not isinstance(emulator, Emulator):
        raise TypeError(f"emulator must be an Emulator; got {type(emulator).__name__}")
    return write_eqx_with_header(path, _header(emulator), emulator)


def load_emulator(path: str | os.PathLike) -> Emulator:
    """Read an emulator written by :func:`save_emulator`.

    Args:
        path: The file.

    Returns:
        The :class:`Emulator`, leaf for leaf equal to the one saved (in the saved dtype;
        float64 files read without ``jax_enable_x64`` are cast to float32).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If the header is not an astrobayes emulator header, the version is
            unknown, or the payload does not match the recorded architecture.

    Example:
        >>> from astrobayes.io import load_emulator
        >>> emulator = load_emulator("distances.eqx")  # doctest: +SKIP

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with path.open("rb") as handle:
        header = read_eqx_header(
            handle, path, file_format=_FORMAT, version=_VERSION, what="an astrobayes emulator file"
        )
        dtype = jnp.asarray(0.0, dtype=header["dtype"]).dtype
        num_in, num_out = int(header["num_parameters"]), int(header["num_outputs"])
        components = header["num_components"]
        zeros_in = jnp.zeros(num_in, dtype)
        zeros_out = jnp.zeros(num_out, dtype)
        skeleton = Emulator(
            jax.random.key(0),  # placeholder weights, all overwritten below
            input_shift=zeros_in,
            input_scale=zeros_in,
            output_shift=zeros_out,
            output_scale=zeros_out,
            basis=None if components is None else jnp.zeros((int(components), num_out), dtype),
            coefficient_scale=None if components is None else jnp.zeros(int(components), dtype),
            hidden=tuple(header["hidden"]),
            activation=header["activation"],
            log_outputs=bool(header["log_outputs"]),
        )
        skeleton = skeleton_in_saved_dtype(skeleton, header)
        try:
            return eqx.tree_deserialise_leaves(handle, skeleton)
        except Exception as error:  # equinox/numpy raise several types on bad payloads
            raise ValueError(f"{path}: payload does not match the header ({error})") from error
