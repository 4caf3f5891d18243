"""Validation helpers for the public boundary.

Every public entry point validates its input eagerly, outside ``jit``, and raises a
``ValueError``/``TypeError`` that names the argument, what was expected and what came.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_fraction",
    "check_key",
    "check_parameter_names",
    "check_positive_int",
    "check_positive_number",
    "scalar_output",
    "user_code_error",
    "UserFunctionOutputError",
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


PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]]*$")
"""A parameter name every chain format reads back: GetDist's ``.paramnames`` is
whitespace-separated and marks derived parameters with a trailing ``*``."""


def check_parameter_names(names: Sequence[str], name: str) -> None:
    """Refuse parameter names that chain files cannot hold (spaces, ``*``, empty, repeats).

    Args:
        names: The parameter names.
        name: Argument name used in error messages.

    Raises:
        ValueError: If there is no name, a name repeats, or a name is not a letter or
            ``_`` followed by letters, digits, ``_ . [ ]``.

    """
    names = list(names)
    if not names:
        raise ValueError(f"{name} must hold at least one parameter name; got none")
    if len(set(names)) != len(names):
        raise ValueError(f"{name} must be distinct; got {names}")
    bad = [n for n in names if not isinstance(n, str) or not PARAMETER_NAME.match(n)]
    if bad:
        raise ValueError(
            f"{name} must be GetDist parameter names (a letter or _, then letters, digits, "
            f"_ . [ ]; no spaces); got {bad}"
        )


class UserFunctionOutputError(ValueError):
    """A user's function (a log-likelihood, a derived parameter) returned the wrong thing."""


def scalar_output(value: Any, what: str):
    """``value`` as a real JAX scalar, or a clear error naming ``what`` returned it.

    Checked on abstract values while JAX traces, so it costs nothing at run time.
    ``numpyro.factor`` would silently sum an array: a function that returns per-point
    terms, or a vector by mistake, is refused here rather than summed.

    Args:
        value: What the user's function returned.
        what: Its description in the error, e.g. ``"the log-likelihood of model 'm'"``.

    Returns:
        ``value`` as a JAX array of shape ``()``.

    Raises:
        UserFunctionOutputError: (a ``ValueError``) if ``value`` is not a real number of
            shape ``()``.

    """
    import jax.numpy as jnp

    try:
        array = jnp.asarray(value)
    except TypeError:
        raise UserFunctionOutputError(
            f"{what} must return one number (a JAX scalar); got {type(value).__name__}"
        ) from None
    if array.shape != ():
        raise UserFunctionOutputError(
            f"{what} must return one number; got an array of shape {array.shape} (a "
            "total of per-point terms is jnp.sum(terms); a size-1 array's number is x[0])"
        )
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)):
        raise UserFunctionOutputError(f"{what} must return a real number; got dtype {array.dtype}")
    return array


def user_code_error(where: str, error: Exception, names: Sequence[str] | None = None) -> ValueError:
    """A one-line error for an exception a user's function raised while JAX traced it.

    Args:
        where: Whose code it was, e.g. ``"model 'm'"``.
        error: The exception (chain it: ``raise user_code_error(...) from error``).
        names: The parameter names the code was given, when known (said for a
            ``KeyError``).

    Returns:
        A ``ValueError`` naming ``where``, the exception and, for the common mistakes
        (Python control flow on traced values, a missing parameter name), the remedy.

    """
    import jax

    hint = ""
    traced_value_errors = (
        jax.errors.ConcretizationTypeError,  # Python if / float() on a traced value
        jax.errors.TracerArrayConversionError,  # NumPy on a traced value
        jax.errors.TracerIntegerConversionError,  # int() or indexing a list with it
    )
    if isinstance(error, traced_value_errors):
        hint = (
            " (the code is traced by JAX, so parameter values are abstract: use jnp.where "
            "or jax.lax.cond instead of Python if/while on them, and jnp functions instead "
            "of float(), math or NumPy)"
        )
    elif isinstance(error, KeyError):
        hint = (
            f" (params holds {list(names)}: does the code read another name?)"
            if names is not None
            else " (does the code read a parameter name the model does not define?)"
        )
    message = str(error).split("\n")[0]
    return ValueError(
        f"{where}: its code raised {type(error).__name__} when JAX traced it: {message}{hint}"
    )
