"""Simulations on disk: one ``.npz`` chunk per batch, appended as they arrive.

A :class:`SimulationStore` is a directory of chunk files, each holding ``theta`` (valid
parameters), ``x`` (their data), ``failed_theta`` (parameters whose simulation failed),
``failure_reasons`` and a ``round`` index. Each chunk is written to a temporary file and
renamed, so a crash leaves only whole chunks; :meth:`SimulationStore.load` reads them all.

Chunks appended with their place in a campaign (``chunk=``, ``fingerprint=``, as
:func:`astrobayes.sbi.run_simulations` does) are named ``chunk_r<round>_c<chunk>.npz``
and can be resumed: :meth:`SimulationStore.stored_chunk` returns a stored chunk whose
fingerprint (of its parameters and PRNG key) matches, so a killed run started again
simulates only what is missing and gets the uninterrupted run's arrays. A store made
with an ``identity`` (``astrobayes sbi`` passes a digest of its configuration, the
observation and the simulator's source) refuses to resume another run's simulations.
Chunks appended without a place are numbered ``chunk_<n>.npz`` and never resumed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from astrobayes.io.writers import write_json_atomic, write_npz_atomic

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
        identity: What run the simulations belong to (any string, e.g. a digest of the
            configuration); recorded in ``manifest.json`` on first use, and a store
            holding another identity is refused. ``None``: not checked.

    Raises:
        ValueError: If ``identity`` differs from the one the directory records.

    Example:
        >>> import tempfile, numpy as np
        >>> store = SimulationStore(tempfile.mkdtemp())
        >>> _ = store.append(np.zeros((2, 1)), np.ones((2, 3)), np.zeros((0, 1)), [])
        >>> store.load().x.shape
        (2, 3)

    """

    def __init__(
        self, directory: str | os.PathLike, round_index: int = 0, identity: str | None = None
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.round_index = int(round_index)
        if identity is not None:
            manifest = self.directory / "manifest.json"
            if manifest.is_file():
                stored = json.loads(manifest.read_text()).get("identity")
                if stored != identity:
                    raise ValueError(
                        f"{self.directory} holds the simulations of another run (identity "
                        f"{stored!r}, this run {identity!r}): use another output folder, or "
                        "remove it to simulate afresh"
                    )
            else:
                write_json_atomic(manifest, {"identity": identity})

    def with_round(self, round_index: int) -> SimulationStore:
        """Return the same directory, labelling new chunks with ``round_index``."""
        return SimulationStore(self.directory, round_index)

    def _placed_path(self, chunk: int) -> Path:
        return self.directory / f"chunk_r{self.round_index:03d}_c{int(chunk):06d}.npz"

    def stored_chunk(
        self, chunk: int, fingerprint: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
        """Chunk ``chunk`` of this round, if stored: ``(theta, x, failed_theta, reasons)``.

        Args:
            chunk: The chunk's place in the round.
            fingerprint: What the caller would simulate there (its parameters and key).

        Returns:
            The stored arrays, or ``None`` when the chunk is not stored.

        Raises:
            ValueError: If the stored chunk has another fingerprint (other parameters or
                keys: another run's simulations).

        """
        path = self._placed_path(chunk)
        if not path.is_file():
            return None
        with np.load(path) as stored:
            if str(stored["fingerprint"]) != fingerprint:
                raise ValueError(
                    f"{path} holds other simulations than this run's round "
                    f"{self.round_index}, chunk {chunk} (other parameters or keys): use "
                    "another output folder, or remove it to simulate afresh"
                )
            return (
                stored["theta"],
                stored["x"],
                stored["failed_theta"],
                [str(r) for r in stored["failure_reasons"]],
            )

    def _chunk_paths(self) -> list[Path]:
        return sorted(self.directory.glob("chunk_*.npz"))

    def append(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        failed_theta: np.ndarray | None = None,
        failure_reasons: list[str] | None = None,
        *,
        chunk: int | None = None,
        fingerprint: str | None = None,
    ) -> Path:
        """Write one chunk atomically and return its path.

        Args:
            theta: Valid parameters, ``(n, dim)``.
            x: Their data, ``(n, *data_shape)``.
            failed_theta: Parameters of failed draws, ``(m, dim)``.
            failure_reasons: ``m`` messages.
            chunk: The chunk's place in its round, with ``fingerprint``: the chunk is
                written as ``chunk_r<round>_c<chunk>.npz`` (replacing a copy) and can be
                resumed (:meth:`stored_chunk`). ``None``: the next number.
            fingerprint: Of the chunk's parameters and key (with ``chunk``).

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
        if (chunk is None) != (fingerprint is None):
            raise ValueError("chunk and fingerprint go together; got one of them")
        arrays = {
            "theta": theta,
            "x": x,
            "failed_theta": failed.reshape(-1, theta.shape[1]),
            "failure_reasons": np.asarray(reasons, dtype=str),
            "round": np.asarray(self.round_index),
        }
        if chunk is not None:
            return write_npz_atomic(
                self._placed_path(chunk), **arrays, fingerprint=np.asarray(fingerprint)
            )
        numbered = [p for p in self._chunk_paths() if p.stem.split("_")[1].isdigit()]
        index = int(numbered[-1].stem.split("_")[1]) + 1 if numbered else 0
        return write_npz_atomic(self.directory / f"chunk_{index:06d}.npz", **arrays)

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
