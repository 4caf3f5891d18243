"""Weights of the unrolled imaging network: read, write, and the shipped default.

File layout (as for emulators, :mod:`astrobayes.io.emulators`): one line of UTF-8 JSON
(format name, version, the :class:`~astrobayes.imaging.unrolled.UnrolledSettings`), a
newline, then the bytes of :func:`equinox.tree_serialise_leaves`. Loading rebuilds an
empty network of the recorded architecture and fills in its leaves, so no code is run
from the file (no pickles). Beside ``NAME.eqx`` a ``NAME.json`` records the settings and
how the weights were made (training data, time, losses); it is for people, the loader
reads only the ``.eqx``. Every write is atomic.

The shipped weights, ``astrobayes/imaging/weights/unrolled_default.eqx``, were made by
``scripts/train_unrolled.py`` (see ``docs/learned_imaging.md``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax

from astrobayes.imaging.unrolled import UnrolledNetwork, UnrolledSettings
from astrobayes.io._eqx_files import (
    read_eqx_header,
    skeleton_in_saved_dtype,
    write_eqx_with_header,
)
from astrobayes.io.writers import write_json_atomic

__all__ = [
    "UnrolledWeights",
    "default_unrolled_path",
    "read_unrolled",
    "write_unrolled",
]

_FORMAT = "astrobayes-unrolled-imaging"
_VERSION = 1


class UnrolledWeights(NamedTuple):
    """A network read by :func:`read_unrolled`.

    Attributes:
        network: The :class:`~astrobayes.imaging.unrolled.UnrolledNetwork`.
        metadata: What the sibling ``.json`` records (empty when it is absent).
        path: The ``.eqx`` file read.
    """

    network: UnrolledNetwork
    metadata: dict[str, Any]
    path: Path


def default_unrolled_path() -> Path:
    """Path of the shipped weights (package data ``astrobayes/imaging/weights``)."""
    return Path(str(resources.files("astrobayes.imaging") / "weights" / "unrolled_default.eqx"))


def _settings_dict(settings: UnrolledSettings) -> dict:
    out = dataclasses.asdict(settings)
    out["widths"] = list(settings.widths)
    return out


def write_unrolled(
    path: str | os.PathLike, network: UnrolledNetwork, **metadata: Any
) -> tuple[Path, Path]:
    """Write a network to ``path`` (``.eqx``) and its settings to ``path`` with ``.json``.

    Args:
        path: Destination ``.eqx`` file.
        network: The network.
        **metadata: JSON-able entries for the sibling ``.json`` (training data, time,
            losses, the command that made the weights).

    Returns:
        ``(eqx_path, json_path)``.

    Raises:
        TypeError: If ``network`` is not an ``UnrolledNetwork``.
        ValueError: If ``path`` does not end in ``.eqx``.

    Example:
        >>> import jax, os, tempfile
        >>> from astrobayes.imaging.unrolled import UnrolledNetwork, UnrolledSettings
        >>> net = UnrolledNetwork(UnrolledSettings(num_stages=1, widths=(2, 4)), key=jax.random.key(0))
        >>> eqx_path, _ = write_unrolled(os.path.join(tempfile.mkdtemp(), "n.eqx"), net, note="x")
        >>> read_unrolled(eqx_path).metadata["note"]
        'x'
    """
    if not isinstance(network, UnrolledNetwork):
        raise TypeError(f"network must be an UnrolledNetwork; got {type(network).__name__}")
    path = Path(path)
    if path.suffix != ".eqx":
        raise ValueError(f"path must end in .eqx; got {path}")
    settings = _settings_dict(network.settings)
    eqx_path = write_eqx_with_header(
        path,
        {
            "format": _FORMAT,
            "version": _VERSION,
            "settings": settings,
        },
        network,
    )
    json_path = write_json_atomic(
        path.with_suffix(".json"), {"format": _FORMAT, "settings": settings, **metadata}
    )
    return eqx_path, json_path


def read_unrolled(path: str | os.PathLike | None = None) -> UnrolledWeights:
    """Read a network written by :func:`write_unrolled` (default: the shipped one).

    Args:
        path: The ``.eqx`` file, or ``None`` for the package's default weights.

    Returns:
        :class:`UnrolledWeights`.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If the file is not an unrolled-network file, its version is
            unknown, or its weights do not match its recorded architecture (weights of
            another architecture).

    Example:
        >>> default_unrolled_path().name
        'unrolled_default.eqx'
    """
    path = default_unrolled_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"unrolled-network weights not found: {path}")
    with path.open("rb") as handle:
        header = read_eqx_header(
            handle,
            path,
            file_format=_FORMAT,
            version=_VERSION,
            what="an unrolled-network weights file",
        )
        try:
            raw = dict(header["settings"])
            raw["widths"] = tuple(raw["widths"])
            settings = UnrolledSettings(**raw)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: invalid network settings in the header ({error})") from None
        skeleton = UnrolledNetwork(settings, key=jax.random.key(0))  # overwritten below
        skeleton = skeleton_in_saved_dtype(skeleton, header)
        try:
            network = eqx.tree_deserialise_leaves(handle, skeleton)
        except Exception as error:  # equinox/numpy raise several types on bad payloads
            raise ValueError(
                f"{path}: the weights do not match the recorded architecture {settings} "
                f"(weights of another architecture?): {error}"
            ) from error
        if handle.read(1):
            raise ValueError(
                f"{path}: the file holds more weights than the recorded architecture "
                f"{settings} (weights of another architecture?)"
            )
    json_path = path.with_suffix(".json")
    metadata = json.loads(json_path.read_text()) if json_path.is_file() else {}
    return UnrolledWeights(network=network, metadata=metadata, path=path)
