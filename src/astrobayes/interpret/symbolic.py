"""Exhaustive symbolic regression scored by description length and Bayesian evidence.

Every expression tree of ``1..max_complexity`` nodes over an operator set (binary
``+ - * / pow``, unary ``exp log sqrt square inv sin cos``, leaves ``x`` and a free
parameter ``a``) is enumerated, as in Exhaustive Symbolic Regression (ESR; Bartlett,
Desmond & Ferreira 2022). The complexity of a tree is its number of nodes. Trees are
pruned while they are built (no constant subtree but a lone parameter, ordered children
of ``+`` and ``*``, no ``x - x``, ``x / x``, ``exp(log(.))``, ``log(exp(.))``,
``inv(inv(.))``, ``sqrt(square(.))``, ``square(sqrt(.))``), then deduplicated
numerically: two trees are the same function when they agree on a grid of ``x`` at
generic parameter values up to a relabelling of the parameters (the smallest complexity
is kept), and trees whose parameters are redundant (a rank-deficient Jacobian, as in
``a0 * (a1 * x)``) are dropped. sympy gives each survivor its canonical printed form.

All survivors are compiled into postfix programs run by one stack interpreter, so the
parameters of thousands of different expressions are fitted together in one batched,
``vmap``-ed Levenberg-Marquardt in JAX (several starts each). Each fitted expression
gets

* the ESR description length (natural-log units):
  ``L = -ln L(a_hat) + k ln(n) + sum_i max(0, ln|a_i| + 1/2 ln I_ii - 1/2 ln 3)``, where
  ``k ln(n)`` is ESR's function codelength (:func:`function_codelength`; ``k`` nodes,
  ``n`` the number of distinct symbols the function uses, a parameter counted once, as
  in the published ESR code's ``aifeyn_complexity``, after Udrescu et al. 2020),
  with ``I`` the observed Fisher matrix (Hessian of ``-ln L``) at the best fit (a
  parameter the data leave unconstrained costs nothing, never a negative length);
* a Laplace-approximated log evidence with *independent uniform priors*
  ``a_i ~ U(-parameter_bound, parameter_bound)``:
  ``ln Z = ln L(a_hat) + min(0, p/2 ln(2 pi) - 1/2 ln det I - p ln(2 parameter_bound))``:
  the Occam factor is capped at 1 since ``Z <= L(a_hat)`` (near-singular ``I``);
* ``log_posterior = ln Z - k ln(n)``: the evidence times ESR's structure prior
  ``n^-k`` (the function codelength of ESR's description length read as a prior
  probability, ``exp(-codelength)``), i.e. the log posterior probability of the
  function up to a shared constant. This is the default ranking ("by evidence"):
  ranking by ``ln Z`` alone would mean a uniform prior over the enumerated functions,
  whose prior mass per complexity grows with the number of functions of that
  complexity.

Per-point Gaussian uncertainties ``sigma`` enter the likelihood; without them one common
``sigma`` is profiled out (``sigma_hat^2 = RSS / n``, the same for every expression).
Float64 is recommended (``jax.config.update("jax_enable_x64", True)``; the command line
sets it); in float32 the fits are less precise and the result says so with a warning.

References:
    Bartlett, Desmond & Ferreira (2022), IEEE Trans. Evol. Comput., arXiv:2211.11461 (ESR).
    Rissanen (1978), Automatica 14, 465 (minimum description length).
    MacKay (2003), Information Theory, Inference, and Learning Algorithms, ch. 27 (Laplace).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from astrobayes._checks import as_float_array, check_finite, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._types import ProgressFn

__all__ = [
    "BINARY_OPERATORS",
    "DEFAULT_OPERATORS",
    "UNARY_OPERATORS",
    "Equation",
    "SymbolicConfig",
    "SymbolicResult",
    "SymbolicStatus",
    "enumerate_expressions",
    "evaluate_expression",
    "function_codelength",
    "symbolic_regression",
    "unique_expressions",
]

BINARY_OPERATORS = ("+", "-", "*", "/", "pow")
"""Binary operators understood (``pow(u, v) = u**v`` for ``u > 0``)."""
UNARY_OPERATORS = ("exp", "log", "sqrt", "square", "inv", "sin", "cos")
"""Unary operators understood (``inv(u) = 1/u``, ``square(u) = u**2``)."""
DEFAULT_OPERATORS = ("+", "-", "*", "/", "pow", "exp", "log")
"""The default operator set."""

_LEAVES = ("x", "a")
_CODES = {name: i for i, name in enumerate(("pad", *_LEAVES, *BINARY_OPERATORS, *UNARY_OPERATORS))}
_LOG_2PI = math.log(2.0 * math.pi)


class Equation(NamedTuple):
    """One fitted expression.

    Attributes:
        expression: sympy-parsable string in ``x`` and parameters ``a0, a1, ...``.
        parameters: Best-fit parameter values, in the order ``a0, a1, ...``.
        complexity: Number of nodes of the tree.
        description_length: ESR description length (nats).
        log_evidence: Laplace log evidence with the stated uniform priors (nats).
        log_likelihood: Maximum log-likelihood.
        log_posterior: ``log_evidence - function_codelength(tree)``: the log evidence
            plus the log of ESR's structure prior ``n ** -complexity`` (``n`` distinct
            symbols in the tree, see :func:`function_codelength`)
            (unnormalised), i.e. the log posterior probability of the function up to a
            constant shared by all.
        chi2: Chi-square at the best fit (with the profiled sigma when none was given).
        tree: The expression tree as nested tuples in prefix order.
    """

    expression: str
    parameters: tuple[float, ...]
    complexity: int
    description_length: float
    log_evidence: float
    log_likelihood: float
    log_posterior: float
    chi2: float
    tree: tuple


class SymbolicStatus(Status):
    """Outcome of :func:`symbolic_regression`."""

    OK = (Severity.OK, "symbolic regression done")
    FLOAT32 = (
        Severity.WARNING,
        "warning: fitted in float32; enable float64 (jax_enable_x64) for precise rankings",
    )
    NO_VALID = (Severity.FAILURE, "failure: no expression could be fitted to the data")


@dataclass(frozen=True)
class SymbolicConfig:
    """Settings of :func:`symbolic_regression`.

    Attributes:
        max_complexity: Largest number of nodes of a tree.
        operators: Operator names from :data:`BINARY_OPERATORS` and
            :data:`UNARY_OPERATORS`.
        max_parameters: Trees with more free parameters are skipped.
        parameter_bound: Half-width of the uniform prior of each parameter (the unit of
            ``y`` for additive parameters): enters the log evidence as
            ``-p ln(2 parameter_bound)``; a fit outside the box gets no evidence.
        num_starts: Starting points per expression (the first at all ones).
        num_iterations: Levenberg-Marquardt iterations.
        batch_size: Expressions fitted per compiled batch.
        rank_by: ``"log_posterior"`` (default: the Laplace evidence times ESR's
            structure prior ``n ** -complexity``, i.e. the posterior probability
            of the function; the ranking this module calls "by evidence", see
            docs/interpret.md), ``"log_evidence"`` (the marginal likelihood alone, i.e. a
            uniform prior over the enumerated functions) or ``"description_length"``.
        output: ``"identity"`` (default: ``y = f(x)``) or ``"sqrt"`` (``y = sqrt(f(x))``,
            ``f <= 0`` is outside the model): ESR's convention for the Hubble rate, whose
            enumerated functions are ``H^2(1 + z)`` (Bartlett et al. 2022, their cosmic-chronometer fit).
    """

    max_complexity: int = 5
    operators: tuple[str, ...] = DEFAULT_OPERATORS
    max_parameters: int = 3
    parameter_bound: float = 1000.0
    num_starts: int = 6
    num_iterations: int = 80
    batch_size: int = 512
    rank_by: str = "log_posterior"
    output: str = "identity"

    def __post_init__(self) -> None:
        check_positive_int(self.max_complexity, "max_complexity")
        if self.max_complexity > 9:
            raise ValueError(
                f"max_complexity must be at most 9 (exhaustive search); got {self.max_complexity}"
            )
        if isinstance(self.operators, str) or not self.operators:
            raise ValueError(
                f"operators must be a non-empty tuple of names; got {self.operators!r}"
            )
        known = (*BINARY_OPERATORS, *UNARY_OPERATORS)
        unknown = [name for name in self.operators if name not in known]
        if unknown:
            raise ValueError(f"operators must be among {known}; got unknown {unknown}")
        if len(set(self.operators)) != len(self.operators):
            raise ValueError(f"operators must not repeat; got {self.operators}")
        check_positive_int(self.max_parameters, "max_parameters")
        if self.max_parameters > 4:
            raise ValueError(f"max_parameters must be at most 4; got {self.max_parameters}")
        if not (isinstance(self.parameter_bound, int | float) and self.parameter_bound > 0):
            raise ValueError(f"parameter_bound must be positive; got {self.parameter_bound!r}")
        check_positive_int(self.num_starts, "num_starts")
        check_positive_int(self.num_iterations, "num_iterations")
        check_positive_int(self.batch_size, "batch_size")
        if self.rank_by not in ("log_evidence", "log_posterior", "description_length"):
            raise ValueError(
                "rank_by must be 'log_evidence', 'log_posterior' or 'description_length'; "
                f"got {self.rank_by!r}"
            )
        if self.output not in ("identity", "sqrt"):
            raise ValueError(f"output must be 'identity' or 'sqrt'; got {self.output!r}")


class SymbolicResult(NamedTuple):
    """Ranked equations and what the search did.

    Attributes:
        equations: Valid fitted expressions, ranked by ``config.rank_by`` (default:
            log evidence + log structure prior; best first).
        num_enumerated: Trees built after the structural pruning.
        num_unique: Distinct functions after numerical deduplication and the redundancy
            check (the number fitted).
        num_basis: Size of the basis (operators, ``x``, ``a``); the function codelength
            counts only the symbols each function uses (:func:`function_codelength`).
        sigma: The uncertainties used (given, or the profiled common value of the best
            equation), shape ``(num_points,)``.
        status: A :class:`SymbolicStatus`.
    """

    equations: tuple[Equation, ...]
    num_enumerated: int
    num_unique: int
    num_basis: int
    sigma: np.ndarray
    status: SymbolicStatus


# ----------------------------------------------------------------------------- trees


def _has_x(tree: tuple) -> bool:
    return tree[0] == "x" or any(_has_x(child) for child in tree[1:])


def _size(tree: tuple) -> int:
    return 1 + sum(_size(child) for child in tree[1:])


_INVERSE_PAIRS = {("exp", "log"), ("log", "exp"), ("inv", "inv"), ("sqrt", "square"),
                  ("square", "sqrt")}  # fmt: skip


@lru_cache(maxsize=64)
def _trees(complexity: int, binary: tuple[str, ...], unary: tuple[str, ...]) -> tuple[tuple, ...]:
    """Pruned trees of exactly ``complexity`` nodes (see the module docstring)."""
    if complexity == 1:
        return (("x",), ("a",))
    out = []
    for name in unary:
        for child in _trees(complexity - 1, binary, unary):
            if not _has_x(child) or (name, child[0]) in _INVERSE_PAIRS:
                continue
            out.append((name, child))
    for name in binary:
        for left_size in range(1, complexity - 1):
            right_size = complexity - 1 - left_size
            if name in ("+", "*") and left_size > right_size:
                continue
            for left in _trees(left_size, binary, unary):
                left_x = _has_x(left)
                if not left_x and left_size > 1:
                    continue
                for right in _trees(right_size, binary, unary):
                    right_x = _has_x(right)
                    if not right_x and right_size > 1:
                        continue
                    if not (left_x or right_x):
                        continue
                    if name in ("+", "*") and left_size == right_size and repr(left) > repr(right):
                        continue
                    if name in ("-", "/") and left == right:
                        continue
                    out.append((name, left, right))
    return tuple(out)


def _count_parameters(tree: tuple) -> int:
    return int(tree[0] == "a") + sum(_count_parameters(child) for child in tree[1:])


def enumerate_expressions(
    max_complexity: int, operators: tuple[str, ...] = DEFAULT_OPERATORS, max_parameters: int = 3
) -> list[tuple]:
    """All pruned expression trees of ``1..max_complexity`` nodes (before deduplication).

    Args:
        max_complexity: Largest number of nodes.
        operators: Operator names (see :data:`BINARY_OPERATORS`, :data:`UNARY_OPERATORS`).
        max_parameters: Trees with more parameters are left out.

    Returns:
        Trees as nested tuples in prefix order, e.g. ``("*", ("a",), ("x",))``, by
        increasing complexity.

    Examples:
        >>> trees = enumerate_expressions(3, ("+", "*"))
        >>> [t for t in trees if t[0] == "*"]
        [('*', ('x',), ('x',)), ('*', ('a',), ('x',))]
    """
    SymbolicConfig(max_complexity=max_complexity, operators=tuple(operators))
    binary = tuple(name for name in operators if name in BINARY_OPERATORS)
    unary = tuple(name for name in operators if name in UNARY_OPERATORS)
    out = []
    for complexity in range(1, max_complexity + 1):
        out.extend(
            tree
            for tree in _trees(complexity, binary, unary)
            if _count_parameters(tree) <= max_parameters
        )
    return out


def _to_postfix(tree: tuple, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Postfix op codes and parameter indices (prefix numbering), padded to ``length``."""
    codes = []

    def walk(node):
        for child in node[1:]:
            walk(child)
        codes.append(_CODES[node[0]])

    walk(tree)
    order = iter(_parameter_order(tree))
    indices = [next(order) if code == _CODES["a"] else 0 for code in codes]
    pad = length - len(codes)
    return (
        np.asarray(codes + [0] * pad, np.int32),
        np.asarray(indices + [0] * pad, np.int32),
    )


