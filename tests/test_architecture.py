"""The package's shape, checked from its source with :mod:`ast` (docstrings never count).

* Only ``io/`` and ``cli/`` touch files.
* The import graph between units (subpackages and top-level modules) has no cycle and
  no arrow from a lower layer to a higher one (``docs/architecture.md``): the ground
  floor imports only the ground floor; the numerical core never imports ``io``,
  ``plots`` or ``cli``; ``evidence`` never imports ``sampling``; ``emulators`` is a leaf.
* No private name (``_foo``, or a private module inside another subpackage) is imported
  across units.

Each checker works on source text, so each rule has a negative control on a small
synthetic tree that breaks it.
"""

from __future__ import annotations

import ast
import collections
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "astrobayes"

# ----------------------------------------------------------------------------- layers

GROUND_FLOOR = ("_status", "_types", "_checks", "_config", "_training", "diagnostics", "_flows")
"""Import nothing of ours but each other."""

LAYERS: dict[str, int] = {
    # docs/architecture.md layer 0: the ground floor
    **dict.fromkeys(GROUND_FLOOR, 0),
    # layer 1, building blocks, ranked so that the arrows the table allows go down
    "chains": 1,
    "emulators": 1,
    "mixtures": 1,  # Gaussian-mixture EM shared by evidence targets and interpret
    "evidence": 2,
    "sampling": 2,
    "validation": 2,
    "models": 3,  # uses sampling's types
    "cosmology": 4,  # uses models and emulators
    # layer 2: applications (the later row may use the earlier one)
    "comparison": 5,
    "imaging": 5,
    "sbi": 5,
    "sphere": 6,  # sky-map SBI uses sbi
    "interpret": 6,  # saliency of sbi embeddings and emulators
    "physics": 6,  # ODE models compared through comparison
    "bayesnn": 6,
    "variational": 6,
    "runconfig": 6,  # a comparison from settings: builds Models, calls comparison.compare
    "compilation": 0,  # JAX's persistent compilation cache (sets JAX options only)
    "_workers": 0,  # what simulator worker processes import (NumPy only)
    # layers 3 and 4: files and figures, then the shell
    "io": 7,
    "plots": 8,
    "cli": 9,
    "__init__": 10,
}
"""Rank of every unit: an import must go to a strictly lower rank (ground floor: any
other ground-floor module). A new unit must be placed here when it is created."""

SHELLS = ("io", "plots", "cli")
FILE_UNITS = ("io", "cli")

ALLOWED_PRIVATE_IMPORTS: set[tuple[str, str]] = set()
"""``(importing module, imported name)`` pairs still to be fixed (being fixed in issue 10)."""

ALLOWED_FILE_ACCESS: set[str] = set()
"""Modules outside io/ and cli/ still touching files (being fixed in issue 10)."""

