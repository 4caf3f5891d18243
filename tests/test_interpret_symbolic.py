"""Exhaustive symbolic regression: enumeration invariants, interpreter vs sympy, ranking."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import sympy

from astrobayes.interpret import (
    SymbolicConfig,
    SymbolicStatus,
    enumerate_expressions,
    evaluate_expression,
    function_codelength,
    symbolic_regression,
)
from astrobayes.interpret.symbolic import _count_parameters, _to_sympy

TINY = SymbolicConfig(max_complexity=5, operators=("+", "*"), num_starts=2, num_iterations=40)


def test_enumeration_prunes_constants_and_orders_commutative_children():
    trees = enumerate_expressions(4, ("+", "-", "*", "/", "exp", "log"))
    assert len(trees) == len(set(trees))
    for tree in trees:
        # no constant subtree other than a lone parameter
        if tree[0] not in ("x", "a"):
            assert "x" in repr(tree)
    assert ("exp", ("log", ("x",))) not in trees
    assert ("-", ("x",), ("x",)) not in trees
    assert ("+", ("a",), ("x",)) in trees
    assert ("+", ("x",), ("a",)) not in trees  # the mirrored sum is not repeated


@pytest.mark.parametrize("seed", range(3))
def test_interpreter_agrees_with_sympy(seed):
    rng = np.random.default_rng(seed)
    trees = enumerate_expressions(5, ("+", "-", "*", "/", "pow", "exp", "log", "sqrt", "inv"))
    x = np.linspace(0.5, 2.0, 7)
    checked = 0
    for index in rng.choice(len(trees), 40, replace=False):
        tree = trees[index]
        p = _count_parameters(tree)
        params = rng.uniform(0.3, 1.5, max(p, 1))
        expr = _to_sympy(tree)
        symbols = [sympy.Symbol("x")] + [sympy.Symbol(f"a{i}") for i in range(p)]
        with np.errstate(all="ignore"):
            expected = sympy.lambdify(symbols, expr, "numpy")(x, *params[:p]) * np.ones_like(x)
        got = np.asarray(evaluate_expression(tree, params, x))
        finite = np.isfinite(expected) & np.isfinite(got)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=2e-4, atol=1e-6)
        assert np.array_equal(np.isfinite(expected), np.isfinite(got)) or not np.all(finite)
        checked += 1
    assert checked == 40


@pytest.fixture(scope="module")
def linear_result():
    x = np.linspace(1.0, 3.0, 20)
    rng = np.random.default_rng(0)
    sigma = np.full(20, 0.05)
    y = 1.5 + 2.7 * x + sigma * rng.normal(size=20)
    return symbolic_regression(jax.random.key(1), x, y, sigma, config=TINY)


def test_linear_law_ranks_first_by_evidence(linear_result):
    r = linear_result
    assert r.status in (SymbolicStatus.OK, SymbolicStatus.FLOAT32)
    top = r.equations[0]
    assert sympy.simplify(sympy.sympify(top.expression) - sympy.sympify("a0 + a1*x")) == 0
    np.testing.assert_allclose(sorted(top.parameters), [1.5, 2.7], atol=0.15)
    # negative control: the wrong law (a line through the origin) scores far worse
    origin = next(e for e in r.equations if e.expression == "a0*x")
    assert top.log_evidence - origin.log_evidence > 10
    # the default ranking is by evidence x structure prior (the function's posterior)
    posteriors = [e.log_posterior for e in r.equations]
    assert posteriors == sorted(posteriors, reverse=True)


def test_laplace_evidence_of_a_linear_model_matches_the_analytic_integral(linear_result):
    """For a0 + a1 x the likelihood is Gaussian in the parameters: Laplace is exact."""
    x = np.linspace(1.0, 3.0, 20)
    rng = np.random.default_rng(0)
    sigma = np.full(20, 0.05)
    y = 1.5 + 2.7 * x + sigma * rng.normal(size=20)
    design = np.stack([np.ones_like(x), x], axis=1) / sigma[:, None]
    target = y / sigma
    fisher = design.T @ design
    best = np.linalg.solve(fisher, design.T @ target)
    chi2 = float(np.sum((target - design @ best) ** 2))
    log_like = -0.5 * chi2 - np.sum(np.log(sigma)) - 0.5 * x.size * np.log(2 * np.pi)
    bound = TINY.parameter_bound
    analytic = (
        log_like - 2 * np.log(2 * bound) + np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(fisher)[1]
    )
    top = linear_result.equations[0]
    np.testing.assert_allclose(top.log_evidence, analytic, atol=0.05)


def test_description_length_follows_the_esr_formula(linear_result):
    r = linear_result
    e = next(e for e in r.equations if e.expression == "a0*x")
    x = np.linspace(1.0, 3.0, 20)
    fisher = float(np.sum(x**2) / 0.05**2)
    expected = (
        -e.log_likelihood
        + 3 * np.log(3)  # ESR: 3 nodes, 3 distinct symbols (*, x, a)
        + np.log(abs(e.parameters[0]))
        + 0.5 * np.log(fisher)
        - 0.5 * np.log(3)
    )
    np.testing.assert_allclose(e.description_length, expected, rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": np.arange(4.0)}, "at least"),
        ({"y": np.r_[np.nan, np.ones(9)]}, "y"),
        ({"sigma": -np.ones(10)}, "positive"),
        ({"sigma": np.ones(3)}, "one value per point"),
    ],
)
def test_bad_input_is_rejected(kwargs, match):
    args = {"x": np.linspace(1, 2, 10), "y": np.ones(10), "sigma": np.ones(10)}
    args.update(kwargs)
    if "x" in kwargs:
        args["y"] = np.ones(args["x"].size)
        args["sigma"] = np.ones(args["x"].size)
    with pytest.raises(ValueError, match=match):
        symbolic_regression(jax.random.key(0), **args, config=TINY)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="operators"):
        SymbolicConfig(operators=("+", "tan"))
    with pytest.raises(ValueError, match="max_complexity"):
        SymbolicConfig(max_complexity=12)
    with pytest.raises(ValueError, match="parameter_bound"):
        SymbolicConfig(parameter_bound=0.0)


@pytest.mark.slow
def test_exponential_decay_is_recovered_at_complexity_five():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        x = np.linspace(0.5, 3.0, 30)
        sigma = np.full(30, 0.02)
        y = 2.5 * np.exp(-0.8 * x) + sigma * rng.normal(size=30)
        r = symbolic_regression(
            jax.random.key(0), x, y, sigma, config=SymbolicConfig(max_complexity=5)
        )
    top = r.equations[0]
    assert len(top.parameters) == 2
    fitted = np.asarray(evaluate_expression(top.tree, np.asarray(top.parameters), x))
    np.testing.assert_allclose(fitted, 2.5 * np.exp(-0.8 * x), atol=0.03)


def test_user_expressions_are_validated():
    x = np.linspace(1, 2, 10)
    with pytest.raises(ValueError, match="outside config.operators"):
        symbolic_regression(jax.random.key(0), x, x, config=TINY, expressions=[("exp", ("x",))])
    with pytest.raises(ValueError, match="children"):
        symbolic_regression(jax.random.key(0), x, x, config=TINY, expressions=[("+", ("x",))])
    deep = ("+", ("x",), ("+", ("x",), ("+", ("x",), ("a",))))
    with pytest.raises(ValueError, match="max_complexity"):
        symbolic_regression(jax.random.key(0), x, x, config=TINY, expressions=[deep])


def test_unique_expressions_drop_duplicates_and_redundant_parameters():
    from astrobayes.interpret import unique_expressions

    config = SymbolicConfig(max_complexity=5, operators=("+", "*"))
    trees, num_enumerated = unique_expressions(np.linspace(1, 3, 10), config=config)
    assert num_enumerated == len(enumerate_expressions(5, ("+", "*")))
    assert len(trees) < num_enumerated
    assert ("*", ("a",), ("*", ("a",), ("x",))) not in trees  # a0*(a1*x): redundant
    # x + x and x * (a) ... : each function once, up to parameter relabelling
    strings = [str(sympy.expand(_to_sympy(t))) for t in trees]
    assert strings.count("a0*x") == 1


def test_rankings_by_posterior_and_description_length(linear_result):
    r = linear_result
    for e in r.equations:
        np.testing.assert_allclose(
            e.log_posterior, e.log_evidence - function_codelength(e.tree), rtol=1e-12
        )
    # ESR's codelength: k ln(distinct symbols), a parameter counted once
    assert function_codelength(("x",)) == 0.0
    np.testing.assert_allclose(
        function_codelength(("+", ("a",), ("*", ("a",), ("x",)))), 5 * np.log(4)
    )
    np.testing.assert_allclose(function_codelength(("*", ("x",), ("x",))), 3 * np.log(2))
    with pytest.raises(ValueError, match="rank_by"):
        SymbolicConfig(rank_by="chi2")


def test_evidence_never_exceeds_the_maximum_likelihood(linear_result):
    # Z = int L pi <= L_max: a near-singular Fisher matrix must not inflate ln Z
    for e in linear_result.equations:
        assert e.log_evidence <= e.log_likelihood + 1e-9


def test_sqrt_output_fits_the_square_of_the_data():
    """ESR's H^2 convention: y = sqrt(f(x)); the truth f = a0 x is found in f."""
    x = np.linspace(1.0, 3.0, 20)
    rng = np.random.default_rng(3)
    sigma = np.full(20, 0.02)
    y = np.sqrt(2.4 * x) + sigma * rng.normal(size=20)
    config = SymbolicConfig(
        max_complexity=3, operators=("+", "*"), num_starts=2, num_iterations=30, output="sqrt"
    )
    candidates = [("x",), ("+", ("a",), ("x",)), ("*", ("a",), ("x",)), ("*", ("x",), ("x",))]
    r = symbolic_regression(jax.random.key(2), x, y, sigma, config=config, expressions=candidates)
    top = r.equations[0]
    assert top.expression == "a0*x"
    np.testing.assert_allclose(top.parameters, [2.4], atol=0.1)
    assert top.chi2 < 20 + 5 * np.sqrt(40)
    # negative control: the same tree and parameters read as y = f(x) miss the data
    direct = np.asarray(evaluate_expression(top.tree, np.asarray(top.parameters), x))
    assert np.sum(((direct - y) / sigma) ** 2) > 100 * top.chi2
    with pytest.raises(ValueError, match="output"):
        SymbolicConfig(output="cube")
