"""Tests of the TOML -> frozen dataclass loader (astrobayes._config)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from astrobayes._config import from_mapping


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    sizes: tuple[int, ...] = (1, 2)

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0; got {self.rate}")


@dataclass(frozen=True)
class Outer:
    name: str
    grid: tuple[tuple[float, float], ...] = ()
    inner: Inner = field(default_factory=Inner)
    maybe: Inner | None = None


def test_nested_tables_and_tuples():
    config = from_mapping(
        Outer,
        {"name": "x", "grid": [[0, 1], [2, 3]], "inner": {"sizes": [4]}, "maybe": {"rate": 2.0}},
    )
    assert config == Outer(
        name="x", grid=((0, 1), (2, 3)), inner=Inner(sizes=(4,)), maybe=Inner(rate=2.0)
    )
    assert from_mapping(Outer, {"name": "y"}) == Outer(name="y")


def test_unknown_and_missing_keys_name_the_table():
    with pytest.raises(ValueError, match=r"unknown key 'rte' in \[inner\]; allowed: rate, sizes"):
        from_mapping(Outer, {"name": "x", "inner": {"rte": 1}})
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['name'\]"):
        from_mapping(Outer, {})
    with pytest.raises(TypeError, match=r"\[inner\] must be a table"):
        from_mapping(Inner, 3, table="inner")
    with pytest.raises(TypeError, match="must be a dataclass type"):
        from_mapping(dict, {})


def test_values_are_validated_by_the_dataclass():
    with pytest.raises(ValueError, match="rate must be > 0; got -1"):
        from_mapping(Outer, {"name": "x", "inner": {"rate": -1}})
