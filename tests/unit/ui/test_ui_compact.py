"""Where the lab extension gives each code call a cell of its own, the ``%%k2`` cell shows each
call as one line pointing to that cell; elsewhere the full block, without repeating what the
cell already shows. Both stay bounded on long runs. Also: the context in the header, compaction
notices, a local model's live count, and views that do the same work at step 300 as at step 3.
"""

from __future__ import annotations

import html
import io
import re

from ui_recording import make_live

from k2nb.core import events as ev
from k2nb.core.messages import AssistantMessage, ToolCall, Usage
from k2nb.ui import PlainView, static
from k2nb.ui.synthetic import tool_run
from k2nb.ui.timeline import Timeline

RUN = "run-1"


def outputs_of(recorder, block: str) -> list[dict]:
    return [o["bundle"] for o in recorder.outputs() if o["metadata"]["k2nb"]["block"] == block]


def call_ids(fragment: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(r'data-k2nb-call-id="([^"]*)"', fragment)]


def code_step(view, clock, step: int, call: ToolCall, code: str, printed: str,
              observation: str | None = None, count: int | None = None) -> None:
    """One step that thinks, calls code_interpreter, and gets ``printed`` back."""
    view(ev.StepStarted(RUN, step))
    view(ev.ReasoningDelta(f"Step {step}: run it.", RUN, step))
    message = AssistantMessage("", f"Step {step}: run it.", [call])
    view(ev.StepFinished(RUN, step, message, Usage(1000 * step, 40, 1000 * step + 40),
                         "tool_calls"))
    view(ev.ToolCallStarted(RUN, step, call, code))
    clock.t += 0.5
    outputs = [{"output_type": "stream", "name": "stdout", "text": printed}]
    view(ev.ToolCallFinished(RUN, step, call, printed if observation is None else observation,
                             False, outputs, count if count is not None else 10 + step, 0.5))


def test_with_real_cells_each_code_call_is_a_line_that_selects_its_cell(monkeypatch):
    view, recorder, clock = make_live(monkeypatch, calls_in_cells=True)
    tool_run(lambda e: (setattr(clock, "t", clock.t + 0.3), view(e)))
    (line,) = outputs_of(recorder, "call")
    cell_id = static.cell_call_id("synthetic-tools", 1, "call-1")
    assert call_ids(line["text/html"]) == [cell_id]
    # status, duration, the cell's number and what the code does, on one line
    assert line["text/plain"].startswith("✓ code_interpreter · ok · ")
    assert line["text/plain"].endswith(" · → [3] · print(6 * 7)")
    assert "\n" not in line["text/plain"]
    # the code is still there for a reader of the saved notebook, folded
    assert "<details" in line["text/html"] and "print(6 * 7)" in line["text/html"]
    assert "color:" not in line["text/html"]  # not highlighted again: its cell is


def test_the_call_line_points_to_the_running_cell_then_its_number(monkeypatch):
    view, recorder, clock = make_live(monkeypatch, calls_in_cells=True)
    call = ToolCall("functions.code_interpreter:0", "code_interpreter", "{}")
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None))
    code_step(view, clock, 1, call, "x = 1\nprint(x)", "1\n", count=12)
    running = next(d for d in recorder.displays if d["metadata"]["k2nb"]["block"] == "call")
    assert "→ [*]" in running["bundle"]["text/plain"] and "running" in running["bundle"]["text/plain"]
    view(ev.RunFinished(RUN, "done", "answered", 1, Usage(1, 1, 2)))
    (line,) = outputs_of(recorder, "call")
    assert " · 0.5 s · → [12] · x = 1" in line["text/plain"]


def test_recurring_call_ids_get_lines_of_their_own(monkeypatch):
    # A model's ids restart once older steps were compacted (and in every run): each call's
    # line and display must still be its own.
    view, recorder, clock = make_live(monkeypatch, calls_in_cells=True)
    call = ToolCall("functions.code_interpreter:0", "code_interpreter", "{}")
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None))
    code_step(view, clock, 1, call, "print('a')", "a\n", count=3)
    code_step(view, clock, 2, call, "print('b')", "b\n", count=4)
    view(ev.RunFinished(RUN, "done", "answered", 2, Usage(1, 1, 2)))
    lines = outputs_of(recorder, "call")
    assert [call_ids(b["text/html"]) for b in lines] == [
        [static.cell_call_id(RUN, 1, call.id)], [static.cell_call_id(RUN, 2, call.id)]]
    assert "→ [3]" in lines[0]["text/plain"] and "→ [4]" in lines[1]["text/plain"]


