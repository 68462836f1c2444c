"""The package's layers import only downwards (function-level imports included), so that the
loop never learns of Jupyter and a newcomer can read the package bottom to top."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "k2nb"

#: What each part of k2nb may import from the rest of k2nb.
ALLOWED = {
    "core": set(),
    "tools": {"core"},
    "backends": {"core"},
    "agent": {"core", "tools"},
    "runs": {"core", "backends", "tools"},
    "heavy": {"core", "agent", "runs", "tools"},
    "options": {"core"},
    "session": {"core", "backends", "runs", "tools", "options"},
    "runner": {"core", "agent", "backends", "tools", "runs", "heavy", "options", "session"},
    "ui": {"core"},
    "kernel": {"core", "agent", "backends", "tools", "runs", "heavy", "options", "session",
               "runner", "ui"},
    "testing": {"core", "backends"},
}


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(path: Path) -> set[tuple[str, int]]:
    """The parts of k2nb a module imports, with the line of each import."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = module if path.name == "__init__.py" else module[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" if target in ("k2nb",) else target for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "k2nb" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_every_part_imports_only_from_below():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "labextension" in path.parts or path.name == "__main__.py":
            continue
        part = part_of(path)
        if part == "__init__":
            continue  # the public API gathers from every layer
        assert part in ALLOWED, f"{path}: a new part of k2nb; give it a place in ALLOWED"
        for used, line in imported_parts(path):
            if used != part and used not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports k2nb.{used}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)
