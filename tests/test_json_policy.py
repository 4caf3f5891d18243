"""The one JSON policy: strict JSON (no NaN literals), statuses as name + message."""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import pytest

from astrobayes._status import Severity, Status
from astrobayes.io import to_json, to_jsonable, write_json_atomic


class _S(Status):
    OK = (Severity.OK, "all good")
    BAD = (Severity.FAILURE, "failure: bad")


class _R(NamedTuple):
    value: float
    errors: np.ndarray
    status: _S


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"non-strict JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_values_become_null_and_statuses_name_plus_message(tmp_path):
    result = _R(float("nan"), np.array([1.0, np.inf, -np.inf], np.float32), _S.BAD)
    out = _strict(to_json({"run": result, "n": np.int64(3), "x": np.float64("nan")}))
    assert out == {
        "run": {
            "value": None,
            "errors": [1.0, None, None],
            "status": "bad",
            "status_message": "failure: bad",
        },
        "n": 3,
        "x": None,
    }
    path = write_json_atomic(tmp_path / "r.json", result)
    assert _strict(path.read_text())["status"] == "bad"


def test_negative_control_the_strict_parser_refuses_nan_literals():
    with pytest.raises(ValueError, match="non-strict JSON constant NaN"):
        _strict(json.dumps({"x": float("nan")}))
    assert to_jsonable([np.nan]) == [None]
