"""The import graph of ``src/al_experiments``, read from the source with ``ast``: no cycles, and
the layers of DESIGN.md (the array math and the loop know nothing of the app, Hydra or MLflow;
the light paths import no TensorFlow when they load).

Every import is an edge, at module level or inside a function: an import inside a function
hides a cycle from Python's import machinery, not from the design. Relative imports are
resolved; ``from a import b`` is an edge to module ``a.b`` where that is a module, else to
``a``; an import of a package is an edge to its ``__init__.py``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import al_experiments

PACKAGE = "al_experiments"
ROOT = Path(al_experiments.__file__).parent

# Cycles that exist on purpose for now, each with its reason; the test fails when one of them
# is gone, so its entry goes too.
# Allowed cycles, each with its reason (none today: a new entry must say why it cannot be cut).
KNOWN_CYCLES: dict[frozenset[str], str] = {}

# Packages and modules that must not reach the app, the report, Hydra or MLflow: the loop and
# what it drives know nothing of how a job is configured or where its results go.
CORE = ("acquisition", "wrapper", "data", "networks", "pool", "loop", "oracle", "dataset",
        "suit", "validation")
CORE_MUST_NOT_IMPORT = ("al_experiments.app", "al_experiments.report", "hydra", "omegaconf", "mlflow")

# Light paths: modules whose loading imports no TensorFlow (listing strategies, checking a
# config, reading results). A module among them that imports TensorFlow when it loads is named
# here with its reason; the others reach it only inside the function that needs it.
LIGHT = ("acquisition", "data", "pool", "oracle", "dataset", "validation", "config",
         "app.cli", "app.precheck", "app.schema", "report", "tracking", "resume.identity")
TENSORFLOW_ON_LOAD = {
    "al_experiments.acquisition.graph_scores":
        "the strategies' scores as TensorFlow ops, imported by the round only for a model with a compiled sampler",
}
TENSORFLOW = ("tensorflow", "keras")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # a module of the project, or the top-level name of a dependency
    line: int
    top_level: bool  # runs when the module loads (not inside a function)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name: str) -> str:
    """The project's module that importing ``name`` loads last, or a dependency's top name."""
    if name.split(".")[0] != PACKAGE:
        return name.split(".")[0]
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module, self.found, self.depth = module, [], 0

    def _scoped(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scoped

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append(Import(self.module, _target(target), node.lineno, self.depth == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.module, node)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self._add(full if full in MODULES else base, node)


def imports_of(module: str, source: str | None = None) -> list[Import]:
    """The imports in ``module``'s file (or in ``source``, read as if it were that module)."""
    visitor = _Imports(module)
    visitor.visit(ast.parse(MODULES[module].read_text() if source is None else source, str(MODULES[module])))
    return visitor.found


IMPORTS = {module: imports_of(module) for module in MODULES}


def loads_tensorflow_on_load(module: str) -> bool:
    """Does the module call ``import_tensorflow()`` in its own body (not inside a function)?
    Importing ``utils.quiet_tensorflow`` alone loads nothing; calling it does."""
    tree = ast.parse(MODULES[module].read_text())
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "import_tensorflow":
            return True
        pending.extend(ast.iter_child_nodes(node))
    return False


def edges(top_level_only: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module, found in IMPORTS.items():
        for imp in found:
            if imp.target in MODULES and imp.target != module and (imp.top_level or not top_level_only):
                graph[module].add(imp.target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components of more than one module (each holds at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def a_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One cycle through the component, as the modules in import order, back to the first."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to the start
        nxt = []
        for node in frontier:
            for succ in sorted(graph[node] & component):
                if succ == start:
                    return paths[node] + [start]
                if succ not in paths:
                    paths[succ] = paths[node] + [succ]
                    nxt.append(succ)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in a strongly connected component")


def where(source: str, target: str) -> str:
    lines = [str(imp.line) for imp in IMPORTS[source] if imp.target == target]
    return f"{source} line {', '.join(lines)}"


def in_area(module: str, areas: tuple[str, ...]) -> bool:
    return any(module == f"{PACKAGE}.{area}" or module.startswith(f"{PACKAGE}.{area}.") for area in areas)


def test_the_reader_sees_every_kind_of_import():
    source = """
from . import strategy
from .strategy import QueryStrategy
from .no_such_module import name
import numpy.typing

def f():
    from ..pool import Pool
    import al_experiments.report.stats

class C:
    from al_experiments import validation
"""
    found = [(imp.target, imp.top_level) for imp in imports_of("al_experiments.acquisition.registry", source)]
    assert found == [
        ("al_experiments.acquisition.strategy", True),
        ("al_experiments.acquisition.strategy", True),
        ("al_experiments.acquisition", True),  # not a module: the package that would hold it
        ("numpy", True),
        ("al_experiments.pool", False),
        ("al_experiments.report.stats", False),
        ("al_experiments.validation", True),  # a class body runs when the module loads
    ]
    # In a package's __init__.py, "." is the package itself.
    package = [imp.target for imp in imports_of("al_experiments.report", "from . import stats\nfrom .curves import x\n")]
    assert package == ["al_experiments.report.stats", "al_experiments.report.curves"]


def test_strongly_connected_components_find_every_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert strongly_connected(graph) == [{"a", "b", "c"}]
    assert a_cycle(graph, {"a", "b", "c"}) == ["a", "b", "c", "a"]


def test_the_import_graph_has_no_cycle():
    graph = edges()
    found = {frozenset(component): component for component in strongly_connected(graph)}
    new = []
    for key, component in found.items():
        if key not in KNOWN_CYCLES:
            cycle = a_cycle(graph, component)
            new.append(f"{', '.join(sorted(component))} import each other, e.g. " + " -> ".join(cycle)
                       + " (" + "; ".join(where(a, b) for a, b in zip(cycle, cycle[1:])) + ")")
    assert not new, "import cycles (move what both sides need into a module of its own):\n" + "\n".join(new)
    gone = [" <-> ".join(sorted(key)) for key in KNOWN_CYCLES if key not in found]
    assert not gone, f"these allowed cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_the_loop_and_what_it_drives_know_nothing_of_the_app_hydra_or_mlflow():
    wrong = [
        f"{imp.source} imports {imp.target} (line {imp.line})"
        for module, found in IMPORTS.items() if in_area(module, CORE)
        for imp in found
        if any(imp.target == banned or imp.target.startswith(banned + ".") for banned in CORE_MUST_NOT_IMPORT)
    ]
    assert not wrong, "\n".join(wrong)


def test_light_paths_import_no_tensorflow_when_they_load():
    graph = edges(top_level_only=True)
    heavy = {module for module, found in IMPORTS.items()
             if any(imp.top_level and imp.target in TENSORFLOW for imp in found) or loads_tensorflow_on_load(module)}
    assert set(TENSORFLOW_ON_LOAD) <= heavy  # each entry still earns its place
    wrong = []
    for module in (m for m in MODULES if in_area(m, LIGHT) and m not in TENSORFLOW_ON_LOAD):
        path, seen = {module: [module]}, [module]
        while seen:  # what loading the module loads, breadth first
            current = seen.pop(0)
            if current in heavy:
                wrong.append(" -> ".join(path[current]) + " (imports TensorFlow when it loads)")
                break
            for succ in sorted(graph[current]):
                if succ not in path:
                    path[succ] = path[current] + [succ]
                    seen.append(succ)
    assert not wrong, "\n".join(wrong)