# ----------------------------------------------------------------------------- parsing


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    """``astrobayes.x.y`` -> ``x``; the package root -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules(root: Path) -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield _module_name(path, root), path, ast.parse(path.read_text(), filename=str(path))


class Import(NamedTuple):
    """One import of a module of ours: who, where (path from ``src/``), what."""

    source: str
    path: Path
    line: int
    target: str
    name: str | None


def _resolve_relative(source: str, is_package: bool, level: int, module: str | None) -> str:
    base = source.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([module] if module else []))


def imports(root: Path) -> list[Import]:
    """Every import of ``astrobayes...`` in the tree, module-level or inside functions."""
    package = root.name
    found = []
    for source, full_path, tree in _modules(root):
        path = full_path.relative_to(root.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == package or alias.name.startswith(package + "."):
                        found.append(Import(source, path, node.lineno, alias.name, None))
            elif isinstance(node, ast.ImportFrom):
                module = node.module
                if node.level:
                    module = _resolve_relative(
                        source, full_path.name == "__init__.py", node.level, node.module
                    )
                if module is None or not (module == package or module.startswith(package + ".")):
                    continue
                for alias in node.names:
                    if module == package:  # from astrobayes import io
                        found.append(
                            Import(source, path, node.lineno, f"{package}.{alias.name}", None)
                        )
                    else:
                        found.append(Import(source, path, node.lineno, module, alias.name))
    return found


def unit_graph(root: Path) -> dict[str, dict[str, list[Import]]]:
    """``graph[a][b]``: the imports by which unit ``a`` imports unit ``b`` (``a != b``)."""
    graph: dict[str, dict[str, list[Import]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for item in imports(root):
        a, b = _unit(item.source), _unit(item.target)
        if a != b:
            graph[a][b].append(item)
    return graph


def _where(item: Import) -> str:
    return f"{item.path}:{item.line}"


def find_cycles(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, {}):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(set(graph) | {b for targets in graph.values() for b in targets}):
        if node not in index:
            visit(node)
    return components


def layer_violations(
    graph: dict[str, dict[str, list[Import]]], layers: dict[str, int] = LAYERS
) -> list[str]:
    """Arrows that break the layering, each as ``file:line: a -> b (why)``."""
    problems = []
    for a, targets in sorted(graph.items()):
        for b, items in sorted(targets.items()):
            where = ", ".join(_where(i) for i in items[:3])
            if a not in layers or b not in layers:
                unknown = a if a not in layers else b
                problems.append(f"{where}: unit {unknown!r} has no layer; add it to LAYERS")
                continue
            if layers[a] == 0 and layers[b] != 0:
                problems.append(f"{where}: ground floor {a} imports {b} (above it)")
            elif b in SHELLS and a not in SHELLS and a != "__init__":
                problems.append(f"{where}: core {a} imports the shell {b}")
            elif a == "evidence" and b == "sampling":
                problems.append(f"{where}: evidence imports sampling (it must work on any chains)")
            elif a == "emulators" and layers[b] != 0:
                problems.append(f"{where}: emulators (a leaf) imports {b}")
            elif layers[a] != 0 and layers[b] >= layers[a]:
                problems.append(
                    f"{where}: {a} (layer {layers[a]}) imports {b} (layer {layers[b]}): "
                    "arrows must go down"
                )
    return problems


def private_imports(root: Path) -> list[str]:
    """Private names or private modules imported from another unit."""
    problems = []
    for item in imports(root):
        a, b = _unit(item.source), _unit(item.target)
        if a == b:
            continue
        inner = item.target.split(".")[2:]  # below the unit: astrobayes.<unit>.<inner>
        private_module = next((p for p in inner if p.startswith("_") and p != "__init__"), None)
        private_name = item.name if item.name and item.name.startswith("_") else None
        if private_name and not private_name.startswith("__"):
            if (item.source, private_name) not in ALLOWED_PRIVATE_IMPORTS:
                problems.append(
                    f"{_where(item)}: {item.source} imports private {private_name} from "
                    f"{item.target}"
                )
        elif private_module and (item.source, item.target) not in ALLOWED_PRIVATE_IMPORTS:
            problems.append(f"{_where(item)}: {item.source} imports private module {item.target}")
    return problems


# ------------------------------------------------------------------------- file access

_NUMPY_FILE_FUNCTIONS = {
    "load",
    "loadtxt",
    "genfromtxt",
    "fromfile",
    "save",
    "savez",
    "savez_compressed",
    "savetxt",
    "memmap",
}
_PATH_FILE_METHODS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "tofile"}
_MODULE_FILE_FUNCTIONS = {
    "numpy": _NUMPY_FILE_FUNCTIONS,
    "jax.numpy": {"load", "save", "savez"},
    "pickle": {"load", "dump"},
    "json": {"load", "dump"},
    "tomllib": {"load"},
    "h5py": {"File"},
    "equinox": {"tree_serialise_leaves", "tree_deserialise_leaves"},
}


def _module_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> module (``np`` -> ``numpy``, ``fits`` -> ``astropy.io.fits``)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    head = aliases.get(node.id, node.id)
    return ".".join([head, *reversed(names)])


def file_access(tree: ast.Module) -> list[tuple[int, str]]:
    """``(line, what)`` for every file access in a module's code (not its docstrings)."""
    aliases = _module_aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node, aliases)
            if dotted and (dotted.startswith("astropy.io.fits.") or dotted == "astropy.io.fits"):
                found.append((node.lineno, "astropy.io.fits"))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open" and func.id not in aliases:
            found.append((node.lineno, "open("))
            continue
        dotted = _dotted(func, aliases)
        if dotted is not None:
            module, _, name = dotted.rpartition(".")
            if name in _MODULE_FILE_FUNCTIONS.get(module, ()):
                found.append((node.lineno, f"{module}.{name}("))
                continue
            if dotted in {f"{m}.{n}" for m, ns in _MODULE_FILE_FUNCTIONS.items() for n in ns}:
                found.append((node.lineno, f"{dotted}("))
                continue
        if isinstance(func, ast.Attribute) and func.attr in _PATH_FILE_METHODS:
            found.append((node.lineno, f".{func.attr}("))
    return sorted(set(found))


