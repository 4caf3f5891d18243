"""Simulations on disk: one ``.npz`` chunk per batch, appended as they arrive.

A :class:`SimulationStore` is a directory of files ``chunk_000000.npz``,
``chunk_000001.npz``, ... each holding ``theta`` (valid parameters), ``x`` (their
data), ``failed_theta`` (parameters whose simulation failed), ``failure_reasons`` and a
``round`` index. Each chunk is written to a temporary file and renamed, so a crash
leaves only whole chunks; a new round or a retraining reloads everything with
:meth:`SimulationStore.load`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from astrobayes.io.writers import write_npz_atomic

__all__ = ["SimulationStore", "StoredSimulations"]


class StoredSimulations(NamedTuple):
    """Everything in a store.

    Attributes:
        theta: Valid parameters, ``(num_valid, dim)``.
        x: Their data, ``(num_valid, *data_shape)``.
        rounds: Round index of every valid draw, ``(num_valid,)``.
        failed_theta: Parameters whose simulation failed, ``(num_failed, dim)``.
        failure_reasons: One message per failed draw.
        num_chunks: Number of chunk files read.

    """

    theta: np.ndarray
    x: np.ndarray
    rounds: np.ndarray
    failed_theta: np.ndarray
    failure_reasons: tuple[str, ...]
    num_chunks: int


class SimulationStore:
    """Append-only directory of simulation chunks (implements ``SimulationSink``).

    Args:
        directory: Where the chunks live; created when missing.
        round_index: Round label written with every chunk appended through this object.

    Example:
        >>> import tempfile, numpy as np
        >>> store = SimulationStore(tempfile.mkdtemp())
        >>> _ = store.append(np.zeros((2, 1)), np.ones((2, 3)), np.zeros((0, 1)), [])
        >>> store.load().x.shape
        (2, 3)

    """

    def __init__(self, directory: str | os.PathLike, round_index: int = 0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.round_index = int(round_index)

    def with_round(self, round_index: int) -> SimulationStore:
        """Return the same directory, labelling new chunks with ``round_index``."""
        return SimulationStore(self.directory, round_index)

    def _chunk_paths(self) -> list[Path]:
        return sorted(self.directory.glob("chunk_*.npz"))

    def append(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        failed_theta: np.ndarray | None = None,
        failure_reasons: list[str] | None = None,
    ) -> Path:
        """Write one chunk atomically and return its path.

        Args:
            theta: Valid parameters, ``(n, dim)``.
            x: Their data, ``(n, *data_shape)``.
            failed_theta: Parameters of failed draws, ``(m, dim)``.
            failure_reasons: ``m`` messages.

        Raises:
            ValueError: If ``theta`` and ``x`` disagree in length, or the failures do.

        """
        theta = np.asarray(theta, dtype=float)
        x = np.asarray(x, dtype=float)
        if theta.ndim != 2 or theta.shape[0] != x.shape[0]:
            raise ValueError(
                f"theta must be (n, dim) with n = len(x) = {x.shape[0]}; got shape {theta.shape}"
            )
        failed = (
            np.zeros((0, theta.shape[1]))
            if failed_theta is None
            else np.asarray(failed_theta, float)
        )
        reasons = [] if failure_reasons is None else [str(r) for r in failure_reasons]
        if failed.shape[0] != len(reasons):
            raise ValueError(
                f"failure_reasons must hold one message per failed draw ({failed.shape[0]}); got {len(reasons)}"
            )
        paths = self._chunk_paths()
        index = int(paths[-1].stem.split("_")[1]) + 1 if paths else 0
        path = self.directory / f"chunk_{index:06d}.npz"
        return write_npz_atomic(
            path,
            theta=theta,
            x=x,
            failed_theta=failed.reshape(-1, theta.shape[1]),
            failure_reasons=np.asarray(reasons, dtype=str),
            round=np.asarray(self.round_index),
        )

    def load(self) -> StoredSimulations:
        """Read every chunk (in order) into one :class:`StoredSimulations`.

        Raises:
            FileNotFoundError: If the directory holds no chunk.
            ValueError: If chunks disagree in parameter or data shape.

        """
        paths = self._chunk_paths()
        if not paths:
            raise FileNotFoundError(f"no simulation chunks (chunk_*.npz) in {self.directory}")
        thetas, xs, rounds, failed, reasons = [], [], [], [], []
        for path in paths:
            with np.load(path) as chunk:
                thetas.append(chunk["theta"])
                xs.append(chunk["x"])
                rounds.append(np.full(chunk["theta"].shape[0], int(chunk["round"])))
                failed.append(chunk["failed_theta"])
                reasons.extend(str(r) for r in chunk["failure_reasons"])
        shapes = {(t.shape[1:], x.shape[1:]) for t, x in zip(thetas, xs, strict=True) if len(t)}
        if len(shapes) > 1:
            raise ValueError(f"chunks in {self.directory} disagree in shapes: {sorted(shapes)}")
        nonempty = [i for i, t in enumerate(thetas) if len(t)] or [0]
        return StoredSimulations(
            theta=np.concatenate([thetas[i] for i in nonempty]),
            x=np.concatenate([xs[i] for i in nonempty]),
            rounds=np.concatenate([rounds[i] for i in nonempty]),
            failed_theta=np.concatenate(failed),
            failure_reasons=tuple(reasons),
            num_chunks=len(paths),
        )
