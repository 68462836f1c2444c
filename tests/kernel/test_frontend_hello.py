"""The lab extension's hello, heard by a real kernel, and what the %%k2 cell shows after it.

The client here does what the extension does (docs/comm-protocol.md, "Hello"): it opens a comm on
target ``k2nb`` with the hello when it connects, and it answers a run's ``run_started`` with the
hello on the run's comm — a message that reaches the kernel only after the ``%%k2`` cell ended,
when the run's comm is closed. After either, that client's runs show each code call as a line
pointing to its cell; another client of the same kernel that said nothing gets the full view.
"""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import pytest

from k2nb.testing import Call, Reply
from k2nb.testing.notebook import iopub_until_idle

pytestmark = pytest.mark.slow

HELLO = {"type": "hello", "version": 1, "features": ["real_cells", "approval_dialog"]}
PROMPT = "%%k2\nWhat is 6 × 7? Use Python."


def shell_send(client: Any, msg_type: str, content: dict) -> str:
    msg = client.session.msg(msg_type, content)
    client.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def say_hello_at_connect(client: Any) -> list[dict]:
    """The extension's connect-time hello: open, wait until the kernel handled it, close."""
    comm_id = uuid.uuid4().hex
    opened = shell_send(client, "comm_open",
                        {"comm_id": comm_id, "target_name": "k2nb", "data": HELLO})
    answer = iopub_until_idle(client, opened)
    iopub_until_idle(client, shell_send(client, "comm_close", {"comm_id": comm_id, "data": {}}))
    return answer


def run_k2(client: Any, server: Any) -> tuple[list[dict], list[dict]]:
    """Run a %%k2 cell with one code call; its display outputs and its comm messages."""
    server.add(
        Reply(reasoning="Compute it.",
              tool_calls=[Call("code_interpreter", {"code": "print(6 * 7)"})]),
        Reply(content="6 × 7 = **42**."),
    )
    msg_id = client.execute(PROMPT)
    messages = iopub_until_idle(client, msg_id)
    reply = client.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    displays: list[dict] = []  # as a frontend keeps them: updated in place by display id
    for m in messages:
        if m["msg_type"] == "display_data":
            displays.append(dict(m["content"]))
        elif m["msg_type"] == "update_display_data":
            shown = m["content"]["transient"]["display_id"]
            for out in displays:
                if out.get("transient", {}).get("display_id") == shown:
                    out.update(data=m["content"]["data"], metadata=m["content"]["metadata"])
    run_comm = next(m["content"]["comm_id"] for m in messages if m["msg_type"] == "comm_open"
                    and m["content"]["target_name"] == "k2nb")
    comms = [m for m in messages if m["msg_type"].startswith("comm_")
             and m["content"]["comm_id"] == run_comm]
    return displays, comms


def call_blocks(displays: list[dict]) -> list[dict]:
    return [d["data"] for d in displays if d["metadata"].get("k2nb", {}).get("block") == "call"]


def started_call_id(comms: list[dict]) -> str:
    return next(m["content"]["data"]["call_id"] for m in comms
                if m["content"]["data"].get("type") == "tool_call_started")


def assert_call_line(displays: list[dict], comms: list[dict]) -> None:
    (line,) = call_blocks(displays)
    linked = [html.unescape(v) for v in re.findall(r'data-k2nb-call-id="([^"]*)"',
                                                  line["text/html"])]
    # the line leads to the cell the extension made for this call (its metadata.k2nb.call_id)
    assert linked == [started_call_id(comms)]
    assert re.fullmatch(r"✓ code_interpreter · ok · [\d.]+ s · → \[\d+\] · print\(6 \* 7\)",
                        line["text/plain"])


def assert_full_block(displays: list[dict]) -> None:
    (block,) = call_blocks(displays)
    assert "data-k2nb-call-id" not in block["text/html"]
    assert block["text/plain"].startswith("✓ code_interpreter · ok · [")
    assert "    print(6 * 7)" in block["text/plain"]


def frontends(client: Any) -> dict:
    msg_id = client.execute("import k2nb\n"
                            "print({k: sorted(v) for k, v in "
                            "k2nb.Session.current().frontends.items()})")
    text = "".join(m["content"]["text"] for m in iopub_until_idle(client, msg_id)
                   if m["msg_type"] == "stream")
    client.get_shell_msg(timeout=60)
    return eval(text)  # a dict literal the kernel printed