def file_access_outside_io(root: Path) -> list[str]:
    """``file:line: what`` for file access outside the units allowed to touch files."""
    problems = []
    for module, path, tree in _modules(root):
        if _unit(module) in FILE_UNITS or module in ALLOWED_FILE_ACCESS:
            continue
        for line, what in file_access(tree):
            problems.append(f"{path.relative_to(root.parent)}:{line}: {what}")
    return problems


# ------------------------------------------------------------------------------- tests


def test_no_file_access_outside_io_and_cli():
    problems = file_access_outside_io(PACKAGE)
    assert not problems, (
        "only astrobayes.io and astrobayes.cli touch files; move these into an io module "
        "(the core takes arrays):\n  " + "\n  ".join(problems)
    )


def test_import_graph_has_no_cycle():
    cycles = find_cycles(unit_graph(PACKAGE))
    assert not cycles, f"import cycles between units: {cycles}"


def test_imports_go_down_the_layers():
    problems = layer_violations(unit_graph(PACKAGE))
    assert not problems, "imports against the layering:\n  " + "\n  ".join(problems)


def test_no_private_name_imported_across_units():
    problems = private_imports(PACKAGE)
    assert not problems, (
        "private names imported across units (make them public in their home, or move the "
        "code):\n  " + "\n  ".join(problems)
    )


def test_every_unit_has_a_layer():
    units = {_unit(m) for m, _, _ in _modules(PACKAGE)}
    assert units <= set(LAYERS), f"units without a layer: {sorted(units - set(LAYERS))}"


# --------------------------------------------------------------------- negative controls


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "astrobayes"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return root


def test_file_access_checker_flags_code_not_docstrings(tmp_path):
    root = _tree(
        tmp_path,
        {
            "evidence/bad.py": '''
                """Docstring mentioning open(path) and np.load(x) does not count."""
                import numpy as np
                import numpy
                from astropy.io import fits
                from pathlib import Path

                # np.savez(path) in a comment does not count
                def f(path):
                    with open(path) as handle:
                        pass
                    a = np.load(path)
                    numpy.savez(path, a=a)
                    table = np.loadtxt(path)
                    hdu = fits.open(path)
                    return Path(path).read_text()
            ''',
            "io/fine.py": "import numpy as np\ndef g(p):\n    return np.load(p)\n",
            "cli/fine.py": "def h(p):\n    return open(p)\n",
        },
    )
    problems = file_access_outside_io(root)
    text = "\n".join(problems)
    assert "evidence/bad.py:10: open(" in text
    assert "evidence/bad.py:12: numpy.load(" in text
    assert "evidence/bad.py:13: numpy.savez(" in text
    assert "evidence/bad.py:14: numpy.loadtxt(" in text
    assert "evidence/bad.py:15: astropy.io.fits" in text
    assert "evidence/bad.py:16: .read_text(" in text
    assert all("evidence/bad.py" in p for p in problems), problems
    assert not any(":2:" in p or ":8:" in p for p in problems), problems


