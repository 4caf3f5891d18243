"""TOML tables onto frozen dataclasses: the one config loader of every CLI command.

The CLI and the Python API share their settings objects (frozen dataclasses such as
``NUTSConfig``, ``SBIConfig``, ``ImagingConfig``). :func:`from_mapping` builds one from a
parsed TOML document: keys are field names, nested tables fill fields whose type is
itself a dataclass, arrays become tuples where the field is a tuple, and an unknown or
missing key is a ``ValueError`` that names the table, the key and the keys allowed. The
dataclass's own ``__post_init__`` then validates values, so the TOML and the Python API
reject the same things with the same messages. File reading stays in ``cli``/``io``.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Inner:
    ...     rate: float = 0.1
    >>> @dataclass(frozen=True)
    ... class Outer:
    ...     name: str
    ...     sizes: tuple[int, ...] = (1,)
    ...     inner: Inner = field(default_factory=Inner)
    >>> from_mapping(Outer, {"name": "a", "sizes": [2, 3], "inner": {"rate": 0.5}})
    Outer(name='a', sizes=(2, 3), inner=Inner(rate=0.5))
    >>> from_mapping(Outer, {"name": "a", "sise": 2})
    Traceback (most recent call last):
    ...
    ValueError: unknown key 'sise' in the top-level table; allowed: inner, name, sizes

"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["from_mapping"]

T = TypeVar("T")


def from_mapping(cls: type[T], values: Mapping[str, Any], *, table: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a (parsed TOML) mapping.

    Args:
        cls: A dataclass type.
        values: Its fields by name; a field whose type is a dataclass (or an optional
            one) takes a nested table; lists become tuples for tuple-typed fields.
        table: Name of this table in messages (``""`` for the top level).

    Returns:
        ``cls(**converted_values)``.

    Raises:
        TypeError: If ``cls`` is not a dataclass or ``values`` (or a nested table) is not
            a mapping.
        ValueError: On an unknown key or a missing required one (naming the table), or
            whatever ``cls.__post_init__`` raises.

    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"cls must be a dataclass type; got {cls!r}")
    where = f"[{table}]" if table else "the top-level table"
    if not isinstance(values, Mapping):
        raise TypeError(f"{where} must be a table (mapping); got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    allowed = ", ".join(sorted(fields))
    for name in values:
        if name not in fields:
            raise ValueError(f"unknown key {name!r} in {where}; allowed: {allowed}")
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{where} is missing required key(s) {missing}; allowed: {allowed}")
    hints = _type_hints(cls, fields)
    kwargs = {}
    for name, value in values.items():
        child = f"{table}.{name}" if table else name
        kwargs[name] = _convert(hints[name], value, child)
    return cls(**kwargs)


def _type_hints(cls: type, fields: dict[str, dataclasses.Field]) -> dict[str, Any]:
    """Field types; where a string annotation cannot be resolved, the default's type."""
    try:
        hints = typing.get_type_hints(cls)
    except NameError:  # a class defined in a local scope (tests, doctests)
        hints = {}
    resolved = {}
    for name, f in fields.items():
        if name in hints:
            resolved[name] = hints[name]
            continue
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        resolved[name] = Any if default is dataclasses.MISSING else type(default)
    return resolved


def _convert(annotation: Any, value: Any, table: str) -> Any:
    """Convert ``value`` for a field annotated ``annotation``."""
    options = _options(annotation)
    nested = [t for t in options if dataclasses.is_dataclass(t) and isinstance(t, type)]
    if nested and isinstance(value, Mapping):
        return from_mapping(nested[0], value, table=table)
    if isinstance(value, list) and any(_is_tuple(t) for t in options):
        return tuple(_convert_items(value, table))
    return value


def _convert_items(values: list, table: str) -> list:
    return [tuple(_convert_items(v, table)) if isinstance(v, list) else v for v in values]


def _options(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of a (possibly optional or union) annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return (annotation,)


def _is_tuple(annotation: Any) -> bool:
    return annotation is tuple or typing.get_origin(annotation) is tuple
