"""The layer table of docs/architecture.md holds: imports run one way, no cycles, small modules."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sparsenet", "preprocess")
MAX_LINES = 400


@cache
def layers() -> dict[str, int]:
    """Module path prefix (``sparsenet/models/`` or ``sparsenet/train.py``) -> layer number, from the doc's table."""
    table = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        row = re.match(r"\|\s*(\d+)\s*\|[^|]*\|([^|]*)\|", line)
        if row:
            for path in row.group(2).split(","):
                table[path.strip()] = int(row.group(1))
    return table


def modules() -> list[Path]:
    return sorted(p.relative_to(ROOT) for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def layer_of(path: Path) -> int:
    text = path.as_posix()
    for prefix, layer in layers().items():
        if text == prefix or (prefix.endswith("/") and text.startswith(prefix)):
            return layer
    raise AssertionError(f"{text} is in no layer of docs/architecture.md; add it to the table")


def module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path | None:
    """The file of module ``name`` of this project (None for other libraries)."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(ROOT)
    return None


def imports(path: Path) -> set[Path]:
    """The project modules ``path`` imports anywhere in it (module level or inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[Path] = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                while target and module_path(target) is None:
                    target = target.rpartition(".")[0]
                if target and module_path(target) != path:
                    found.add(module_path(target))
    return found


@pytest.mark.parametrize("path", modules(), ids=str)
def test_imports_point_down(path: Path) -> None:
    upward = [f"{target} (layer {layer_of(target)})" for target in imports(path) if layer_of(target) > layer_of(path)]
    assert not upward, f"{path} (layer {layer_of(path)}) imports from a higher layer: {', '.join(map(str, upward))}"


def test_no_import_cycles() -> None:
    graph = {path: imports(path) for path in modules()}
    state: dict[Path, str] = {}

    def visit(node: Path, trail: list[Path]) -> None:
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(map(str, cycle)))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_the_library_never_imports_preprocess() -> None:
    offenders = [
        f"{path} -> {target}"
        for path in modules()
        if path.parts[0] == "sparsenet"
        for target in imports(path)
        if target.parts[0] == "preprocess"
    ]
    assert not offenders, "the library reaches converters through sparsenet.converters: " + ", ".join(offenders)


@pytest.mark.parametrize("path", modules(), ids=str)
def test_modules_are_small(path: Path) -> None:
    lines = len((ROOT / path).read_text().splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines; split it by what it holds (at most {MAX_LINES})"


def test_the_walk_sees_imports_inside_functions() -> None:
    """The command modules import the library inside the command functions; the walk must see them."""
    found = imports(Path("sparsenet/cli/runs.py")) | imports(Path("sparsenet/cli/tools.py"))
    assert {Path("sparsenet/activity.py"), Path("sparsenet/train.py"), Path("sparsenet/cli/_common.py")} <= found
    assert (
        layer_of(Path("sparsenet/cli/runs.py"))
        > layer_of(Path("sparsenet/train.py"))
        > layer_of(Path("sparsenet/shards.py"))
    )
