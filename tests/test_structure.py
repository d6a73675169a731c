"""House rules of autoq/ checked on the source (ast only, nothing imported): modules under 500
lines, functions under 60, no import cycle, and the data flow's forbidden directions
(space -> config -> model -> train -> plan/cost -> study -> pareto -> export; DESIGN.md).

The graph counts every import, also those inside functions (they run, only later), except
under ``if TYPE_CHECKING:``; ``from pkg import sub`` with ``sub`` a module is an edge to the
submodule, not to ``pkg/__init__.py``. The checker itself is tested on small packages below.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# (importer area, imported area): an area is a module with its submodules; "autoq.cli*" is the CLI
# (autoq.cli and its autoq.cli_* helpers).
FORBIDDEN = [
    ("autoq.search", "autoq.pareto"),
    ("autoq.export", "autoq.pareto"),
    ("autoq.kernels", "autoq.cost"),
    *[(low, high) for low in ("autoq.quant", "autoq.plan", "autoq.cost") for high in ("autoq.search", "autoq.cli*")],
]


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``root/package``."""
    mods = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def long_modules(mods: dict[str, Path], limit: int = MAX_MODULE_LINES) -> list[str]:
    found = []
    for name, path in mods.items():
        n = len(path.read_text().splitlines())
        if n > limit:
            found.append(f"{name} ({path.name}): {n} lines")
    return found


