"""The import layers of docs/architecture.md hold: no module imports a layer above its own, and no two
modules import each other (directly or round a loop), whether at the top of a file or inside a function."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import anonymizer

PACKAGE = Path(anonymizer.__file__).parent

#: The layers from the bottom; a module may import its own layer and those below it.
LAYERS: dict[str, int] = {
    "errors": 0,
    "types": 0,
    "defaults": 0,
    "ops": 1,
    "media": 1,
    "nn": 2,
    "weights": 2,
    "vault": 2,
    "pipeline": 3,
    "audit": 4,
    "train": 4,
    "api": 5,
    "": 5,  # the package itself: the facade's names, imported lazily from api
    "cli": 6,
}


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else ""]


def imports(path: Path, root: Path, *, typing_only: bool = True) -> Iterator[tuple[str, int]]:
    """(module imported, line) for every import of the package in ``path``; with ``typing_only=False``
    those under ``if TYPE_CHECKING:`` are left out (they never run, so they make no cycle)."""
    module = _module(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if not typing_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names if a.name.split(".")[0] == root.name)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            if target.split(".")[0] != root.name:
                continue
            for alias in node.names:  # `from . import x` imports the module x
                sub = f"{target}.{alias.name}"
                is_module = (root.parent / sub.replace(".", "/")).with_suffix(".py").is_file()
                yield (sub if is_module or (root.parent / sub.replace(".", "/")).is_dir() else target), node.lineno


def upward_imports(root: Path) -> list[str]:
    return [
        f"{_module(p, root)}:{line} imports {target}"
        for p in sorted(root.rglob("*.py"))
        for target, line in imports(p, root)
        if _layer(target) > _layer(_module(p, root))
    ]


def cycles(root: Path) -> list[list[str]]:
    """Strongly connected groups of more than one module in the graph of imports that run."""
    graph = {_module(p, root): {t for t, _ in imports(p, root, typing_only=False)} for p in root.rglob("*.py")}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            if group:
                found.append(sorted([v, *group]))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports(PACKAGE) == []


def test_no_import_cycles() -> None:
    assert cycles(PACKAGE) == []


def test_the_cli_talks_only_to_the_api() -> None:
    allowed = {"anonymizer", "anonymizer.api", "anonymizer.defaults", "anonymizer.errors", "anonymizer.types"}
    bad = [
        f"{_module(p, PACKAGE)}:{line} imports {target}"
        for p in sorted((PACKAGE / "cli").rglob("*.py"))
        for target, line in imports(p, PACKAGE)
        if target not in allowed and not target.startswith("anonymizer.cli")
    ]
    assert bad == []


def test_every_top_level_module_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    assert names - {"__init__", "__pycache__"} <= set(LAYERS)


def test_the_checks_find_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / PACKAGE.name
    for folder in ("ops", "pipeline"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "ops" / "boxes.py").write_text("def f():\n    from ..pipeline import video\n")
    (root / "pipeline" / "video.py").write_text("from ..ops import boxes\n")
    (root / "pipeline" / "photo.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import video\n"
    )
    assert upward_imports(root) == [f"{root.name}.ops.boxes:2 imports {root.name}.pipeline.video"]
    assert cycles(root) == [[f"{root.name}.ops.boxes", f"{root.name}.pipeline.video"]]