def _parameter_order(tree: tuple) -> list[int]:
    """Prefix-order index of each parameter leaf, listed in postfix (evaluation) order."""
    prefix = itertools.count()
    numbered = []

    def number(node):
        if node[0] == "a":
            return ("a", next(prefix))
        return (node[0], *(number(child) for child in node[1:]))

    def postfix(node):
        if node[0] == "a":
            numbered.append(node[1])
            return
        for child in node[1:]:
            postfix(child)

    postfix(number(tree))
    return numbered


def _to_sympy(tree: tuple):
    """The sympy expression of a tree, parameters ``a0, a1, ...`` in prefix order."""
    import sympy

    x = sympy.Symbol("x")
    counter = itertools.count()

    def build(node):
        name = node[0]
        if name == "x":
            return x
        if name == "a":
            return sympy.Symbol(f"a{next(counter)}")
        args = [build(child) for child in node[1:]]
        if name == "+":
            return args[0] + args[1]
        if name == "-":
            return args[0] - args[1]
        if name == "*":
            return args[0] * args[1]
        if name == "/":
            return args[0] / args[1]
        if name == "pow":
            return args[0] ** args[1]
        return {
            "exp": sympy.exp,
            "log": sympy.log,
            "sqrt": sympy.sqrt,
            "square": lambda u: u**2,
            "inv": lambda u: 1 / u,
            "sin": sympy.sin,
            "cos": sympy.cos,
        }[name](args[0])

    return build(tree)