def long_functions(mods: dict[str, Path], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions and methods (nested ones too) longer than ``limit`` lines, def line to last line."""
    found = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    found.append(f"{name}.{node.name} ({path.name}:{node.lineno}): {n} lines")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Import statements anywhere in ``tree`` except the body of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Dotted names ``node`` may import: for ``from X import a``, ``X.a`` (a submodule) and ``X``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph(mods: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported module of the same package: first line importing it}."""
    graph: dict[str, dict[str, int]] = {name: {} for name in mods}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in _import_nodes(ast.parse(path.read_text())):
            names = _imported_names(node, name, is_package)
            if isinstance(node, ast.ImportFrom):
                # `from X import a, b`: an edge to each submodule named, to X for plain names
                subs = [n for n in names[:-1] if n in mods]
                targets = subs + ([names[-1]] if len(subs) < len(names) - 1 else [])
            else:
                targets = names
            for target in targets:
                while target and target not in mods:      # `import a.b.name` -> a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name][target] = min(node.lineno, graph[name].get(target, node.lineno))
    return graph


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe_cycle(component: list[str], graph: dict[str, dict[str, int]], mods: dict[str, Path]) -> str:
    """The edges inside one cycle, each with the importing file and line."""
    members = set(component)
    edges = [f"{a} -> {b} ({mods[a].name}:{line})" for a in component
             for b, line in sorted(graph[a].items()) if b in members]
    return "cycle among " + ", ".join(component) + ":\n    " + "\n    ".join(edges)


def in_area(module: str, area: str) -> bool:
    if area.endswith("*"):
        return module.startswith(area[:-1])
    return module == area or module.startswith(area + ".")


def forbidden_imports(graph: dict[str, dict[str, int]], mods: dict[str, Path],
                      rules: list[tuple[str, str]] = FORBIDDEN) -> list[str]:
    return [f"{a} -> {b} ({mods[a].name}:{line}; {low} must not import {high})"
            for low, high in rules for a in sorted(graph) if in_area(a, low)
            for b, line in sorted(graph[a].items()) if in_area(b, high)]


def fail_listing(what: str, offenders: list[str]) -> None:
    """Fail with every offender on its own line (no repr of the list)."""
    if offenders:
        pytest.fail(f"{len(offenders)} {what}:\n  " + "\n  ".join(offenders), pytrace=False)


# --- autoq itself ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def autoq_modules():
    return find_modules(ROOT, "autoq")


def test_no_module_over_500_lines(autoq_modules):
    offenders = long_modules(autoq_modules)
    fail_listing(f"modules over {MAX_MODULE_LINES} lines", offenders)


def test_no_function_over_60_lines(autoq_modules):
    offenders = long_functions(autoq_modules)
    fail_listing(f"functions over {MAX_FUNCTION_LINES} lines", offenders)


def test_no_import_cycle(autoq_modules):
    graph = import_graph(autoq_modules)
    cycles = [describe_cycle(c, graph, autoq_modules) for c in import_cycles(graph)]
    fail_listing("import cycles", cycles)


def test_no_import_against_the_data_flow(autoq_modules):
    offenders = forbidden_imports(import_graph(autoq_modules), autoq_modules)
    fail_listing("forbidden imports", offenders)


def test_the_checker_sees_all_of_autoq(autoq_modules):
    """The walk finds the packages and the known edges (a checker that finds nothing passes)."""
    assert {"autoq", "autoq.cli", "autoq.quant.base", "autoq.export.onnx", "autoq.kinds"} <= set(autoq_modules)
    graph = import_graph(autoq_modules)
    assert "autoq.quant.forms" in graph["autoq.quant.base"]
    assert "autoq.kinds" in graph["autoq.quant.quantizers"]



def test_every_package_ships_in_the_wheel():
    """pyproject lists packages by hand: a new subpackage left out installs without its code."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "autoq").rglob("__init__.py")}
    assert packages - listed == set(), f"pyproject.toml [tool.setuptools] packages misses {sorted(packages - listed)}"

# --- the checker on small packages ----------------------------------------------------------

def _package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return find_modules(root, "pkg")


def test_checker_module_names(tmp_path):
    mods = _package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "", "pkg/sub/__init__.py": "", "pkg/sub/b.py": ""})
    assert set(mods) == {"pkg", "pkg.a", "pkg.sub", "pkg.sub.b"}


def test_checker_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    mods = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "import os\n\ndef f():\n    from pkg.c import g\n",
        "pkg/c.py": "from . import a\ndef g(): pass\n",
        "pkg/d.py": "import pkg.a\n"})
    graph = import_graph(mods)
    assert graph["pkg.b"] == {"pkg.c": 4}
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    text = describe_cycle(["pkg.a", "pkg.b", "pkg.c"], graph, mods)
    assert "pkg.b -> pkg.c (b.py:4)" in text and "pkg.c -> pkg.a (c.py:1)" in text


def test_checker_ignores_type_checking_imports(tmp_path):
    mods = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import X\n",
        "pkg/b.py": ("from typing import TYPE_CHECKING\nimport typing\nif TYPE_CHECKING:\n    from pkg.a import Y\n"
                     "if typing.TYPE_CHECKING:\n    import pkg.a\nelse:\n    import pkg.c\nX = 1\n"),
        "pkg/c.py": ""})
    graph = import_graph(mods)
    assert graph["pkg.b"] == {"pkg.c": 8}
    assert import_cycles(graph) == []


def test_checker_from_package_import_submodule_is_an_edge_to_the_submodule(tmp_path):
    """pkg/__init__ re-exports from pkg.a; pkg.b takes the submodule pkg.a by `from pkg import a`
    (no cycle) and a name from the package (an edge to pkg, and so a cycle with it)."""
    mods = _package(tmp_path, {
        "pkg/__init__.py": "from pkg.b import thing\n",
        "pkg/a.py": "",
        "pkg/b.py": "from pkg import a\nthing = 1\n",
        "pkg/sub/__init__.py": "from .m import helper\n",
        "pkg/sub/m.py": "from .. import a\nfrom ..a import z\nfrom . import helper2\ndef helper(): pass\n",
        "pkg/sub/helper2.py": "",
        "pkg/e.py": "from pkg import a, VERSION\n"})
    graph = import_graph(mods)
    assert graph["pkg.b"] == {"pkg.a": 1}
    assert graph["pkg.sub"] == {"pkg.sub.m": 1}
    assert graph["pkg.sub.m"] == {"pkg.a": 1, "pkg.sub.helper2": 3}
    assert graph["pkg.e"] == {"pkg.a": 1, "pkg": 1}
    assert import_cycles(graph) == []
    mods = _package(tmp_path, {"pkg/b.py": "from pkg import thing as other\nthing = 1\n"})
    assert import_cycles(import_graph(mods)) == [["pkg", "pkg.b"]]


def test_checker_long_modules_and_functions(tmp_path):
    def body(indent):
        return "".join(f"{indent}x{i} = {i}\n" for i in range(59))

    mods = _package(tmp_path, {
        "pkg/__init__.py": "\n" * 500,
        "pkg/big.py": "\n" * 501,
        "pkg/f.py": (f"def ok():\n{body('    ')}\n"                   # lines 1-60: 60 lines
                     f"class K:\n    def method(self):\n{body(' ' * 8)}        return 1\n"      # 63-123
                     f"def outer():\n    def inner():\n{body(' ' * 8)}        pass\n")})       # 124-185
    assert long_modules(mods) == ["pkg.big (big.py): 501 lines"]
    assert sorted(long_functions(mods)) == ["pkg.f.inner (f.py:125): 61 lines", "pkg.f.method (f.py:63): 61 lines",
                                            "pkg.f.outer (f.py:124): 62 lines"]


def test_checker_forbidden_directions(tmp_path):
    mods = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "",
        "pkg/low/x.py": "def f():\n    from pkg.cli_extra import y\n",
        "pkg/cli.py": "from pkg.low import x\n",
        "pkg/cli_extra.py": "y = 1\n",
        "pkg/lower.py": "import pkg.cli\n"})                  # not in area pkg.low
    offenders = forbidden_imports(import_graph(mods), mods, [("pkg.low", "pkg.cli*"), ("pkg.cli", "pkg.lower")])
    assert offenders == ["pkg.low.x -> pkg.cli_extra (x.py:2; pkg.low must not import pkg.cli*)"]
