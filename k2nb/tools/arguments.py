"""Turning a model's raw argument text into validated keyword arguments.

Servers other than Moonshot's own produce invalid JSON or miss required fields a few percent of
the time (K2_PROTOCOL.md §2); that is a normal event. We parse strictly, repair with
``json_repair`` only when the repaired object then validates, and otherwise explain to the model
exactly what was wrong so it can retry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import json_repair
import pydantic


@dataclass
class ParsedArguments:
    values: dict[str, Any] | None  # None when the arguments are unusable
    error: str | None = None  # a message for the model when values is None
    repaired: bool = False  # True when the JSON had to be repaired


def parse_arguments(
    tool_name: str, raw: str, model: type[pydantic.BaseModel] | None
) -> ParsedArguments:
    """Parse and validate ``raw`` for ``tool_name``; never raises."""
    text = (raw or "").strip()
    repaired = False
    if not text:
        data: Any = {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            data = _repair(text)
            repaired = True
            if not isinstance(data, dict) or not data:
                return ParsedArguments(
                    None,
                    f"The arguments for `{tool_name}` were not valid JSON ({exc.msg} at "
                    f"character {exc.pos}) and could not be repaired safely. Send a JSON object, "
                    f"e.g. {_example(model)}.",
                )
    if not isinstance(data, dict):
        return ParsedArguments(
            None,
            f"The arguments for `{tool_name}` must be a JSON object, not "
            f"{type(data).__name__}. Send e.g. {_example(model)}.",
        )
    if model is None:
        return ParsedArguments(data, repaired=repaired)
    try:
        validated = model.model_validate(data)
    except pydantic.ValidationError as exc:
        what = "; ".join(_describe(err) for err in exc.errors())
        prefix = "After repairing invalid JSON, the" if repaired else "The"
        return ParsedArguments(
            None, f"{prefix} arguments for `{tool_name}` do not match its schema: {what}."
        )
    values = {name: getattr(validated, name) for name in type(validated).model_fields}
    return ParsedArguments(values, repaired=repaired)


def _repair(text: str) -> Any:
    try:
        return json_repair.loads(text)
    except Exception:
        return None


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "arguments"
    kind = error.get("type")
    if kind == "missing":
        return f"`{where}` is required but missing"
    if kind == "extra_forbidden":
        return f"`{where}` is not a parameter of this tool"
    return f"`{where}`: {error.get('msg', 'invalid')}"


def _example(model: type[pydantic.BaseModel] | None) -> str:
    if model is None:
        return "{}"
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    return json.dumps({name: "..." for name in required})
