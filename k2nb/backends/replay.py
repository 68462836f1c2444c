"""The replay backend: plays a recorded run step by step instead of asking a model.

Each ``stream()`` call yields the next recorded step: its thinking and visible text as deltas
(so the views show them as they would live), its tool calls with their recorded ids and
arguments, then the step's result. The agent loop executes those calls for real — recorded code
runs again in the live namespace — and :mod:`k2nb.replay` compares the new outputs with the
recorded ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ..agent.messages import AssistantMessage, ToolCall, Usage
from .base import (
    BackendError,
    ContentDelta,
    ModelRequest,
    ReasoningDelta,
    StepResult,
    StreamItem,
    ToolCallDelta,
)


class ReplayBackend:
    """Streams the steps of a run record (see :mod:`k2nb.record`) in order.

    ``chunk_chars`` sets the size of the replayed deltas; ``pace`` (characters per second, 0 = as
    fast as possible) makes the thinking appear at reading speed for a class. Usage is reported
    as zero: a replay spends no tokens.
    """

    name = "replay"

    def __init__(self, record: dict[str, Any], *, chunk_chars: int = 64, pace: float = 0.0,
                 name: str = "replay", sleep: Any = time.sleep):
        steps = record.get("steps") or []
        if not steps:
            trimmed = "; ".join(record.get("trimmed") or []) or "it has no steps"
            raise ValueError(f"The record of run {record.get('run_id')} cannot be replayed: "
                             f"{trimmed}.")
        self.record = record
        self.model = record.get("model") or "replay"
        self.name = name
        self.chunk_chars = max(1, chunk_chars)
        self.pace = pace
        self.position = 0  # index of the next step to play
        self._sleep = sleep

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.record["steps"]

    def stream(self, request: ModelRequest) -> Iterator[StreamItem]:
        if self.position >= len(self.steps):
            raise BackendError(
                f"The recording of run {self.record.get('run_id')} ends after step "
                f"{len(self.steps)} (the original run stopped: "
                f"{self.record.get('stop_reason') or 'unknown'}). The replay ends here too.")
        step = self.steps[self.position]
        self.position += 1
        for text, kind in ((step.get("reasoning") or "", ReasoningDelta),
                           (step.get("content") or "", ContentDelta)):
            for i in range(0, len(text), self.chunk_chars):
                piece = text[i : i + self.chunk_chars]
                if self.pace:
                    self._sleep(len(piece) / self.pace)
                yield kind(piece)
        if any(c.get("status") == "interrupted" for c in step.get("calls") or []):
            # Code the user stopped (perhaps a runaway loop) is not started again unasked.
            raise BackendError(
                f"The original run was interrupted during step {step.get('index')}; the replay "
                "stops here rather than run the interrupted code again.")
        calls = [ToolCall(c.get("id") or f"functions.{c['name']}:{i}", c["name"],
                          c.get("arguments") or "")
                 for i, c in enumerate(step.get("calls") or [])]
        for index, call in enumerate(calls):
            yield ToolCallDelta(index, call.id, call.name, call.arguments)
        finish = step.get("finish_reason") or ("tool_calls" if calls else "stop")
        yield StepResult(AssistantMessage(step.get("content") or "", step.get("reasoning") or "",
                                          calls), finish, Usage())
