"""Log-likelihoods that are not JAX code: NumPy, SciPy, or wrappers of CAMB and CLASS.

Much of astronomy's likelihood code is plain Python calling compiled libraries (a
Boltzmann code, a SciPy integral, a C extension), which JAX can neither trace nor
differentiate. :class:`PythonLikelihood` wraps such a function ``f(params) -> ln L``
(``params = {name: float}``) so that it can stand where a JAX log-likelihood stands, in
:meth:`astrobayes.models.Model.from_priors`: when the model is evaluated, the parameter
values leave JAX through :func:`jax.pure_callback`, the function runs on the host in
float64 (one call per parameter point, in this process or on the workers of an executor:
processes or a Dask cluster, :mod:`astrobayes.sbi.executors`), and ``ln L`` comes back.
Under :func:`jax.vmap` a whole batch of points (SMC's particles) arrives at once and is
split into chunks over the workers, so a slow likelihood scales with the workers.

There are no gradients: samplers that need them (NUTS, flow MCMC's MALA steps) refuse the
model with a ``TypeError`` naming it. Preconditioned SMC
(:func:`astrobayes.sampling.run_smc`, ``sampler_kind = "smc"`` in ``astrobayes run``) moves
its particles by random-walk Metropolis in a flow's latent space and needs none, as in
pocoMC (Karamanis et al. 2022), the sampler built for such likelihoods.

A call that raises, or returns NaN, ``+inf`` or more than one number, is given zero
likelihood (``ln L = -inf``), as Cobaya does with a theory code that fails at a point
(Torrado & Lewis 2021); each is counted, the first distinct messages are kept with the
point, and :attr:`PythonLikelihood.status` is a warning when any happened: the posterior
and evidence are then those of the prior restricted to where the code ran.

References:
    Karamanis, Beutler, Peacock, Nabergoj & Seljak (2022), arXiv:2207.05652 (pocoMC);
    Torrado & Lewis (2021), arXiv:2005.05290 (Cobaya).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from astrobayes._checks import check_positive_int
from astrobayes._status import Severity, Status
from astrobayes._workers import log_likelihood_chunk

__all__ = ["PythonLikelihood", "PythonLikelihoodStatus", "map_rows"]

#: Distinct failure messages kept (with the point of their first occurrence).
MAX_KEPT_ERRORS = 5


class PythonLikelihoodStatus(Status):
    """Outcome of a :class:`PythonLikelihood`'s calls so far."""

    OK = (Severity.OK, "ok")
    FAILED_CALLS = (
        Severity.WARNING,
        "warning: some calls of the Python log-likelihood raised or returned NaN, +inf or "
        "more than one number; those points were given zero likelihood (ln L = -inf), so "
        "the posterior and ln z are those of the prior restricted to where the code ran",
    )


def map_rows(
    fn: Callable[..., float],
    names: tuple[str, ...],
    rows,
    *,
    constants: Mapping[str, float] | None = None,
    data: Mapping[str, np.ndarray] | None = None,
    executor: Any = None,
    chunks_per_worker: int = 4,
    what: str = "the function",
) -> tuple[np.ndarray, list[str | None]]:
    """A plain-Python ``fn(params)`` on every row of ``rows``, spread over ``executor``.

    The one way Python functions of parameters run here: a :class:`PythonLikelihood`'s
    calls and a Python model's derived parameters alike.

    Args:
        fn: ``f(params)`` (or ``f(params, data)``) returning one number;
            ``params = {name: float}`` plus ``constants``.
        names: The parameter of each column of ``rows``.
        rows: ``(n, len(names))`` values.
        constants: Added to every ``params``.
        data: Passed as the second argument when given.
        executor: ``None`` (this process) or anything with ``submit``; the rows are split
            into about ``chunks_per_worker`` chunks per worker.
        chunks_per_worker: See ``executor``.
        what: Names the function in the error of a worker that could not run it.

    Returns:
        ``(values, errors)``: NaN and a message where a call raised or returned NaN,
        ``+inf`` or more than one number (``_workers.log_likelihood_chunk``).

    Raises:
        RuntimeError: If a worker could not run ``fn`` at all (e.g. could not import it).

    Example:
        >>> values, errors = map_rows(lambda p: p["x"] + p["c"], ("x",), [[1.0], [2.0]],
        ...     constants={"c": 10.0})
        >>> values.tolist(), errors
        ([11.0, 12.0], [None, None])

    """
    rows = np.asarray(rows, np.float64).reshape(-1, len(names))
    constants = dict(constants or {})
    if executor is None or len(rows) <= 1:
        return log_likelihood_chunk(fn, names, constants, data, rows)
    workers = getattr(executor, "num_workers", None) or getattr(executor, "_max_workers", 1)
    num_chunks = min(len(rows), max(1, int(workers)) * chunks_per_worker)
    futures = [
        executor.submit(log_likelihood_chunk, fn, names, constants, data, chunk)
        for chunk in np.array_split(rows, num_chunks)
    ]
    try:
        parts = [future.result() for future in futures]
    except Exception as error:
        raise RuntimeError(
            f"a worker could not run {what} ({type(error).__name__}: {error})"
        ) from error
    return np.concatenate([part[0] for part in parts]), [e for part in parts for e in part[1]]