# ----------------------------------------------------------------------------- interpreter


def _run_program(
    codes: Array,
    indices: Array,
    parameters: Array,
    x: Array,
    operators: tuple[str, ...] = (*BINARY_OPERATORS, *UNARY_OPERATORS),
) -> Array:
    """Evaluate one postfix program at ``x`` with ``parameters`` (a stack machine).

    Only the ``operators`` named are computed (the program must use no other).
    """
    binary_names = tuple(name for name in BINARY_OPERATORS if name in operators)
    unary_names = tuple(name for name in UNARY_OPERATORS if name in operators)
    length = codes.shape[0]
    stack = jnp.zeros((length + 1, x.shape[0]), x.dtype)

    def step(carry, token):
        stack, pointer = carry
        code, index = token
        top = stack[jnp.maximum(pointer - 1, 0)]
        below = stack[jnp.maximum(pointer - 2, 0)]
        # unary results, each on an input made safe where the op is not selected
        is_ = {name: code == _CODES[name] for name in (*BINARY_OPERATORS, *UNARY_OPERATORS)}
        one = jnp.ones_like(top)
        unary_all = {
            "exp": jnp.exp(jnp.where(is_["exp"], top, 0.0)),
            "log": jnp.where(
                top > 0, jnp.log(jnp.where(is_["log"] & (top > 0), top, one)), jnp.nan
            ),
            "sqrt": jnp.where(
                top >= 0, jnp.sqrt(jnp.where(is_["sqrt"] & (top > 0), top, one)), jnp.nan
            )
            * (top != 0),
            "square": top**2,
            "inv": 1.0 / jnp.where(is_["inv"], top, one),
            "sin": jnp.sin(top),
            "cos": jnp.cos(top),
        }
        safe_base = jnp.where(is_["pow"] & (below > 0), below, one)
        binary_all = {
            "+": below + top,
            "-": below - top,
            "*": below * top,
            "/": below / jnp.where(is_["/"], top, one),
            "pow": jnp.where(
                below > 0, jnp.exp(jnp.where(is_["pow"], top, 0.0) * jnp.log(safe_base)), jnp.nan
            ),
        }
        unary = {name: unary_all[name] for name in unary_names}
        binary = {name: binary_all[name] for name in binary_names}
        leaf = jnp.where(code == _CODES["x"], x, parameters[index])
        value = leaf
        for name, result in unary.items():
            value = jnp.where(is_[name], result, value)
        for name, result in binary.items():
            value = jnp.where(is_[name], result, value)
        is_leaf = (code == _CODES["x"]) | (code == _CODES["a"])
        is_binary = _any([is_[name] for name in binary_names])
        is_unary = _any([is_[name] for name in unary_names])
        target = jnp.where(is_leaf, pointer, jnp.where(is_binary, pointer - 2, pointer - 1))
        target = jnp.clip(target, 0, length)
        updated = jax.lax.dynamic_update_index_in_dim(stack, value, target, 0)
        is_op = is_leaf | is_binary | is_unary
        stack = jnp.where(is_op, updated, stack)
        pointer = pointer + jnp.where(is_leaf, 1, 0) - jnp.where(is_binary, 1, 0)
        return (stack, pointer), None

    (stack, _), _ = jax.lax.scan(step, (stack, jnp.asarray(0)), (codes, indices))
    return stack[0]