def test_calls_without_a_cell_keep_their_full_block(monkeypatch):
    view, recorder, _clock = make_live(monkeypatch, calls_in_cells=True)
    call = ToolCall("c1", "list_files", "{}")
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted(RUN, 1))
    view(ev.StepFinished(RUN, 1, AssistantMessage("", "", [call]), Usage(1, 1, 2), "tool_calls"))
    view(ev.ToolCallStarted(RUN, 1, call))
    view(ev.ToolCallFinished(RUN, 1, call, "a.csv\nb.csv", False, [], None, 0.1))
    view(ev.RunFinished(RUN, "", "answered", 1, Usage(1, 1, 2)))
    (block,) = outputs_of(recorder, "call")
    assert "data-k2nb-call-id" not in block["text/html"] and "b.csv" in block["text/html"]


def test_a_long_call_line_stays_small_and_says_where_the_rest_is(monkeypatch):
    view, recorder, clock = make_live(monkeypatch, calls_in_cells=True)
    call = ToolCall("c1", "code_interpreter", "{}")
    code = "\n".join(f"row_{i} = {i} * 2  # {'x' * 60}" for i in range(400))
    table = "\n".join(f"{i:>5} {i * 2:>8}" for i in range(5000))
    summary = "DataFrame 5000 rows × 2 columns\n" + "\n".join(table.splitlines()[:5])
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None))
    code_step(view, clock, 1, call, code, table, observation=summary, count=7)
    view(ev.RunFinished(RUN, "", "answered", 1, Usage(1, 1, 2)))
    (line,) = outputs_of(recorder, "call")
    size = len(line["text/html"]) + len(line["text/plain"])
    assert size < static.LINE_CODE_CHARS + static.LINE_READ_CHARS + 2000, size
    assert "388 more lines: the whole code is in cell [7]" in line["text/html"]
    assert "what the model read" in line["text/html"]  # a summary, not the printed table


def test_without_real_cells_the_block_does_not_repeat_the_outputs(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    call = ToolCall("c1", "code_interpreter", "{}")
    printed = "MARK-1\n" + "value " * 700 + "\n"
    code = f"print('MARK-1')\nprint({'value ' * 700!r})"
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None))
    code_step(view, clock, 1, call, code, printed, observation=printed.rstrip("\n"))
    view(ev.RunFinished(RUN, "", "answered", 1, Usage(1, 1, 2)))
    (block,) = outputs_of(recorder, "call")
    # the whole code once (the HTML; it exists nowhere else in this notebook), the outputs
    # once (the cell's own, under the block), the text fallback only the head of the code
    assert block["text/html"].count("value value") >= 1
    assert "what the model read" not in block["text/html"]
    assert block["text/plain"].count("value") < 200
    assert "more characters" in block["text/plain"]
    assert len(block["text/html"]) + len(block["text/plain"]) < len(code) + 2500


def test_what_the_model_read_is_shown_capped_when_it_differs(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    call = ToolCall("c1", "code_interpreter", "{}")
    printed = "".join(f"line {i}\n" for i in range(3000))
    read = static.head(printed, 10_000, 5000) + "\n[… cut …]"
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None))
    code_step(view, clock, 1, call, "for i in range(3000): print('line', i)", printed,
              observation=read)
    view(ev.RunFinished(RUN, "", "answered", 1, Usage(1, 1, 2)))
    (block,) = outputs_of(recorder, "call")
    assert "what the model read" in block["text/html"]
    assert "the transcript has all" in block["text/html"]
    assert "line 2999" not in block["text/html"]


def test_the_header_shows_the_context_in_use_against_the_window(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None, context_window=262_144))
    view(ev.StepStarted(RUN, 1))
    clock.t += 2
    view(ev.ContentDelta("hi", RUN, 1))
    header = outputs_of(recorder, "header")[0]["text/plain"]
    assert "ctx" not in header  # nothing reported yet
    view(ev.StepFinished(RUN, 1, AssistantMessage("hi", ""), Usage(142_900, 600, 143_500), "stop"))
    view(ev.RunFinished(RUN, "hi", "answered", 1, Usage(142_900, 600, 143_500)))
    header = outputs_of(recorder, "header")[0]["text/plain"]
    assert " · ctx 144k / 262k · " in header


def compaction() -> ev.ContextCompacted:
    return ev.ContextCompacted(RUN, 160, 1, 150, "Progress: **the data is clean**.\nLeft: plots.",
                               212_000, 31_000)


