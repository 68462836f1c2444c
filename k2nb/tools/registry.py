"""User tools (``@k2nb.tool``) and the per-run toolbox.

A user tool is a plain Python function with type hints and a docstring; its schema is derived
from them (``schema.py``). Built-in tools (``code_interpreter``, ``read_output``, ...) implement
the same :class:`~k2nb.core.tool.Tool` protocol. The loop only sees :class:`Toolbox`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Iterator, TypeVar

import pydantic

from ..core.k2 import MAX_TOOLS
from ..core.messages import ToolCall
from ..core.tool import BaseTool, Tool, ToolOutcome, UnclosedToolCall
from .arguments import parse_arguments
from .schema import arguments_model, function_description, function_schema

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class FunctionTool(BaseTool):
    """A user function offered to the model.

    ``side_effects``: the function changes something (writes, sends, deletes); approval modes
    ask before each call.
    """

    def __init__(self, func: Callable[..., Any], name: str, description: str,
                 parameters: dict[str, Any], arguments: type[pydantic.BaseModel],
                 side_effects: bool = False):
        self.func = func
        self.name = name
        self.description = description
        self.parameters = parameters
        self.arguments = arguments
        self.side_effects = side_effects

    def __repr__(self) -> str:
        return f"<k2nb tool {self.name}{' (side effects)' if self.side_effects else ''}>"

    @classmethod
    def from_function(cls, func: Callable[..., Any], name: str | None = None,
                      side_effects: bool = False) -> FunctionTool:
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
            side_effects=side_effects,
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

    def risks(self, values: dict[str, Any]) -> list[str]:
        if not self.side_effects:
            return []
        return ["a `@k2nb.tool(side_effects=True)` function: it may change files, data or other "
                "services"]

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


F = TypeVar("F", bound=Callable[..., Any])


class UserTools:
    """The ``@k2nb.tool`` functions of one kernel session, offered in every run."""

    def __init__(self) -> None:
        self._tools: dict[str, FunctionTool] = {}

    def decorator(self, func: F | None = None, *, name: str | None = None,
                  side_effects: bool = False) -> Any:
        """``@tool`` or ``@tool(name=..., side_effects=True)``: register ``func``; the returned
        :class:`FunctionTool` stays callable like the function."""

        def register(f: F) -> FunctionTool:
            spec = FunctionTool.from_function(f, name, side_effects)
            self._tools[spec.name] = spec
            return spec

        return register(func) if func is not None else register

    def __iter__(self) -> Iterator[FunctionTool]:
        return iter(list(self._tools.values()))

    def list(self) -> list[FunctionTool]:
        return list(self._tools.values())

    def remove(self, name: str) -> None:
        """Stop offering a tool."""
        self._tools.pop(name, None)


class Toolbox:
    """The tools of one run, keyed by name, with argument handling and error observations."""

    def __init__(self, tools: list[Tool]):
        self.tools: dict[str, Tool] = {}
        for t in tools:
            self.tools[t.name] = t  # later ones (user tools) override built-ins of the same name
        self._declarations: list[dict[str, Any]] | None = None
        if len(self.tools) > MAX_TOOLS:
            raise ValueError(f"{len(self.tools)} tools offered; the API accepts at most {MAX_TOOLS}")

    def declarations(self) -> list[dict[str, Any]]:
        """The request's ``tools`` entries (computed once: the list does not change in a run)."""
        if self._declarations is None:
            self._declarations = [t.declaration() for t in self.tools.values()]
        return self._declarations

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def prepare(self, call: ToolCall) -> tuple[Tool | None, dict[str, Any] | None, str | None, bool]:
        """Resolve a call: (tool, values, error observation, repaired)."""
        found = self.tools.get(call.name)
        if isinstance(call, UnclosedToolCall):  # never repaired into something that runs
            return found, None, call.problem(), False
        if found is None:
            names = ", ".join(f"`{n}`" for n in self.tools) or "none"
            return None, None, (
                f"There is no tool named `{call.name}`. Available tools: {names}."
            ), False
        if found.raw_arguments:  # e.g. $web_search echoes them unchanged
            return found, {"arguments": call.arguments}, None, False
        parsed = parse_arguments(call.name, call.arguments, found.arguments)
        if parsed.values is None:
            return found, None, parsed.error, parsed.repaired
        return found, parsed.values, None, parsed.repaired
