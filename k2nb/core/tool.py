"""What a tool is to the loop: a name, a schema, whether it acts, and ``invoke``.

Tools are plain objects; :class:`BaseTool` gives every optional capability its default, so a tool
states only what differs (``side_effects = True``, a builtin ``declaration``), and the loop reads
typed attributes rather than probing for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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
    #: another service): ``--approve ask`` asks before each such call.
    side_effects: bool
    #: The raw argument text is handed over as ``{"arguments": text}``, unparsed.
    raw_arguments: bool

    def declaration(self) -> dict[str, Any]:
        """The entry of the request's ``tools`` list."""
        ...

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        """Run the call; errors the model can act on are outcomes with ``is_error``."""
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