def _any(flags: list[Array]) -> Array:
    """Elementwise ``or`` of a list of boolean arrays (``False`` when empty)."""
    out = jnp.asarray(False)
    for flag in flags:
        out = out | flag
    return out


def evaluate_expression(
    tree: tuple, parameters: Float[Array, " num_parameters"], x: Float[Array, " num_points"]
) -> Float[Array, " num_points"]:
    """Evaluate an expression tree with the batched interpreter.

    Args:
        tree: A tree from :func:`enumerate_expressions` (nested tuples, prefix order).
        parameters: Values of ``a0, a1, ...`` (prefix order).
        x: Where to evaluate.

    Returns:
        ``f(x; parameters)``; ``nan`` outside the domain (``log``/``sqrt``/``pow`` of a
        non-positive number).

    Examples:
        >>> import jax.numpy as jnp
        >>> tree = ("+", ("a",), ("*", ("a",), ("x",)))   # a0 + a1 * x
        >>> evaluate_expression(tree, jnp.array([1.0, 2.0]), jnp.array([0.0, 1.0])).tolist()
        [1.0, 3.0]
    """
    codes, indices = _to_postfix(tree, 9)
    params = jnp.zeros(4, jnp.result_type(float))
    given = jnp.atleast_1d(jnp.asarray(parameters, dtype=params.dtype))[:4]
    params = params.at[: given.shape[0]].set(given)
    return _evaluate(jnp.asarray(codes), jnp.asarray(indices), params, jnp.asarray(x, params.dtype))


