"""The live view under the real %%k2 loop: nbclient, a real kernel, the strict scripted server.

The view is attached the way k2nb attaches views (``%load_ext k2nb`` fills ``Session.views``);
the saved notebook must hold the static rendering: header, folded thinking, the call before its output,
and the answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from k2nb.testing import Call, Reply
from k2nb.testing.notebook import run_notebook

pytestmark = pytest.mark.slow

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIRE = "%load_ext k2nb"
REASONING = "".join(f"Line {i}: weigh option {i}.\n" for i in range(1, 41))


def test_k2_cell_keeps_a_static_rendering(k2env, tmp_path: Path):
    k2env.add(
        Reply(reasoning=REASONING, tool_calls=[Call("code_interpreter", {"code": "print(6 * 7)"})],
              delay=0.05),
        Reply(reasoning="It printed 42.", content="6 × 7 = **42**."),
    )
    nb = run_notebook([WIRE, "%%k2\nWhat is 6 × 7? Use Python."], tmp_path)
    outputs = nb.cells[1].outputs
    assert all(WIDGET_MIME not in out.get("data", {}) for out in outputs)
    kinds = [
        out.metadata["k2nb"]["block"] if "k2nb" in out.get("metadata", {}) else out.output_type
        for out in outputs
    ]
    # The last output carries the run's record (for replay from the saved notebook) and no text.
    assert kinds == ["header", "thinking", "call", "stream", "thinking", "content", "record"]
    assert outputs[-1].data["text/plain"] == ""
    assert outputs[-1].metadata["k2nb"]["record"]["prompt"] == "What is 6 × 7? Use Python."
    header, thinking, call, printed, _, answer, _ = outputs
    assert "answered" in header.data["text/plain"] and "2 steps" in header.data["text/plain"]
    assert "<details" in thinking.data["text/html"]
    assert thinking.data["text/plain"].split("\n", 1)[1] == "\n".join(
        "  │ " + line for line in REASONING.split("\n")
    )
    assert "✓ code_interpreter · ok" in call.data["text/plain"]
    assert printed.text == "42\n"
    assert answer.data["text/markdown"] == "6 × 7 = **42**."
