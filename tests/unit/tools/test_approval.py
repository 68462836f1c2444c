"""--approve: the user answers through the kernel's stdin channel; risky code is flagged."""

from __future__ import annotations

import queue
import sys
from pathlib import Path
from typing import Any

import pytest

from k2nb.testing import Call, Reply
from k2nb.testing.notebook import cell_text, iopub_until_idle, run_notebook
from k2nb.tools.safety.risk import assess


@pytest.mark.parametrize("code, reason", [
    ("import os\nos.remove('data.csv')", "deletes files (remove)"),
    ("import shutil\nshutil.rmtree('out')", "deletes files (rmtree)"),
    ("open('/etc/passwd2', 'w').write('x')", "writes outside the working directory (/etc/passwd2)"),
    ("from pathlib import Path\nPath('../x.txt').write_text('x')", "writes outside the working directory (../x.txt)"),
    ("!ls -la", "runs shell commands"),
    ("import subprocess\nsubprocess.run(['ls'])", "runs other programs (subprocess)"),
    ("%pip install requests", "installs or removes packages"),
    ("import requests\nrequests.get('http://x')", "uses the network (requests)"),
    ("import os\nprint(os.environ['HOME'])", "reads environment variables or secrets"),
    ("%reset -f", "%reset erases variables"),
])
def test_risky_code_is_flagged(code, reason, tmp_path):
    assert reason in assess(code, str(tmp_path))


@pytest.mark.parametrize("code", [
    "import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf.describe()",
    "open('notes.txt', 'w').write('ok')",
    "df.to_csv('out/result.csv')",
    "with open('data.csv') as f:\n    print(f.read())",
])
def test_ordinary_code_is_not_flagged(code, tmp_path):
    assert assess(code, str(tmp_path)) == []


@pytest.mark.slow
def test_ask_through_stdin_channel(k2env, k2_kernel):
    k2env.add(
        Reply(reasoning="r", tool_calls=[Call("code_interpreter", {"code": "a = 1"}),
                                         Call("code_interpreter", {"code": "b = 2"}),
                                         Call("code_interpreter", {"code": "c = 3"}),
                                         Call("code_interpreter", {"code": "d = 4"}),
                                         Call("code_interpreter", {"code": "e = 5"})]),
        Reply(reasoning="r", content="done"),
    )
    _, kc = k2_kernel
    prompts, _, status = run_answering(kc, "%%k2 --approve ask\ndo it",
                                       ["y", "n", "not now", "e", "b = 20", ".", "a"])
    assert status == "ok"  # c was edited; "all" at d covers e
    assert sum(p.startswith("[k2nb:functions.code_interpreter:") for p in prompts) == 4
    out = []
    kc.execute_interactive("print([globals().get(n) for n in 'abcde'])", timeout=30,
                           output_hook=lambda m: out.append(m["content"].get("text", "")))
    assert "".join(out).strip() == "[1, 20, None, 4, 5]"  # b skipped, then set by the edited c
    tools = [m["content"] for m in k2env.requests[1]["messages"] if m["role"] == "tool"]
    assert tools[1] == "The user chose not to run this code. Their reason: not now"
    assert tools[2].startswith("The user edited your code before it ran; it ran as:\nb = 20")


@pytest.mark.slow
def test_ask_without_stdin_fails_before_anything_runs(k2env, tmp_path):
    k2env.add(Reply(reasoning="r", tool_calls=[Call("code_interpreter", {"code": "ran = 1"})]))
    nb = run_notebook(["%load_ext k2nb", "%%k2 --approve ask\ndo it", "print('ran' in dir())"],
                      tmp_path, allow_errors=True)
    assert "cannot answer input prompts" in cell_text(nb.cells[1])
    assert "False" in cell_text(nb.cells[2])
    assert k2env.requests == []


def test_answers_typed_or_sent_by_the_extension_as_json():
    from k2nb.tools.safety.approval import Approval, ApprovalRequest, Decision, parse_answer

    code = "print(1)"
    assert parse_answer("", code) == Decision("run", code)
    assert parse_answer(" Y ", code) == Decision("run", code)
    assert parse_answer("n", code) == Decision("skip", code)
    assert parse_answer("all", code) == Decision("all", code)
    assert parse_answer('{"action": "edit", "code": "print(2)"}', code) == Decision(
        "edit", "print(2)", complete=True)
    assert parse_answer('{"action": "skip", "reason": "no"}', code) == Decision(
        "skip", code, "no", complete=True)
    assert parse_answer('{"action": "rm -rf"}', code) is None
    assert parse_answer("maybe", code) is None

    prompts, answers = [], iter(["maybe", "e", "s = 'a\\nb'", "print(s)", "."])
    approval = Approval("ask", ask=lambda p: prompts.append(p) or next(answers),
                        show=lambda text: None)
    decision = approval.review(ApprovalRequest("call-9", 2, "code_interpreter",
                                               '{"code": "print(1)"}', code))
    assert decision.action == "edit" and decision.code == "s = 'a\\nb'\nprint(s)"
    assert prompts[0].startswith("[k2nb:call-9] Run this code?")
    assert prompts[1].startswith("[k2nb:call-9] Please answer")


