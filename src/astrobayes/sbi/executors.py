"""Executors for Python simulators, and resumable simulation campaigns on them.

One interface, three backends, no home-made scheduler:

* :class:`SerialExecutor`: in this process, one call after another (debugging, tests);
* :class:`ProcessExecutor`: a local :class:`~concurrent.futures.ProcessPoolExecutor`
  (``spawn`` start method, since JAX is multithreaded);
* :class:`DaskExecutor`: Dask distributed (Rocklin 2015), a ``LocalCluster`` on the
  loopback interface by default, or an existing cluster by its scheduler address
  (``"tcp://host:8786"``).

Each is a context manager with ``submit(fn, *args) -> Future`` (standard
:class:`concurrent.futures.Future` objects, so ``concurrent.futures.as_completed`` works
on all three). :func:`make_executor` builds one from the names used in TOML files.

:func:`run_campaign` runs a Python simulator ``simulate(seed, theta) -> x`` on many
parameter vectors through any executor. Simulation ``i`` of a campaign always gets the
seed ``seeds_for(key, [i])`` (from the campaign key and ``i`` alone), so the outputs do not
depend on the backend, the number of workers, the chunking or the order of completion.
Chunks of consecutive indices are the unit of work; each finished chunk goes to a
``store`` (:class:`astrobayes.io.CampaignStore` writes one file per chunk atomically) as
it arrives, and a campaign started again with the same store skips the chunks already
there: after a kill nothing is lost and nothing is duplicated.

References:
    Rocklin (2015), "Dask: parallel computation with blocked algorithms and task
    scheduling", Proc. 14th Python in Science Conf., doi:10.25080/Majora-7b98e3ed-013;
    Steele, Lea & Flood (2014), "Fast splittable pseudorandom number generators",
    OOPSLA, doi:10.1145/2660193.2660195 (SplitMix64, for the seeds).
"""

from __future__ import annotations

import abc
import concurrent.futures
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._types import ProgressFn
from astrobayes._workers import simulate_chunk

__all__ = [
    "EXECUTORS",
    "CampaignResult",
    "CampaignStatus",
    "CampaignStore",
    "DaskExecutor",
    "Executor",
    "ExecutorConfig",
    "ProcessExecutor",
    "SerialExecutor",
    "make_executor",
    "run_campaign",
    "seeds_for",
]

#: Backend names accepted by :func:`make_executor` (and the TOML key ``executor``).
EXECUTORS = ("serial", "process", "dask")