def test_a_compaction_is_a_notice_with_its_summary_folded(monkeypatch):
    view, recorder, _clock = make_live(monkeypatch)
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None))
    view(ev.StepStarted(RUN, 159))
    view(ev.StepFinished(RUN, 159, AssistantMessage("", "x"), Usage(1, 1, 2), "tool_calls"))
    view(compaction())
    view(ev.StepStarted(RUN, 160))
    view(ev.RunFinished(RUN, "", "answered", 160, Usage(1, 1, 2)))
    (notice,) = outputs_of(recorder, "compaction")
    assert notice["text/plain"].startswith(
        "ℹ context compacted at step 160: steps 1–150 summarised (212k → 31k tokens)\n")
    assert "  │ Left: plots." in notice["text/plain"]
    assert notice["text/html"].index("<summary>") < notice["text/html"].index("the data is clean")
    assert "<strong>the data is clean</strong>" in notice["text/html"]


def test_a_compaction_in_the_plain_view_and_the_static_rendering():
    out = io.StringIO()
    view = PlainView(300, stream=out)
    view(ev.RunStarted(RUN, "p", "m", "api", None))
    view(ev.StepStarted(RUN, 159))
    view(compaction())
    view(ev.StepStarted(RUN, 160))
    view(ev.RunFinished(RUN, "done", "answered", 160, Usage()))
    assert "ℹ context compacted at step 160: steps 1–150 summarised" in out.getvalue()
    texts = [b["text/plain"] for b in static.run_bundles(view.timeline, 0.0)]
    at = next(i for i, t in enumerate(texts) if "context compacted" in t)
    assert "Step 159" not in texts[at] and at == 1  # between step 159's blocks and step 160's


def test_a_local_model_shows_its_count_and_rate_in_the_header_paced(monkeypatch):
    view, recorder, clock = make_live(monkeypatch)
    view(ev.RunStarted(RUN, "p", "smollm2", "local", None))
    view(ev.StepStarted(RUN, 1))
    updates_before = len(recorder.displays)
    for i in range(1, 301):  # 10 s of generation at 30 tokens/s, no text to show yet
        clock.t += 1 / 30
        view(ev.GenerationProgress(i * 4, 28.4, 4096, RUN, 1))
    headers = [d for d in recorder.displays[updates_before:]
               if d["metadata"]["k2nb"]["block"] == "header"]
    assert 5 <= len(headers) <= 12  # about once a second, not once per report
    last = headers[-1]["bundle"]["text/plain"]
    shown = re.search(r" · generating · ([\d,]+) / 4,096 tokens · 28 tok/s$", last)
    assert shown and int(shown.group(1).replace(",", "")) >= 1_100, last
    assert f" / {shown.group(1)} out tokens" in last


def test_the_views_do_the_same_work_per_step_late_in_a_run(monkeypatch):
    """Rendering counts, not time: each step's blocks are rendered a bounded number of times,
    however many steps came before."""
    counts = {"call": 0, "thinking": 0}
    for name, key in (("call_line_bundle", "call"), ("call_bundle", "call"),
                      ("thinking_bundle", "thinking")):
        original = getattr(static, name)

        def counted(*args, _original=original, _key=key, **kwargs):
            counts[_key] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(static, name, counted)
    view, recorder, clock = make_live(monkeypatch, calls_in_cells=True, widgets=False)
    view(ev.RunStarted(RUN, "p", "kimi-k2-thinking", "api", None))
    steps = 300
    for step in range(1, steps + 1):
        call = ToolCall(f"functions.code_interpreter:{step % 7}", "code_interpreter", "{}")
        code_step(view, clock, step, call, f"print({step})", f"{step}\n")
    view(ev.RunFinished(RUN, "done", "answered", steps, Usage(1, 1, 2)))
    assert counts["call"] <= 2 * steps  # once running, once finished
    assert counts["thinking"] <= 2 * steps
    assert len(outputs_of(recorder, "call")) == steps


def test_the_timeline_finds_steps_and_calls_by_index():
    timeline = Timeline(300)
    call = ToolCall("functions.code_interpreter:0", "code_interpreter", "{}")
    for step in (1, 2):
        timeline.apply(ev.StepStarted(RUN, step), 0.0)
        timeline.apply(ev.ToolCallStarted(RUN, step, call, "1"), 0.0)
    timeline.apply(ev.ToolCallFinished(RUN, 2, call, "1", False, [], 5, 0.1), 1.0)
    first, second = (s.calls[0] for s in timeline.steps)
    assert timeline.find_call(call.id) is second
    assert (first.status, second.status, second.execution_count) == ("running", "ok", 5)
    assert timeline.step(1, 0.0) is timeline.steps[0] and len(timeline.steps) == 2
