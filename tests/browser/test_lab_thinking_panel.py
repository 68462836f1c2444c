"""The model's thinking in JupyterLab: a panel that streams open, and folds and unfolds."""

from __future__ import annotations

import pytest

from k2nb.testing import Reply

from .conftest import ARTIFACTS
from .lab import cell_locator, open_notebook, run_cell, wait_for_run

pytestmark = pytest.mark.slow

REASONING = "".join(
    f"Line {i}: the user wants a careful answer, so I weigh option {i} against the others.\n"
    for i in range(1, 16)
)


def test_thinking_panel_streams_then_expands_and_collapses(lab, scripted, page):
    lab.write_notebook("thinking.ipynb", ["%%k2\nThink it over, then answer."])
    open_notebook(page, lab.notebook_url("thinking.ipynb"))
    # ~75 chunks, 0.15 s apart: the thinking streams for about ten seconds.
    scripted.add(Reply(reasoning=REASONING, content="Option 1 it is.", delay=0.15))
    run_cell(page, 0)

    outputs = cell_locator(page, 0).locator(".jp-OutputArea")
    # While it streams: a widget panel, open, with the thinking arriving in it.
    live = outputs.locator(".jupyter-widget-Accordion").first
    live.wait_for(timeout=30_000)
    live.get_by_text("Line 1:", exact=False).first.wait_for(timeout=30_000)
    header = live.locator(".jupyter-widget-Collapse-header").first
    body = live.locator(".jupyter-widget-Collapse-contents").first
    assert body.is_visible()
    header.click()
    page.wait_for_timeout(300)
    assert not body.is_visible()
    header.click()
    body.get_by_text("Line 1:", exact=False).first.wait_for(state="visible", timeout=5_000)
    page.screenshot(path=str(ARTIFACTS / "thinking-panel-streaming.png"))

    wait_for_run(page, 0)
    # Once the step is over: a static <details> panel that survives saving, folded.
    panel = outputs.locator("details.k2nb-thinking").first
    panel.wait_for(timeout=10_000)
    last_line = panel.get_by_text("Line 15:", exact=False).first
    assert panel.get_attribute("open") is None
    assert not last_line.is_visible()
    panel.locator("summary").click()
    last_line.wait_for(state="visible", timeout=5_000)
    assert panel.get_attribute("open") is not None
    page.screenshot(path=str(ARTIFACTS / "thinking-panel-expanded.png"))
    panel.locator("summary").click()
    last_line.wait_for(state="hidden", timeout=5_000)
    assert panel.get_attribute("open") is None
    assert "Option 1 it is." in outputs.inner_text()
    assert outputs.locator(".jupyter-widget-Accordion").count() == 0  # live widgets closed
    assert page.k2nb_errors == []