_evaluate = jax.jit(_run_program)


# ----------------------------------------------------------------------------- dedup


@partial(jax.jit, static_argnames=("operators",))
def _fingerprints(codes, indices, perm_values, grid, operators):
    """Values at every parameter permutation, and the Jacobian at the first one."""

    def per_expression(c, i):
        run = partial(_run_program, c, i, x=grid, operators=operators)
        values = jax.vmap(lambda p: run(p))(perm_values)
        jacobian = jax.jacfwd(lambda p: run(p))(perm_values[0])
        return values, jacobian

    return jax.vmap(per_expression)(codes, indices)


_GENERIC = np.array([0.7313, 1.2917, -0.5419, 1.8623])


def _unique(
    trees: list[tuple], x_grid: np.ndarray, max_parameters: int, length: int, operators: tuple
):
    """Drop numerically equal functions (up to parameter relabelling) and redundant ones."""
    permutations = list(itertools.permutations(range(max_parameters)))
    programs = [_to_postfix(tree, length) for tree in trees]
    codes = jnp.asarray(np.stack([p[0] for p in programs]))
    indices = jnp.asarray(np.stack([p[1] for p in programs]))
    num_params = np.array([_count_parameters(t) for t in trees])
    perm_values = np.stack([_GENERIC[:max_parameters][list(p)] for p in permutations])
    grid = jnp.asarray(x_grid)
    values_fn = partial(_fingerprints, operators=operators)
    kept, seen = [], set()
    chunk = 256
    for start in range(0, len(trees), chunk):
        stop = min(start + chunk, len(trees))
        pad = chunk - (stop - start)
        c = jnp.concatenate([codes[start:stop], jnp.repeat(codes[:1], pad, 0)])
        i = jnp.concatenate([indices[start:stop], jnp.repeat(indices[:1], pad, 0)])
        values, jacobians = (
            np.asarray(a, np.float64) for a in values_fn(c, i, jnp.asarray(perm_values), grid)
        )
        for offset in range(stop - start):
            n = start + offset
            p = num_params[n]
            vals = values[offset]
            if not np.any(np.isfinite(vals[0])):
                continue  # undefined at generic values on the whole grid: left out
            if p:
                jac = np.nan_to_num(jacobians[offset][:, :p])
                singular = np.linalg.svd(jac, compute_uv=False)
                if singular[-1] <= 1e-7 * max(singular[0], 1e-300):
                    continue  # redundant parameters
            # parameter relabelling: permutations that only move the used parameters
            candidates = [
                tuple(float(f"{v:.6g}") for v in vals[k])
                for k, perm in enumerate(permutations)
                if all(perm[j] == j for j in range(p, max_parameters))
            ]
            signature = min(candidates, key=repr)
            if signature in seen:
                continue
            seen.add(signature)
            kept.append(trees[n])
    return kept


# ----------------------------------------------------------------------------- fitting


def _apply_output(values: Array, output: str) -> Array:
    """The model prediction from the expression's values (``"sqrt"``: ``y = sqrt(f)``)."""
    if output == "sqrt":
        positive = values > 0
        return jnp.where(positive, jnp.sqrt(jnp.where(positive, values, 1.0)), jnp.nan)
    return values


