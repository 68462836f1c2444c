"""Tools the model may call: the ``@k2nb.tool`` decorator and the per-run toolbox.

A tool is a plain Python function with type hints and a docstring; its schema is derived from
them (``schema.py``). Built-in tools (``code_interpreter``, ``read_output``) implement the same
:class:`Tool` protocol. The loop only sees :class:`Toolbox`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypeVar

import pydantic

from ..agent.messages import ToolCall
from .arguments import parse_arguments
from .schema import arguments_model, function_description, function_schema

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_TOOLS = 128  # Moonshot's limit


@dataclass
class ToolOutcome:
    """What one tool call produced."""

    observation: str  # what the model reads (already budgeted)
    is_error: bool = False
    outputs: list[dict[str, Any]] = field(default_factory=list)  # full nbformat outputs
    execution_count: int | None = None
    status: str = "ok"  # ok | error | timeout | skipped
    duration_s: float = 0.0


class Tool(Protocol):
    name: str
    description: str
    parameters: dict[str, Any]
    arguments: type[pydantic.BaseModel] | None

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome: ...


@dataclass
class FunctionTool:
    """A user function offered to the model."""

    func: Callable[..., Any]
    name: str
    description: str
    parameters: dict[str, Any]
    arguments: type[pydantic.BaseModel]

    @classmethod
    def from_function(cls, func: Callable[..., Any], name: str | None = None) -> FunctionTool:
        name = name or func.__name__
        if not TOOL_NAME.match(name):
            raise ValueError(
                f"tool name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-'"
            )
        return cls(
            func=func,
            name=name,
            description=function_description(func) or name,
            parameters=function_schema(func),
            arguments=arguments_model(func),
        )

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        start = time.monotonic()
        try:
            result = self.func(**values)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            return ToolOutcome(
                f"Tool `{self.name}` raised {type(exc).__name__}: {exc}",
                is_error=True,
                status="error",
                duration_s=time.monotonic() - start,
            )
        return ToolOutcome(render_result(result), duration_s=time.monotonic() - start)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def render_result(result: Any) -> str:
    """A user tool's return value as observation text."""
    if result is None:
        return "(no result)"
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(result)


_USER_TOOLS: dict[str, FunctionTool] = {}

F = TypeVar("F", bound=Callable[..., Any])


def tool(func: F | None = None, *, name: str | None = None) -> Any:
    """Offer a function to the model in every ``%%k2`` run of this kernel.

    Use as ``@k2nb.tool`` or ``@k2nb.tool(name="lookup")``. The schema comes from the type hints,
    the description and parameter docs from the docstring. The function stays callable.
    """

    def register(f: F) -> FunctionTool:
        spec = FunctionTool.from_function(f, name)
        _USER_TOOLS[spec.name] = spec
        return spec

    return register(func) if func is not None else register


def user_tools() -> list[FunctionTool]:
    """The tools registered with ``@k2nb.tool`` so far."""
    return list(_USER_TOOLS.values())


def unregister(name: str) -> None:
    """Stop offering a user tool."""
    _USER_TOOLS.pop(name, None)


class Toolbox:
    """The tools of one run, keyed by name, with argument handling and error observations."""

    def __init__(self, tools: list[Tool]):
        self.tools: dict[str, Tool] = {}
        for t in tools:
            self.tools[t.name] = t  # later ones (user tools) override built-ins of the same name
        if len(self.tools) > MAX_TOOLS:
            raise ValueError(f"{len(self.tools)} tools offered; the API accepts at most {MAX_TOOLS}")

    def declarations(self) -> list[dict[str, Any]]:
        """OpenAI-style ``tools`` entries (a tool with a ``declaration`` attribute, such as
        Moonshot's builtin ``$web_search``, is declared exactly as that attribute says)."""
        return [
            getattr(t, "declaration", None) or {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in self.tools.values()
        ]

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def prepare(self, call: ToolCall) -> tuple[Tool | None, dict[str, Any] | None, str | None, bool]:
        """Resolve a call: (tool, values, error observation, repaired)."""
        found = self.tools.get(call.name)
        if found is None:
            names = ", ".join(f"`{n}`" for n in self.tools) or "none"
            return None, None, (
                f"There is no tool named `{call.name}`. Available tools: {names}."
            ), False
        if getattr(found, "raw_arguments", False):  # e.g. $web_search echoes them unchanged
            return found, {"arguments": call.arguments}, None, False
        parsed = parse_arguments(call.name, call.arguments, found.arguments)
        if parsed.values is None:
            return found, None, parsed.error, parsed.repaired
        return found, parsed.values, None, parsed.repaired
