"""Save and load learned denoisers without pickle (JSON header + equinox leaves).

File layout (as for emulators and surrogates): one line of UTF-8 JSON (format, version,
the :class:`~astrobayes.imaging.denoisers.DenoiserSettings` fields, dtype), a newline,
then :func:`equinox.tree_serialise_leaves` of the :class:`~astrobayes.imaging.denoisers.Denoiser`.
Loading rebuilds an untrained skeleton with
:func:`~astrobayes.imaging.denoisers.init_denoiser` from the header and fills in its
leaves, so a file whose payload does not match its header (wrong widths, truncated) is a
clear ``ValueError``. Saving is atomic (:func:`astrobayes.io.write_atomic`).

The package ships the galaxy denoiser (``astrobayes/imaging/weights/denoiser_galaxy.eqx``
with its training record ``denoiser_galaxy.json``), made by ``scripts/train_denoiser.py``
on images of ``scripts/make_galaxy_images.py``, and the radio denoiser
(``denoiser_radio.eqx`` / ``.json``, ``scripts/train_denoiser.py --radio`` on simulated
skies): :func:`load_shipped_denoiser`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from astrobayes.imaging.denoisers import Denoiser, DenoiserSettings, init_denoiser
from astrobayes.io._eqx_files import (
    read_eqx_header,
    skeleton_in_saved_dtype,
    write_eqx_with_header,
)

__all__ = ["SHIPPED_DENOISERS", "load_denoiser", "load_shipped_denoiser", "save_denoiser"]

_FORMAT = "astrobayes-denoiser"
_VERSION = 1
#: Names of the shipped denoisers: ``name -> (weights file, record file)``.
SHIPPED_DENOISERS = {
    "galaxy": ("denoiser_galaxy.eqx", "denoiser_galaxy.json"),
    "radio": ("denoiser_radio.eqx", "denoiser_radio.json"),
}


def save_denoiser(path: str | os.PathLike, denoiser: Denoiser) -> Path:
    """Write a denoiser atomically.

    Args:
        path: Destination file (conventionally ``*.eqx``).
        denoiser: The :class:`~astrobayes.imaging.denoisers.Denoiser`.

    Returns:
        The path written.

    Raises:
        TypeError: If ``denoiser`` is not a Denoiser.

    Example:
        >>> import jax, os, tempfile
        >>> from astrobayes.imaging.denoisers import DenoiserSettings, init_denoiser
        >>> d = init_denoiser(jax.random.key(0), DenoiserSettings("dncnn", width=4, depth=2))
        >>> path = save_denoiser(os.path.join(tempfile.mkdtemp(), "d.eqx"), d)
        >>> load_denoiser(path).settings == d.settings
        True

    """
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"denoiser must be a Denoiser; got {type(denoiser).__name__}")
    header = {
        "format": _FORMAT,
        "version": _VERSION,
        "settings": dataclasses.asdict(denoiser.settings),
    }
    return write_eqx_with_header(path, header, denoiser)


def _settings_from_header(path: Path, table: Any) -> DenoiserSettings:
    if not isinstance(table, dict):
        raise ValueError(f"{path}: the header has no settings table")
    fields = {f.name for f in dataclasses.fields(DenoiserSettings)}
    unknown = set(table) - fields
    if unknown:
        raise ValueError(f"{path}: unknown denoiser settings {sorted(unknown)}")
    values = dict(table)
    if "widths" in values:
        values["widths"] = tuple(values["widths"])
    try:
        return DenoiserSettings(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: invalid denoiser settings ({error})") from error


def load_denoiser(path: str | os.PathLike) -> Denoiser:
    """Read a denoiser written by :func:`save_denoiser`.

    Args:
        path: The file.

    Returns:
        The :class:`~astrobayes.imaging.denoisers.Denoiser`.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If it is not a denoiser file, its version is unknown, or its
            payload does not match the architecture in its header.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such denoiser file: {path}")
    with path.open("rb") as handle:
        header = read_eqx_header(
            handle, path, file_format=_FORMAT, version=_VERSION, what="a denoiser file"
        )
        settings = _settings_from_header(path, header.get("settings"))
        skeleton = init_denoiser(jax.random.key(0), settings)  # every leaf overwritten below
        skeleton = skeleton_in_saved_dtype(skeleton, header)
        try:
            denoiser = eqx.tree_deserialise_leaves(handle, skeleton)
        except Exception as error:  # equinox/numpy raise several types on bad payloads
            raise ValueError(
                f"{path}: the weights do not match the architecture in the header ({error})"
            ) from error
        if handle.read(1):
            raise ValueError(
                f"{path}: the weights do not match the architecture in the header "
                "(trailing bytes after the last leaf)"
            )
    return denoiser


def load_shipped_denoiser(name: str = "galaxy") -> tuple[Denoiser, dict]:
    """A denoiser shipped with the package, with its training record.

    Args:
        name: One of :data:`SHIPPED_DENOISERS` (``"galaxy"``: GalSim bulge + disk
            galaxies, 32 x 32, peak 1; ``"radio"``: simulated radio skies of
            :mod:`astrobayes.imaging.skies`, 64 x 64 patches of [0, 1] skies; see
            ``docs/imaging_priors.md``).

    Returns:
        ``(denoiser, record)``: the record holds the commands, data keys, training
        status and held-out losses it was shipped with.

    Raises:
        ValueError: On an unknown name.

    Example:
        >>> from astrobayes.io.denoiser_files import load_shipped_denoiser
        >>> denoiser, record = load_shipped_denoiser()
        >>> denoiser.settings.architecture, record["image_size"]
        ('unet', 32)

    """
    if name not in SHIPPED_DENOISERS:
        raise ValueError(
            f"unknown shipped denoiser {name!r}; choose one of {list(SHIPPED_DENOISERS)}"
        )
    weights, record_name = SHIPPED_DENOISERS[name]
    root = importlib.resources.files("astrobayes.imaging") / "weights"
    with importlib.resources.as_file(root / weights) as file:
        denoiser = load_denoiser(file)
    record = json.loads((root / record_name).read_text(encoding="utf-8"))
    return denoiser, record
