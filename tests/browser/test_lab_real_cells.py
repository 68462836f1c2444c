"""In a real JupyterLab, each code_interpreter call of a %%k2 run becomes a real cell below it."""

from __future__ import annotations

import re

import pytest

from k2nb.testing import Call, Reply

from .conftest import ARTIFACTS, MODEL
from .lab import (
    cell_locator,
    cells,
    kernel_status,
    open_another,
    open_notebook,
    output_text,
    run_cell,
    save,
    wait_for_run,
)

pytestmark = pytest.mark.slow

CODE_A = "x = 6 * 7\nprint('x is', x)"
CODE_B = (
    "from IPython.display import HTML, display\n"
    "display(HTML('<b class=\"k2-probe\">bold from the agent</b>'))\n"
    "x + 1"
)


def two_call_script() -> list[Reply]:
    return [
        Reply(reasoning="First I set x and print it.",
              tool_calls=[Call("code_interpreter", {"code": CODE_A}, id="call-a")]),
        Reply(reasoning="Now a display and x + 1.",
              tool_calls=[Call("code_interpreter", {"code": CODE_B}, id="call-b")]),
        Reply(reasoning="Both worked.", content="x is 42 and x + 1 is 43."),
    ]


def test_two_tool_calls_become_two_saved_cells(lab, scripted, page):
    path = lab.write_notebook("two_calls.ipynb", ["%%k2\nSet x to 42 and show x + 1."])
    open_notebook(page, lab.notebook_url("two_calls.ipynb"))
    scripted.add(*two_call_script())

    run_cell(page, 0)
    wait_for_run(page, 0)

    model_cells = cells(page)
    assert [c["cell_type"] for c in model_cells] == ["code"] * 3
    k2, first, second = model_cells
    assert first["source"] == CODE_A
    assert second["source"] == CODE_B
    # Live outputs went into the new cells, not into the %%k2 cell.
    assert output_text(first) == "x is 42\n"
    assert "bold from the agent" in output_text(second)
    assert "43" in output_text(second)
    # The %%k2 cell keeps only the run's own view (displays marked metadata.k2nb), if any.
    assert [o for o in k2["outputs"] if "k2nb" not in o.get("metadata", {})] == []
    # Execution counts are the ones IPython gave the calls (In[n] holds each call's code).
    counts = (first["execution_count"], second["execution_count"])
    assert isinstance(counts[0], int) and counts[1] == counts[0] + 1
    execute_result = [o for o in second["outputs"] if o["output_type"] == "execute_result"]
    assert execute_result and execute_result[0]["execution_count"] == counts[1]
    # The %%k2 cell keeps its own number: In[n] is the %%k2 cell, In[n+1], In[n+2] the calls.
    assert k2["execution_count"] == counts[0] - 1
    assert cell_locator(page, 0).locator(".jp-InputPrompt").inner_text().strip() == (
        f"[{counts[0] - 1}]:")

    # What the user sees: badges, prompts, the HTML rendered in the second new cell.
    for index, count in ((1, counts[0]), (2, counts[1])):
        cell = cell_locator(page, index)
        assert cell.locator(".k2nb-badge").inner_text() == "k2"
        assert cell.locator(".jp-InputPrompt").inner_text().strip() == f"[{count}]:"
    assert cell_locator(page, 0).locator(".k2nb-badge").count() == 0
    assert cell_locator(page, 2).locator(".jp-OutputArea-output b.k2-probe").inner_text() == (
        "bold from the agent")
    assert "x is 42" in cell_locator(page, 1).locator(".jp-OutputArea").inner_text()

    saved = save(page, path, expect_cells=3)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "two-calls-real-cells.png"), full_page=True)

    k2, first, second = saved["cells"]
    assert k2["source"].startswith("%%k2")
    run_ids = set()
    for cell, code, step, call_id in ((first, CODE_A, 1, "call-a"), (second, CODE_B, 2, "call-b")):
        assert cell["cell_type"] == "code"
        assert cell["source"] == code
        meta = cell["metadata"]["k2nb"]
        assert meta["step"] == step
        assert meta["call_id"] == f"{call_id}@{meta['run_id']}/{step}"  # unique in the notebook
        assert meta["model"] == MODEL
        assert meta["source_cell"] == k2["id"]
        run_ids.add(meta["run_id"])
    assert len(run_ids) == 1 and re.fullmatch(r"[\w-]+", run_ids.pop())
    assert output_text(first) == "x is 42\n"
    assert "bold from the agent" in output_text(second)
    assert (first["execution_count"], second["execution_count"]) == counts
    assert page.k2nb_errors == []