@partial(jax.jit, static_argnames=("num_iterations", "operators", "output"))
def _fit_batch(
    codes, indices, starts, x, y, inverse_sigma, mask, num_iterations, operators, output
):
    """Levenberg-Marquardt for a batch of programs and starts; best start of each."""

    def residual(c, i, p):
        prediction = _apply_output(_run_program(c, i, p, x, operators), output)
        return (y - prediction) * inverse_sigma

    def cost_of(c, i, p):
        r = residual(c, i, p)
        value = jnp.sum(r**2)
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    def lm(c, i, m, p0):
        def step(state, _):
            p, cost, damping = state
            r = residual(c, i, p)
            jac = jax.jacfwd(lambda q: residual(c, i, q))(p) * m
            jac = jnp.nan_to_num(jac)
            r = jnp.nan_to_num(r)
            jtj = jac.T @ jac
            g = jac.T @ r
            scale = jnp.diagonal(jtj) + (1.0 - m) + 1e-12
            delta = jnp.linalg.solve(jtj + damping * jnp.diag(scale), -g) * m
            candidate = p + delta
            new_cost = cost_of(c, i, candidate)
            better = new_cost < cost
            p = jnp.where(better, candidate, p)
            cost = jnp.where(better, new_cost, cost)
            damping = jnp.where(better, damping / 3.0, damping * 2.0)
            damping = jnp.clip(damping, 1e-12, 1e12)
            return (p, cost, damping), None

        state = (p0, cost_of(c, i, p0), jnp.asarray(1e-3, x.dtype))
        (p, cost, _), _ = jax.lax.scan(step, state, None, length=num_iterations)
        return p, cost

    def per_expression(c, i, m, s):
        params, costs = jax.vmap(lambda p0: lm(c, i, m, p0 * m))(s)
        best = jnp.argmin(costs)
        p = params[best]
        hessian = jax.hessian(lambda q: 0.5 * cost_of(c, i, q))(p)
        hessian = hessian * jnp.outer(m, m) + jnp.diag(1.0 - m)
        return p, costs[best], hessian

    return jax.vmap(per_expression)(codes, indices, mask, starts)


def function_codelength(tree: tuple) -> float:
    """ESR's codelength of a function's structure, ``k ln(n)`` nats.

    ``k`` is the number of nodes and ``n`` the number of distinct symbols the tree uses
    (operators and ``x``, plus one if it has any free parameter), as in the published
    ESR code (``aifeyn_complexity``, following Udrescu et al. 2020; our basis has no
    integer constants, which ESR charges ``ln|c|`` each). ``exp(-codelength)`` is the
    structure prior of :attr:`Equation.log_posterior`.

    Args:
        tree: An expression tree (nested tuples, prefix order).

    Returns:
        The codelength in nats.

    References:
        Bartlett, Desmond & Ferreira (2022), arXiv:2211.11461.
        Udrescu et al. (2020), NeurIPS, arXiv:2006.10782.

    Examples:
        >>> round(function_codelength(("*", ("a",), ("x",))), 4)   # 3 nodes, {*, x, a}
        3.2958
    """
    names = []

    def walk(node):
        names.append(node[0])
        for child in node[1:]:
            walk(child)

    walk(tree)
    symbols = {name for name in names if name != "a"}
    distinct = len(symbols) + int("a" in names)
    return len(names) * math.log(distinct)


def _scores(tree, params, chi2, hessian, num_points, log_sigma_sum, bound, profiled):
    """Description length and Laplace log evidence of one fitted expression (or None)."""
    p = _count_parameters(tree)
    if not np.isfinite(chi2):
        return None
    if profiled:
        variance = max(chi2 / num_points, 1e-300)
        log_likelihood = -0.5 * num_points * (math.log(2 * math.pi * variance) + 1.0)
        hessian = hessian / variance
    else:
        log_likelihood = -0.5 * chi2 - log_sigma_sum - 0.5 * num_points * _LOG_2PI
    theta = np.asarray(params[:p], np.float64)
    fisher = np.asarray(hessian[:p, :p], np.float64)
    if p:
        if not np.all(np.isfinite(fisher)):
            return None
        try:
            cholesky = np.linalg.cholesky(0.5 * (fisher + fisher.T))
        except np.linalg.LinAlgError:
            return None  # not a minimum: no Laplace approximation
        log_det = 2.0 * float(np.sum(np.log(np.diagonal(cholesky))))
        diagonal = np.diagonal(fisher)
        with np.errstate(divide="ignore"):
            parameter_terms = np.log(np.abs(theta)) + 0.5 * np.log(diagonal) - 0.5 * math.log(3)
        if not np.all(np.isfinite(parameter_terms)):
            return None  # a parameter exactly zero: the tree reduces to a simpler one
        # a parameter the data do not pin down costs nothing (never a negative length)
        description_terms = float(np.sum(np.maximum(parameter_terms, 0.0)))
        inside = bool(np.all(np.abs(theta) <= bound))
    else:
        log_det, description_terms, inside = 0.0, 0.0, True
    description_length = -log_likelihood + function_codelength(tree) + description_terms
    if inside:
        # the Occam factor is at most 1: Z = int L pi <= L_max, also where a flat
        # (near-singular) direction would make the Gaussian wider than the prior box
        log_occam = -p * math.log(2 * bound) + 0.5 * p * _LOG_2PI - 0.5 * log_det
        log_evidence = log_likelihood + min(log_occam, 0.0)
    else:
        log_evidence = -math.inf
    return log_likelihood, description_length, log_evidence


