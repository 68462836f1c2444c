"""What the views know about a run, rebuilt from its events.

A :class:`Timeline` is plain data: every event updates it in O(size of the event), and the live,
static and plain-text views all render from it, so they can never disagree about the text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.events import (
    ContentDelta,
    ContextCompacted,
    Event,
    GenerationProgress,
    Notice,
    ReasoningDelta,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    ToolCallDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from ..core.messages import ToolCall, Usage

_TIMEOUT = re.compile(r"\btimed?[ -]?out\b", re.IGNORECASE)


@dataclass
class CallEntry:
    """One tool call as the user sees it."""

    call: ToolCall
    step: int
    code: str | None
    started_at: float
    status: str = "running"  # running | ok | error | timed out | interrupted
    observation: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    duration_s: float | None = None


@dataclass
class StepEntry:
    """One model step: its thinking, its visible text and the calls it asked for."""

    step: int
    started_at: float
    reasoning: list[str] = field(default_factory=list)
    reasoning_chars: int = 0
    reasoning_deltas: int = 0
    thinking_started_at: float | None = None
    thinking_ended_at: float | None = None
    content: list[str] = field(default_factory=list)
    content_chars: int = 0
    arguments_chars: int = 0
    composing: str | None = None  # name of the tool call being written, if any
    usage: Usage | None = None
    finish_reason: str | None = None
    finished_at: float | None = None
    cut_short: bool = False  # the run ended before this step did
    calls: list[CallEntry] = field(default_factory=list)
    progress: GenerationProgress | None = None  # the latest count of a model in the kernel

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def content_text(self) -> str:
        return "".join(self.content)

    @property
    def thinking_done(self) -> bool:
        return self.thinking_ended_at is not None

    def thinking_seconds(self, now: float) -> float:
        if self.thinking_started_at is None:
            return 0.0
        end = self.thinking_ended_at if self.thinking_ended_at is not None else now
        return max(0.0, end - self.thinking_started_at)

    def thinking_tokens(self) -> int:
        """Tokens of thinking: the server's count when it can be attributed, else one per delta.

        Servers report one completion count per step; when the step also wrote text or a tool
        call, the thinking gets its share by characters.
        """
        if self.usage is None or not self.usage.completion_tokens or not self.reasoning_chars:
            return self.reasoning_deltas
        total = self.reasoning_chars + self.content_chars + self.arguments_chars
        return round(self.usage.completion_tokens * self.reasoning_chars / total)

    def end_thinking(self, now: float) -> None:
        if self.thinking_started_at is not None and self.thinking_ended_at is None:
            self.thinking_ended_at = now


@dataclass
class Timeline:
    """Everything the views show about one run."""

    max_steps: int
    clock: Callable[[], float] = time.monotonic
    run_id: str = ""
    prompt: str = ""
    model: str = ""
    backend: str = ""
    transcript_path: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    steps: list[StepEntry] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    notices: list[Notice] = field(default_factory=list)
    compactions: list[ContextCompacted] = field(default_factory=list)
    #: Tokens the model's window holds, when the run said (RunStarted.context_window).
    context_window: int | None = None
    #: Tokens in the context after the last step the server reported usage for: its prompt
    #: plus what it generated (which joins the context). None until one was reported.
    context_used: int | None = None
    answer: str = ""
    stop_reason: str | None = None
    note: str = ""
    # Indexes kept beside the lists, so that an event finds its step or call in constant time.
    _steps_by_number: dict[int, StepEntry] = field(default_factory=dict, repr=False)
    _calls_by_id: dict[str, CallEntry] = field(default_factory=dict, repr=False)

    @property
    def current(self) -> StepEntry | None:
        return self.steps[-1] if self.steps else None

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    def elapsed(self, now: float | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = (
            self.ended_at
            if self.ended_at is not None
            else (now if now is not None else self.clock())
        )
        return max(0.0, end - self.started_at)

    def output_tokens_so_far(self) -> int:
        """Completion tokens reported so far plus those of the step still streaming (its
        deltas, or the count a model in the kernel reports, whichever is further)."""
        live = self.current
        if live is None or live.usage is not None:
            return self.usage.completion_tokens
        streamed = live.reasoning_deltas + len(live.content)
        if live.progress is not None:
            streamed = max(streamed, live.progress.tokens)
        return self.usage.completion_tokens + streamed

    def step(self, number: int, now: float) -> StepEntry:
        """The entry of step ``number``, created if an event arrives before its StepStarted."""
        steps = self.steps
        if steps and steps[-1].step == number:
            return steps[-1]
        if len(self._steps_by_number) != len(steps):  # someone built the list by hand
            self._steps_by_number = {s.step: s for s in steps}
        existing = self._steps_by_number.get(number)
        if existing is not None:
            return existing
        record = StepEntry(number, now)
        steps.append(record)
        self._steps_by_number[number] = record
        return record

    def find_call(self, call_id: str) -> CallEntry | None:
        """The latest call with this id (a model's ids can recur once older steps were
        compacted away)."""
        return self._calls_by_id.get(call_id)

    def _add_call(self, step: StepEntry, call: CallEntry) -> None:
        step.calls.append(call)
        self._calls_by_id[call.call.id] = call

    def apply(self, event: Event, now: float | None = None) -> None:
        """Update the timeline with one event."""
        now = self.clock() if now is None else now
        if isinstance(event, ReasoningDelta):  # the hot path: once per token
            steps = self.steps
            step = (
                steps[-1] if steps and steps[-1].step == event.step else self.step(event.step, now)
            )
            if step.thinking_started_at is None:
                step.thinking_started_at = now
            step.reasoning.append(event.text)
            step.reasoning_chars += len(event.text)
            step.reasoning_deltas += 1
        elif isinstance(event, GenerationProgress):
            self.step(event.step, now).progress = event
        elif isinstance(event, ContentDelta):
            step = self.step(event.step, now)
            step.end_thinking(now)
            step.content.append(event.text)
            step.content_chars += len(event.text)
        elif isinstance(event, ToolCallDelta):
            step = self.step(event.step, now)
            step.end_thinking(now)
            step.arguments_chars += len(event.arguments)
            if event.name:
                step.composing = event.name
        elif isinstance(event, StepStarted):
            self.step(event.step, now)
        elif isinstance(event, StepFinished):
            step = self.step(event.step, now)
            step.end_thinking(now)
            step.composing = None
            step.usage = event.usage
            step.finish_reason = event.finish_reason
            step.finished_at = now
            self.usage = self.usage + event.usage
            if event.usage.prompt_tokens:
                self.context_used = event.usage.prompt_tokens + event.usage.completion_tokens
            self._reconcile(step, event.message.reasoning, event.message.content)
        elif isinstance(event, ToolCallStarted):
            self._add_call(self.step(event.step, now),
                           CallEntry(event.call, event.step, event.code, now))
        elif isinstance(event, ToolCallFinished):
            call = self.find_call(event.call.id)
            if call is None or call.step != event.step:  # a call that never started (skipped)
                call = CallEntry(event.call, event.step, None, now)
                self._add_call(self.step(event.step, now), call)
            call.observation = event.observation
            call.outputs = list(event.outputs)
            call.execution_count = event.execution_count
            call.duration_s = event.duration_s
            call.status = call_status(event)
        elif isinstance(event, Notice):
            self.notices.append(event)
        elif isinstance(event, ContextCompacted):
            self.compactions.append(event)
        elif isinstance(event, RunStarted):
            self.run_id = event.run_id
            self.prompt = event.prompt
            self.model = event.model
            self.backend = event.backend
            self.transcript_path = event.transcript_path
            self.context_window = event.context_window
            self.started_at = now
        elif isinstance(event, RunFinished):
            self.finish(event.stop_reason, event.answer, event.note, now, usage=event.usage)

    def finish(
        self, stop_reason: str, answer: str, note: str, now: float, usage: Usage | None = None
    ) -> None:
        """Mark the run ended; calls and thinking still open are closed as interrupted."""
        if self.finished:
            return
        self.stop_reason = stop_reason
        self.answer = answer
        self.note = note
        self.ended_at = now
        if usage is not None and usage.total_tokens >= self.usage.total_tokens:
            self.usage = usage
        for step in self.steps:
            step.cut_short = step.finished_at is None
            step.end_thinking(now)
            step.composing = None
            for call in step.calls:
                if call.status == "running":
                    call.status = "interrupted"
                    call.duration_s = now - call.started_at

    @staticmethod
    def _reconcile(step: StepEntry, reasoning: str, content: str) -> None:
        # A backend that did not stream (or a replay) still gets its text shown.
        if reasoning and not step.reasoning:
            step.reasoning.append(reasoning)
            step.reasoning_chars = len(reasoning)
        if content and not step.content:
            step.content.append(content)
            step.content_chars = len(content)


_STATUS_WORDS = {"timeout": "timed out", "timed_out": "timed out"}


def call_status(event: ToolCallFinished) -> str:
    """ok / error / timed out / skipped / interrupted, as the user should read it."""
    explicit = event.status
    if explicit and not (explicit == "ok" and event.is_error):
        return _STATUS_WORDS.get(explicit, explicit)
    if not event.is_error:
        return "ok"
    if _TIMEOUT.search(event.observation[:300]):
        return "timed out"
    return "error"
