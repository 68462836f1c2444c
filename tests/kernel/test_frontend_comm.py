"""The comm protocol to the lab extension, seen from a real kernel's iopub channel.

The extension claims a tool call's outputs by position: everything between the call's
``tool_call_started`` and ``tool_call_finished`` comm messages. These tests run a real agent run
(scripted server, real code_interpreter) in a real ipykernel and check that order, and that every
message carries the running cell's execute request as parent.
"""

from __future__ import annotations

import textwrap

from k2nb.core import events as ev
from k2nb.core.messages import ToolCall, Usage
from k2nb.testing import Call, Reply, ScriptedServer
from k2nb.testing.notebook import iopub_until_idle
from k2nb.ui.frontend import FrontendBridge


def execute(client, code: str, timeout: float = 60) -> tuple[str, list[dict]]:
    """Run ``code``; return its msg id and its iopub messages up to the idle status."""
    msg_id = client.execute(code)
    messages = []
    for msg in iopub_until_idle(client, msg_id, timeout):
        if msg["msg_type"] == "execute_input":
            client.k2nb_execute_inputs[msg_id] = msg["content"]["execution_count"]
        else:
            messages.append(msg)
    reply = client.get_shell_msg(timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return msg_id, messages


def summary(messages: list[dict]) -> list[tuple]:
    """(kind, detail) per message: comm data types, stream text, other output types."""
    rows = []
    for msg in messages:
        kind, content = msg["msg_type"], msg["content"]
        if kind in ("comm_open", "comm_msg"):
            rows.append((kind, content["data"].get("type")))
        elif kind == "stream":
            rows.append((kind, content["text"]))
        else:
            rows.append((kind,))
    return rows


def test_a_real_run_brackets_each_calls_outputs_with_comm_messages(kernel, tmp_path):
    script = [
        Reply(reasoning="Set x.", tool_calls=[
            Call("code_interpreter", {"code": "x = 6 * 7\nprint('x is', x)"}, id="call-a")]),
        Reply(reasoning="Show it.", tool_calls=[
            Call("code_interpreter", {"code": "import sys\nprint('to stderr', file=sys.stderr)\n"
                                              "x + 1"}, id="call-b")]),
        Reply(content="x is 42."),
    ]
    with ScriptedServer(script) as server:
        code = textwrap.dedent(f"""
            import k2nb
            from k2nb.ui.frontend import FrontendBridge
            bridge = FrontendBridge("kimi-k2-thinking")
            print("before the run")
            run = k2nb.run("Compute x.", base_url={server.base_url!r}, api_key="test-key",
                           model="kimi-k2-thinking", quiet=True, transcript_dir={str(tmp_path)!r},
                           subscribers=[bridge])
            print("after the run", run.stop_reason)
        """)
        msg_id, messages = execute(kernel, code)
    execute_input_count = kernel.k2nb_execute_inputs[msg_id]

    # Every message belongs to the cell that ran the agent: that is how the extension finds it.
    assert {m["parent_header"]["msg_id"] for m in messages} == {msg_id}
    comms = [m for m in messages if m["msg_type"].startswith("comm_")]
    assert comms[0]["content"]["target_name"] == "k2nb"
    assert {m["content"]["comm_id"] for m in comms} == {comms[0]["content"]["comm_id"]}

    rows = summary(messages)
    rows = [r for r in rows if r != ("stream", "")]
    assert rows[0] == ("stream", "before the run\n")
    assert rows[1] == ("comm_open", "run_started")
    start_a = rows.index(("comm_msg", "tool_call_started"))
    end_a = rows.index(("comm_msg", "tool_call_finished"))
    assert rows[start_a + 1:end_a] == [("stream", "x is 42\n")]
    start_b = rows.index(("comm_msg", "tool_call_started"), end_a)
    end_b = rows.index(("comm_msg", "tool_call_finished"), start_b)
    assert rows[start_b + 1:end_b] == [("stream", "to stderr\n"), ("execute_result",)]
    assert rows[end_b + 1:] == [("comm_msg", "run_finished"), ("comm_close",),
                                ("stream", "after the run answered\n")]

    data = [m["content"]["data"] for m in comms]
    # The running cell's own number (In[n]), which the extension restores on it.
    assert data[0]["execution_count"] == execute_input_count
    started = [d for d in data if d.get("type") == "tool_call_started"]
    finished = [d for d in data if d.get("type") == "tool_call_finished"]
    # the model's id, made unique in the notebook by the run and the step (ids recur)
    run_id = data[0]["run_id"]
    assert [d["call_id"] for d in started] == [f"call-a@{run_id}/1", f"call-b@{run_id}/2"]
    assert [d["call_id"] for d in finished] == [d["call_id"] for d in started]
    assert started[0]["code"] == "x = 6 * 7\nprint('x is', x)"
    assert started[0]["step"] == 1 and started[1]["step"] == 2
    assert started[0]["model"] == "kimi-k2-thinking"
    assert all(d["run_id"] == data[0]["run_id"] for d in data[1:-1])
    assert data[-1] == {}  # the close
    assert [d["status"] for d in finished] == ["ok", "ok"]
    # The count is the one IPython gave the call's cell: the execute_result shows it too.
    result = next(m for m in messages if m["msg_type"] == "execute_result")
    assert finished[1]["execution_count"] == result["content"]["execution_count"]
    assert finished[1]["execution_count"] == finished[0]["execution_count"] + 1


def test_closing_a_run_mid_call_marks_the_call_interrupted(kernel):
    code = textwrap.dedent("""
        from k2nb.core import events as ev
        from k2nb.core.messages import ToolCall
        from k2nb.ui.frontend import FrontendBridge
        bridge = FrontendBridge("m")
        bridge(ev.RunStarted("run-1", "p", "m", "api", None))
        bridge(ev.ToolCallStarted("run-1", 1, ToolCall("c1", "code_interpreter", "{}"), "1"))
        bridge.close()
        bridge.close()
        bridge(ev.ToolCallStarted("run-1", 1, ToolCall("c2", "code_interpreter", "{}"), "2"))
    """)
    _, messages = execute(kernel, code)
    data = [m["content"].get("data", {}) for m in messages if m["msg_type"].startswith("comm_")]
    assert [d.get("type") for d in data] == [
        "run_started", "tool_call_started", "tool_call_finished", None]
    assert data[2] == {"type": "tool_call_finished", "run_id": "run-1", "call_id": "c1@run-1/1",
                       "execution_count": None, "status": "interrupted"}


def test_outside_a_kernel_the_bridge_is_silent():
    bridge = FrontendBridge("m")
    call = ToolCall("c1", "code_interpreter", "{}")
    bridge(ev.RunStarted("r", "p", "m", "api", None))
    bridge(ev.ToolCallStarted("r", 1, call, "1"))
    bridge(ev.ToolCallFinished("r", 1, call, "", False))
    bridge(ev.RunFinished("r", "", "answered", 1, Usage()))
    bridge.close()
    assert bridge._comm is None


def test_an_approval_request_reaches_iopub_before_the_stdin_prompt(kernel):
    code = textwrap.dedent("""
        from k2nb.core import events as ev
        from k2nb.core.messages import ToolCall
        from k2nb.tools.safety.approval import Approval, ApprovalRequest
        from k2nb.ui.frontend import FrontendBridge
        bridge = FrontendBridge("m")
        bridge(ev.RunStarted("run-2", "p", "m", "api", None))
        call = ToolCall("c7", "code_interpreter", '{"code": "x = 1"}')
        # what the loop does before it asks: announce, then ask on stdin
        bridge(ev.ApprovalRequested("run-2", 3, call, "x = 1"))
        approval = Approval("ask", show=lambda text: None)
        decision = approval.ask(ApprovalRequest("c7", 3, call.name, call.arguments, "x = 1"))
        bridge.close()
        print(decision.action, decision.code)
    """)
    seen: list[str] = []
    outputs: list[str] = []

    def on_iopub(msg):
        if msg["msg_type"] == "comm_msg":
            seen.append(msg["content"]["data"]["type"])
        elif msg["msg_type"] == "stream":
            outputs.append(msg["content"]["text"])

    def on_stdin(msg):
        seen.append("input_request:" + msg["content"]["prompt"][:9])
        kernel.input('{"action": "edit", "code": "x = 2"}')

    reply = kernel.execute_interactive(code, allow_stdin=True, output_hook=on_iopub,
                                       stdin_hook=on_stdin, timeout=60)
    assert reply["content"]["status"] == "ok"
    assert seen[:2] == ["approval_request", "input_request:[k2nb:c7]"]
    assert "".join(outputs) == "edit x = 2\n"
