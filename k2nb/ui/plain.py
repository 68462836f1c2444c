"""A plain-text view of a run, for terminal IPython (no widgets, no HTML).

It writes the run as it happens: thinking streamed under a ``│`` gutter, each call's code and
status, the answer, and a closing summary line. Writes are batched (at most ``rate`` flushes a
second) so a fast stream does not cost a system call per token.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from ..core.events import (
    ContentDelta,
    ContextCompacted,
    Event,
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
from . import static
from .timeline import Timeline

GUTTER = "  │ "


class PlainView:
    """Prints a run to a text stream (stdout by default). Call with events; ``close()`` at the end."""

    def __init__(
        self,
        max_steps: int,
        quiet: bool = False,
        *,
        stream: TextIO | None = None,
        rate: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeline = Timeline(max_steps, clock)
        self.quiet = quiet
        self._out = stream
        self._clock = clock
        self._interval = 1.0 / rate
        self._next_flush = float("-inf")
        self._buffer: list[str] = []
        self._mode = ""  # "thinking" | "content" | "" — what the last text written was
        self._line_start = True
        self._closed = False
        self._titled: set[int] = set()

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def __call__(self, event: Event) -> None:
        now = self._clock()
        self.timeline.apply(event, now)
        if self._closed:
            return
        if isinstance(event, ReasoningDelta):
            if not self.quiet:
                self._text("thinking", event.text, now)
        elif isinstance(event, ContentDelta):
            self._text("content", event.text, now)
        elif isinstance(event, ToolCallDelta):
            pass
        elif isinstance(event, RunStarted):
            self._line(f"K2 · {event.model} · {event.backend}")
        elif isinstance(event, StepStarted):
            self._line(f"── step {event.step} of {self.timeline.max_steps}")
        elif isinstance(event, StepFinished):
            self._end_step_text(event.step, now)
        elif isinstance(event, ToolCallStarted):
            self._end_step_text(event.step, now)
            call = self.timeline.find_call(event.call.id)
            if call is not None:
                self._line(f"▶ {call.call.name}")
                body = call.code if call.code is not None else call.call.arguments
                self._line("\n".join("    " + line for line in body.split("\n")))
        elif isinstance(event, ToolCallFinished):
            call = self.timeline.find_call(event.call.id)
            if call is not None:
                self._line(static.call_title(call))
                if call.code is None and call.observation:
                    self._line(static.folded_text(call.observation, "    "))
        elif isinstance(event, Notice):
            self._line(static.notice_bundle(event.text, event.level)["text/plain"])
        elif isinstance(event, ContextCompacted):
            self._line(static.compaction_bundle(event)["text/plain"])
        elif isinstance(event, RunFinished):
            self._finish(now)

    def close(self, stop_reason: str = "error", note: str = "") -> None:
        """Print the ending if the run did not report one. Idempotent."""
        if self._closed:
            return
        now = self._clock()
        if not self.timeline.finished:
            self.timeline.finish(stop_reason, "", note or "the run ended without a result", now)
        self._finish(now)

    # ------------------------------------------------------------------ writing

    def _text(self, mode: str, text: str, now: float) -> None:
        if mode != self._mode:
            self._start(mode)
        if mode == "thinking":
            text = text.replace("\n", "\n" + GUTTER)
            if self._line_start:
                text = GUTTER + text
            self._line_start = text.endswith("\n" + GUTTER)
            if self._line_start:
                text = text[: -len(GUTTER)]
        else:
            self._line_start = text.endswith("\n")
        self._buffer.append(text)
        if now >= self._next_flush:
            self._flush(now)

    def _start(self, mode: str) -> None:
        self._close_text()
        if mode == "content" and self.timeline.current is not None:
            self._thinking_title(self.timeline.current.step)
        self._mode = mode
        if mode == "thinking":
            self._buffer.append("  thinking…\n")

    def _close_text(self) -> None:
        if self._mode and not self._line_start:
            self._buffer.append("\n")
        self._mode, self._line_start = "", True

    def _thinking_title(self, step_number: int) -> None:
        """'(thought for 12 s · 1,840 tokens)' once per step, when its thinking is over."""
        step = self.timeline.step(step_number, self._clock())
        if step.reasoning and step_number not in self._titled:
            self._titled.add(step_number)
            title = static.thinking_title(step, self._clock())
            self._buffer.append(f"  ({title.split(' · ', 1)[1]})\n")

    def _end_step_text(self, step_number: int, now: float) -> None:
        self._close_text()
        self._thinking_title(step_number)
        self._flush(now)

    def _line(self, text: str) -> None:
        self._close_text()
        self._buffer.append(text + "\n")
        self._flush(self._clock())

    def _flush(self, now: float) -> None:
        if self._buffer:
            self.out.write("".join(self._buffer))
            self.out.flush()
            self._buffer.clear()
        self._next_flush = now + self._interval

    def _finish(self, now: float) -> None:
        self._closed = True
        if self.timeline.current is not None:
            self._end_step_text(self.timeline.current.step, now)
        timeline = self.timeline
        last = timeline.current
        if timeline.answer and not (last and last.content_text.strip() == timeline.answer.strip()):
            self._buffer.append("── answer\n" + timeline.answer.rstrip("\n") + "\n")
        outcome = static.outcome_bundle(timeline)
        if outcome is not None:
            self._buffer.append(outcome["text/plain"] + "\n")
        summary = static.header_summary(timeline, now, activity=static.activity(timeline))
        self._buffer.append("── " + " · ".join(summary[1:]) + "\n")
        self._flush(now)
