"""Typed events the agent loop emits; views, transcripts and the lab extension subscribe to them.

Every event carries the run id and, where it belongs to one, the step number (1-based). Events
are plain dataclasses so a subscriber can ``match`` on them or serialise them with
:func:`event_to_dict`. The three stream deltas are also what backends yield while a step
streams (one type for both, so nothing is copied per token).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Union

from .messages import AssistantMessage, ToolCall, Usage


@dataclass
class RunStarted:
    run_id: str
    prompt: str
    model: str
    backend: str
    transcript_path: str | None
    #: Tokens the model's window holds (for the header's "ctx 143k / 262k"), when known.
    context_window: int | None = None
    #: Earlier turns of the conversation this run was given.
    history_turns: int = 0
    type: str = "run_started"


@dataclass
class StepStarted:
    run_id: str
    step: int
    type: str = "step_started"


@dataclass
class ReasoningDelta:
    """A piece of the model's thinking, in arrival order.

    Backends yield deltas without a run (``run_id`` empty, ``step`` 0); the loop stamps them
    with the run and step and passes the same object on to subscribers.
    """

    text: str
    run_id: str = ""
    step: int = 0
    type: str = "reasoning_delta"


@dataclass
class ContentDelta:
    """A piece of the visible reply."""

    text: str
    run_id: str = ""
    step: int = 0
    type: str = "content_delta"


@dataclass
class ToolCallDelta:
    """A fragment of a streamed tool call: ``index`` identifies the call within the message;
    the first fragment carries ``id`` and ``name``, later ones pieces of ``arguments``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    run_id: str = ""
    step: int = 0
    type: str = "tool_call_delta"


@dataclass
class GenerationProgress:
    """A model generating in the kernel reports how far it got: tokens generated in this step so
    far, the rate, and the step's budget — so the view can count even when no text can be shown
    yet (thinking inside a tool call, a long call's arguments). Backends yield it without a run;
    the loop stamps it like a delta."""

    tokens: int
    tokens_per_s: float
    budget: int
    run_id: str = ""
    step: int = 0
    type: str = "generation_progress"


StreamDelta = Union[ReasoningDelta, ContentDelta, ToolCallDelta]


@dataclass
class StepFinished:
    """The model finished one step: its full message and the usage of that step."""

    run_id: str
    step: int
    message: AssistantMessage
    usage: Usage
    finish_reason: str | None
    type: str = "step_finished"


@dataclass
class ToolCallStarted:
    """A tool call is about to run. ``code`` is set for code_interpreter calls."""

    run_id: str
    step: int
    call: ToolCall
    code: str | None = None
    type: str = "tool_call_started"


@dataclass
class ToolCallFinished:
    """A tool call ended: what the model will read, and the full outputs the user saw."""

    run_id: str
    step: int
    call: ToolCall
    observation: str
    is_error: bool
    outputs: list[dict[str, Any]] = field(default_factory=list)  # nbformat output dicts
    execution_count: int | None = None
    duration_s: float = 0.0
    status: str = "ok"  # ok | error | timeout | skipped | interrupted
    type: str = "tool_call_finished"


@dataclass
class ApprovalRequested:
    """The loop is about to ask the user whether this call may run (``--approve``).

    ``code`` is set for code_interpreter calls, else ``arguments`` is what will be sent;
    ``reasons`` is what the static check flagged. The question itself follows on stdin.
    """

    run_id: str
    step: int
    call: ToolCall
    code: str | None = None
    reasons: list[str] = field(default_factory=list)
    type: str = "approval_requested"


@dataclass
class ContextCompacted:
    """The context window filled up: steps ``first``–``last`` of this run were replaced by
    ``summary`` (written by the model in a side request) before step ``step``."""

    run_id: str
    step: int
    first: int
    last: int
    summary: str
    tokens_before: int
    tokens_after: int
    type: str = "context_compacted"


@dataclass
class Notice:
    """Something the user should know that is not model output (retries, budgets, repairs)."""

    run_id: str
    text: str
    level: str = "info"  # "info" | "warning" | "error"
    step: int | None = None
    type: str = "notice"


@dataclass
class RunFinished:
    """The run ended. ``stop_reason``: answered, max_steps, max_tokens, interrupted, error, loop."""

    run_id: str
    answer: str
    stop_reason: str
    steps: int
    usage: Usage
    note: str = ""
    type: str = "run_finished"


Event = Union[
    RunStarted,
    StepStarted,
    ReasoningDelta,
    ContentDelta,
    ToolCallDelta,
    GenerationProgress,
    StepFinished,
    ToolCallStarted,
    ToolCallFinished,
    ApprovalRequested,
    ContextCompacted,
    Notice,
    RunFinished,
]

#: Receives every event of a run. It may answer with events of its own (notices about what it
#: saw): the loop emits them right after every subscriber has seen the event they answer.
Subscriber = Callable[[Event], Union[Iterable[Event], None]]


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict of an event."""
    return asdict(event)
