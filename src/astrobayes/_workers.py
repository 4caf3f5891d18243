"""What worker processes run for a Python simulator: kept light (NumPy only).

A process or Dask worker unpickles these functions by importing this module, so it must
not pull in JAX or the rest of the package (a spawned worker would spend seconds
importing them). :mod:`astrobayes.sbi.executors` and :mod:`astrobayes.sbi.simulators`
submit them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["call_safely", "simulate_chunk"]


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
