"""Chunk files of a simulation campaign: one ``.npz`` per finished chunk, written atomically.

A :class:`CampaignStore` is a directory with ``manifest.json`` (the campaign's name,
size, chunking and a fingerprint of its seeds and parameters) and ``chunk_<k>.npz`` for
every finished chunk ``k`` (arrays ``index``, ``theta``, ``x``, ``seed``, ``error``).
Each file goes to a temporary name and is renamed, so a kill leaves whole chunks only;
the file name is the chunk index, so a chunk written twice (a task re-run after a lost
worker) replaces itself and is never counted twice. It implements the store protocol of
:func:`astrobayes.sbi.executors.run_campaign`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from astrobayes.io.writers import write_json_atomic, write_npz_atomic

__all__ = ["CampaignStore"]


class CampaignStore:
    """A directory of campaign chunks (see the module docstring).

    Args:
        directory: Where the manifest and chunks live; created when missing.

    Example:
        >>> import tempfile, numpy as np
        >>> store = CampaignStore(tempfile.mkdtemp())
        >>> store.start({"name": "demo", "num_simulations": 2})
        >>> store.write_chunk(0, {"index": np.arange(2), "x": np.zeros((2, 1))})
        >>> store.completed()
        {0}

    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def manifest_path(self) -> Path:
        """``directory/manifest.json``."""
        return self.directory / "manifest.json"

    def start(self, manifest: dict[str, Any]) -> None:
        """Write the manifest, or check that the stored one describes the same campaign.

        Raises:
            ValueError: If the directory holds another campaign (the differing keys named).
        """
        if self.manifest_path.is_file():
            stored = json.loads(self.manifest_path.read_text())
            differing = sorted(
                k for k in set(stored) | set(manifest) if stored.get(k) != manifest.get(k)
            )
            if differing:
                raise ValueError(
                    f"{self.directory} holds another campaign (differs in {differing}); "
                    "use a new directory or remove it to start afresh"
                )
            return
        write_json_atomic(self.manifest_path, manifest)

    def _path(self, chunk: int) -> Path:
        return self.directory / f"chunk_{int(chunk):08d}.npz"

    def completed(self) -> set[int]:
        """Indices of the chunk files present."""
        return {int(p.stem.split("_")[1]) for p in self.directory.glob("chunk_*.npz")}

    def write_chunk(self, chunk: int, arrays: dict[str, np.ndarray]) -> None:
        """Write chunk ``chunk`` atomically (replacing an identical earlier copy)."""
        write_npz_atomic(self._path(chunk), **arrays)

    def load_chunks(self) -> dict[int, dict[str, np.ndarray]]:
        """Every chunk present, by index."""
        out = {}
        for chunk in sorted(self.completed()):
            with np.load(self._path(chunk), allow_pickle=False) as archive:
                out[chunk] = {name: archive[name] for name in archive.files}
        return out
