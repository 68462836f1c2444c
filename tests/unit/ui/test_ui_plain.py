"""In terminal IPython the run prints as readable plain text (no widgets, no HTML)."""

from __future__ import annotations

import io
import subprocess
import sys

from k2nb.core import events as ev
from k2nb.core.messages import AssistantMessage, Usage
from k2nb.ui import PlainView, make_view
from k2nb.ui.synthetic import stream_run, token, tool_run


def test_tool_run_reads_as_a_transcript():
    out = io.StringIO()
    tool_run(PlainView(30, stream=out))
    lines = out.getvalue().splitlines()
    assert lines[0] == "K2 · kimi-k2-thinking · synthetic"
    assert lines[1] == "── step 1 of 30"
    assert "  │ I should compute `6 * 7` with Python." in lines
    assert "▶ code_interpreter" in lines and "    print(6 * 7)" in lines
    assert any(line.startswith("✓ code_interpreter · ok · [3]") for line in lines)
    assert lines[-2] == "6 × 7 = **42**."
    assert lines[-1].startswith("── 2 steps · 1,100 in / 42 out tokens")
    assert lines[-1].endswith("answered")


def test_streamed_thinking_is_exact_under_the_gutter():
    out = io.StringIO()
    thinking = stream_run(PlainView(30, stream=out), 5_000)
    text = out.getvalue()
    body = text.split("  thinking…\n", 1)[1].split("\n  (thought for", 1)[0]
    assert "\n".join(line[4:] for line in body.split("\n")) == thinking.rstrip("\n")


def test_writes_are_batched():
    class Counting(io.StringIO):
        writes = 0

        def write(self, s):
            Counting.writes += 1
            return super().write(s)

    out = Counting()
    view = PlainView(30, stream=out, clock=lambda: 0.0)  # no time passes: one batch
    view(ev.RunStarted("r", "p", "m", "api", None))
    for i in range(10_000):
        view(ev.ReasoningDelta(token(i), "r", 1))
    view(ev.StepFinished("r", 1, AssistantMessage("", ""), Usage(), "stop"))
    assert Counting.writes < 10


def test_quiet_hides_thinking_but_says_how_long_it_took():
    out = io.StringIO()
    stream_run(PlainView(30, quiet=True, stream=out), 300)
    text = out.getvalue()
    assert "t1 t2" not in text and "(thought for" in text and "300 tokens" in text


def test_interrupt_is_reported():
    out = io.StringIO()
    stream_run(PlainView(30, stream=out), 100, stop_reason="interrupted")
    text = out.getvalue()
    assert "(thinking stopped after" in text
    assert "■ Run interrupted after 1 step(s): Stopped by user at step 1." in text


def test_make_view_outside_a_kernel_is_plain():
    assert isinstance(make_view(10), PlainView)


def test_terminal_ipython_gets_the_plain_view():
    code = (
        "from k2nb.ui import make_view; from k2nb.ui.synthetic import tool_run; "
        "v = make_view(30); print(type(v).__name__); tool_run(v)"
    )
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--simple-prompt", "--no-banner", "--quick", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("PlainView\n")
    assert "▶ code_interpreter" in out and "42\n✓ code_interpreter · ok" in out
    assert "<details" not in out and "widget" not in out.lower()
