"""Approval prompts (stdin, so they work mid-run) become a dialog: Run / Skip / Edit / Run all.

The kernel side is :class:`k2nb.tools.safety.approval.Approval`; here a cell announces the call and
asks the way the agent loop does before a code_interpreter call, and prints the decision.
"""

from __future__ import annotations

import json

import pytest

from .conftest import ARTIFACTS
from .lab import cell_locator, cells, open_notebook, output_text, run_cell, wait_for_run

pytestmark = pytest.mark.slow

ASKING_CELL = """\
import json
from k2nb.core import events as ev
from k2nb.core.messages import ToolCall
from k2nb.tools.safety.approval import Approval, ApprovalRequest
from k2nb.ui.frontend import FrontendBridge
bridge = FrontendBridge("kimi-k2-thinking")
bridge(ev.RunStarted("run-approval", "p", "kimi-k2-thinking", "api", None))
code = "total = 40 + 2\\nprint(total)"
call = ToolCall("call-1", "code_interpreter", json.dumps({"code": code}))
bridge(ev.ApprovalRequested("run-approval", 1, call, code))
approval = Approval("ask", show=lambda text: None)
decision = approval.ask(ApprovalRequest("call-1", 1, call.name, call.arguments, code))
bridge.close()
print(decision.action, repr(decision.code))
"""


def test_run_edit_and_skip_answer_the_kernels_approval_prompt(lab, page):
    lab.write_notebook("approval.ipynb", [ASKING_CELL, ASKING_CELL, ASKING_CELL])
    open_notebook(page, lab.notebook_url("approval.ipynb"))
    dialog = page.locator(".jp-Dialog")

    # Run: the code as the agent wrote it.
    run_cell(page, 0)
    dialog.wait_for(timeout=30_000)
    assert "Run the agent’s code?" in dialog.inner_text()
    assert dialog.locator("textarea").input_value() == "total = 40 + 2\nprint(total)"
    page.screenshot(path=str(ARTIFACTS / "approval-dialog.png"))
    dialog.get_by_role("button", name="Run", exact=True).click()
    wait_for_run(page, 0)
    assert output_text(cells(page)[0]) == "run 'total = 40 + 2\\nprint(total)'\n"
    # The dialog answered the prompt: no text box was left in the output.
    assert cell_locator(page, 0).locator(".jp-Stdin").count() == 0

    # Edit: the user changes the code first.
    run_cell(page, 1)
    dialog.wait_for(timeout=30_000)
    dialog.get_by_role("button", name="Edit").click()
    editor = page.locator(".jp-Dialog textarea")
    editor.wait_for()
    assert "Edit the agent’s code" in page.locator(".jp-Dialog").inner_text()
    editor.fill("total = 6 * 7\nprint('edited', total)")
    page.locator(".jp-Dialog").get_by_role("button", name="Run edited").click()
    wait_for_run(page, 1)
    assert output_text(cells(page)[1]) == (
        "edit \"total = 6 * 7\\nprint('edited', total)\"\n")

    # Skip.
    run_cell(page, 2)
    dialog.wait_for(timeout=30_000)
    dialog.get_by_role("button", name="Skip").click()
    wait_for_run(page, 2)
    assert output_text(cells(page)[2]).startswith("skip ")
    assert page.k2nb_errors == []


def test_interrupting_while_the_dialog_is_open_closes_it(lab, page):
    lab.write_notebook("approval_interrupt.ipynb", [ASKING_CELL])
    open_notebook(page, lab.notebook_url("approval_interrupt.ipynb"))
    run_cell(page, 0)
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=30_000)
    page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.interrupt()")
    dialog.wait_for(state="detached", timeout=20_000)
    wait_for_run(page, 0)
    assert "KeyboardInterrupt" in output_text(cells(page)[0])


