"""What every backend provides: a stream of deltas for one model step.

A backend turns the agent's messages into a request (HTTP for the API backend, a chat template and
``generate`` for the local one) and yields :class:`~k2nb.core.events.StreamDelta` items as text
arrives, then exactly one :class:`StepResult`. The loop forwards deltas to the views and keeps the
result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Union, runtime_checkable

from .events import ContentDelta, GenerationProgress, ReasoningDelta, StreamDelta, ToolCallDelta
from .messages import AssistantMessage, Message, Usage

__all__ = ["Backend", "BackendError", "ContentDelta", "GenerationProgress", "ModelRequest",
           "ReasoningDelta", "StepResult", "StreamDelta", "StreamItem", "ToolCallDelta"]


@dataclass
class ModelRequest:
    """Everything one step sends to the model."""

    messages: list[Message]
    tools: list[dict[str, Any]]  # OpenAI "function" tool declarations, $refs inlined
    max_tokens: int
    temperature: float
    #: "step" for an agent step; "compaction" for the tool-less side request that summarises
    #: older steps when the context window fills up (a replay answers it from its recording).
    purpose: str = "step"


@dataclass
class StepResult:
    """The assembled assistant message of one step, why it ended, and its token usage.

    ``experts`` is set by a local mixture-of-experts backend: which experts its router chose
    during this step (:class:`~k2nb.backends.local.experts.ExpertUsage`), for teaching.
    """

    message: AssistantMessage
    finish_reason: str | None = None  # "stop", "tool_calls", "length", ...
    usage: Usage = field(default_factory=Usage)
    experts: Any = None
    #: Why the backend ended the step early or without a result (a local model repeating
    #: itself, out of time, silent), for the user; the loop shows it as a warning.
    notice: str = ""
    type: str = "step_result"


StreamItem = Union[ReasoningDelta, ContentDelta, ToolCallDelta, GenerationProgress, StepResult]


@runtime_checkable
class Backend(Protocol):
    """A source of model steps."""

    #: A short name for views and transcripts ("api", "local", "replay").
    name: str
    #: The model id as the user configured it.
    model: str
    #: Tokens the model's window holds, when the backend knows it (a local model's config);
    #: None: the ``context_window`` setting applies.
    context_window: int | None

    def stream(self, request: ModelRequest) -> Iterator[StreamItem]:
        """Yield deltas as they arrive, then one :class:`StepResult`.

        Closing the generator (``.close()``, e.g. on an interrupt) must release the connection or
        stop generation promptly.
        """
        ...


class BackendError(Exception):
    """A failure the user can act on; ``str()`` is the message to show.

    ``retryable`` tells the loop the same request may succeed later.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None,
                 context_overflow: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        #: The request was too long for the model's window (trim the history and retry).
        self.context_overflow = context_overflow
