"""When a run ends — answered, by error, or interrupted — its cell keeps a static rendering.

What a notebook saved without widget state shows: HTML with <details> panels and a text/plain
fallback per block, in the order the run happened, and no widget left open.
"""

from __future__ import annotations

from ui_recording import make_live, thinking_plain

from k2nb.core import events as ev
from k2nb.core.messages import AssistantMessage, ToolCall, Usage
from k2nb.ui.synthetic import token, tool_run

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def blocks(recorder) -> list[str]:
    return [o["metadata"]["k2nb"]["block"] for o in recorder.outputs()]


def assert_static(recorder) -> None:
    outputs = recorder.outputs()
    assert outputs
    for out in outputs:
        assert WIDGET_MIME not in out["bundle"], out["metadata"]
        assert out["bundle"]["text/plain"] is not None
    assert recorder.open_models() == [
        k
        for k, s in recorder.widget_state().items()
        if s["_model_name"] in ("LayoutModel", "HTMLStyleModel")
    ]


def stream_thinking(view, clock, tokens: int, rate: float = 400.0) -> str:
    pieces = []
    for i in range(tokens):
        clock.t += 1.0 / rate
        pieces.append(token(i))
        view(ev.ReasoningDelta(pieces[-1], "r", 1))
    return "".join(pieces)