class Executor(abc.ABC):
    """Runs functions on workers; a context manager that releases them on exit."""

    @abc.abstractmethod
    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        """Schedule ``fn(*args)``; return a :class:`concurrent.futures.Future`."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release the workers (the executor cannot be used afterwards)."""

    @property
    @abc.abstractmethod
    def num_workers(self) -> int:
        """Workers running tasks side by side."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


class SerialExecutor(Executor):
    """Runs each function at once, in this process (the reference for the other backends).

    Example:
        >>> with SerialExecutor() as executor:
        ...     executor.submit(pow, 2, 5).result()
        32

    """

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:  # noqa: D102
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:  # noqa: BLE001 - delivered through the future
            future.set_exception(error)
        return future

    @property
    def num_workers(self) -> int:  # noqa: D102
        return 1


class ProcessExecutor(Executor):
    """A local process pool (``spawn``: JAX is multithreaded, so ``fork`` could deadlock).

    Functions and arguments are pickled: pass module-level functions.

    Args:
        num_workers: Processes (default: the CPU count).

    """

    def __init__(self, num_workers: int | None = None):
        if num_workers is not None:
            num_workers = check_positive_int(num_workers, "num_workers")
        self._pool = concurrent.futures.ProcessPoolExecutor(
            num_workers, mp_context=multiprocessing.get_context("spawn")
        )
        self._num_workers = self._pool._max_workers

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:  # noqa: D102
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:  # noqa: D102
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def num_workers(self) -> int:  # noqa: D102
        return self._num_workers


class DaskExecutor(Executor):
    """Dask distributed: a ``LocalCluster`` on loopback, or an existing cluster by address.

    Functions are shipped with cloudpickle; a worker that dies has its tasks re-run on
    the others by the scheduler (so a campaign survives a lost worker).

    Args:
        scheduler: ``"tcp://host:port"`` of a running scheduler; ``None`` starts a
            ``LocalCluster`` of ``num_workers`` single-threaded worker processes listening
            on 127.0.0.1 only (no dashboard), closed on :meth:`shutdown`.
        num_workers: Workers of the local cluster (default 2); with a ``scheduler``
            the cluster's own workers are used and this must be ``None``.

    Raises:
        ImportError: If ``dask.distributed`` is not installed (extra ``scale``).
        ValueError: If ``scheduler`` is not a ``tcp://`` (or ``tls://``) address, or both
            ``scheduler`` and ``num_workers`` are given.

    """

    def __init__(self, scheduler: str | None = None, num_workers: int | None = None):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as error:  # pragma: no cover - depends on the installation
            raise ImportError(
                "the dask executor needs dask.distributed: pip install 'astrobayes[scale]'"
            ) from error
        _check_settings("dask", scheduler, num_workers)
        self._cluster = None
        if scheduler is None:
            num_workers = 2 if num_workers is None else num_workers
            self._cluster = LocalCluster(
                n_workers=num_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            self._client = Client(self._cluster)
        else:
            self._client = Client(scheduler)
        self._executor = self._client.get_executor(pure=False)

    @property
    def client(self):
        """The ``dask.distributed.Client``."""
        return self._client

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:  # noqa: D102
        return self._executor.submit(fn, *args)

    def shutdown(self) -> None:  # noqa: D102
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    @property
    def num_workers(self) -> int:  # noqa: D102
        return len(self._client.scheduler_info(n_workers=-1)["workers"])


@dataclass(frozen=True)
class ExecutorConfig:
    """Where Python functions run (a TOML ``[executor]`` table; :func:`make_executor`).

    Attributes:
        kind: ``"process"`` (default: a local process pool), ``"serial"`` (this process)
            or ``"dask"`` (a ``LocalCluster``, or the cluster at ``scheduler``).
        num_workers: Processes or local Dask workers (default: the CPU count for
            ``process``, 2 for a local Dask cluster); not with ``scheduler``.
        scheduler: ``"tcp://host:port"`` of a running Dask scheduler (``dask`` only).

    Example:
        >>> with ExecutorConfig("serial").make() as executor:
        ...     executor.submit(pow, 2, 5).result()
        32

    """

    kind: str = "process"
    num_workers: int | None = None
    scheduler: str | None = None

    def __post_init__(self):
        _check_settings(self.kind, self.scheduler, self.num_workers)
        # only here, not in make_executor: the sbi CLI passes its max_workers to whichever
        # backend the TOML names, serial included, which then ignores it
        if self.kind == "serial" and self.num_workers not in (None, 1):
            raise ValueError(
                f"a serial executor has one worker; got num_workers = {self.num_workers}"
            )

    def make(self) -> Executor:
        """Start the executor (use it as a context manager, which releases its workers)."""
        return make_executor(self.kind, scheduler=self.scheduler, num_workers=self.num_workers)


def make_executor(
    name: str, *, scheduler: str | None = None, num_workers: int | None = None
) -> Executor:
    """The executor a TOML file names: ``"serial"``, ``"process"`` or ``"dask"``.

    Args:
        name: Backend name (:data:`EXECUTORS`).
        scheduler: Dask scheduler address (``"dask"`` only; ``None``: a LocalCluster).
        num_workers: Workers (processes, or local Dask workers).

    Returns:
        The :class:`Executor` (use it as a context manager).

    Raises:
        ValueError: On an unknown name, or a ``scheduler`` given to another backend.

    Example:
        >>> with make_executor("serial") as executor:
        ...     executor.num_workers
        1

    """
    _check_settings(name, scheduler, num_workers)
    if name == "serial":
        return SerialExecutor()
    if name == "process":
        return ProcessExecutor(num_workers)
    return DaskExecutor(scheduler, num_workers)


def _check_settings(name: str, scheduler: str | None, num_workers: int | None) -> None:
    """The one check of an executor's settings.

    ``ExecutorConfig``, ``make_executor`` and ``DaskExecutor`` all call it, so the TOML and
    the Python API refuse bad settings in the same words.
    """
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}; got {name!r}")
    if num_workers is not None:
        check_positive_int(num_workers, "num_workers")
    if scheduler is not None:
        if name != "dask":
            raise ValueError(f"scheduler is for executor = 'dask'; got executor = {name!r}")
        if not isinstance(scheduler, str) or not scheduler.startswith(("tcp://", "tls://")):
            raise ValueError(
                f"scheduler must be an address like 'tcp://host:8786'; got {scheduler!r}"
            )
        if num_workers is not None:
            raise ValueError(
                f"num_workers sizes a local cluster; with scheduler = {scheduler!r} the "
                f"cluster's own workers are used (got num_workers = {num_workers})"
            )


def seeds_for(key: PRNGKeyArray, indices: np.ndarray) -> np.ndarray:
    """The seed of each simulation index, in ``[0, 2**31)``: a function of ``(key, i)`` only.

    SplitMix64 (Steele, Lea & Flood 2014) of the key's words combined with the index:
    vectorised NumPy, so a campaign of any size gets its seeds at once without compiling
    anything, and a resumed or re-chunked campaign gets the same seeds.

    Example:
        >>> import jax, numpy as np
        >>> a = seeds_for(jax.random.key(0), np.arange(4))
        >>> bool((a[2:] == seeds_for(jax.random.key(0), np.arange(2, 4))).all())
        True

    """
    check_key(key)
    words = np.asarray(jax.random.key_data(key), np.uint64).reshape(-1)
    base = np.uint64(0x243F6A8885A308D3)
    with np.errstate(over="ignore"):
        for word in words:
            base = _splitmix64(base ^ word)
        index = np.asarray(indices, np.uint64)
        mixed = _splitmix64(base ^ _splitmix64(index + np.uint64(0x9E3779B97F4A7C15)))
    return (mixed >> np.uint64(33)).astype(np.int64)


def _splitmix64(value):
    """The SplitMix64 finaliser on uint64 (wrapping arithmetic)."""
    value = np.asarray(value, np.uint64)
    value = value + np.uint64(0x9E3779B97F4A7C15)
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


class CampaignStore(Protocol):
    """Where finished chunks of a campaign are kept (see ``astrobayes.io.CampaignStore``)."""

    def start(self, manifest: dict[str, Any]) -> None:
        """Record the campaign's identity; refuse a store that holds another campaign."""

    def completed(self) -> set[int]:
        """Indices of the chunks already stored."""

    def write_chunk(self, chunk: int, arrays: dict[str, np.ndarray]) -> None:
        """Store one finished chunk atomically."""

    def load_chunks(self) -> dict[int, dict[str, np.ndarray]]:
        """Every stored chunk by index."""


