"""The live notebook view of a run: a subscriber that turns loop events into cell outputs.

The cell's output area is a sequence of blocks, each displayed (with a display id) at the moment
its place in the story is known, so that the real outputs IPython publishes while a tool call
runs land right under that call's block:

    header · step 1 thinking · step 1 text · call 1 · <call 1's outputs> · call 2 · ... · answer

A block that is still streaming is a widget (a collapsible thinking panel, a streaming text);
a block whose content is complete is static HTML with ``<details>`` plus text/plain, put in place
with ``update_display_data``. When a step moves on its widgets are swapped for the static
rendering and closed, so a notebook saved without widget state (JupyterLab's default) keeps
everything, and nothing of a finished run lives on in the kernel.

Every message the view sends is paced by one :class:`Pacer` per run: streamed text is batched
and flushed at most ``rate`` times a second whatever the token rate, and no delta is dropped
(the record keeps them all; each flush sends what the browser has not seen).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
    StepStarted,
    ToolCallDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from . import static
from .timeline import CallEntry, StepEntry, Timeline

Bundle = dict[str, Any]
Publisher = Callable[[Bundle, str, bool, dict[str, Any]], None]

RATE = 19.0  # messages per second, per run: with the few that cannot wait, under 20
TITLE_EVERY_S = 1.0  # the live header and panel titles tick once a second


def ipython_publish(bundle: Bundle, display_id: str, update: bool, metadata: dict) -> None:
    """Display (or update in place) a mimebundle in the running cell's output."""
    from IPython.display import display

    display(bundle, raw=True, display_id=display_id, update=update, metadata=metadata)


class Pacer:
    """A token bucket for one run's messages: ``rate`` per second, at most ``burst`` saved up.

    The bucket starts empty when the run starts, so by any moment t the run has sent at most
    ``rate * t`` paced messages. Optional messages (streamed text, titles, the header tick) wait
    until they are affordable; messages that cannot wait (a call's block must appear before its
    outputs) are spent anyway and delay what follows. A widget's close is paid when it opens.
    """

    def __init__(self, rate: float = RATE, burst_s: float = 1.0) -> None:
        self.rate = rate
        self.interval = 1.0 / rate
        self.capacity = rate * burst_s
        self.budget = 0.0
        self.next_at = float("-inf")  # no two ticks closer than one interval
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is None:
            self._at = now
        self.budget = min(self.capacity, self.budget + (now - self._at) * self.rate)
        self._at = now

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def affords(self, messages: int, now: float) -> bool:
        self._refill(now)
        return self.budget >= messages

    def spend(self, messages: int, now: float) -> None:
        self._refill(now)
        self.budget -= messages

    def ticked(self, now: float) -> None:
        self.next_at = now + self.interval


@dataclass
class _Block:
    display_id: str
    step: StepEntry
    kind: str  # "thinking" | "content"
    shown: int = 0  # chunks of the record already in the browser
    live: Any = None  # ThinkingPanel | ContentStream while streaming
    displayed: bool = False
    final: bool = False  # the step's final static rendering is in place
    title_at: float = 0.0


