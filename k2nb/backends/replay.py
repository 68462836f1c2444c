"""The replay backend: plays a recorded run step by step instead of asking a model.

Each ``stream()`` call yields the next recorded step: its thinking and visible text as deltas
(so the views show them as they would live), its tool calls with their recorded ids and
arguments, then the step's result. The agent loop executes those calls for real — recorded code
runs again in the live namespace — and :mod:`k2nb.runs.replay` compares the new outputs with the
recorded ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ..core.backend import BackendError, ModelRequest, StepResult, StreamItem
from ..core.events import ContentDelta, ReasoningDelta, ToolCallDelta
from ..core.messages import AssistantMessage, Usage
from ..core.run import Run, Step


class ReplayBackend:
    """Streams the steps of a recorded :class:`~k2nb.core.run.Run` in order.

    ``chunk_chars`` sets the size of the replayed deltas; ``pace`` (characters per second, 0 = as
    fast as possible) makes the thinking appear at reading speed for a class. Usage is reported
    as zero: a replay spends no tokens.
    """

    name = "replay"
    context_window = None

    def __init__(self, record: Run, *, chunk_chars: int = 64, pace: float = 0.0,
                 name: str = "replay", sleep: Any = time.sleep):
        if not record.steps:
            trimmed = "; ".join(record.trimmed) or "it has no steps"
            raise ValueError(f"The record of run {record.run_id} cannot be replayed: "
                             f"{trimmed}.")
        self.record = record
        self.model = record.model or "replay"
        self.name = name
        self.chunk_chars = max(1, chunk_chars)
        self.pace = pace
        self.position = 0  # index of the next step to play
        self._sleep = sleep

    @property
    def steps(self) -> list[Step]:
        return self.record.steps

    def stream(self, request: ModelRequest) -> Iterator[StreamItem]:
        if self.position >= len(self.steps):
            raise BackendError(
                f"The recording of run {self.record.run_id} ends after step "
                f"{len(self.steps)} (the original run stopped: "
                f"{self.record.stop_reason or 'unknown'}). The replay ends here too.")
        step = self.steps[self.position]
        self.position += 1
        for text, kind in ((step.reasoning, ReasoningDelta), (step.content, ContentDelta)):
            for i in range(0, len(text), self.chunk_chars):
                piece = text[i : i + self.chunk_chars]
                if self.pace:
                    self._sleep(len(piece) / self.pace)
                yield kind(piece)
        if any(c.status == "interrupted" for c in step.tool_calls):
            # Code the user stopped (perhaps a runaway loop) is not started again unasked.
            raise BackendError(
                f"The original run was interrupted during step {step.index}; the replay "
                "stops here rather than run the interrupted code again.")
        calls = [c.call for c in step.tool_calls]
        for index, call in enumerate(calls):
            yield ToolCallDelta(index, call.id, call.name, call.arguments)
        finish = step.finish_reason or ("tool_calls" if calls else "stop")
        yield StepResult(AssistantMessage(step.content, step.reasoning, list(calls)), finish,
                         Usage())