class CampaignStatus(Status):
    """Outcome of a campaign; the value is the message."""

    SUCCESS = (Severity.OK, "every simulation of the campaign succeeded")
    SOME_FAILED = (
        Severity.WARNING,
        "warning: some simulations failed (non-finite output or an exception); their rows "
        "hold NaN and is_valid marks them",
    )
    ALL_FAILED = (Severity.FAILURE, "every simulation of the campaign failed")


class CampaignResult(NamedTuple):
    """A complete campaign, in index order.

    Attributes:
        theta: Parameters, ``(num_simulations, dim)``.
        x: Outputs, ``(num_simulations, *data_shape)``; NaN rows where a simulation failed.
        seeds: The seed of each simulation.
        is_valid: ``False`` where the simulator raised or returned non-finite values.
        errors: The message of each failed simulation (``""`` where it succeeded).
        num_resumed: Chunks found in the store (not simulated again).
        num_chunks: Chunks in the campaign.
        status: A :class:`CampaignStatus`.

    """

    theta: np.ndarray
    x: np.ndarray
    seeds: np.ndarray
    is_valid: np.ndarray
    errors: tuple[str, ...]
    num_resumed: int
    num_chunks: int
    status: CampaignStatus


def run_campaign(
    key: PRNGKeyArray,
    simulate_fn: Callable[[int, np.ndarray], Any],
    theta: Sequence[Sequence[float]] | np.ndarray,
    *,
    executor: Executor | None = None,
    store: CampaignStore | None = None,
    chunk_size: int = 10,
    name: str = "campaign",
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> CampaignResult:
    """Simulate every row of ``theta`` through ``executor``, resumable through ``store``.

    Args:
        key: Campaign key; simulation ``i`` uses ``seeds_for(key, [i])``.
        simulate_fn: ``simulate(seed, theta_row) -> x`` (picklable for process and Dask
            workers: a module-level function).
        theta: Parameters, ``(num_simulations, dim)``.
        executor: Where to run (default :class:`SerialExecutor`); not shut down here.
        store: Keeps finished chunks; chunks already in it are not simulated again.
        chunk_size: Simulations per task and per stored chunk (more workers than chunks
            leaves workers idle).
        name: Campaign name recorded in the store's manifest.
        progress_fn: Called as ``progress_fn("simulations", done, total)`` per chunk.
        throw: Raise :class:`~astrobayes.UnreliableResultError` when every simulation
            failed.

    Returns:
        :class:`CampaignResult` with exactly ``num_simulations`` rows in index order.

    Raises:
        ValueError: On bad ``theta``, outputs of different shapes, or a store that holds
            another campaign (other key, parameters or chunking).

    Example:
        >>> import jax, numpy as np
        >>> def simulate(seed, theta):
        ...     return theta + np.random.default_rng(seed).normal(size=theta.shape)
        >>> result = run_campaign(jax.random.key(0), simulate, np.zeros((5, 2)), chunk_size=2)
        >>> result.x.shape, result.num_chunks
        ((5, 2), 3)

    """
    check_key(key)
    if not callable(simulate_fn):
        raise TypeError(f"simulate_fn must be callable; got {type(simulate_fn).__name__}")
    theta = as_float_array(theta, "theta", ndim=2)
    if theta.shape[0] == 0 or not np.all(np.isfinite(theta)):
        raise ValueError(
            f"theta must be a finite, non-empty (num_simulations, dim) array; got {theta.shape}"
        )
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    executor = SerialExecutor() if executor is None else executor
    if not isinstance(executor, Executor):
        raise TypeError(f"executor must be an astrobayes Executor; got {type(executor).__name__}")
    num = theta.shape[0]
    seeds = seeds_for(key, np.arange(num))
    bounds = [(start, min(start + chunk_size, num)) for start in range(0, num, chunk_size)]
    if store is not None:
        store.start(
            {
                "name": str(name),
                "num_simulations": num,
                "chunk_size": chunk_size,
                "dim": int(theta.shape[1]),
                "fingerprint": _fingerprint(seeds, theta),
            }
        )
    stored = store.completed() if store is not None else set()
    chunks: dict[int, dict[str, np.ndarray]] = (
        {i: c for i, c in store.load_chunks().items() if i in stored} if store is not None else {}
    )
    todo = [index for index in range(len(bounds)) if index not in stored]
    done = sum(b - a for i, (a, b) in enumerate(bounds) if i in stored)
    if progress_fn is not None:
        progress_fn("simulations", done, num)
    # A bounded number of chunks in flight: a serial executor simulates one chunk at a
    # time (stored before the next starts), and a cluster never holds the whole campaign.
    in_flight = max(2, 2 * executor.num_workers)
    pending: dict[concurrent.futures.Future, int] = {}
    try:
        while todo or pending:
            while todo and len(pending) < in_flight:
                index = todo.pop(0)
                a, b = bounds[index]
                future = executor.submit(simulate_chunk, simulate_fn, seeds[a:b], theta[a:b])
                pending[future] = index
            finished, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in sorted(finished, key=pending.get):
                index = pending.pop(future)
                a, b = bounds[index]
                outputs, errors = future.result()
                arrays = _chunk_arrays(outputs, errors, seeds[a:b], theta[a:b], a)
                if store is not None:
                    store.write_chunk(index, arrays)
                chunks[index] = arrays
                done += b - a
                if progress_fn is not None:
                    progress_fn("simulations", done, num)
    finally:
        for future in pending:
            future.cancel()
    return check(_assemble(chunks, bounds, len(stored)), throw)


def _chunk_arrays(outputs, errors, seeds, theta, start: int) -> dict[str, np.ndarray]:
    shapes = {np.shape(x) for x in outputs if x is not None}
    if len(shapes) > 1:
        raise ValueError(f"simulator returned outputs of different shapes: {sorted(shapes)}")
    shape = shapes.pop() if shapes else (0,)
    x = np.full((len(outputs), *shape), np.nan)
    for i, out in enumerate(outputs):
        if out is not None:
            x[i] = out
    return {
        "index": start + np.arange(len(outputs)),
        "theta": np.asarray(theta, float),
        "x": x,
        "seed": np.asarray(seeds, np.int64),
        "error": np.asarray(["" if e is None else e for e in errors], dtype=str),
    }


def _assemble(chunks, bounds, num_resumed: int) -> CampaignResult:
    ordered = [chunks[i] for i in range(len(bounds))]
    shapes = {c["x"].shape[1:] for c in ordered if c["x"].shape[1:] != (0,)}
    if len(shapes) > 1:
        raise ValueError(f"chunks disagree in output shape: {sorted(shapes)}")
    shape = shapes.pop() if shapes else (0,)
    x = np.concatenate(
        [
            c["x"] if c["x"].shape[1:] == shape else np.full((len(c["index"]), *shape), np.nan)
            for c in ordered
        ]
    )
    index = np.concatenate([c["index"] for c in ordered])
    if not np.array_equal(index, np.arange(bounds[-1][1])):
        raise ValueError("the stored chunks do not cover the campaign exactly once")
    errors = tuple(str(e) for c in ordered for e in c["error"])
    finite = (
        np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)
        if x.size
        else np.zeros(len(index), bool)
    )
    is_valid = finite & np.array([e == "" for e in errors])
    if not is_valid.any():
        status = CampaignStatus.ALL_FAILED
    elif not is_valid.all():
        status = CampaignStatus.SOME_FAILED
    else:
        status = CampaignStatus.SUCCESS
    return CampaignResult(
        theta=np.concatenate([c["theta"] for c in ordered]),
        x=x,
        seeds=np.concatenate([c["seed"] for c in ordered]),
        is_valid=is_valid,
        errors=errors,
        num_resumed=num_resumed,
        num_chunks=len(bounds),
        status=status,
    )


def _fingerprint(seeds: np.ndarray, theta: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha256(b"astrobayes-campaign-v1")
    digest.update(np.ascontiguousarray(seeds, np.int64).tobytes())
    digest.update(np.ascontiguousarray(theta, np.float64).tobytes())
    return digest.hexdigest()[:32]
