"""Validation helpers for the public boundary.

Every public entry point validates its input eagerly, outside ``jit``, and raises a
``ValueError``/``TypeError`` that names the argument, what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_fraction",
    "check_key",
    "check_positive_int",
    "check_positive_number",
]


def as_float_array(value: Any, name: str, *, ndim: int | Sequence[int] | None = None) -> np.ndarray:
    """Convert ``value`` to a float64 NumPy array and check its number of dimensions.

    Args:
        value: Array-like input.
        name: Argument name used in error messages.
        ndim: Allowed number(s) of dimensions, or ``None`` for any.

    Returns:
        The array as ``float64``.

    Raises:
        TypeError: If ``value`` is not numeric.
        ValueError: If its number of dimensions is not allowed.

    """
    try:
        array = np.asarray(value)
    except Exception as error:  # pragma: no cover - numpy raises many types
        raise TypeError(
            f"{name} must be array-like of numbers; got {type(value).__name__}"
        ) from error
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be an array of numbers; got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must be real; got dtype {array.dtype}")
    array = array.astype(np.float64)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            expected = " or ".join(str(n) for n in allowed)
            raise ValueError(
                f"{name} must have {expected} dimensions; got shape {array.shape} ({array.ndim} dimensions)"
            )
    return array


def check_finite(array: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming the first non-finite entry of ``array``."""
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite; {int(bad.sum())} entries are not "
            f"(first at index {index}: {array[index]!r})"
        )


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer ``>= minimum`` and return it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_positive_number(value: Any, name: str) -> None:
    """Check that ``value`` is a finite Python number ``> 0`` (a config setting)."""
    if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")


def check_fraction(value: Any, name: str, *, low: float = 0.0, high: float = 1.0) -> float:
    """Check that ``value`` is a float strictly inside ``(low, high)`` and return it."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{name} must be a number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not (low < value < high) or not np.isfinite(value):
        raise ValueError(f"{name} must lie strictly between {low} and {high}; got {value}")
    return value


def check_key(key: Any, name: str = "key") -> None:
    """Check that ``key`` looks like a JAX PRNG key."""
    import jax

    if isinstance(key, int | np.integer):
        raise TypeError(
            f"{name} must be a JAX PRNG key (jax.random.key(seed)); got the integer {key!r}"
        )
    try:
        dtype = key.dtype
    except AttributeError:
        raise TypeError(
            f"{name} must be a JAX PRNG key (jax.random.key(seed)); got {type(key).__name__}"
        ) from None
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return
    if np.shape(key) == (2,) and np.issubdtype(dtype, np.unsignedinteger):
        return
    raise TypeError(f"{name} must be a JAX PRNG key (jax.random.key(seed)); got dtype {dtype}")