def test_the_hello_at_connect_turns_calls_into_lines(k2env, k2_kernel):
    _manager, client = k2_kernel
    answer = say_hello_at_connect(client)
    # the kernel took the comm (a kernel without the target closes it at once) and said nothing
    assert [m["msg_type"] for m in answer] == []
    assert frontends(client) == {client.session.session: ["approval_dialog", "real_cells"]}
    displays, comms = run_k2(client, k2env)
    assert_call_line(displays, comms)


def test_the_reply_on_a_closed_run_comm_is_heard_for_the_next_run(k2env, k2_kernel):
    _manager, client = k2_kernel
    displays, comms = run_k2(client, k2env)
    assert_full_block(displays)  # no hello yet: the full view
    opened = next(m for m in comms if m["msg_type"] == "comm_open")
    assert comms[-1]["msg_type"] == "comm_close"  # the run's comm is closed by now
    # what the extension sent when it took the run; the kernel reads it only now
    sent = shell_send(client, "comm_msg",
                      {"comm_id": opened["content"]["comm_id"], "data": HELLO})
    assert [m["msg_type"] for m in iopub_until_idle(client, sent)] == []
    assert frontends(client) == {client.session.session: ["approval_dialog", "real_cells"]}
    displays, comms = run_k2(client, k2env)
    assert_call_line(displays, comms)


def test_a_client_that_said_no_hello_keeps_the_full_view(k2env, k2_kernel):
    manager, lab = k2_kernel
    say_hello_at_connect(lab)
    session = manager.session.clone()
    session.session = uuid.uuid4().hex  # another client of the same kernel: its own session id
    console = manager.client(session=session)
    console.start_channels()
    try:
        console.wait_for_ready(timeout=60)
        displays, _ = run_k2(console, k2env)
        assert_full_block(displays)
        displays, comms = run_k2(lab, k2env)
        assert_call_line(displays, comms)
    finally:
        console.stop_channels()


def test_messages_that_are_not_a_hello_change_nothing(k2env, k2_kernel):
    _manager, client = k2_kernel
    opened = shell_send(client, "comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "k2nb",
                                              "data": {"type": "something_else"}})
    iopub_until_idle(client, opened)
    opened = shell_send(client, "comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "k2nb",
                                              "data": {"type": "hello", "features": "real_cells"}})
    iopub_until_idle(client, opened)
    assert frontends(client) == {}
    displays, _ = run_k2(client, k2env)
    assert_full_block(displays)


def test_loading_k2nb_from_a_cell_asks_the_frontends_for_their_hello(k2env, tmp_path):
    """A notebook on a plain Python kernel loads k2nb in a cell: the extension's connect-time
    hello found no ``k2nb`` target, so the kernel asks for it (a ``hello_request`` comm, closed
    at once); the extension's reply arrives after that cell, and the first run is compact."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        loaded = client.execute("%load_ext k2nb")
        messages = iopub_until_idle(client, loaded)
        assert client.get_shell_msg(timeout=60)["content"]["status"] == "ok"
        (request,) = [m for m in messages if m["msg_type"] == "comm_open"]
        assert request["content"]["target_name"] == "k2nb"
        assert request["content"]["data"] == {"type": "hello_request", "version": 1}
        comm_id = request["content"]["comm_id"]
        assert [m["msg_type"] for m in messages if m["content"].get("comm_id") == comm_id] == [
            "comm_open", "comm_close"]  # the kernel never waits for an answer
        # The extension answers on that comm; the kernel reads it once the cell has ended.
        sent = shell_send(client, "comm_msg", {"comm_id": comm_id, "data": HELLO})
        assert [m["msg_type"] for m in iopub_until_idle(client, sent)] == []
        assert frontends(client) == {client.session.session: ["approval_dialog", "real_cells"]}
        displays, comms = run_k2(client, k2env)
        assert_call_line(displays, comms)
        # Loading it again (already loaded) asks nothing.
        again = client.execute("%load_ext k2nb")
        assert not [m for m in iopub_until_idle(client, again) if m["msg_type"] == "comm_open"]
        client.get_shell_msg(timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
