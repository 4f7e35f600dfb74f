"""`embedstack.models` is the bottom layer: its modules import each other without a cycle (at
module level or inside functions), and nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

import embedstack.models

PACKAGE = "embedstack.models"
FOLDER = Path(embedstack.models.__file__).parent
ALLOWED_OUTSIDE = {"embedstack.errors", "embedstack.settings", "embedstack.progress"}


def imports_of(path: Path) -> set[str]:
    """Every embedstack module the file imports, wherever the import statement is."""
    submodules = {p.stem for p in FOLDER.glob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("embedstack"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("embedstack"):
            if node.module == PACKAGE:  # `from embedstack.models import X`: a module or a name
                found.update(
                    f"{PACKAGE}.{a.name}" if a.name in submodules else PACKAGE for a in node.names
                )
            else:
                found.add(node.module or "")
    return found


def graph() -> dict[str, set[str]]:
    edges = {}
    for path in FOLDER.glob("*.py"):
        name = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        edges[name] = imports_of(path)
    return edges


def test_models_import_nothing_above_them():
    outside = {
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if not target.startswith(PACKAGE) and target not in ALLOWED_OUTSIDE
    }
    assert outside == set()


def test_models_modules_form_no_import_cycle():
    edges = {m: {t for t in ts if t.startswith(PACKAGE)} for m, ts in graph().items()}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
