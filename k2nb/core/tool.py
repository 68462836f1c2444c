"""What a tool is to the loop: a name, a schema, whether it acts, and ``invoke``.

Tools are plain objects; :class:`BaseTool` gives every optional capability its default, so a tool
states only what differs (``side_effects = True``, a builtin ``declaration``), and the loop reads
typed attributes rather than probing for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .messages import ToolCall

STATUSES = ("ok", "error", "timeout", "skipped", "interrupted")


@dataclass
class ToolOutcome:
    """What one tool call produced."""

    observation: str  # what the model reads (already budgeted)
    is_error: bool = False
    outputs: list[dict[str, Any]] = field(default_factory=list)  # full nbformat outputs
    execution_count: int | None = None
    status: str = "ok"  # one of STATUSES
    duration_s: float = 0.0


@runtime_checkable
class Tool(Protocol):
    """A tool the model may call."""

    name: str
    description: str
    #: JSON schema of the arguments (``$ref`` inlined: K2 rejects references).
    parameters: dict[str, Any]
    #: A pydantic model validating the arguments, or None when the tool validates them itself.
    arguments: Any
    #: The call can change something outside the conversation (files, variables, the network,
    #: another service), or is a network read the user chose to gate: ``--approve ask`` asks
    #: before each such call, ``--approve risky`` before those :meth:`risks` gives reasons for.
    side_effects: bool
    #: The raw argument text is handed over as ``{"arguments": text}``, unparsed.
    raw_arguments: bool

    def declaration(self) -> dict[str, Any]:
        """The entry of the request's ``tools`` list."""
        ...

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        """Run the call; errors the model can act on are outcomes with ``is_error``."""
        ...

    def risks(self, values: dict[str, Any]) -> list[str]:
        """Why this call of a tool with side effects deserves the user's look before it runs,
        shown with the question; ``--approve risky`` asks only when there is a reason."""
        ...


class BaseTool:
    """Defaults of the :class:`Tool` protocol for concrete tools."""

    name: str = ""
    description: str = ""
    parameters: dict[str, Any]
    arguments: Any = None
    side_effects: bool = False
    raw_arguments: bool = False

    def declaration(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description,
                             "parameters": self.parameters}}

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:  # pragma: no cover
        raise NotImplementedError

    def risks(self, values: dict[str, Any]) -> list[str]:
        # Knowing nothing more about what a tool that acts will do, every call is worth a look.
        return ["acts outside the conversation (the tool declares side effects)"] if (
            self.side_effects) else []


class UnclosedToolCall(ToolCall):
    """A call whose text the model never closed with its format's end marker (``end_marker``):
    the turn ended, or generation stopped, while the arguments were still being written.

    Such arguments may be cut anywhere (``x = 6`` of ``x = 6 * 7``), and a JSON repair would
    happily close them, so the toolbox never runs the call: the model gets an error observation
    instead. A local backend's parser makes these; they serialise like any :class:`ToolCall`.
    """

    def __init__(self, id: str, name: str, arguments: str, end_marker: str = "") -> None:
        super().__init__(id, name, arguments)
        self.end_marker = end_marker

    def problem(self) -> str:
        """The error observation: what happened and what the model should send instead."""
        what = f"`{self.name}` call" if self.name else "tool call"
        # A fence is quoted, not code-spanned: ````` ``` ````` reads worse than "```".
        quote = '"' if "`" in self.end_marker else "`"
        marker = f"{quote}{self.end_marker}{quote}"
        if not self.end_marker:
            return (f"This {what} was not run: your turn ended in the middle of the call, "
                    "so its arguments may be incomplete. Send the whole call again.")
        return (f"This {what} was not run: your turn ended before the call's end marker "
                f"{marker}, so its arguments may be incomplete. Send the whole call again, "
                f"ending it with {marker}.")
