"""Structural rules of the package, checked on its source (see docs/architecture.md).

A newcomer should be able to read ckrun one layer at a time, which an import cycle breaks:
two modules that import each other cannot be understood, tested or moved apart. Modules stay
small for the same reason. Both rules are checked with `ast`, without importing anything.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ckrun"
MAX_LINES = 500
# Modules allowed past MAX_LINES because they hold only data (tables, constants), no logic.
DATA_TABLES: frozenset[str] = frozenset()

Graph = dict[str, set[str]]


def _modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module below `package` (packages by __init__)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions too), except under `if TYPE_CHECKING:`."""
    if isinstance(tree, ast.If) and _is_type_checking(tree.test):
        for node in tree.orelse:
            yield from _runtime_imports(node)
        return
    if isinstance(tree, ast.Import | ast.ImportFrom):
        yield tree
    for child in ast.iter_child_nodes(tree):
        yield from _runtime_imports(child)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ours that one import statement names (`from x import y`: x.y if a module, else x)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    found = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in known:
            found.add(f"{base}.{alias.name}")
        elif base in known:
            found.add(base)
    return found


def import_graph(package: Path) -> Graph:
    """Module -> the modules of `package` it imports explicitly at run time."""
    modules = _modules(package)
    known = set(modules)
    graph: Graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in _runtime_imports(tree):
            edges |= _imported(node, module, path.name == "__init__.py", known)
        graph[module] = edges - {module}
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _describe(component: list[str], graph: Graph) -> str:
    members = set(component)
    edges = [f"    {m} -> {', '.join(sorted(graph[m] & members))}" for m in component]
    return "\n".join([f"  cycle of {len(component)} modules:", *edges])


def test_no_import_cycles() -> None:
    graph = import_graph(PACKAGE)
    found = cycles(graph)
    assert not found, "import cycles in ckrun/ (TYPE_CHECKING imports excluded):\n" + "\n".join(
        _describe(component, graph) for component in found
    )


def test_no_module_over_the_line_limit() -> None:
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules(PACKAGE).items()}
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in DATA_TABLES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them by job, or list pure data tables):\n" + "\n".join(
        f"  {name}: {n}" for name, n in sorted(too_long.items(), key=lambda item: -item[1])
    )


def test_the_walk_sees_relative_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    """The checker itself: a cycle it cannot see would make the test above pass for nothing."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import low\n")
    (package / "sub" / "low.py").write_text("def f():\n    from ..top import g\n")
    (package / "top.py").write_text("from pkg.sub import low\n")
    (package / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import top\nelse:\n    import pkg.sub\n"
    )
    graph = import_graph(package)
    assert graph == {
        "pkg": set(),
        "pkg.sub": {"pkg.sub.low"},
        "pkg.sub.low": {"pkg.top"},
        "pkg.top": {"pkg.sub.low"},
        "pkg.typed": {"pkg.sub"},
    }
    assert cycles(graph) == [["pkg.sub.low", "pkg.top"]]


# The layers of docs/architecture.md, lowest first: a module may import its own layer and the
# ones below it, never one above (a regex per layer over dotted module names; first match wins).
LAYERS: tuple[tuple[str, str], ...] = (
    ("foundation", r"ckrun$|ckrun\.(errors|console|names|config|markdown|outdir)$|ckrun\.data(\.(labels|ckformat))?$"),
    ("figures", r"ckrun\.figures(\..+)?$"),
    ("data", r"ckrun\.data\..+$"),
    ("model", r"ckrun\.model(\.(resnet|xception|objectives|losses|averaging|selection|optimizer))?$"),
    (
        "inference",
        r"ckrun\.(metrics|arrays|tta|predict|predictions|uncertainty|calibration|au_evaluation|emfacs|fusion"
        r"|split_analysis|sequence_analysis)$|ckrun\.baselines(\.(features|families|export|verdict))?$"
        r"|ckrun\.explain(\..+)?$",
    ),
    ("tracking", r"ckrun\.tracking(\..+)?$"),
    (
        "runs",
        r"ckrun\.(scoring|run_logging|prediction_logging|explanations|sequence_evaluation|train|ensemble|baseline"
        r"|crossval|evaluate|fusion_fit)$|ckrun\.(model\.callbacks|baselines\.selection)$",
    ),
    ("tune", r"ckrun\.tune(\..+)?$"),
    ("report", r"ckrun\.(report(\..+)?|ui|compare)$"),
    ("jobs", r"ckrun\.main_job$"),
    ("cli", r"ckrun\.cli(\..+)?$"),
)


def layer_of(module: str) -> int | None:
    return next((i for i, (_, pattern) in enumerate(LAYERS) if re.fullmatch(pattern, module)), None)


def test_every_module_has_a_layer_and_imports_only_downwards() -> None:
    graph = import_graph(PACKAGE)
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    assert not unplaced, f"modules without a layer (add them to LAYERS and docs/architecture.md): {unplaced}"
    upward = [
        f"  {m} ({LAYERS[layer_of(m)][0]}) -> {t} ({LAYERS[layer_of(t)][0]})"  # type: ignore[index]
        for m, targets in sorted(graph.items())
        for t in sorted(targets)
        if layer_of(t) > layer_of(m)  # type: ignore[operator]
    ]
    assert not upward, "imports that reach up a layer (see docs/architecture.md):\n" + "\n".join(upward)


def test_the_layer_check_catches_an_upward_import() -> None:
    assert layer_of("ckrun.data.pipeline") < layer_of("ckrun.tracking.runs")  # type: ignore[operator]
    assert layer_of("ckrun.model.callbacks") > layer_of("ckrun.tracking")  # type: ignore[operator]
    assert layer_of("ckrun.nowhere") is None


def test_only_the_tracking_package_imports_mlflow() -> None:
    offenders = []
    for module, path in _modules(PACKAGE).items():
        if module.startswith("ckrun.tracking"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{module}: {n}" for n in names if n == "mlflow" or n.startswith("mlflow.")]
    assert not offenders, f"MLflow imported outside ckrun/tracking/: {offenders}"