def test_answered_run_leaves_details_and_markdown_answer(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    tool_run(lambda e: (setattr(clock, "t", clock.t + 0.3), view(e)))
    assert_static(recorder)
    assert blocks(recorder) == ["header", "thinking", "call", "thinking", "content"]
    outputs = recorder.outputs()
    header, thinking1, call, _, answer = (o["bundle"] for o in outputs)
    assert "answered" in header["text/plain"] and "· 2 steps ·" in header["text/plain"]
    assert "$" in header["text/plain"]  # kimi-k2-thinking has a price
    assert "<details" in thinking1["text/html"] and "open" not in thinking1["text/html"]
    assert "Step 1 · thought for" in thinking1["text/html"]
    assert "<code>6 * 7</code>" in thinking1["text/html"]  # rendered as Markdown
    assert thinking_plain(thinking1) == "I should compute `6 * 7` with Python."
    assert "✓ code_interpreter · ok · [3]" in call["text/plain"]
    assert "print" in call["text/html"]
    # the model read what the cell shows ("42"), right under the block: not repeated
    assert "what the model read" not in call["text/html"]
    assert answer == {"text/markdown": "6 × 7 = **42**.", "text/plain": "6 × 7 = **42**."}


def test_call_block_is_shown_before_the_call_runs(monkeypatch):
    view, recorder, _clock = make_live(monkeypatch)
    seen_at_call_start = []

    def subscriber(event):
        view(event)
        if isinstance(event, ev.ToolCallStarted):
            seen_at_call_start.extend(blocks(recorder))

    tool_run(subscriber)
    # the thinking of step 1 and the call's block are in place before its outputs can appear
    assert seen_at_call_start == ["header", "thinking", "call"]
    running = next(d for d in recorder.displays if d["metadata"]["k2nb"]["block"] == "call")
    assert "running" in running["bundle"]["text/plain"]


def test_interrupted_mid_thought_keeps_the_partial_thinking(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    view(ev.RunStarted("r", "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted("r", 1))
    thinking = stream_thinking(view, clock, 2_000)  # 5 s: the live panel is open
    assert any(s.get("_model_name") == "AccordionModel" for s in recorder.widget_state().values())
    view(ev.RunFinished("r", "", "interrupted", 1, Usage(), "Stopped by user at step 1."))

    assert_static(recorder)
    assert blocks(recorder) == ["header", "thinking", "outcome"]
    header, panel, outcome = (o["bundle"] for o in recorder.outputs())
    assert "interrupted" in header["text/plain"]
    assert "thinking stopped after" in panel["text/html"] and "<details" in panel["text/html"]
    assert thinking_plain(panel) == thinking
    assert outcome["text/plain"].startswith("■ Run interrupted after 1 step(s): Stopped by user")


def test_interrupted_during_a_call_marks_it(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    call = ToolCall("c1", "code_interpreter", '{"code": "import time; time.sleep(100)"}')
    view(ev.RunStarted("r", "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted("r", 1))
    view(ev.ReasoningDelta("Sleep.", "r", 1))
    view(
        ev.StepFinished(
            "r", 1, AssistantMessage("", "Sleep.", [call]), Usage(1, 1, 2), "tool_calls"
        )
    )
    view(ev.ToolCallStarted("r", 1, call, "import time; time.sleep(100)"))
    clock.t += 4
    view(ev.RunFinished("r", "", "interrupted", 1, Usage(1, 1, 2), "Stopped by user at step 1."))
    assert_static(recorder)
    call_out = next(o for o in recorder.outputs() if o["metadata"]["k2nb"]["block"] == "call")
    assert "■ code_interpreter · interrupted · 4.0 s" in call_out["bundle"]["text/plain"]


def test_error_stop_is_explained(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    view(ev.RunStarted("r", "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted("r", 1))
    stream_thinking(view, clock, 500)
    view(ev.RunFinished("r", "", "error", 1, Usage(), "The server answered 401: check the key."))
    assert_static(recorder)
    assert blocks(recorder)[-1] == "outcome"
    assert "401" in recorder.outputs()[-1]["bundle"]["text/html"]


def test_close_without_run_finished_still_leaves_static_output(monkeypatch):
    # the loop died of an unexpected exception: the magic's `finally: view.close()`
    view, recorder, clock = make_live(monkeypatch)
    view(ev.RunStarted("r", "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted("r", 1))
    thinking = stream_thinking(view, clock, 1_000)
    view.close()
    view.close()  # idempotent
    assert_static(recorder)
    panel = next(o for o in recorder.outputs() if o["metadata"]["k2nb"]["block"] == "thinking")
    assert thinking_plain(panel["bundle"]) == thinking
    assert "stopped by an error" in recorder.outputs()[0]["bundle"]["text/plain"]


def test_a_failing_widget_layer_falls_back_to_static(monkeypatch, capsys):
    view, recorder, clock = make_live(monkeypatch)
    from k2nb.ui import widgets

    def broken(*args, **kwargs):
        raise RuntimeError("no comm")

    monkeypatch.setattr(widgets, "ThinkingPanel", broken)
    view(ev.RunStarted("r", "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted("r", 1))
    thinking = stream_thinking(view, clock, 1_000)
    view(ev.ContentDelta("ok", "r", 1))
    view(ev.StepFinished("r", 1, AssistantMessage("ok", thinking), Usage(1, 1, 2), "stop"))
    view(ev.RunFinished("r", "ok", "answered", 1, Usage(1, 1, 2)))
    assert "live view stopped" in capsys.readouterr().err
    panel = next(o for o in recorder.outputs() if o["metadata"]["k2nb"]["block"] == "thinking")
    assert thinking_plain(panel["bundle"]) == thinking


def test_html_mode_uses_no_widgets(monkeypatch):
    view, recorder, clock = make_live(monkeypatch, widgets=False)
    tool_run(lambda e: (setattr(clock, "t", clock.t + 0.3), view(e)))
    assert recorder.comms == []
    assert blocks(recorder) == ["header", "thinking", "call", "thinking", "content"]


def test_long_observation_is_folded_behind_show_all(monkeypatch):
    view, recorder, _clock = make_live(monkeypatch)
    call = ToolCall("c1", "list_files", "{}")
    view(ev.RunStarted("r", "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted("r", 1))
    view(ev.StepFinished("r", 1, AssistantMessage("", "", [call]), Usage(1, 1, 2), "tool_calls"))
    view(ev.ToolCallStarted("r", 1, call))
    listing = "\n".join(f"file{i}.csv" for i in range(200))
    view(ev.ToolCallFinished("r", 1, call, listing, False, [], None, 0.2))
    view(ev.RunFinished("r", "", "max_steps", 1, Usage(1, 1, 2), "Step budget ran out."))
    html = next(o for o in recorder.outputs() if o["metadata"]["k2nb"]["block"] == "call")
    html = html["bundle"]["text/html"]
    assert "file0.csv" in html and "show all (175 more lines)" in html and "file199.csv" in html
    assert html.index("show all") < html.index("file199.csv")


def test_call_status_is_updated_once_every_subscriber_saw_the_end(monkeypatch):
    # The lab extension claims a call's outputs until the bridge says the call finished; the
    # view's update of the call block must come after that, i.e. at the next event.
    view, recorder, _clock = make_live(monkeypatch)
    call = ToolCall("c1", "code_interpreter", '{"code": "1"}')
    view(ev.RunStarted("r", "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted("r", 1))
    view(ev.StepFinished("r", 1, AssistantMessage("", "", [call]), Usage(1, 1, 2), "tool_calls"))
    view(ev.ToolCallStarted("r", 1, call, "1"))
    view(ev.ToolCallFinished("r", 1, call, "1", False, [], 4, 0.01))
    calls = [d for d in recorder.displays if d["metadata"]["k2nb"]["block"] == "call"]
    assert len(calls) == 1 and "running" in calls[0]["bundle"]["text/plain"]
    view(ev.StepStarted("r", 2))
    calls = [d for d in recorder.displays if d["metadata"]["k2nb"]["block"] == "call"]
    assert (
        calls[-1]["update"] and "✓ code_interpreter · ok · [4]" in calls[-1]["bundle"]["text/plain"]
    )
