"""Running simulators: batched JAX functions or Python callables through an executor.

Two kinds of simulator are accepted:

* a JAX function ``simulate(key, theta) -> x`` for one parameter vector, run in batches
  with ``jax.vmap`` (wrap it in :class:`JaxSimulator`, or pass the function itself);
* any Python callable ``simulate(seed, theta) -> x`` (``seed`` an ``int``,
  ``theta`` a NumPy vector), wrapped in :class:`PythonSimulator` and run in parallel
  through an executor of :mod:`astrobayes.sbi.executors` (serial, a local process pool
  by default, or Dask distributed) or any :class:`concurrent.futures.Executor`.

Simulations are produced in chunks. Each chunk is handed to an optional ``sink`` (any
object with ``append(theta, x, failed_theta, failure_reasons)``, e.g.
:class:`astrobayes.io.simulations.SimulationStore`) as soon as it arrives, so a crash
loses at most the chunk in flight. Draws whose output is not finite or whose simulator
raised are counted, reported in :class:`SimulationResult` and excluded.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_key, check_positive_int, user_code_error
from astrobayes._status import Severity, Status, check
from astrobayes._types import ProgressFn
from astrobayes._workers import call_safely
from astrobayes.sbi.executors import Executor, ProcessExecutor

__all__ = [
    "JaxSimulator",
    "PythonSimulator",
    "SimulationResult",
    "SimulationSink",
    "FAILURE_WARNING_FRACTION",
    "FailureLocations",
    "SimulationStatus",
    "failure_locations",
    "run_simulations",
    "simulate_for_prior",
]


#: Above this fraction of failed simulations a run's status is a warning
#: (:attr:`SimulationStatus.SOME_FAILED`); at or below it, failures are counted and
#: reported but the status stays ok (:attr:`SimulationStatus.FEW_FAILED`).
FAILURE_WARNING_FRACTION = 0.01


class SimulationStatus(Status):
    """Outcome of a simulation run; the value is the message."""

    SUCCESS = (Severity.OK, "all simulations succeeded")
    FEW_FAILED = (
        Severity.OK,
        "at most 1% of simulations failed (non-finite output or an exception) and were excluded",
    )
    SOME_FAILED = (
        Severity.WARNING,
        "warning: more than 1% of simulations failed (non-finite output or an exception) "
        "and were excluded, so the posterior is conditional on the simulator succeeding; "
        "exclude the failing region from the prior explicitly, or model failure as data "
        "(see failure_locations for where failures happen)",
    )
    ALL_FAILED = (Severity.FAILURE, "every simulation failed; nothing to train on")


class FailureLocations(NamedTuple):
    """Where in parameter space simulations failed: per-parameter histograms.

    Attributes:
        edges: Bin edges per parameter, ``(dim, num_bins + 1)`` over the range of all
            attempted parameters.
        failed_fraction: Failed share of the attempts in each bin, ``(dim, num_bins)``
            (``nan`` for empty bins).
        failed_fraction_total: Failed share of all attempts.
        parameter: The parameter whose failed fraction varies most across its bins.
        summary: One line naming that parameter and the range where most failures are.

    """

    edges: np.ndarray
    failed_fraction: np.ndarray
    failed_fraction_total: float
    parameter: int
    summary: str


def failure_locations(
    theta: Float[Array, "num_valid dim"] | np.ndarray,
    failed_theta: Float[Array, "num_failed dim"] | np.ndarray,
    *,
    names: tuple[str, ...] | None = None,
    num_bins: int = 10,
) -> FailureLocations:
    """Say where simulations failed: the failed share per bin of each parameter.

    A posterior trained on the successful simulations only is conditional on success;
    when failures sit in one region (e.g. ``theta_0 > 0``), that region is effectively
    cut from the prior. This histogram shows which parameter and which range.

    Args:
        theta: Parameters whose simulation succeeded, ``(num_valid, dim)``.
        failed_theta: Parameters whose simulation failed, ``(num_failed, dim)``.
        names: Parameter names for the summary (default ``theta_i``).
        num_bins: Bins per parameter.

    Returns:
        :class:`FailureLocations`.

    Raises:
        ValueError: If the dimensions differ or nothing was attempted.

    Example:
        >>> import numpy as np
        >>> t = np.stack([np.linspace(-1, 1, 400), np.zeros(400)], axis=1)
        >>> bad = t[:, 0] > 0
        >>> failure_locations(t[~bad], t[bad]).summary  # doctest: +ELLIPSIS
        'failures concentrate in theta_0 in [..., 1]: 100% failed there, 0% elsewhere'

    """
    ok = np.asarray(theta, dtype=float).reshape(np.shape(theta)[0], -1)
    failed = np.asarray(failed_theta, dtype=float).reshape(np.shape(failed_theta)[0], -1)
    if ok.shape[0] + failed.shape[0] == 0:
        raise ValueError("theta and failed_theta are both empty; nothing was attempted")
    dim = ok.shape[1] if ok.shape[0] else failed.shape[1]
    if (ok.shape[0] and ok.shape[1] != dim) or (failed.shape[0] and failed.shape[1] != dim):
        raise ValueError(
            f"theta and failed_theta must have the same dim; got {ok.shape} and {failed.shape}"
        )
    num_bins = check_positive_int(num_bins, "num_bins")
    names = tuple(names) if names is not None else tuple(f"theta_{i}" for i in range(dim))
    both = np.concatenate([ok.reshape(-1, dim), failed.reshape(-1, dim)])
    edges = np.empty((dim, num_bins + 1))
    fraction = np.full((dim, num_bins), np.nan)
    for d in range(dim):
        low, high = both[:, d].min(), both[:, d].max()
        edges[d] = np.linspace(low, high if high > low else low + 1.0, num_bins + 1)
        n_ok = np.histogram(ok.reshape(-1, dim)[:, d], edges[d])[0]
        n_failed = np.histogram(failed.reshape(-1, dim)[:, d], edges[d])[0]
        total = n_ok + n_failed
        fraction[d] = np.where(total > 0, n_failed / np.maximum(total, 1), np.nan)
    total_fraction = failed.shape[0] / both.shape[0]
    spread = np.nan_to_num(np.nanmax(fraction, axis=1) - np.nanmin(fraction, axis=1))
    worst = int(np.argmax(spread))
    if failed.shape[0] == 0:
        summary = "no simulation failed"
    else:
        high = np.flatnonzero(np.nan_to_num(fraction[worst]) > 0.5)
        if high.size:
            lo, hi = edges[worst, high.min()], edges[worst, high.max() + 1]
            inside = np.nanmean(fraction[worst, high])
            outside = np.delete(fraction[worst], high)
            rest = f"{np.nanmean(outside):.0%}" if np.isfinite(outside).any() else "n/a"
            summary = (
                f"failures concentrate in {names[worst]} in [{lo:.3g}, {hi:.3g}]: "
                f"{inside:.0%} failed there, {rest} elsewhere"
            )
        else:
            summary = (
                f"{total_fraction:.1%} of simulations failed, spread over the prior "
                f"(largest variation along {names[worst]})"
            )
    return FailureLocations(
        edges=edges,
        failed_fraction=fraction,
        failed_fraction_total=float(total_fraction),
        parameter=worst,
        summary=summary,
    )


class SimulationResult(NamedTuple):
    """Simulations with failures removed.

    Attributes:
        theta: Parameters of the successful draws, ``(num_valid, dim)``.
        x: Their simulated data, ``(num_valid, *data_shape)``.
        num_requested: Draws attempted.
        num_non_finite: Draws whose output contained NaN or inf.
        num_raised: Draws whose simulator raised (Python simulators only).
        failure_examples: Up to five messages describing failures.
        failed_theta: Parameters whose simulation failed, ``(num_failed, dim)``.
        status: A :class:`SimulationStatus`.
        num_resumed: Draws read back from the sink's stored chunks (a resumed run)
            instead of simulated.

    """

    theta: np.ndarray
    x: np.ndarray
    num_requested: int
    num_non_finite: int
    num_raised: int
    failure_examples: tuple[str, ...]
    failed_theta: np.ndarray
    status: SimulationStatus
    num_resumed: int = 0

    @property
    def num_failed(self) -> int:
        """Total failed draws."""
        return self.num_non_finite + self.num_raised


class SimulationSink(Protocol):
    """Anything that stores a chunk of simulations as it arrives."""

    def append(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        failed_theta: np.ndarray,
        failure_reasons: list[str],
    ) -> Any:
        """Store one chunk (valid draws and failed parameters)."""


class JaxSimulator(eqx.Module):
    """A JAX simulator ``simulate(key, theta) -> x`` run in vmapped batches.

    Attributes:
        simulate_fn: Function of one key and one ``(dim,)`` parameter vector.
        batch_size: Parameters per ``vmap`` call (bounds the memory).

    """

    simulate_fn: Callable = eqx.field(static=True)
    batch_size: int = eqx.field(static=True, default=1024)

    def output_shape(self, dim: int, name: str = "the simulator") -> tuple[int, ...]:
        """The shape of one simulation, from one abstract trace (nothing is simulated).

        Args:
            dim: Number of parameters.
            name: The simulator in error messages (e.g. ``"simulator 'sim:run'"``).

        Returns:
            The shape of ``simulate_fn(key, theta)`` for a ``(dim,)`` ``theta``.

        Raises:
            ValueError: Naming ``name``, if its code raises while JAX traces it (with the
                remedy for Python control flow on traced values) or it returns anything
                but one real array.

        Example:
            >>> JaxSimulator(lambda key, theta: theta[0] + jax.random.normal(key, (5,))).output_shape(2)
            (5,)

        """
        theta = jax.ShapeDtypeStruct((check_positive_int(dim, "dim"),), jnp.result_type(float))
        try:
            out = jax.eval_shape(self.simulate_fn, jax.random.key(0), theta)
        except Exception as error:  # the user's code: say whose, and what JAX needs
            raise user_code_error(name, error) from error
        if not isinstance(out, jax.ShapeDtypeStruct) or not jnp.issubdtype(out.dtype, jnp.number):
            raise ValueError(f"{name} must return one real array; got {out}")
        return tuple(out.shape)

    def __call__(self, key: PRNGKeyArray, theta: Float[Array, "n dim"]) -> tuple[np.ndarray, list]:
        """Simulate every row of ``theta``; returns ``(x, errors)`` with ``errors`` empty."""
        keys = jax.random.split(key, theta.shape[0])
        batched = jax.jit(jax.vmap(self.simulate_fn))
        outputs = []
        for start in range(0, theta.shape[0], self.batch_size):
            stop = start + self.batch_size
            outputs.append(np.asarray(batched(keys[start:stop], jnp.asarray(theta[start:stop]))))
        return np.concatenate(outputs, axis=0), [None] * theta.shape[0]


class PythonSimulator:
    """A Python callable ``simulate(seed, theta) -> x`` run through an executor.

    Args:
        simulate_fn: Picklable module-level function of an ``int`` seed and a NumPy
            ``(dim,)`` vector, returning an array of fixed shape.
        executor: An :class:`astrobayes.sbi.executors.Executor` (serial, process or
            Dask: see :func:`~astrobayes.sbi.executors.make_executor`) or any
            :class:`concurrent.futures.Executor`. ``None`` runs each call on a
            :class:`~astrobayes.sbi.executors.ProcessExecutor` of ``max_workers``
            processes.
        max_workers: Workers of the default process pool.

    Example:
        >>> import numpy as np
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> sim = PythonSimulator(lambda seed, t: t + 1.0, executor=ThreadPoolExecutor(2))
        >>> import jax
        >>> x, errors = sim(jax.random.key(0), np.zeros((3, 2)))
        >>> x.shape
        (3, 2)

    """

    def __init__(
        self,
        simulate_fn: Callable,
        executor: Executor | concurrent.futures.Executor | None = None,
        max_workers: int | None = None,
    ):
        if not callable(simulate_fn):
            raise TypeError(f"simulate_fn must be callable; got {type(simulate_fn).__name__}")
        self.simulate_fn = simulate_fn
        self.executor = executor
        self.max_workers = max_workers

    def __call__(self, key: PRNGKeyArray, theta) -> tuple[np.ndarray, list[str | None]]:
        """Simulate every row of ``theta``; returns ``(x, errors)`` (NaN rows where raised)."""
        theta = np.asarray(theta, dtype=float)
        seeds = np.asarray(jax.random.randint(key, (theta.shape[0],), 0, 2**31 - 1)).tolist()
        if self.executor is None:
            with ProcessExecutor(self.max_workers) as pool:
                results = _submit_all(pool, self.simulate_fn, seeds, theta)
        else:
            results = _submit_all(self.executor, self.simulate_fn, seeds, theta)
        shapes = {np.shape(x) for x, err in results if err is None}
        if len(shapes) > 1:
            raise ValueError(f"simulator returned outputs of different shapes: {sorted(shapes)}")
        shape = shapes.pop() if shapes else ()
        x = np.full((theta.shape[0], *shape), np.nan)
        errors: list[str | None] = []
        for i, (out, err) in enumerate(results):
            if err is None:
                x[i] = out
            errors.append(err)
        return x, errors


def _submit_all(executor, simulate_fn: Callable, seeds: list[int], theta: np.ndarray) -> list:
    """``call_safely(simulate_fn, seed, row)`` of every row through ``executor``, in order."""
    futures = [
        executor.submit(call_safely, simulate_fn, s, t) for s, t in zip(seeds, theta, strict=True)
    ]
    return [f.result() for f in futures]


def _as_simulator(simulator: Any) -> Callable:
    if isinstance(simulator, JaxSimulator | PythonSimulator):
        return simulator
    if callable(simulator):
        return JaxSimulator(simulator)
    raise TypeError(
        "simulator must be a JaxSimulator, a PythonSimulator or a JAX function "
        f"simulate(key, theta); got {type(simulator).__name__}"
    )


def run_simulations(
    key: PRNGKeyArray,
    simulator: Any,
    theta,
    *,
    chunk_size: int = 1000,
    sink: SimulationSink | None = None,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> SimulationResult:
    """Simulate data for given parameters, chunk by chunk, excluding failures.

    Args:
        key: JAX PRNG key.
        simulator: :class:`JaxSimulator`, :class:`PythonSimulator` or a JAX function
            ``simulate(key, theta) -> x``.
        theta: Parameters, ``(num_simulations, dim)``.
        chunk_size: Simulations per chunk handed to ``sink``.
        sink: Optional store receiving each chunk as it arrives. A sink with
            ``stored_chunk(chunk, fingerprint)`` (:class:`astrobayes.io.SimulationStore`)
            is resumable: a chunk it already holds for the same parameters and key is
            read back instead of simulated again (the same arrays), and new chunks are
            appended with their place (``chunk=``, ``fingerprint=``).
        progress_fn: Called as ``progress_fn("simulations", done, total)`` after each
            chunk (the CLI's progress bar).
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) when every simulation failed.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        TypeError: If ``simulator`` is not callable.
        ValueError: If ``theta`` is not a finite 2-d array.
        UnreliableResultError: With ``throw=True``, when every simulation failed.

    """
    check_key(key)
    simulator = _as_simulator(simulator)
    theta = as_float_array(theta, "theta", ndim=2)
    if not np.all(np.isfinite(theta)):
        raise ValueError("theta must be finite")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    valid_theta, valid_x, failed_theta, examples = [], [], [], []
    num_non_finite = num_raised = num_resumed = 0
    keys = jax.random.split(key, max(1, -(-theta.shape[0] // chunk_size)))
    resumable = sink is not None and hasattr(sink, "stored_chunk")
    for index, start in enumerate(range(0, theta.shape[0], chunk_size)):
        chunk = theta[start : start + chunk_size]
        fingerprint = _chunk_fingerprint(keys[index], chunk) if resumable else None
        stored = sink.stored_chunk(index, fingerprint) if resumable else None
        if stored is not None:  # simulated before a kill: the same arrays, not again
            good, x_good, bad, reasons = stored
            num_resumed += chunk.shape[0]
        else:
            x, errors = simulator(keys[index], chunk)
            x = np.asarray(x, dtype=float)
            raised = np.array([e is not None for e in errors])
            finite = np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)
            ok = finite & ~raised
            good, x_good, bad = chunk[ok], x[ok], chunk[~ok]
            reasons = [
                errors[i] if errors[i] is not None else NON_FINITE_REASON
                for i in np.flatnonzero(~ok)
            ]
            if resumable:
                sink.append(good, x_good, bad, reasons, chunk=index, fingerprint=fingerprint)
            elif sink is not None:
                sink.append(good, x_good, bad, reasons)
        non_finite = sum(r == NON_FINITE_REASON for r in reasons)
        num_non_finite += non_finite
        num_raised += len(reasons) - non_finite
        examples += [f"theta={t.tolist()}: {r}" for t, r in zip(bad, reasons, strict=True)]
        examples = examples[:5]
        valid_theta.append(good)
        valid_x.append(x_good)
        failed_theta.append(bad)
        if progress_fn is not None:
            progress_fn("simulations", start + chunk.shape[0], theta.shape[0])
    theta_out = np.concatenate(valid_theta, axis=0)
    # a chunk whose every simulation raised has no output shape to give its empty x
    x_out = np.concatenate([x for x in valid_x if x.shape[0]] or valid_x, axis=0)
    num_failed = num_non_finite + num_raised
    if num_failed == theta.shape[0]:
        status = SimulationStatus.ALL_FAILED
    elif num_failed > FAILURE_WARNING_FRACTION * theta.shape[0]:
        status = SimulationStatus.SOME_FAILED
    elif num_failed:
        status = SimulationStatus.FEW_FAILED
    else:
        status = SimulationStatus.SUCCESS
    result = SimulationResult(
        theta=theta_out,
        x=x_out,
        num_requested=theta.shape[0],
        num_non_finite=num_non_finite,
        num_raised=num_raised,
        failure_examples=tuple(examples),
        failed_theta=np.concatenate(failed_theta, axis=0),
        status=status,
        num_resumed=num_resumed,
    )
    return check(result, throw)


NON_FINITE_REASON = "non-finite output"
"""The failure reason of a simulation that returned NaN or inf (others: the exception)."""


def _chunk_fingerprint(key, chunk: np.ndarray) -> str:
    """SHA-256 of a chunk's PRNG key and parameters: what identifies its simulations."""
    digest = hashlib.sha256(np.asarray(jax.random.key_data(key)).tobytes())
    digest.update(np.ascontiguousarray(chunk, np.float64).tobytes())
    return digest.hexdigest()


