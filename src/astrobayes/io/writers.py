"""Atomic writers: a crash or a full disk never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from astrobayes.chains import Chains
from astrobayes.io._binary import NPZ_CONVENTION_KEY

__all__ = [
    "save_figure_atomic",
    "write_atomic",
    "to_json",
    "to_jsonable",
    "write_chains_npz",
    "write_json_atomic",
    "write_npz_atomic",
    "write_text_atomic",
]


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write through ``write(handle)`` into a temporary file beside ``path``, then rename.

    The one atomic writer every file format goes through (JSON, NPZ, figures, FITS,
    emulator weights): the temporary file is flushed and fsynced before ``os.replace``,
    so a crash or a full disk never leaves a half-written ``path``.

    Args:
        path: Destination file; its directory must exist.
        write: Called once with a binary handle open for writing.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If ``path`` is a directory.
        FileNotFoundError: If its directory does not exist.

    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; give a file path")
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: the directory for {path.name} does not exist")
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def to_jsonable(obj: Any) -> Any:
    """Turn results into plain, strict JSON types: the one JSON policy of every command.

    NamedTuples and dataclasses become dicts, NumPy/JAX arrays lists, NumPy scalars
    Python numbers, paths strings. Non-finite floats (NaN, infinities) become ``None``
    (``null``): strict JSON has neither. An enum becomes its lower-case name; inside a
    dict, NamedTuple or dataclass, an enum whose value is a message (every
    :class:`astrobayes._status.Status`) also adds ``"<key>_message": message`` beside it.

    Args:
        obj: Any nesting of the types above, dicts, lists and tuples.

    Returns:
        The same structure in ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``.

    Raises:
        TypeError: On an object of another type (naming its type).

    Example:
        >>> import numpy as np
        >>> to_jsonable({"x": np.arange(2), "y": np.float32(0.5), "z": float("nan")})
        {'x': [0, 1], 'y': 0.5, 'z': None}

    """
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, enum.Enum):
        return obj.name.lower()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return _jsonable_items(obj._asdict().items())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable_items((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, Mapping):
        return _jsonable_items(obj.items())
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        array = np.asarray(obj)
        if array.dtype == object or np.issubdtype(array.dtype, np.floating):
            return to_jsonable(array.tolist())
        return array.tolist()
    raise TypeError(f"cannot write an object of type {type(obj).__name__} as JSON")


def _jsonable_items(items) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items:
        key = str(key)
        out[key] = to_jsonable(value)
        if isinstance(value, enum.Enum) and isinstance(value.value, str):
            out.setdefault(f"{key}_message", value.value)
    return out


def to_json(obj: Any, *, indent: int | None = None) -> str:
    """``obj`` as strict JSON text (see :func:`to_jsonable`; never ``NaN`` literals).

    Example:
        >>> to_json({"log_evidence": float("nan")})
        '{"log_evidence": null}'

    """
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as strict JSON (:func:`to_json`), atomically (temporary file + rename).

    Args:
        path: Destination file.
        obj: JSON-able data; NamedTuples, dataclasses, arrays, enums and paths are
            converted by :func:`to_jsonable`.
        indent: JSON indentation.

    Returns:
        The path written.

    Raises:
        TypeError: If ``obj`` holds something that cannot be written as JSON.
        FileNotFoundError: If the directory of ``path`` does not exist.
        ValueError: If ``path`` is a directory.

    Example:
        >>> import tempfile, os, json
        >>> path = os.path.join(tempfile.mkdtemp(), "result.json")
        >>> _ = write_json_atomic(path, {"log_evidence": -3.2})
        >>> json.loads(Path(path).read_text())
        {'log_evidence': -3.2}

    """
    text = to_json(obj, indent=indent) + "\n"
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def write_chains_npz(
    path: str | os.PathLike[str], chains: Chains, *, convention: str | None = None
) -> Path:
    """Write :class:`~astrobayes.chains.Chains` as an ``.npz`` archive, atomically.

    The archive holds ``samples``, ``log_posterior``, ``weights`` and ``names`` (a string
    array, so that reading never needs to unpickle) and the convention sentence;
    :func:`astrobayes.io.read_chains` reads it back unchanged.

    Args:
        path: Destination file (written as given; ``.npz`` is not appended).
        chains: The chains.
        convention: How ``log_posterior`` was obtained (e.g. the ``convention`` of a
            :class:`~astrobayes.io.ChainsFile`); by default, the :class:`Chains` contract.

    Returns:
        The path written.

    Raises:
        TypeError: If ``chains`` is not a :class:`~astrobayes.chains.Chains`.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from astrobayes.chains import Chains
        >>> x = np.zeros((2, 3, 1))
        >>> path = os.path.join(tempfile.mkdtemp(), "chains.npz")
        >>> _ = write_chains_npz(path, Chains(x, x[..., 0]))

    """
    if not isinstance(chains, Chains):
        raise TypeError(f"chains must be an astrobayes Chains; got {type(chains).__name__}")
    if convention is not None and not isinstance(convention, str):
        raise TypeError(f"convention must be a string; got {type(convention).__name__}")
    arrays = {
        "samples": chains.samples,
        "log_posterior": chains.log_posterior,
        "weights": chains.weights,
        "names": np.array(chains.names, dtype=str),
        NPZ_CONVENTION_KEY: np.array(
            convention or "Chains.log_posterior: log L + log prior, prior normalised", dtype=str
        ),
    }
    return write_atomic(path, lambda handle: np.savez(handle, **arrays))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically (temporary file in the same directory + rename).

    Args:
        path: Destination file.
        text: Content.

    Returns:
        The path written.
    """
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def save_figure_atomic(path: str | os.PathLike[str], figure: Any, *, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (format from the suffix of ``path``) and close it.

    Args:
        path: Destination file, e.g. ``corner.png``.
        figure: A matplotlib ``Figure``.
        dpi: Resolution.

    Returns:
        The path written.
    """
    import matplotlib.pyplot as plt

    fmt = Path(path).suffix.lstrip(".") or "png"
    try:
        return write_atomic(path, lambda handle: figure.savefig(handle, format=fmt, dpi=dpi))
    finally:
        plt.close(figure)


def write_npz_atomic(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """Write NumPy arrays to an uncompressed ``.npz`` atomically (never pickled).

    Args:
        path: Destination file.
        **arrays: Arrays by name (object arrays are refused).

    Returns:
        The path written.

    Raises:
        TypeError: If an array has dtype ``object``.
    """
    for name, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"{name} must be a numeric or string array; got dtype object")
    return write_atomic(path, lambda handle: np.savez(handle, **arrays))