class PythonLikelihood:
    """A Python (non-JAX) log-likelihood, callable inside JAX programs without gradients.

    Args:
        log_likelihood_fn: ``f(params)`` (or ``f(params, data)`` when ``data`` is given)
            returning the natural log of a normalised likelihood as one real number;
            ``params`` maps each parameter name to a Python ``float`` (float64). With a
            process or Dask executor it must be picklable: a module-level function.
        data: Optional ``{name: array}`` passed to every call (sent with every chunk of
            points to an executor's workers).
        constants: Optional ``{name: float}`` added to ``params`` (fixed parameters).
        executor: Where the calls run: ``None`` in this process, one after another; or
            anything with ``submit(fn, *args) -> Future`` (an
            :class:`astrobayes.sbi.executors.Executor`, a
            :class:`concurrent.futures.Executor`), whose workers share each batch.
        chunks_per_worker: A batch is split into about this many chunks per worker (more:
            better balance when calls take unequal times; fewer: less overhead).
        name: Shown in errors (the model's name).

    Example:
        >>> import math, jax, numpyro.distributions as dist
        >>> from astrobayes.models import Model
        >>> def log_likelihood(params):  # plain Python: math, not jax.numpy
        ...     return -0.5 * params["x"] ** 2 - 0.5 * math.log(2 * math.pi)
        >>> likelihood = PythonLikelihood(log_likelihood, name="m")
        >>> model = Model.from_priors("m", likelihood, {"x": dist.Uniform(-5.0, 5.0)})
        >>> values = jax.jit(jax.vmap(lambda x: likelihood({"x": x})))(jax.numpy.arange(3.0))
        >>> [round(float(v), 4) for v in values], likelihood.evaluations
        ([-0.9189, -1.4189, -2.9189], 3)
        >>> try:
        ...     jax.grad(lambda x: likelihood({"x": x}))(1.0)
        ... except TypeError as error:
        ...     print(str(error).split(":")[0])
        model 'm' has a Python log-likelihood, which has no gradients

    """

    def __init__(
        self,
        log_likelihood_fn: Callable[..., float],
        *,
        data: Mapping[str, Any] | None = None,
        constants: Mapping[str, float] | None = None,
        executor: Any = None,
        chunks_per_worker: int = 4,
        name: str = "python_likelihood",
    ):
        if not callable(log_likelihood_fn):
            raise TypeError(
                f"log_likelihood_fn must be callable; got {type(log_likelihood_fn).__name__}"
            )
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(
                "executor must have submit(fn, *args) -> Future (an astrobayes.sbi.executors "
                f"Executor or a concurrent.futures.Executor) or be None; got {type(executor).__name__}"
            )
        self.log_likelihood_fn = log_likelihood_fn
        self.data = None if data is None else {k: np.asarray(v) for k, v in data.items()}
        self.constants = {k: float(v) for k, v in (constants or {}).items()}
        self.executor = executor
        self.chunks_per_worker = check_positive_int(chunks_per_worker, "chunks_per_worker")
        self.name = name
        self._lock = threading.Lock()
        self._evaluations = 0
        self._failures = 0
        self._errors: dict[str, dict[str, float]] = {}

    # -- inside JAX ---------------------------------------------------------------------

    def __call__(self, params: Mapping[str, jax.Array]) -> jax.Array:
        """``ln L`` at ``params`` (scalars by name), as a JAX value (traceable, vmappable)."""
        names = tuple(params)
        dtype = jnp.result_type(float)  # float32, or float64 under jax_enable_x64
        values = []
        for name in names:
            value = jnp.asarray(params[name], dtype)
            if value.shape != ():
                raise ValueError(
                    f"model {self.name!r}: a Python log-likelihood takes scalar parameters; "
                    f"{name!r} has shape {value.shape}"
                )
            values.append(value)
        theta = jnp.stack(values)
        result_shape = jax.ShapeDtypeStruct((), dtype)

        def host(points):
            return self._host(names, points).astype(dtype)

        @jax.custom_jvp
        def call(theta):
            return jax.pure_callback(host, result_shape, theta, vmap_method="broadcast_all")

        @call.defjvp
        def _no_gradient(primals, tangents):
            raise TypeError(
                f"model {self.name!r} has a Python log-likelihood, which has no gradients: "
                'sample it with SMC (sampler_kind = "smc" in astrobayes run, or '
                "sampling=SMCConfig() in compare); NUTS and flow MCMC need gradients"
            )

        return call(theta)

    def _host(self, names: tuple[str, ...], points) -> np.ndarray:
        points = np.asarray(points, np.float64)
        values, _ = self.evaluate(names, points)
        return np.where(np.isnan(values), -np.inf, values).reshape(points.shape[:-1])

    # -- on the host ----------------------------------------------------------------------

    def evaluate(self, names: tuple[str, ...], rows) -> tuple[np.ndarray, list[str | None]]:
        """The function on each row of ``rows`` (``(n, len(names))``): ``(values, errors)``.

        Failed calls give NaN and their message (and are counted, see :attr:`status`).
        """
        rows = np.asarray(rows, np.float64).reshape(-1, len(names))
        values, errors = map_rows(
            self.log_likelihood_fn,
            names,
            rows,
            constants=self.constants,
            data=self.data,
            executor=self.executor,
            chunks_per_worker=self.chunks_per_worker,
            what=f"model {self.name!r}'s Python log-likelihood",
        )
        self._record(names, rows, errors)
        return values, errors

    def check(self, params: Mapping[str, float], *, on_workers: bool = True) -> float:
        """Call the function once at ``params`` and raise on any failure (before a run).

        The call runs here and, with an executor and ``on_workers``, once more on a
        worker: a cluster whose workers cannot import the function fails now, not in the
        middle of a run. Neither call is counted in :attr:`evaluations`.

        Args:
            params: ``{name: value}`` of the sampled parameters (a prior draw).
            on_workers: Also call it on a worker of the executor (when there is one).

        Returns:
            ``ln L`` at ``params`` (``-inf`` is allowed).

        Raises:
            ValueError: If a call raises or returns anything but one number that is not
                NaN or ``+inf``; the message names the model and the point.

        """
        names = tuple(params)
        point = {n: float(params[n]) for n in names}
        row = np.array([[point[n] for n in names]])
        args = (self.log_likelihood_fn, names, self.constants, self.data, row)
        try:
            values, errors = log_likelihood_chunk(*args)
        except Exception as error:  # the function could not be loaded (an import error)
            raise ValueError(
                f"model {self.name!r}: cannot load the Python log-likelihood: "
                f"{type(error).__name__}: {error}"
            ) from error
        if errors[0] is not None:
            raise ValueError(
                f"model {self.name!r}: the Python log-likelihood at {point}: {errors[0]}"
            )
        if self.executor is not None and on_workers:
            try:
                remote, remote_errors = self.executor.submit(log_likelihood_chunk, *args).result()
            except Exception as error:
                raise ValueError(
                    f"model {self.name!r}: a worker of the executor could not run the Python "
                    f"log-likelihood: {type(error).__name__}: {error}"
                ) from error
            if remote_errors[0] is not None or remote[0] != values[0]:
                raise ValueError(
                    f"model {self.name!r}: the Python log-likelihood at {point} gave "
                    f"{values[0]} here and {remote[0]} on a worker "
                    f"({remote_errors[0] or 'no error'}): the workers must run the same code"
                )
        return float(values[0])

    def _record(self, names, rows, errors) -> None:
        with self._lock:
            self._evaluations += len(errors)
            for row, error in zip(rows, errors, strict=True):
                if error is None:
                    continue
                self._failures += 1
                if error not in self._errors and len(self._errors) < MAX_KEPT_ERRORS:
                    self._errors[error] = dict(zip(names, map(float, row), strict=True))

    @property
    def evaluations(self) -> int:
        """Calls of the function so far (every point of every batch)."""
        return self._evaluations

    @property
    def failures(self) -> int:
        """Calls that raised or returned NaN, ``+inf`` or more than one number."""
        return self._failures

    @property
    def errors(self) -> dict[str, dict[str, float]]:
        """The first distinct failure messages, each with the point where it first came."""
        with self._lock:
            return {message: dict(point) for message, point in self._errors.items()}

    @property
    def status(self) -> PythonLikelihoodStatus:
        """:attr:`PythonLikelihoodStatus.FAILED_CALLS` once any call failed, else OK."""
        return PythonLikelihoodStatus.FAILED_CALLS if self._failures else PythonLikelihoodStatus.OK

    def to_dict(self) -> dict[str, Any]:
        """Counts, status and kept messages, for ``results.json``."""
        return {
            "evaluations": self.evaluations,
            "failures": self.failures,
            "status": self.status.name.lower(),
            "status_message": self.status.value,
            "errors": [{"message": m, "at": p} for m, p in self.errors.items()],
        }