# --- every tool that acts is asked about -------------------------------------------------------

MCP_SERVER = Path(__file__).with_name("mcp_fixture_server.py")


def run_answering(kc: Any, code: str, answers: list[str]) -> tuple[list[str], str, str]:
    """Execute ``code`` in the kernel, answering its input prompts in order; returns the
    prompts, everything the cell printed, and the reply's status."""
    pending = iter(answers)
    prompts: list[str] = []
    msg_id = kc.execute(code, allow_stdin=True)
    while True:
        try:
            msg = kc.get_stdin_msg(timeout=0.2)
            prompts.append(msg["content"]["prompt"])
            kc.input(next(pending))
        except queue.Empty:
            reply = None
            try:
                reply = kc.get_shell_msg(timeout=0.05)
            except queue.Empty:
                pass
            if reply and reply["parent_header"]["msg_id"] == msg_id:
                break
    printed = [m["content"]["text"] for m in iopub_until_idle(kc, msg_id, timeout=10)
               if m["msg_type"] == "stream"]
    return prompts, "".join(printed), reply["content"]["status"]


def kernel_value(kc: Any, expression: str) -> str:
    out: list[str] = []
    kc.execute_interactive(f"print({expression})", timeout=30,
                           output_hook=lambda m: out.append(m["content"].get("text", "")))
    return "".join(out).strip()


@pytest.mark.slow
def test_ask_covers_mcp_tools_that_act_and_not_read_only_ones(k2env, k2_kernel, tmp_path):
    """A real MCP server that writes files: refused → no file; approved → the file; its
    read-only tool runs unasked. A `@k2nb.tool(side_effects=True)` function is asked too."""
    k2env.add(
        Reply(reasoning="r", tool_calls=[
            Call("fx__write_note", {"path": "refused.txt", "text": "no"}),
            Call("fx__write_note", {"path": "approved.txt", "text": "yes"}),
            Call("fx__read_note", {"path": "approved.txt"}),
            Call("send_report", {"to": "boss"}),
        ]),
        Reply(reasoning="r", content="done"),
    )
    _manager, kc = k2_kernel
    kc.execute_interactive(f"%k2 mcp add fx -- {sys.executable} {MCP_SERVER}", timeout=60)
    kc.execute_interactive("import k2nb\nsent = []\n@k2nb.tool(side_effects=True)\n"
                           "def send_report(to: str) -> str:\n    \"\"\"Send the report.\"\"\"\n"
                           "    sent.append(to)\n    return 'sent'", timeout=30)
    prompts, printed, status = run_answering(
        kc, "%%k2 --approve ask --tools mcp\nwrite the notes", ["n", "not that one", "y", "n", ""])
    assert status == "ok"
    assert [p.split("]")[0] for p in prompts] == [
        "[k2nb:functions.fx__write_note:0", "Reason for the agent (optional): ",
        "[k2nb:functions.fx__write_note:1", "[k2nb:functions.send_report:3",
        "Reason for the agent (optional): "]
    assert prompts[0].endswith("Call fx__write_note? [y]es / [n]o, skip / [e]dit / [a]ll from "
                               "now on: ")
    assert not (tmp_path / "refused.txt").exists()
    assert (tmp_path / "approved.txt").read_text() == "yes"
    assert kernel_value(kc, "sent") == "[]"
    tools = [m["content"] for m in k2env.requests[1]["messages"] if m["role"] == "tool"]
    assert tools == [("The user chose not to run this `fx__write_note` call. Their reason: not "
                      "that one"), "wrote 3 characters to approved.txt", "yes",
                     "The user chose not to run this `send_report` call."]
    assert "The agent wants to call fx__write_note (flagged: may delete or overwrite data " \
           "(server `fx` does not mark it read-only or non-destructive)" in printed