def simulate_for_prior(
    key: PRNGKeyArray,
    prior: Any,
    simulator: Any,
    num_simulations: int,
    *,
    chunk_size: int = 1000,
    sink: SimulationSink | None = None,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> SimulationResult:
    """Draw ``num_simulations`` parameters from ``prior`` (anything with ``sample(key, n)``) and simulate.

    Args:
        key: JAX PRNG key.
        prior: A :class:`~astrobayes.sbi.priors.Prior` or a proposal with ``sample``.
        simulator: See :func:`run_simulations`.
        num_simulations: Number of draws.
        chunk_size: Simulations per chunk.
        sink: Optional store for each chunk.
        progress_fn: See :func:`run_simulations`.
        throw: Raise :class:`astrobayes._status.UnreliableResultError` (carrying the
            result) when every simulation failed.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        UnreliableResultError: With ``throw=True``, when every simulation failed.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.sbi import Prior
        >>> prior = Prior.uniform([-1.0], [1.0])
        >>> def simulate(key, theta):
        ...     return theta + 0.1 * jax.random.normal(key, theta.shape)
        >>> result = simulate_for_prior(jax.random.key(0), prior, simulate, 100)
        >>> result.theta.shape, result.x.shape
        ((100, 1), (100, 1))

    """
    check_key(key)
    num_simulations = check_positive_int(num_simulations, "num_simulations")
    key_prior, key_simulate = jax.random.split(key)
    theta = np.asarray(prior.sample(key_prior, num_simulations), dtype=float)
    return run_simulations(
        key_simulate,
        simulator,
        theta,
        chunk_size=chunk_size,
        sink=sink,
        progress_fn=progress_fn,
        throw=throw,
    )