def _check_tree(tree, config: SymbolicConfig) -> tuple:
    """Validate a user-supplied tree against ``config``."""
    names = set()

    def walk(node):
        if not isinstance(node, tuple) or not node or not isinstance(node[0], str):
            raise ValueError(
                f"expressions must be nested tuples like ('*', ('a',), ('x',)); got {tree!r}"
            )
        names.add(node[0])
        arity = 2 if node[0] in BINARY_OPERATORS else 1 if node[0] in UNARY_OPERATORS else 0
        if len(node) != arity + 1:
            raise ValueError(f"expressions: node {node[0]!r} needs {arity} children in {tree!r}")
        for child in node[1:]:
            walk(child)

    walk(tree)
    unknown = names - set(config.operators) - set(_LEAVES)
    if unknown:
        raise ValueError(f"expressions: {tree!r} uses {sorted(unknown)} outside config.operators")
    if _size(tree) > config.max_complexity or _count_parameters(tree) > config.max_parameters:
        raise ValueError(
            f"expressions: {tree!r} exceeds max_complexity={config.max_complexity} or "
            f"max_parameters={config.max_parameters}"
        )
    return tree


def unique_expressions(
    x: Float[Array, " num_points"], *, config: SymbolicConfig | None = None
) -> tuple[list[tuple], int]:
    """The deduplicated, non-redundant trees that :func:`symbolic_regression` fits.

    Args:
        x: The inputs (the equality test evaluates the trees on their range and on them).
        config: A :class:`SymbolicConfig` (default ``SymbolicConfig()``).

    Returns:
        ``(trees, num_enumerated)``: the unique trees by increasing complexity, and the
        number of trees enumerated before deduplication.

    Examples:
        >>> import numpy as np
        >>> trees, n = unique_expressions(np.linspace(1, 2, 5),
        ...                               config=SymbolicConfig(max_complexity=3, operators=("*",)))
        >>> trees, n
        ([('x',), ('a',), ('*', ('x',), ('x',)), ('*', ('a',), ('x',))], 4)
    """
    config = SymbolicConfig() if config is None else config
    x_array = as_float_array(x, "x", ndim=1)
    check_finite(x_array, "x")
    dtype = jnp.result_type(float)
    trees = enumerate_expressions(config.max_complexity, config.operators, config.max_parameters)
    span = np.ptp(x_array)
    grid = np.linspace(x_array.min(), x_array.max(), 12) + 0.0137 * (span if span > 0 else 1.0)
    grid = np.concatenate([grid, x_array[:: max(1, x_array.size // 8)]])
    operators = tuple(sorted(config.operators))
    unique = _unique(
        trees, grid.astype(dtype), config.max_parameters, config.max_complexity, operators
    )
    return unique, len(trees)


def symbolic_regression(
    key,
    x: Float[Array, " num_points"],
    y: Float[Array, " num_points"],
    sigma: Float[Array, " num_points"] | None = None,
    *,
    config: SymbolicConfig | None = None,
    expressions: list[tuple] | None = None,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> SymbolicResult:
    """Exhaustive symbolic regression of ``y(x)``, ranked by evidence x structure prior.

    Args:
        key: PRNG key for the random fit starts.
        x: Inputs, shape ``(num_points,)``.
        y: Outputs, shape ``(num_points,)``.
        sigma: Per-point Gaussian standard deviations of ``y``; ``None`` profiles one
            common sigma (see the module docstring).
        config: A :class:`SymbolicConfig` (default ``SymbolicConfig()``).
        expressions: Trees to fit instead of the enumeration (e.g. from
            :func:`unique_expressions`, computed once for several data sets on the same
            ``x``); each must respect ``config``.
        progress_fn: Optional ``progress_fn(stage, done, total)`` (stage ``"fitting"``).
        throw: Raise :class:`~astrobayes._status.UnreliableResultError` on a failure.

    Returns:
        A :class:`SymbolicResult` whose ``equations`` are ranked by ``config.rank_by``
        (default ``log_posterior``: Laplace log evidence plus ESR's log structure prior).

    Raises:
        ValueError: If ``x``, ``y`` or ``sigma`` are not finite 1-D arrays of one length,
            ``sigma`` is not positive, or there are fewer than 5 points or fewer points
            than ``max_parameters + 2``.

    References:
        Bartlett, Desmond & Ferreira (2022), arXiv:2211.11461.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.linspace(1.0, 3.0, 20)
        >>> y = 2.0 * x + 0.01 * jax.random.normal(jax.random.key(0), (20,))
        >>> config = SymbolicConfig(max_complexity=3, operators=("+", "*"), num_starts=2)
        >>> result = symbolic_regression(jax.random.key(1), x, y, jnp.full(20, 0.01),
        ...                              config=config)
        >>> result.equations[0].expression  # x + x: no parameter, so no Occam penalty
        '2*x'
    """
    config = SymbolicConfig() if config is None else config
    if not isinstance(config, SymbolicConfig):
        raise TypeError(f"config must be a SymbolicConfig; got {type(config).__name__}")
    x_array = as_float_array(x, "x", ndim=1)
    y_array = as_float_array(y, "y", ndim=1)
    check_finite(x_array, "x")
    check_finite(y_array, "y")
    if x_array.shape != y_array.shape:
        raise ValueError(
            f"x and y must have the same length; got {x_array.size} and {y_array.size}"
        )
    minimum = max(5, config.max_parameters + 2)
    if x_array.size < minimum:
        raise ValueError(
            f"x and y need at least {minimum} points (max_parameters + 2, and 5); "
            f"got {x_array.size}"
        )
    profiled = sigma is None
    if profiled:
        sigma_array = np.ones_like(y_array)
    else:
        sigma_array = as_float_array(sigma, "sigma", ndim=1)
        check_finite(sigma_array, "sigma")
        if sigma_array.shape != y_array.shape:
            raise ValueError(
                f"sigma must have one value per point ({y_array.size}); got {sigma_array.size}"
            )
        if np.any(sigma_array <= 0):
            raise ValueError("sigma must be positive everywhere")
    dtype = jnp.result_type(float)
    length = config.max_complexity
    operators = tuple(sorted(config.operators))
    if expressions is None:
        unique, num_enumerated = unique_expressions(x_array, config=config)
    else:
        unique = [_check_tree(tree, config) for tree in expressions]
        num_enumerated = len(unique)
    num_basis = len(config.operators) + len(_LEAVES)
    programs = [_to_postfix(tree, length) for tree in unique]
    num_params = np.array([_count_parameters(t) for t in unique])
    width = config.max_parameters
    key_starts = key
    equations = []
    x_device = jnp.asarray(x_array, dtype)
    y_device = jnp.asarray(y_array, dtype)
    inverse_sigma = jnp.asarray(1.0 / sigma_array, dtype)
    log_sigma_sum = float(np.sum(np.log(sigma_array)))
    batch = min(config.batch_size, max(len(unique), 1))
    for start in range(0, len(unique), batch):
        stop = min(start + batch, len(unique))
        pad = batch - (stop - start)
        index = list(range(start, stop)) + [start] * pad
        codes = jnp.asarray(np.stack([programs[n][0] for n in index]))
        indices = jnp.asarray(np.stack([programs[n][1] for n in index]))
        mask = jnp.asarray((np.arange(width)[None, :] < num_params[index][:, None]).astype(dtype))
        key_starts, subkey = jax.random.split(key_starts)
        random_starts = 2.0 * jax.random.normal(subkey, (batch, config.num_starts, width), dtype)
        starts = random_starts.at[:, 0, :].set(1.0)
        params, costs, hessians = _fit_batch(
            codes,
            indices,
            starts,
            x_device,
            y_device,
            inverse_sigma,
            mask,
            num_iterations=config.num_iterations,
            operators=operators,
            output=config.output,
        )
        params, costs, hessians = (np.asarray(a, np.float64) for a in (params, costs, hessians))
        for offset in range(stop - start):
            tree = unique[start + offset]
            scores = _scores(
                tree,
                params[offset],
                costs[offset],
                hessians[offset],
                x_array.size,
                log_sigma_sum,
                float(config.parameter_bound),
                profiled,
            )
            if scores is None:
                continue
            log_likelihood, description_length, log_evidence = scores
            p = _count_parameters(tree)
            equations.append(
                Equation(
                    expression=str(_to_sympy(tree)),
                    parameters=tuple(float(v) for v in params[offset][:p]),
                    complexity=_size(tree),
                    description_length=float(description_length),
                    log_evidence=float(log_evidence),
                    log_posterior=float(log_evidence - function_codelength(tree)),
                    log_likelihood=float(log_likelihood),
                    chi2=float(costs[offset]),
                    tree=tree,
                )
            )
        if progress_fn is not None:
            progress_fn("fitting", stop, len(unique))
    if config.rank_by == "description_length":
        equations.sort(key=lambda e: (e.description_length, -e.log_evidence))
    else:
        equations.sort(key=lambda e: (-getattr(e, config.rank_by), e.description_length))
    if not equations:
        status = SymbolicStatus.NO_VALID
    elif dtype != jnp.float64:
        status = SymbolicStatus.FLOAT32
    else:
        status = SymbolicStatus.OK
    if profiled and equations:
        sigma_used = np.full(x_array.size, math.sqrt(equations[0].chi2 / x_array.size))
    else:
        sigma_used = sigma_array
    result = SymbolicResult(
        equations=tuple(equations),
        num_enumerated=num_enumerated,
        num_unique=len(unique),
        num_basis=num_basis,
        sigma=sigma_used,
        status=status,
    )
    return check(result, throw)
