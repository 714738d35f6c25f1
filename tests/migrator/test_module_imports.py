"""The engine room's imports point one way: no circles, never Django.

Read from the source with ``ast`` (every ``import`` statement, also the ones
inside functions, which is where an import circle likes to hide), so the
check needs neither Django nor Alembic to run.
"""

from __future__ import annotations

import ast
from pathlib import Path

MIGRATOR = Path(__file__).resolve().parents[2] / "dashboard" / "migrator"
PACKAGE = "dashboard.migrator"


def _imported_modules(path: Path) -> set[str]:
    """Dotted names of every module ``path`` imports (``from a import b`` counts ``a.b`` too)."""
    module = f"{PACKAGE}.{path.stem}"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each migrator module -> the migrator modules it imports."""
    modules = {f"{PACKAGE}.{p.stem}": p for p in MIGRATOR.glob("*.py") if p.stem != "__init__"}
    return {name: _imported_modules(path) & modules.keys() for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return cycles


def test_the_checker_sees_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from dashboard.migrator.b import thing\n")
    (tmp_path / "b.py").write_text("def f():\n    from dashboard.migrator import a\n")
    graph = {
        f"{PACKAGE}.{stem}": _imported_modules(tmp_path / f"{stem}.py")
        & {f"{PACKAGE}.a", f"{PACKAGE}.b"}
        for stem in ("a", "b")
    }
    assert _cycles(graph) == [[f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.a"]]


def test_no_migrator_module_imports_another_in_a_circle() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.graph_store" in graph[f"{PACKAGE}.graph"]
    assert _cycles(graph) == []


def test_the_graph_dataclasses_live_below_both_graph_modules() -> None:
    graph = import_graph()
    model = f"{PACKAGE}.graph_model"
    assert model in graph[f"{PACKAGE}.graph"] and model in graph[f"{PACKAGE}.graph_store"]
    assert graph[model] == set()
    assert f"{PACKAGE}.graph" not in graph[f"{PACKAGE}.graph_store"]


def test_the_migrator_never_imports_django_or_the_apps_above_it() -> None:
    offenders = {}
    for path in sorted(MIGRATOR.glob("*.py")):
        above = {
            name
            for name in _imported_modules(path)
            if name.split(".")[0] == "django"
            or (name.startswith("dashboard") and not name.startswith(PACKAGE))
        }
        if above:
            offenders[path.name] = sorted(above)
    assert offenders == {}
