"""A short description of the user's variables, so the model knows what it can use."""

from __future__ import annotations

import types
from typing import Any

MAX_VARIABLES = 40


def describe_namespace(namespace: dict[str, Any], hidden: set[str] | None = None) -> str:
    """One line per user variable: name, type and shape or length (no values: they may be secret)."""
    hidden = hidden or set()
    lines = []
    for name, value in namespace.items():
        if name.startswith("_") or name in hidden or name in ("In", "Out", "exit", "quit"):
            continue
        if isinstance(value, (types.ModuleType, type)) or callable(value) and not hasattr(
            value, "shape"
        ):
            continue
        lines.append(f"- {name}: {_describe(value)}")
        if len(lines) >= MAX_VARIABLES:
            lines.append("- … (more variables not listed)")
            break
    return "\n".join(lines)


def _describe(value: Any) -> str:
    kind = type(value).__name__
    module = type(value).__module__ or ""
    if module.startswith("pandas") and kind == "DataFrame":
        columns = ", ".join(map(str, list(value.columns)[:12]))
        more = ", …" if value.shape[1] > 12 else ""
        return f"pandas DataFrame {value.shape[0]}×{value.shape[1]} (columns: {columns}{more})"
    shape = getattr(value, "shape", None)
    if shape is not None and isinstance(shape, tuple):
        return f"{module.split('.')[0]} {kind} shape {shape}"
    if isinstance(value, (list, tuple, dict, set, str, bytes)):
        return f"{kind} of length {len(value)}"
    if isinstance(value, (int, float, bool, complex)):
        return kind
    return kind