class LiveView:
    """Renders one run into the current cell's output. Call it with events; ``close()`` at the end.

    ``widgets=False`` keeps to static HTML blocks updated in place (for frontends without
    widgets). ``quiet`` shows no thinking while it streams (it is still kept, collapsed, at the
    end of each step). ``calls_in_cells``: the frontend puts each code call into a cell of its
    own (the lab extension said so), so a code call is one line pointing to that cell.
    """

    def __init__(
        self,
        max_steps: int,
        quiet: bool = False,
        *,
        widgets: bool = True,
        rate: float = RATE,
        clock: Callable[[], float] = time.monotonic,
        publish: Publisher | None = None,
        segment_chars: int | None = None,
        calls_in_cells: bool = False,
    ) -> None:
        self.timeline = Timeline(max_steps, clock)
        self.quiet = quiet
        self.widgets = widgets
        self.calls_in_cells = calls_in_cells
        self.messages = 0  # iopub messages this view caused (displays, updates, comm)
        self._clock = clock
        self._pacer = Pacer(rate)
        self._publish = publish or ipython_publish
        self._segment_chars = segment_chars
        self._prefix = f"k2nb-{uuid.uuid4().hex[:12]}"
        self._blocks: dict[tuple[int, str], _Block] = {}
        self._header_shown = False
        self._header_text = ""
        self._header_at = float("-inf")
        self._header_step = 0
        self._calls_shown: dict[str, str] = {}  # cell call id -> HTML shown
        self._calls_final: set[str] = set()  # cell call ids shown with their final status
        self._calls_ended: list[CallEntry] = []  # finished calls whose block shows "running"
        self._steps_final = 0  # steps[:n] are static for good
        self._closed = False
        self._failed: BaseException | None = None

    # ------------------------------------------------------------------ subscriber

    def __call__(self, event: Event) -> None:
        now = self._clock()
        self.timeline.apply(event, now)
        if self._closed:
            return
        kind = type(event)
        if (kind is ReasoningDelta or kind is ContentDelta or kind is ToolCallDelta
                or kind is GenerationProgress):
            if now >= self._pacer.next_at and self._failed is None:
                self._guard(self._tick, now)
            return
        if kind is RunFinished:
            self._finish(now)
            return
        if self._failed is None:
            self._guard(self._on_structure, event, now)

    def close(self, stop_reason: str = "error", note: str = "") -> None:
        """Leave the static rendering in place and free the widgets. Idempotent.

        Without a RunFinished first, the run is shown as ended by ``stop_reason``.
        """
        if self._closed:
            return
        now = self._clock()
        if not self.timeline.finished:
            self.timeline.finish(stop_reason, "", note or "the run ended without a result", now)
        self._finish(now)

    # ------------------------------------------------------------------ events

    def _on_structure(self, event: Event, now: float) -> None:
        self._show_ended_calls()
        if isinstance(event, RunStarted):
            self._refresh_header(now, force=True)
        elif isinstance(event, StepStarted):
            # earlier steps become static before this one's first block can appear
            steps = self.timeline.steps
            for step in steps[self._steps_final : len(steps) - 1]:
                self._sync_step(step, now, final=True)
            self._steps_final = max(self._steps_final, len(steps) - 1)
            if self._pacer.due(now):
                self._tick(now)
        elif isinstance(event, ToolCallStarted):
            # the call's block must be in place before IPython publishes the call's outputs
            step = self.timeline.step(event.step, now)
            self._sync_step(step, now, final=step.finished_at is not None)
            call = self.timeline.find_call(event.call.id)
            if call is not None:
                self._show_call(call)
            if self._pacer.due(now):
                self._refresh_header(now, force=True)
        elif isinstance(event, ToolCallFinished):
            # Shown at the next event: by then every subscriber has seen this one, so the lab
            # extension has stopped claiming the call's outputs and leaves the update to us.
            call = self.timeline.find_call(event.call.id)
            if call is not None:
                self._calls_ended.append(call)
        elif isinstance(event, Notice):
            step = self.timeline.current
            if step is not None:
                self._sync_step(step, now, final=False)
            self._send(static.notice_bundle(event.text, event.level), self._new_id(), "notice")
        elif isinstance(event, ContextCompacted):
            step = self.timeline.current
            if step is not None:
                self._sync_step(step, now, final=False)
            self._send(static.compaction_bundle(event), self._new_id(), "compaction",
                       step=event.step)
        elif self._pacer.due(now):  # StepFinished and anything newer: shown at the next tick
            self._tick(now)

    def _guard(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception as exc:  # a view must never break the run; fall back to static
            self._failed = exc
            print(
                f"k2nb: the live view stopped ({type(exc).__name__}: {exc}); "
                "the run goes on and its static rendering will follow.",
                file=sys.stderr,
            )

    # ------------------------------------------------------------------ pacing

    def _tick(self, now: float) -> None:
        self._show_ended_calls()
        step = self.timeline.current
        if step is not None:
            self._sync_step(step, now, final=False)
        self._refresh_header(now)
        self._pacer.ticked(now)

    # ------------------------------------------------------------------ header

    def _refresh_header(self, now: float, force: bool = False) -> None:
        step_number = self.timeline.current.step if self.timeline.current else 0
        stepped = step_number != self._header_step
        if self._header_shown and not force:
            if not (stepped or now - self._header_at >= TITLE_EVERY_S):
                return
            if not self._pacer.affords(1, now):
                return
        self._header_step = step_number
        self._header_at = now
        bundle = static.header_bundle(self.timeline, now)
        if self._header_shown and bundle["text/plain"] == self._header_text:
            return
        self._header_text = bundle["text/plain"]
        self._send(bundle, self._prefix + "-header", "header", update=self._header_shown)
        self._header_shown = True

    # ------------------------------------------------------------------ step blocks

    def _sync_step(self, step: StepEntry, now: float, final: bool) -> None:
        """Bring the step's thinking and text blocks up to date, in their order.

        ``final``: the step is over (or the run is), so its blocks become static for good.
        """
        if not self._header_shown:
            self._refresh_header(now, force=True)
        final = final or step.finished_at is not None or self.timeline.finished
        for kind, chunks in (("thinking", step.reasoning), ("content", step.content)):
            if not chunks:
                continue
            block = self._blocks.get((step.step, kind))
            complete = final or (kind == "thinking" and step.thinking_done)
            if block is None:
                block = self._blocks[(step.step, kind)] = _Block(self._new_id(), step, kind)
                if complete:
                    self._show_static(block, now, final=final)
                elif self._streams(kind):
                    self._show_live(block, now)
            elif not block.displayed and not complete and self._streams(kind):
                self._show_live(block, now)  # waiting for the budget to open it
            elif block.final:
                continue
            elif block.live is None:
                if final or (complete and not block.displayed):
                    self._show_static(block, now, final=final)
            elif complete:
                self._show_static(block, now, final=final)
                self._close_live(block)  # its closes were paid for when it opened
            else:
                self._stream(block, chunks, now)

    def _streams(self, kind: str) -> bool:
        return self.widgets and not (self.quiet and kind == "thinking")

    def _show_live(self, block: _Block, now: float) -> None:
        """Open the block's widgets, once the budget covers their opening and closing."""
        from .widgets import (
            SEGMENT_CHARS,
            ContentStream,
            ThinkingPanel,
            opening_cost,
            widget_view_bundle,
        )

        thinking = block.kind == "thinking"
        if not self._pacer.affords(opening_cost(3 if thinking else 2, bounded=thinking) + 1, now):
            return
        chunks = block.step.reasoning if block.kind == "thinking" else block.step.content
        text = "".join(chunks)
        block.shown = len(chunks)
        segment_chars = self._segment_chars or SEGMENT_CHARS
        if block.kind == "thinking":
            title = static.thinking_title(block.step, now)
            block.live = ThinkingPanel(title, text, segment_chars)
            block.title_at = now
        else:
            title = f"Step {block.step.step} · writing…"
            block.live = ContentStream(text, segment_chars)
        opened = block.live.opened
        self.messages += opened
        self._pacer.spend(opened + block.live.widget_count, now)  # opens, and closes to come
        block.displayed = True
        self._send(
            widget_view_bundle(block.live.root, title),
            block.display_id,
            block.kind,
            step=block.step.step,
        )

    def _stream(self, block: _Block, chunks: list[str], now: float) -> None:
        if len(chunks) > block.shown:
            end = len(chunks)
            pending = "".join(chunks[block.shown : end])
            if not self._pacer.affords(block.live.append_cost(pending), now):
                return
            before = block.live.widget_count
            sent = block.live.append(pending)
            block.shown = end
            self.messages += sent
            self._pacer.spend(sent + block.live.widget_count - before, now)
        if block.kind == "thinking" and now - block.title_at >= TITLE_EVERY_S:
            if self._pacer.affords(1, now):
                block.title_at = now
                titled = block.live.set_title(static.thinking_title(block.step, now))
                self.messages += titled
                self._pacer.spend(titled, now)

    def _show_static(self, block: _Block, now: float, *, final: bool) -> None:
        if block.kind == "thinking":
            bundle = static.thinking_bundle(block.step, now)
        else:
            bundle = static.content_bundle(block.step.content_text)
        # Flags are set so that an interrupt landing mid-send errs towards sending again:
        # "displayed" before (a later update then replaces whatever went out), "final" after.
        update, block.displayed = block.displayed, True
        self._send(bundle, block.display_id, block.kind, update=update, step=block.step.step)
        block.shown = len(block.step.reasoning if block.kind == "thinking" else block.step.content)
        block.final = final

    # ------------------------------------------------------------------ calls

    def _show_ended_calls(self) -> None:
        ended, self._calls_ended = self._calls_ended, []
        for call in ended:
            self._show_call(call)

    def _show_call(self, call: CallEntry) -> None:
        """Show the call's block, or bring it up to date; nothing once it is final."""
        cell_id = static.cell_call_id(self.timeline.run_id, call.step, call.call.id)
        if cell_id in self._calls_final:
            return
        if self.calls_in_cells and call.code is not None:
            bundle = static.call_line_bundle(call, cell_id)
        else:
            bundle = static.call_bundle(call)
        update = cell_id in self._calls_shown
        if not (update and self._calls_shown[cell_id] == bundle["text/html"]):
            # the model's call ids recur (from run to run, and once steps were compacted):
            # the display id is the call's cell id, unique in the notebook
            self._send(bundle, f"{self._prefix}-call-{cell_id}", "call", update=update,
                       step=call.step, call_id=call.call.id)
        if call.status == "running":
            self._calls_shown[cell_id] = bundle["text/html"]
        else:  # final: never rendered again (its HTML need not be kept)
            self._calls_shown[cell_id] = ""
            self._calls_final.add(cell_id)

    # ------------------------------------------------------------------ end of run

    def _finish(self, now: float) -> None:
        """Static rendering of everything, widgets closed, answer and outcome shown."""
        if self._closed:
            return
        self._closed = True
        try:
            self._show_ended_calls()
            for step in self.timeline.steps:
                self._sync_step(step, now, final=True)
                for call in step.calls:
                    self._show_call(call)
            self._refresh_header(now, force=True)
            last = self.timeline.current
            answer = self.timeline.answer.strip()
            if answer and not (last is not None and last.content_text.strip() == answer):
                self._send(static.content_bundle(self.timeline.answer), self._new_id(), "answer")
            outcome = static.outcome_bundle(self.timeline)
            if outcome is not None:
                self._send(outcome, self._new_id(), "outcome")
        finally:
            for block in self._blocks.values():
                self._close_live(block)

    def _close_live(self, block: _Block) -> None:
        live, block.live = block.live, None
        if live is None:
            return
        try:
            self.messages += live.close()
        except Exception:  # a comm that cannot close (its kernel is going away)
            pass

    # ------------------------------------------------------------------ output

    def _new_id(self) -> str:
        return f"{self._prefix}-{uuid.uuid4().hex[:8]}"

    def _send(
        self,
        bundle: Bundle,
        display_id: str,
        block: str,
        *,
        update: bool = False,
        step: int | None = None,
        call_id: str | None = None,
    ) -> None:
        meta: dict[str, Any] = {"run_id": self.timeline.run_id, "block": block}
        if step is not None:
            meta["step"] = step
        if call_id is not None:
            meta["call_id"] = call_id
        self._publish(bundle, display_id, update, {"k2nb": meta})
        self.messages += 1
        self._pacer.spend(1, self._clock())
