"""What worker processes run for a Python simulator or likelihood: kept light (NumPy only).

A process or Dask worker unpickles these functions by importing this module, so it must
not pull in JAX or the rest of the package (a spawned worker would spend seconds
importing them; ``import astrobayes`` itself imports no JAX, a test checks both).
:mod:`astrobayes.sbi.executors`, :mod:`astrobayes.sbi.simulators` and
:class:`astrobayes.models.PythonLikelihood` submit them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ModuleFunction", "call_safely", "log_likelihood_chunk", "simulate_chunk"]


def call_safely(simulate_fn: Callable, seed: int, theta: np.ndarray) -> tuple[Any, str | None]:
    """``(x, None)``, or ``(None, "Error: message")`` when the simulator raised.

    Example:
        >>> call_safely(lambda seed, t: t + seed, 1, np.zeros(2))[0].tolist()
        [1.0, 1.0]
        >>> call_safely(lambda seed, t: 1 / 0, 1, np.zeros(2))
        (None, 'ZeroDivisionError: division by zero')

    """
    try:
        return np.asarray(simulate_fn(seed, theta), dtype=float), None
    except Exception as error:  # noqa: BLE001 - any simulator failure is data
        return None, f"{type(error).__name__}: {error}"


def simulate_chunk(
    simulate_fn: Callable, seeds: np.ndarray, theta: np.ndarray
) -> tuple[list[Any], list[str | None]]:
    """``(outputs, errors)`` of :func:`call_safely` on each ``(seed, row)`` of one chunk."""
    outputs, errors = [], []
    for seed, row in zip(np.asarray(seeds).tolist(), theta, strict=True):
        x, error = call_safely(simulate_fn, seed, row)
        outputs.append(x)
        errors.append(error)
    return outputs, errors


class ModuleFunction:
    """A function of a user's module that pickles by name and imports again where it runs.

    A worker (a spawned process, a Dask worker, on this machine or a cluster sharing the
    file system) imports ``module`` with ``folder`` first on its path, so a likelihood
    module beside a config file, and the modules it imports from that folder, are found
    without installing anything. Unpickling never imports (a Dask worker that cannot
    unpickle a task drops it silently): the import happens at the first call, and its
    error reaches the caller.

    Args:
        module: The module's name.
        attribute: The function's name in it.
        folder: Put first on ``sys.path`` before importing (``None``: the path as it is).
        function: The function itself, where it is already imported (this process).

    Example:
        >>> import pickle
        >>> f = pickle.loads(pickle.dumps(ModuleFunction("math", "hypot")))
        >>> f(3.0, 4.0)
        5.0

    """

    def __init__(
        self,
        module: str,
        attribute: str,
        folder: str | None = None,
        function: Callable | None = None,
    ):
        self.module = module
        self.attribute = attribute
        self.folder = folder
        self._function = function

    @property
    def function(self) -> Callable:
        """The function, imported on first use."""
        if self._function is None:
            if self.folder is not None and self.folder not in sys.path:
                sys.path.insert(0, self.folder)
            function = getattr(importlib.import_module(self.module), self.attribute, None)
            if not callable(function):
                raise ImportError(f"module {self.module!r} has no function {self.attribute!r}")
            self._function = function
        return self._function

    def __call__(self, *args: Any) -> Any:
        """Call the function."""
        return self.function(*args)

    def __getstate__(self) -> dict[str, Any]:
        return {"module": self.module, "attribute": self.attribute, "folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)


def log_likelihood_chunk(
    log_likelihood_fn: Callable,
    names: tuple[str, ...],
    constants: dict[str, Any],
    data: dict[str, np.ndarray] | None,
    rows: np.ndarray,
) -> tuple[np.ndarray, list[str | None]]:
    """A Python log-likelihood on each row of one chunk: ``(values, errors)``.

    Each row becomes ``params = {name: float}`` (plus ``constants``), and the function is
    called as ``f(params)`` or ``f(params, data)``. A call that raises, or returns
    anything but one real number, gives NaN and its error message; ``-inf`` (zero
    likelihood) is a value, not an error.

    Example:
        >>> values, errors = log_likelihood_chunk(
        ...     lambda p: -0.5 * p["x"] ** 2 if p["x"] < 2 else 1 / 0, ("x",), {}, None,
        ...     np.array([[1.0], [3.0]]))
        >>> values.tolist(), errors
        ([-0.5, nan], [None, 'ZeroDivisionError: division by zero'])

    """
    if isinstance(log_likelihood_fn, ModuleFunction):
        log_likelihood_fn = log_likelihood_fn.function  # an import error is not a point's
    values = np.full(len(rows), np.nan)
    errors: list[str | None] = []
    for i, row in enumerate(np.asarray(rows, np.float64)):
        params = {**constants, **{name: float(v) for name, v in zip(names, row, strict=True)}}
        try:
            out = log_likelihood_fn(params) if data is None else log_likelihood_fn(params, data)
            value = np.asarray(out, dtype=np.float64)
            if value.size != 1:
                raise ValueError(
                    f"the log-likelihood must return one number; got an array of shape "
                    f"{value.shape} (sum per-point terms yourself)"
                )
            value = float(value.reshape(()))
            if np.isnan(value) or value == np.inf:
                raise ValueError(f"the log-likelihood returned {value}")
        except Exception as error:  # noqa: BLE001 - any failure of the user's code is data
            errors.append(f"{type(error).__name__}: {error}")
            continue
        values[i] = value
        errors.append(None)
    return values, errors
