"""Tests of ``astrobayes symbolic`` (in-process): outputs, ranking and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy

from astrobayes.cli.main import main


def _write_csv(path, x, y, sigma, extra=""):
    lines = ["# a comment line", "x,y,s"] + [
        f"{a},{b},{c}" for a, b, c in zip(x, y, sigma, strict=True)
    ]
    path.write_text("\n".join(lines) + extra + "\n")
    return path


@pytest.fixture
def data_file(tmp_path):
    rng = np.random.default_rng(4)
    x = np.linspace(1.0, 3.0, 15)
    sigma = np.full(15, 0.05)
    y = 0.7 + 2.3 * x + sigma * rng.normal(size=15)
    return _write_csv(tmp_path / "data.csv", x, y, sigma)


@pytest.mark.slow
def test_symbolic_writes_ranked_equations_and_a_pareto_plot(data_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["symbolic", str(data_file), "--x", "x", "--y", "y", "--sigma", "s",
         "--max-complexity", "5", "--operators", "+,*", "--out", str(out), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    equations = json.loads((out / "equations.json").read_text())
    assert isinstance(equations, list)
    assert equations
    for entry in equations:
        assert {
            "expression",
            "parameters",
            "complexity",
            "description_length",
            "log_evidence",
        } <= set(entry)
        expr = sympy.sympify(entry["expression"])
        names = sorted(str(s) for s in expr.free_symbols if str(s) != "x")
        assert names == [f"a{i}" for i in range(len(entry["parameters"]))]
    # ranked by the default --rank-by, log_posterior (log evidence + ESR structure prior);
    # equivalent expressions share a log evidence up to its last bits, so that is no order
    posteriors = [e["log_posterior"] for e in equations]
    assert posteriors == sorted(posteriors, reverse=True)
    top = sympy.sympify(equations[0]["expression"])
    assert sympy.simplify(top - sympy.sympify("a0 + a1*x")) == 0
    assert (out / "pareto.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert "a0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"--x": "nope"}, "no column"),
        ({"--sigma": "nope"}, "no column"),
        ({"nan": True}, "non-finite"),
        ({"few": True}, "at least"),
        ({"--operators": "+,tan"}, "operators"),
    ],
)
def test_symbolic_errors_are_clear(change, match, tmp_path, capsys):
    x = np.linspace(1.0, 2.0, 3 if change.get("few") else 12)
    y = 2 * x
    if change.get("nan"):
        y[3] = np.nan
    path = _write_csv(tmp_path / "d.csv", x, y, np.ones_like(x))
    args = {"--x": "x", "--y": "y", "--sigma": "s", "--operators": "+,*"}
    args.update({k: v for k, v in change.items() if k.startswith("--")})
    argv = ["symbolic", str(path), "--out", str(tmp_path / "o")]
    for key, value in args.items():
        argv += [key, value]
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_symbolic_reports_a_missing_file(tmp_path, capsys):
    code = main(["symbolic", str(tmp_path / "none.csv"), "--x", "x", "--y", "y", "--out", "o"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