def test_layer_checker_flags_each_rule(tmp_path):
    root = _tree(
        tmp_path,
        {
            "_status.py": "from astrobayes.chains import Chains\n",
            "chains.py": "import numpy\n",
            "evidence/estimator.py": "def f():\n    from astrobayes.sampling import nuts\n",
            "sampling/nuts.py": "from astrobayes.io import writers\n",
            "emulators/net.py": "from astrobayes.cosmology import data\n",
            "cosmology/data.py": "from astrobayes import emulators\n",
            "io/writers.py": "from astrobayes.chains import Chains\n",
        },
    )
    text = "\n".join(layer_violations(unit_graph(root)))
    assert "ground floor _status imports chains" in text
    assert "evidence/estimator.py:2: evidence imports sampling" in text  # function-level
    assert "core sampling imports the shell io" in text
    assert "emulators (a leaf) imports cosmology" in text
    assert "io/writers.py" not in text
    assert find_cycles(unit_graph(root)) == [["cosmology", "emulators"]]


def test_layer_checker_flags_upward_arrows_and_unknown_units(tmp_path):
    root = _tree(
        tmp_path,
        {
            "chains.py": "from astrobayes.models import Model\n",
            "models/model.py": "from .problems import x\nfrom astrobayes.chains import Chains\n",
            "models/problems.py": "x = 1\n",
            "newthing/core.py": "from astrobayes.chains import Chains\n",
        },
    )
    graph = unit_graph(root)
    text = "\n".join(layer_violations(graph))
    assert "chains (layer 1) imports models (layer 3): arrows must go down" in text
    assert "unit 'newthing' has no layer" in text
    assert "models (layer 3) imports chains" not in text
    assert "models" not in graph.get("models", {})  # relative import stays inside the unit


def test_private_import_checker(tmp_path):
    root = _tree(
        tmp_path,
        {
            "sbi/evidence.py": (
                "from astrobayes.sampling.nuts import _nuts, run_nuts\n"
                "from astrobayes.sampling._kernel import build\n"
                "from astrobayes._checks import check_key\n"
                "from astrobayes.sbi.training import _helper\n"
            ),
            "sampling/nuts.py": "def _nuts():\n    pass\ndef run_nuts():\n    pass\n",
            "sampling/_kernel.py": "def build():\n    pass\n",
            "sbi/training.py": "def _helper():\n    pass\n",
        },
    )
    problems = private_imports(root)
    text = "\n".join(problems)
    assert "sbi/evidence.py:1: astrobayes.sbi.evidence imports private _nuts" in text
    assert "imports private module astrobayes.sampling._kernel" in text
    assert len(problems) == 2, problems  # ground floor modules and same-unit names are fine


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nnp.savez('x', a=1)\n",
        "from numpy import load\nload('x')\n",
        "import pickle\npickle.load(f)\n",
        "import equinox as eqx\neqx.tree_serialise_leaves('x', m)\n",
        "import jax.numpy as jnp\njnp.save('x', a)\n",
    ],
)
def test_file_access_checker_negative_controls(source):
    assert file_access(ast.parse(source)), source


def modules_without_all(root: Path) -> list[str]:
    """Modules outside ``cli/`` (and data-only packages) that do not define ``__all__``."""
    missing = []
    for module, _path, tree in _modules(root):
        if ".cli" in module or not any(
            isinstance(node, ast.FunctionDef | ast.ClassDef) for node in tree.body
        ):
            continue
        defines_all = any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            for node in tree.body
        )
        if not defines_all:
            missing.append(module)
    return missing


def test_every_module_states_its_public_names():
    assert modules_without_all(PACKAGE) == []


def test_all_checker_negative_control(tmp_path):
    root = _tree(
        tmp_path, {"a.py": "def f():\n    pass\n", "b.py": "__all__ = []\ndef g(): pass\n"}
    )
    assert modules_without_all(root) == ["astrobayes.a"]
