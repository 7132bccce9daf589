"""The layer order of ARCHITECTURE.md, held against the imports (read with ast, nothing imported).

Every import inside ``bci_app`` (module level or inside a function) must point to the same layer
or a lower one, and no two modules may import each other, directly or round a longer circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bci_app"

#: Bottom to top. A module's layer is its first path part below bci_app (file stem for the
#: top-level modules). ``base`` holds the modules every layer may use.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "config", "errors", "lifecycle", "scheduling"),  # base
    ("io",),
    ("stream",),
    ("dsp",),
    ("nn",),
    ("decoders",),
    ("infer",),
    ("sources",),
    ("train",),
    ("pipeline",),
    ("record",),
    ("export",),
    ("report",),
    ("calibrate",),
    ("bench",),
    ("gui",),
    ("cli", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> set[str]:
    """Every ``bci_app`` module that ``path`` imports (``from X import name`` counts as X.name
    when that is a module, else X)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("bci_app"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bci_app"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_every_package_has_a_layer() -> None:
    unknown = sorted({layer_of(m) for m in MODULES} - set(RANK))
    assert not unknown, f"give these packages a place in LAYERS: {unknown}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    rank = RANK[layer_of(module)]
    upward = sorted(
        target
        for target in GRAPH[module]
        if target in MODULES and RANK[layer_of(target)] > rank and target != "bci_app"
    )
    assert not upward, f"{module} ({layer_of(module)}) imports from a higher layer: {upward}"


def test_no_import_cycles() -> None:
    """Depth-first search over the module graph; a back edge is a circle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if target not in MODULES or target == node or target == "bci_app":
                continue
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for module in sorted(MODULES):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_layer_test_can_fail(tmp_path: Path) -> None:
    """An upward import written into a module is seen (the graph reader is not blind)."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from bci_app.gui.window import MainWindow\n")
    assert "bci_app.gui.window" in imports_of(module)
