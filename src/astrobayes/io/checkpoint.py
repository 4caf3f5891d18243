"""Checkpoint files for resumable runs (NumPy ``.npz``, written atomically, never pickled)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["NpzCheckpoint"]


class NpzCheckpoint:
    """A checkpoint kept in one ``.npz`` file, replaced atomically on every save.

    Args:
        path: File path (its folder is created when missing).

    Example:
        >>> import tempfile, numpy as np
        >>> ckpt = NpzCheckpoint(tempfile.mkdtemp() + "/run.npz")
        >>> ckpt.load() is None
        True
        >>> ckpt.save({"x": np.arange(3)}); ckpt.load()["x"].tolist()
        [0, 1, 2]

    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> dict[str, np.ndarray] | None:
        """Saved arrays, or ``None`` when the file does not exist."""
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError) as error:
            raise ValueError(
                f"checkpoint {self.path} is unreadable ({error}); remove it to start afresh"
            ) from None

    def save(self, arrays: dict[str, np.ndarray]) -> None:
        """Write ``arrays`` to a temporary file beside the target, then rename it."""
        from astrobayes.io.writers import write_npz_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_npz_atomic(self.path, **arrays)

    def remove(self) -> None:
        """Delete the checkpoint file if present."""
        if self.path.exists():
            self.path.unlink()