@pytest.mark.slow
def test_risky_asks_for_destructive_mcp_tools_and_gated_fetches(k2env, k2_kernel, tmp_path):
    """`risky`: the unannotated writing tool is asked about (with the reason), the additive
    closed-world one and the read-only one run unasked; with approve_fetch, fetch_url is asked
    about, naming the host."""
    k2env.add(
        Reply(reasoning="r", tool_calls=[
            Call("fx__write_note", {"path": "a.txt", "text": "first"}),
            Call("fx__append_note", {"path": "b.txt", "text": "second"}),
            Call("fx__read_note", {"path": "b.txt"}),
            Call("fetch_url", {"url": "http://example.invalid/page"}),
        ]),
        Reply(reasoning="r", content="done"),
    )
    _manager, kc = k2_kernel
    kc.execute_interactive(f"%k2 mcp add fx -- {sys.executable} {MCP_SERVER}\n"
                           "%config K2Magics.approve_fetch = True", timeout=60)
    prompts, printed, status = run_answering(
        kc, "%%k2 --approve risky --tools mcp,web\nwrite the notes", ["y", "n", "offline"])
    assert status == "ok"
    assert [p.split("]")[0] for p in prompts] == [
        "[k2nb:functions.fx__write_note:0", "[k2nb:functions.fetch_url:3",
        "Reason for the agent (optional): "]
    assert (tmp_path / "a.txt").read_text() == "first"
    assert (tmp_path / "b.txt").read_text() == "second\n"
    tools = [m["content"] for m in k2env.requests[1]["messages"] if m["role"] == "tool"]
    assert tools[1:] == ["appended to b.txt", "second\n",
                         "The user chose not to run this `fetch_url` call. Their reason: offline"]
    assert "fetch_url (flagged: reads from the network (example.invalid)" in printed


def mcp_tool(**hints: Any) -> Any:
    """A k2nb McpTool for an MCP tool with these annotations (none: no annotations at all)."""
    from mcp_types import Tool, ToolAnnotations

    from k2nb.tools.mcp import McpServer, McpServerSpec, McpTool
    from k2nb.tools.mcp.loop import BackgroundLoop
    from k2nb.tools.observation import OutputStore

    server = McpServer(McpServerSpec("notes", ["unused"]), BackgroundLoop())  # never started
    tool = Tool(name="t", input_schema={"type": "object"},
                annotations=ToolAnnotations(**hints) if hints else None)
    return McpTool(server, tool, OutputStore(), timeout=10)


@pytest.mark.parametrize("hints, acts, reasons", [
    ({"read_only_hint": True}, False, []),
    ({}, True, [("may delete or overwrite data (server `notes` does not mark it read-only or "
                 "non-destructive)")]),
    ({"destructive_hint": True, "open_world_hint": False}, True,
     ["may delete or overwrite data (server `notes` marks it destructive)"]),
    ({"destructive_hint": False}, True,
     ["may reach systems outside the kernel (server `notes` does not mark it closed-world)"]),
    ({"destructive_hint": False, "open_world_hint": True}, True,
     ["reaches systems outside the kernel (server `notes` marks it open-world)"]),
    ({"destructive_hint": False, "open_world_hint": False}, True, []),
])
def test_mcp_tools_act_unless_read_only_and_are_risky_unless_marked_harmless(hints, acts,
                                                                             reasons):
    tool = mcp_tool(**hints)
    assert tool.side_effects is acts
    assert tool.risks({}) == reasons


def test_which_calls_each_mode_asks_about(tmp_path):
    """`ask`: every call of a tool that acts; `risky`: those the tool gives reasons for."""
    from k2nb.tools.interpreter.code_interpreter import CodeInterpreter
    from k2nb.tools.observation import OutputStore
    from k2nb.tools.registry import FunctionTool
    from k2nb.tools.safety.approval import Approval, ApprovalRequest
    from k2nb.tools.web import FetchPolicy, FetchUrl

    def send(to: str) -> str:
        """Send."""
        return to

    def lookup(key: str) -> str:
        """Look up."""
        return key

    code = CodeInterpreter(shell=None, store=OutputStore())
    gated, ungated = (FetchUrl(OutputStore(), FetchPolicy(), gated=g) for g in (True, False))
    sender = FunctionTool.from_function(send, side_effects=True)
    reader = FunctionTool.from_function(lookup)
    assert [t.side_effects for t in (code, gated, ungated, sender, reader)] == [
        True, True, False, True, False]
    assert gated.risks({"url": "https://example.org/a?b=1"}) == [
        "reads from the network (example.org); asked because approve_fetch is on"]
    assert sender.risks({"to": "x"}) == [
        "a `@k2nb.tool(side_effects=True)` function: it may change files, data or other services"]
    assert code.risks({"code": "import shutil\nshutil.rmtree('out')"}) == [
        "deletes files (rmtree)"]
    assert code.risks({"code": "x = 1"}) == []

    def request(tool: Any, values: dict, code: str | None = None) -> ApprovalRequest:
        return ApprovalRequest("c", 1, tool.name, "{}", code, tool.risks(values))

    ask, risky = Approval("ask"), Approval("risky")
    assert ask.needs_asking(request(code, {"code": "x = 1"}, "x = 1"))
    assert not risky.needs_asking(request(code, {"code": "x = 1"}, "x = 1"))
    assert risky.needs_asking(request(code, {"code": "!ls"}, "!ls"))
    assert risky.needs_asking(request(sender, {"to": "x"}))
    assert risky.needs_asking(request(gated, {"url": "https://example.org"}))
    # Empty code runs nothing (the tool answers with an error): nothing to ask about.
    assert not ask.needs_asking(request(code, {"code": " \n"}, " \n"))