def test_rerunning_replaces_the_previous_runs_cells_after_asking(lab, scripted, page):
    lab.write_notebook("rerun.ipynb", ["%%k2\nPrint a greeting.", "print('my own cell')"])
    open_notebook(page, lab.notebook_url("rerun.ipynb"))
    scripted.add(
        Reply(tool_calls=[Call("code_interpreter", {"code": "print('first run')"}, id="r1")]),
        Reply(content="Done."),
    )
    run_cell(page, 0)
    wait_for_run(page, 0)
    assert [c["source"] for c in cells(page)] == [
        "%%k2\nPrint a greeting.", "print('first run')", "print('my own cell')"]

    scripted.add(
        Reply(tool_calls=[Call("code_interpreter", {"code": "print('second run')"}, id="r2")]),
        Reply(content="Done again."),
    )
    run_cell(page, 0)
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=30_000)
    assert "Replace the previous k2 run?" in dialog.inner_text()
    assert "1 cell" in dialog.inner_text()
    page.screenshot(path=str(ARTIFACTS / "rerun-replace-dialog.png"))
    dialog.get_by_role("button", name="Replace").click()
    wait_for_run(page, 0)
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.model.cells.length === 3")

    after = cells(page)
    assert [c["source"] for c in after] == [
        "%%k2\nPrint a greeting.", "print('second run')", "print('my own cell')"]
    assert output_text(after[1]) == "second run\n"
    meta = after[1]["metadata"]["k2nb"]
    assert meta["call_id"] == f"r2@{meta['run_id']}/1"
    assert page.k2nb_errors == []


def test_the_stop_button_interrupts_a_long_tool_call(lab, scripted, page):
    lab.write_notebook("stop.ipynb", ["%%k2\nWait a long time."])
    open_notebook(page, lab.notebook_url("stop.ipynb"))
    long_code = "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\nprint('woke up')"
    scripted.add(
        Reply(reasoning="Sleep.", tool_calls=[Call("code_interpreter", {"code": long_code},
                                                   id="long")]),
        Reply(content="This reply must never be requested."),
    )
    requests_before = len(scripted.requests)
    run_cell(page, 0)
    inserted = cell_locator(page, 1)
    inserted.locator(".jp-OutputArea", has_text="sleeping").wait_for(timeout=60_000)
    assert inserted.locator(".jp-InputPrompt").inner_text().strip() == "[*]:"

    page.locator(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar "
        "[data-command='notebook:interrupt-kernel']").click()
    # The %%k2 cell's execution ends (the kernel's "idle" after the interrupt request itself
    # comes first, so wait on the cell).
    wait_for_run(page, 0, timeout_ms=20_000)
    page.screenshot(path=str(ARTIFACTS / "stop-interrupts-run.png"))

    after = cells(page)
    assert len(after) == 2
    assert "KeyboardInterrupt" in output_text(after[1])
    assert "woke up" not in output_text(after[1])
    assert inserted.locator(".jp-InputPrompt").inner_text().strip() != "[*]:"
    # The loop stopped: it never asked the model for the next step.
    assert len(scripted.requests) == requests_before + 1
    scripted.script.clear()
    assert kernel_status(page) == "idle"


def test_two_notebooks_and_a_kernel_restart(lab, scripted, page):
    lab.write_notebook("first.ipynb", ["%%k2\nIn the first notebook."])
    lab.write_notebook("second.ipynb", ["%%k2\nIn the second notebook."])
    open_notebook(page, lab.notebook_url("first.ipynb"))
    open_another(page, "second.ipynb")

    scripted.add(
        Reply(tool_calls=[Call("code_interpreter", {"code": "print('in second')"}, id="s1")]),
        Reply(content="Done."),
    )
    run_cell(page, 0)
    wait_for_run(page, 0)
    assert [c["source"] for c in cells(page)] == [
        "%%k2\nIn the second notebook.", "print('in second')"]

    # Restart the second notebook's kernel, then run again: the extension still hears it.
    page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.restartKernel()")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'idle'", timeout=60_000)
    scripted.add(
        Reply(tool_calls=[Call("code_interpreter", {"code": "print('after restart')"},
                               id="s2")]),
        Reply(content="Done."),
    )
    run_cell(page, 0)
    page.locator(".jp-Dialog").wait_for(timeout=30_000)
    page.locator(".jp-Dialog").get_by_role("button", name="Replace").click()
    wait_for_run(page, 0)
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.model.cells.length === 2")
    second = cells(page)
    assert second[1]["source"] == "print('after restart')"
    assert output_text(second[1]) == "after restart\n"
    page.screenshot(path=str(ARTIFACTS / "second-notebook-after-restart.png"))

    # Back to the first notebook: its own run lands in it, and nothing leaked into it before.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', "
                  "{path: 'first.ipynb'})")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.context.path === 'first.ipynb'")
    assert len(cells(page)) == 1
    scripted.add(
        Reply(tool_calls=[Call("code_interpreter", {"code": "print('in first')"}, id="f1")]),
        Reply(content="Done."),
    )
    run_cell(page, 0)
    wait_for_run(page, 0)
    assert [c["source"] for c in cells(page)] == [
        "%%k2\nIn the first notebook.", "print('in first')"]
    assert output_text(cells(page)[1]) == "in first\n"
    assert page.k2nb_errors == []
