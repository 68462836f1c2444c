"""The Bar, through the real kernel protocol: a kernel started by jupyter_client, its iopub read.

100,000 thinking tokens at full speed: at most 20 widget messages per second of run time, the
final panel text exact, and the cell's outputs end with static HTML holding <details>.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from k2nb.ui.synthetic import KernelProbe, token
from k2nb.ui.widgets import NEWEST_FIRST, segment_text

pytestmark = pytest.mark.slow

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def probe():
    with KernelProbe() as kernel:
        setup = kernel.execute(
            "from k2nb.ui import make_view\n"
            "from k2nb.ui.synthetic import stream_run, tool_run\n"
            "print(type(make_view(30)).__name__)"
        )
        assert setup.reply["status"] == "ok"
        assert setup.of_type("stream")[0]["content"]["text"] == "LiveView\n"
        yield kernel


def expected_thinking(tokens: int) -> str:
    return "".join(token(i) for i in range(tokens))


def block(output: dict) -> str:
    return output["metadata"]["k2nb"]["block"]


def panel_text(bundle: dict) -> str:
    lines = bundle["text/plain"].split("\n")[1:]
    return "\n".join(line[len("  │ ") :] for line in lines)


def assert_static_outputs(execution, thinking: str) -> None:
    outputs = [o for o in execution.outputs() if o["output_type"] == "display_data"]
    assert all(WIDGET_MIME not in o["data"] for o in outputs)
    panels = [o for o in outputs if block(o) == "thinking"]
    assert len(panels) == 1
    assert "<details" in panels[0]["data"]["text/html"]
    assert panel_text(panels[0]["data"]) == thinking  # exact, every delta


def test_bar_100k_tokens_at_full_speed(probe):
    run = probe.execute("stream_run(make_view(30), 100_000)")
    assert run.reply["status"] == "ok"
    widget = len(run.widget_messages)
    assert widget <= 20 * run.seconds, f"{widget} widget messages in {run.seconds:.2f} s"
    assert_static_outputs(run, expected_thinking(100_000))
    assert len(run.messages) < 20  # displays and updates included


def test_100k_tokens_streamed_over_4_s_stay_under_20_per_s(probe):
    run = probe.execute("stream_run(make_view(30), 100_000, rate=25_000)")
    assert run.reply["status"] == "ok"
    assert run.seconds >= 4
    widget = run.widget_messages
    assert 20 <= len(widget) <= 20 * run.seconds  # it did stream, within the rate
    start = run.messages[0]["header"]["date"]
    for n, msg in enumerate(widget, start=1):  # and never in a burst above the rate
        assert n <= 20 * (msg["header"]["date"] - start).total_seconds() + 4
    # what the browser's panel held before the swap is a prefix of the thinking: nothing
    # reordered or lost, only the last batch not yet sent
    state = run.widget_state()
    box = next(s for s in state.values() if s.get("_model_name") == "VBoxModel")
    order = [c[len("IPY_MODEL_") :] for c in box["children"]]
    if NEWEST_FIRST in box.get("_dom_classes", ()):
        order.reverse()
    shown = "".join(segment_text(state[i]["value"]) for i in order)
    thinking = expected_thinking(100_000)
    assert thinking.startswith(shown) and len(shown) > len(thinking) / 2
    assert_static_outputs(run, thinking)
    closed = {m["content"]["comm_id"] for m in run.of_type("comm_close")}
    opened = {m["content"]["comm_id"] for m in run.of_type("comm_open")}
    streaming = {"HTMLModel", "VBoxModel", "AccordionModel"}
    assert {k for k, s in state.items() if s["_model_name"] in streaming} <= closed <= opened


def test_interrupt_leaves_static_partial_thinking(probe):
    run = probe.execute("stream_run(make_view(30), 1_000_000, rate=2_000)", interrupt_after=2.0)
    assert run.reply["status"] == "ok"  # the run caught the interrupt, as the loop does
    outputs = [o for o in run.outputs() if o["output_type"] == "display_data"]
    assert [block(o) for o in outputs] == ["header", "thinking", "outcome"]
    assert all(WIDGET_MIME not in o["data"] for o in outputs)
    panel = outputs[1]["data"]
    assert "thinking stopped after" in panel["text/html"] and "<details" in panel["text/html"]
    shown = panel_text(panel)
    assert len(shown) > 1000 and expected_thinking(10_000).startswith(shown[:1000])
    assert "interrupted" in outputs[0]["data"]["text/plain"]


def test_call_outputs_follow_the_call_block(probe):
    run = probe.execute("tool_run(make_view(30))")
    kinds = []
    for o in run.outputs():
        kinds.append(block(o) if o["output_type"] == "display_data" else o["output_type"])
    assert kinds == ["header", "thinking", "call", "stream", "thinking", "content"]


def test_saved_notebook_keeps_static_rendering(tmp_path: Path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from k2nb.ui import make_view\nfrom k2nb.ui.synthetic import *"),
        nbformat.v4.new_code_cell("stream_run(make_view(30), 20_000, rate=10_000)"),
        nbformat.v4.new_code_cell("tool_run(make_view(30))"),
    ]
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    # what JupyterLab would save too: no widget views left in the outputs
    for cell in saved.cells[1:]:
        for out in cell.outputs:
            assert WIDGET_MIME not in out.get("data", {})
    panel = saved.cells[1].outputs[1]
    assert "<details" in panel.data["text/html"]
    assert panel_text(panel.data) == expected_thinking(20_000)
    assert saved.cells[2].outputs[3]["text"] == "42\n"
    # nbconvert renders it: the collapsed thinking survives as HTML
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(saved)
    assert "<summary>Step 1 · thought for" in body