def test_approve_ask_in_a_k2_run_edit_then_skip(lab, scripted, page):
    """``%%k2 --approve ask``: the dialog answers k2nb's own prompt; an edited call's cell
    holds the code that really ran, and a skipped call leaves no cell."""
    from k2nb.testing import Call, Reply

    lab.write_notebook("approve_ask.ipynb", ["%%k2 --approve ask\nCompute something."])
    open_notebook(page, lab.notebook_url("approve_ask.ipynb"))
    scripted.add(
        Reply(reasoning="First call.", tool_calls=[
            Call("code_interpreter", {"code": "y = 1\nprint('y is', y)"}, id="first")]),
        Reply(reasoning="Second call.", tool_calls=[
            Call("code_interpreter", {"code": "print('never runs')"}, id="second")]),
        Reply(content="Finished."),
    )
    run_cell(page, 0)
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=30_000)
    assert dialog.locator("textarea").input_value() == "y = 1\nprint('y is', y)"
    dialog.get_by_role("button", name="Edit").click()
    page.locator(".jp-Dialog textarea").fill("y = 2\nprint('edited y is', y)")
    page.locator(".jp-Dialog").get_by_role("button", name="Run edited").click()

    page.wait_for_function(
        "() => document.querySelector('.jp-Dialog textarea')?.value === \"print('never runs')\"",
        timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "approve-ask-second-call.png"))
    page.locator(".jp-Dialog").get_by_role("button", name="Skip").click()
    wait_for_run(page, 0)

    after = cells(page)
    assert [c["source"] for c in after] == [
        "%%k2 --approve ask\nCompute something.", "y = 2\nprint('edited y is', y)"]
    assert output_text(after[1]) == "edited y is 2\n"
    meta = after[1]["metadata"]["k2nb"]
    assert meta["call_id"] == f"first@{meta['run_id']}/1"  # unique in the notebook
    assert cell_locator(page, 0).locator(".jp-Stdin").count() == 0
    # The model was told what happened to each call.
    tool_messages = [m for m in scripted.requests[-1]["messages"] if m["role"] == "tool"]
    assert "edited your code" in tool_messages[0]["content"]
    assert "chose not to run" in tool_messages[1]["content"]
    assert page.k2nb_errors == []


def test_approve_risky_asks_about_an_mcp_tool_that_writes_in_a_dialog(lab, scripted, page):
    """A real MCP server: the dialog names the tool, shows its arguments and why it was
    flagged; Skip leaves no file, Run writes it, and the read-only tool runs unasked."""
    import sys
    from pathlib import Path

    from k2nb.testing import Call, Reply

    server = Path(__file__).resolve().parents[1] / "unit" / "tools" / "mcp_fixture_server.py"
    lab.write_notebook("approve_mcp.ipynb", [
        f"%k2 mcp add fx -- {sys.executable} {server}",
        "%%k2 --approve risky --tools mcp\nWrite the notes."])
    open_notebook(page, lab.notebook_url("approve_mcp.ipynb"))
    scripted.add(
        Reply(reasoning="Write both.", tool_calls=[
            Call("fx__write_note", {"path": "refused.txt", "text": "no"}, id="w1"),
            Call("fx__write_note", {"path": "approved.txt", "text": "yes"}, id="w2"),
            Call("fx__read_note", {"path": "approved.txt"}, id="r1")]),
        Reply(content="Done."),
    )
    run_cell(page, 0)
    wait_for_run(page, 0)
    run_cell(page, 1)
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=30_000)
    text = dialog.inner_text()
    assert "the agent wants to call fx__write_note with these arguments" in text
    assert "may delete or overwrite data (server `fx` does not mark it read-only" in text
    assert json.loads(dialog.locator("textarea").input_value()) == {
        "path": "refused.txt", "text": "no"}
    page.screenshot(path=str(ARTIFACTS / "approval-dialog-mcp.png"))
    dialog.get_by_role("button", name="Skip").click()

    page.wait_for_function(
        "() => document.querySelector('.jp-Dialog textarea')?.value.includes('approved.txt')",
        timeout=30_000)
    page.locator(".jp-Dialog").get_by_role("button", name="Run", exact=True).click()
    wait_for_run(page, 1)

    assert not (lab.root / "refused.txt").exists()
    assert (lab.root / "approved.txt").read_text() == "yes"
    tool_messages = [m["content"] for m in scripted.requests[-1]["messages"]
                     if m["role"] == "tool"]
    assert tool_messages[0].startswith("The user chose not to run this `fx__write_note` call.")
    assert tool_messages[1:] == ["wrote 3 characters to approved.txt", "yes"]
    assert page.k2nb_errors == []
