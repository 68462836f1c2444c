"""Streaming into the live view is batched: bounded messages per second, no delta lost.

The view runs in-process with a recording comm and a fake clock, so a stream of N tokens at a
given rate takes no real time; the real-kernel check of the same is in test_ui_kernel.py.
"""

from __future__ import annotations

import pytest
from ui_recording import make_live, segment_order, thinking_plain

from k2nb.core import events as ev
from k2nb.core.messages import AssistantMessage, Usage
from k2nb.ui.synthetic import token
from k2nb.ui.widgets import SEGMENT_CHARS, segment_text


def stream(view, clock, tokens: int, rate: float, step: int = 1) -> str:
    """Feed ``tokens`` thinking tokens at ``rate`` per second of fake time; returns the text."""
    pieces = []
    for i in range(tokens):
        clock.t += 1.0 / rate
        piece = token(i)
        pieces.append(piece)
        view(ev.ReasoningDelta(piece, "r", step))
    return "".join(pieces)


def start(view) -> None:
    view(ev.RunStarted("r", "prompt", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted("r", 1))


def finish(view, clock, thinking: str, answer: str = "Done.") -> None:
    clock.t += 0.01
    view(ev.ContentDelta(answer, "r", 1))
    usage = Usage(100, 10, 110)
    view(ev.StepFinished("r", 1, AssistantMessage(answer, thinking), usage, "stop"))
    view(ev.RunFinished("r", answer, "answered", 1, usage))


def comm_times(recorder) -> list[float]:
    return [t for kind, t in recorder.timeline if kind == "comm"]


def assert_rate(recorder, start_t: float, limit: float = 20.0) -> None:
    """No more than ``limit`` widget messages in any window from the start to time t."""
    times = comm_times(recorder)
    for n, t in enumerate(times, start=1):
        assert n <= limit * (t - start_t) + 4, f"{n} widget messages after {t - start_t:.2f} s"


@pytest.mark.parametrize("tokens,rate", [(5_000, 1_000), (5_000, 50), (100_000, 20_000)])
def test_message_count_is_bounded_by_time_not_tokens(monkeypatch, tokens, rate):
    view, recorder, clock = make_live(monkeypatch)
    t0 = clock.t
    start(view)
    thinking = stream(view, clock, tokens, rate)
    seconds = clock.t - t0
    finish(view, clock, thinking)

    widget_messages = len(recorder.comms)
    assert widget_messages <= 20 * (clock.t - t0) + 4
    assert_rate(recorder, t0)
    # streaming did happen: roughly one flush per tick once the panel was open
    assert widget_messages >= min(tokens, 10 * seconds) * 0.5
    # the header ticks once a second; every other display is one per block
    assert len(recorder.displays) <= seconds + 10
    assert widget_messages + len(recorder.displays) <= 20 * (clock.t - t0) + 8


def test_full_speed_100k_tokens_sends_a_handful_of_messages(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    start(view)
    thinking = stream(view, clock, 100_000, rate=1e7)  # 10 ms of fake time
    finish(view, clock, thinking)
    assert len(recorder.comms) == 0  # a panel that would live 10 ms is never opened
    thinking_out = [o for o in recorder.outputs() if o["metadata"]["k2nb"]["block"] == "thinking"]
    assert thinking_plain(thinking_out[0]["bundle"]) == thinking


def test_no_delta_lost_in_the_panel(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    start(view)
    thinking = stream(view, clock, 5_000, rate=3_000)
    # the last batch is still pending; the next tick (any event a tick later) sends it
    clock.t += 1.0
    view(ev.ReasoningDelta("", "r", 1))
    assert recorder.panel_text() == thinking

    finish(view, clock, thinking)
    outputs = recorder.outputs()
    thinking_out = [o for o in outputs if o["metadata"]["k2nb"]["block"] == "thinking"]
    assert len(thinking_out) == 1
    assert thinking_plain(thinking_out[0]["bundle"]) == thinking


def test_updates_never_resend_the_whole_text(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    start(view)
    thinking = stream(view, clock, 20_000, rate=500)  # 40 s, ~110 kB of thinking
    sizes = [
        size
        for (kind, _, _), size in zip(recorder.comms, recorder.comm_bytes())
        if kind == "comm_msg"
    ]
    assert max(sizes) < 3 * SEGMENT_CHARS  # one segment, never the growing text
    assert sum(sizes) < 40 * len(thinking)  # linear: at most ~20 flushes/s of one segment
    assert len(thinking) > 20 * SEGMENT_CHARS
    finish(view, clock, thinking)


def test_text_split_across_segments_only_at_line_breaks(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    start(view)
    thinking = stream(view, clock, 8_000, rate=200)
    clock.t += 1.0
    view(ev.ReasoningDelta("", "r", 1))
    state = recorder.widget_state()
    box = next(s for s in state.values() if s.get("_model_name") == "VBoxModel")
    texts = [segment_text(state[i]["value"]) for i in segment_order(box)]
    assert len(texts) > 3
    assert all(t.endswith("\n") for t in texts[:-1])
    assert "".join(texts) == thinking


def test_finished_steps_leave_no_open_widgets(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    start(view)
    thinking = stream(view, clock, 3_000, rate=300)
    finish(view, clock, thinking)
    state = recorder.widget_state()
    still_open = {s["_model_name"] for k, s in state.items() if not s.get("_closed")}
    # only the shared Layout and HTMLStyle stay, for the next run
    assert still_open <= {"LayoutModel", "HTMLStyleModel"}
    assert not any(
        "application/vnd.jupyter.widget-view+json" in o["bundle"] for o in recorder.outputs()
    )
