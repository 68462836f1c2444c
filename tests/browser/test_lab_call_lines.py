"""In JupyterLab with the extension, a %%k2 cell whose calls became real cells shows each call as
one line ("✓ code_interpreter · ok · 0.1 s · → [3] · …"), and a click on a line selects its cell.

The extension says hello when it connects to the kernel; the kernel then renders this client's
runs compactly. The model's call ids recur from run to run, so a second run's line must still
lead to the second run's cell.
"""

from __future__ import annotations

import re

import pytest

from k2nb.testing import Call, Reply

from .conftest import ARTIFACTS
from .lab import (
    PANEL,
    cell_locator,
    cells,
    open_notebook,
    output_text,
    run_cell,
    save,
    wait_for_run,
)

pytestmark = pytest.mark.slow

CODE_A = "# the first look\nx = 6 * 7\nprint('x is', x)"
CODE_B = "print('x + 1 is', x + 1)"


def in_view(page, index: int) -> bool:
    box = cell_locator(page, index).bounding_box()
    return box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 1000


def call_lines(page, index: int):
    return cell_locator(page, index).locator(".jp-OutputArea [data-k2nb-call-id]")


def test_call_lines_point_to_their_cells_and_select_them(lab, scripted, page):
    path = lab.write_notebook("call_lines.ipynb", ["%%k2\nSet x and show x + 1."])
    open_notebook(page, lab.notebook_url("call_lines.ipynb"))
    scripted.add(
        Reply(reasoning="Set x.", tool_calls=[Call("code_interpreter", {"code": CODE_A},
                                                   id="call-a")]),
        Reply(reasoning="Add one.", tool_calls=[Call("code_interpreter", {"code": CODE_B},
                                                     id="call-b")]),
        Reply(content="x is 42 and x + 1 is 43."),
    )
    run_cell(page, 0)
    wait_for_run(page, 0)
    _k2, first, second = cells(page)
    assert output_text(first) == "x is 42\n" and output_text(second) == "x + 1 is 43\n"

    # One line per call in the %%k2 cell, rendered (trusted HTML keeps the attribute), each
    # naming its cell's number and carrying its cell's call id.
    lines = call_lines(page, 0)
    assert lines.count() == 2
    for line, cell in zip((lines.nth(0), lines.nth(1)), (first, second)):
        assert line.get_attribute("data-k2nb-call-id") == cell["metadata"]["k2nb"]["call_id"]
        assert re.fullmatch(rf"✓ code_interpreter · ok · [\d.]+ s · → \[{cell['execution_count']}\]"
                            r" · .+", line.inner_text().strip())
    assert "# the first look" in lines.nth(0).inner_text()
    # The calls' code and outputs are not repeated in the %%k2 cell: no highlighted code block
    # and no printed output there; the code is folded under each line for a saved reader.
    k2_area = cell_locator(page, 0).locator(".jp-OutputArea")
    assert k2_area.locator(".highlight").count() == 0
    assert "x is 42" not in k2_area.inner_text().replace("x is 42 and", "")
    page.screenshot(path=str(ARTIFACTS / "call-lines.png"), full_page=True)

    lines.nth(1).click()
    page.wait_for_function(f"() => {PANEL}.content.activeCellIndex === 2")
    assert in_view(page, 2)
    lines.nth(0).click()
    page.wait_for_function(f"() => {PANEL}.content.activeCellIndex === 1")
    assert in_view(page, 1)
    # The notebook stays in command mode with the selected cell focused: the keyboard acts on
    # that cell (Enter edits it), not on an editor the click put the cursor in.
    page.wait_for_timeout(300)
    assert page.evaluate(f"() => {PANEL}.content.mode") == "command"
    assert page.evaluate(f"() => {PANEL}.content.activeCell.node.contains(document.activeElement)")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => {PANEL}.content.mode === 'edit'")
    assert page.evaluate(f"() => {PANEL}.content.activeCellIndex") == 1
    page.keyboard.press("Escape")
    page.screenshot(path=str(ARTIFACTS / "call-line-selected-its-cell.png"))

    saved = save(page, path, expect_cells=3)
    html = "".join("".join(o.get("data", {}).get("text/html", ""))
                   for o in saved["cells"][0]["outputs"])
    assert "<details" in html and "x = 6 * 7" in html  # still readable on its own
    assert page.k2nb_errors == []


def test_a_later_runs_line_selects_that_runs_cell_not_an_earlier_one(lab, scripted, page):
    lab.write_notebook("two_turns.ipynb", ["%%k2\nFirst turn.", "%%k2\nSecond turn."])
    open_notebook(page, lab.notebook_url("two_turns.ipynb"))
    for turn in ("first", "second"):  # the same model id in both runs
        scripted.add(
            Reply(tool_calls=[Call("code_interpreter", {"code": f"print('{turn} turn')"},
                                   id="functions.code_interpreter:0")]),
            Reply(content="Done."),
        )
    run_cell(page, 0)
    wait_for_run(page, 0)
    run_cell(page, 2)
    wait_for_run(page, 2)
    assert [c["source"] for c in cells(page)] == [
        "%%k2\nFirst turn.", "print('first turn')", "%%k2\nSecond turn.", "print('second turn')"]

    call_lines(page, 2).nth(0).click()
    page.wait_for_function(f"() => {PANEL}.content.activeCellIndex === 3")
    call_lines(page, 0).nth(0).click()
    page.wait_for_function(f"() => {PANEL}.content.activeCellIndex === 1")
    assert page.k2nb_errors == []


def test_loading_k2nb_in_a_cell_gives_call_lines_from_the_first_run(lab, scripted, page):
    """On the plain Python kernel, with ``%load_ext k2nb`` in the first cell: the extension's
    connect-time hello went to a kernel without k2nb, so the kernel asks for it when it loads;
    the very first run already shows its call as a line leading to its cell."""
    lab.write_notebook("load_ext.ipynb", ["%load_ext k2nb", "%%k2\nSet x."], kernel="python3")
    open_notebook(page, lab.notebook_url("load_ext.ipynb"))
    scripted.add(
        Reply(reasoning="Set x.", tool_calls=[Call("code_interpreter", {"code": CODE_A})]),
        Reply(content="x is 42."),
    )
    run_cell(page, 0)
    wait_for_run(page, 0)
    run_cell(page, 1)
    wait_for_run(page, 1)
    _load, _k2, first = cells(page)
    assert output_text(first) == "x is 42\n"
    lines = call_lines(page, 1)
    assert lines.count() == 1
    assert lines.nth(0).get_attribute("data-k2nb-call-id") == first["metadata"]["k2nb"]["call_id"]
    assert cell_locator(page, 1).locator(".jp-OutputArea .highlight").count() == 0
    lines.nth(0).click()
    page.wait_for_function(f"() => {PANEL}.content.activeCellIndex === 2")
    assert page.k2nb_errors == []
