"""MCP servers as tool sources: a real server over stdio (and streamable HTTP) registered with
``%k2 mcp add``; its tools run in %%k2 like any tool; crashes, errors and hangs are observations."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import k2nb
from k2nb.kernel.magics import K2Error
from k2nb.testing import Call, Reply
from k2nb.tools import mcp

SERVERS = k2nb.Session.current().mcp  # the shell fixture's session: InteractiveShell.instance()

SERVER = Path(__file__).with_name("mcp_fixture_server.py")


@pytest.fixture(scope="module")
def fx() -> Iterator[mcp.McpServer]:
    """The fixture server, started once for the tests that only call it (a start is ~2 s)."""
    server = SERVERS.add("fx", [sys.executable, str(SERVER)])
    yield server
    SERVERS.remove("fx")


@pytest.fixture(autouse=True)
def no_servers_left() -> Iterator[None]:
    yield
    for name in list(SERVERS.servers()):
        if name != "fx":
            SERVERS.remove(name)


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_add_list_remove(shell, capsys):
    os.environ["K2NB_TEST_TOKEN"] = "tok-from-kernel"
    try:
        shell.run_line_magic("k2", f"mcp add tmp --env GREETING=hi --env K2NB_TEST_TOKEN -- "
                             f"{sys.executable} {SERVER}")
    finally:
        del os.environ["K2NB_TEST_TOKEN"]
    added = capsys.readouterr().out
    assert added.startswith("MCP server `tmp` connected (")
    assert "tmp__quarterly_units, tmp__add, tmp__crash" in added
    shell.run_line_magic("k2", "mcp list")
    listing = capsys.readouterr().out
    assert "tmp: " in listing and ", running" in listing
    assert "  tmp__add — Add two numbers." in listing
    assert mcp.result_text(SERVERS.servers()["tmp"].call("env", {"name": "GREETING"}, 10)) == "hi"
    token = SERVERS.servers()["tmp"].call("env", {"name": "K2NB_TEST_TOKEN"}, 10)
    assert mcp.result_text(token) == "tok-from-kernel"
    assert "tok-from-kernel" not in listing
    shell.run_line_magic("k2", "mcp remove tmp")
    assert "stopped and removed" in capsys.readouterr().out
    assert "tmp" not in SERVERS.servers()
    with pytest.raises(K2Error, match="No MCP server named `tmp`"):
        shell.run_line_magic("k2", "mcp remove tmp")


def test_servers_that_cannot_start_are_explained(shell):
    with pytest.raises(K2Error, match="could not be started: FileNotFoundError"):
        shell.run_line_magic("k2", "mcp add bad -- /nonexistent/mcp-server")
    with pytest.raises(K2Error, match="(?s)exited while starting.*Server stderr:\nboom"):
        shell.run_line_magic("k2", f"mcp add quits -- {sys.executable} -c "
                             "\"import sys; sys.stderr.write('boom'); sys.exit(2)\"")
    with pytest.raises(K2Error, match="either --url URL or"):
        shell.run_line_magic("k2", "mcp add both --url http://127.0.0.1:1/mcp -- python x.py")
    assert not {"bad", "quits", "both"} & set(SERVERS.servers())


def test_k2_run_reads_mcp_tool_then_computes(shell, k2env):
    """The bar, with an MCP tool in place of fetch_url."""
    shell.run_line_magic("k2", f"mcp add sales -- {sys.executable} {SERVER}")

    def compute(body: dict[str, Any]) -> Reply:
        text = tool_messages(body)[-1]["content"]
        numbers = [int(n) for n in re.findall(r"Q\d (\d+)", text)]
        assert len(numbers) == 4, text
        code = f"north = {numbers}\ngrowth = north[-1] - north[0]\nprint(growth)"
        return Reply(reasoning="Growth is last minus first.",
                     tool_calls=[Call("code_interpreter", {"code": code})])

    def answer(body: dict[str, Any]) -> Reply:
        growth = tool_messages(body)[-1]["content"].strip()
        return Reply(reasoning="Done.", content=f"North grew by {growth} units.")

    k2env.add(Reply(reasoning="Ask the sales server.",
                    tool_calls=[Call("sales__quarterly_units", {"region": "north"})]),
              compute, answer)
    shell.run_cell_magic("k2", "--tools code,mcp:sales", "How much did the north region grow?")
    run = shell.user_ns["_k2"]
    assert run.ok and run.answer == "North grew by 51 units."
    assert shell.user_ns["growth"] == 51
    declared = {t["function"]["name"]: t["function"] for t in k2env.requests[0]["tools"]}
    assert "fx__add" not in declared  # only the server the run selected
    tool = declared["sales__quarterly_units"]
    assert tool["description"].startswith("[MCP server `sales`] Units sold per quarter")
    assert tool["parameters"]["properties"]["region"]["type"] == "string"
    assert tool["parameters"]["required"] == ["region"]
    assert run.tool_calls[0].observation == "Units sold in north: Q1 120, Q2 135, Q3 150, Q4 171"
    assert k2env.errors == []


def test_server_crashing_mid_call_is_an_observation_and_restarts(shell, k2env, fx):
    first_pid = int(SERVERS.servers()["fx"].call("pid", {}, 10).content[0].text)
    k2env.add(
        Reply(reasoning="Try it.", tool_calls=[Call("fx__crash", {}), Call("fx__pid", {})]),
        Reply(reasoning="It crashed, then came back.", content="Recovered."),
    )
    start = time.monotonic()
    run = k2nb.run("crash the server", shell=shell)
    elapsed = time.monotonic() - start
    crashed, pid = (m["content"] for m in tool_messages(k2env.requests[1]))
    assert crashed.startswith("MCP server `fx` exited or closed the connection during the call "
                              "to `crash`; it restarts on the next call.")
    assert "Server stderr:\nfixture server: crashing on purpose" in crashed
    assert int(pid) != first_pid  # a fresh process answered
    assert run.ok and run.tool_calls[0].is_error and not run.tool_calls[1].is_error
    assert elapsed < 15


def test_tool_errors_and_hangs_are_observations(shell, k2env, fx):
    k2env.add(
        Reply(reasoning="r", tool_calls=[
            Call("fx__quarterly_units", {"region": "west"}),
            Call("fx__add", {"a": 1}),
            Call("fx__sleep", {"seconds": 30}),
            Call("fx__add", {"a": 2, "b": 3}),
        ]),
        Reply(reasoning="r2", content="ok"),
    )
    start = time.monotonic()
    run = k2nb.run("go", shell=shell, timeout=1)
    elapsed = time.monotonic() - start
    unknown, missing, hung, added = (m["content"] for m in tool_messages(k2env.requests[1]))
    assert unknown.startswith("The MCP tool `quarterly_units` reported an error:")
    assert "unknown region 'west'; known: north, south" in unknown
    assert "reported an error" in missing and "b\n  Field required" in missing
    assert hung.startswith("MCP server `fx` did not answer `sleep` within 1 s")
    assert added == "5.0"
    assert [c.is_error for c in run.tool_calls] == [True, True, True, False]
    assert elapsed < 12, elapsed


def test_long_result_is_capped_and_pageable(shell, k2env, fx):
    k2env.add(Reply(reasoning="r", tool_calls=[Call("fx__big", {"n": 30000})]),
              lambda body: Reply(reasoning="page", tool_calls=[Call("read_output", {
                  "call_id": "functions.fx__big:0", "offset": 29990, "length": 100})]),
              Reply(reasoning="r3", content="ok"))
    k2nb.run("go", shell=shell, observation_chars=2000)
    capped = tool_messages(k2env.requests[1])[0]["content"]
    assert len(capped) < 2300 and "chars omitted" in capped
    assert 'read_output(call_id="functions.fx__big:0", offset=N)' in capped
    paged = tool_messages(k2env.requests[2])[1]["content"]
    assert "[chars 29990–30000 of 30000]\n0123456789\n[end of output]" == paged


def test_tool_selection(shell, k2env, fx):
    for _ in range(3):
        k2env.add(Reply(reasoning="r", content="ok"))
    k2nb.run("a", shell=shell, tools="code")
    k2nb.run("b", shell=shell, tools="code,mcp:fx")
    k2nb.run("c", shell=shell)  # the default: everything, MCP included
    names = [[t["function"]["name"] for t in r.get("tools", [])] for r in k2env.requests]
    assert names[0] == ["code_interpreter", "read_output"]
    assert names[1][:2] == ["code_interpreter", "read_output"] and "fx__crash" in names[1]
    assert "fetch_url" not in names[1]
    assert {"fetch_url", "read_file", "list_files", "fx__pid"} <= set(names[2])
    with pytest.raises(K2Error, match="unknown tool group 'shell'"):
        shell.run_cell_magic("k2", "--tools code,shell", "x")


def test_user_tools_always_included(shell, k2env):
    @k2nb.tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return key.upper()

    try:
        k2env.add(Reply(reasoning="r", content="ok"))
        k2nb.run("a", shell=shell, tools="none")
    finally:
        k2nb.Session.current().user_tools.remove("lookup")
    names = [t["function"]["name"] for t in k2env.requests[0]["tools"]]
    assert names == ["read_output", "lookup"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamable_http_server(shell, k2env):
    port = _free_port()
    process = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        shell.run_line_magic("k2", f"mcp add web --url http://127.0.0.1:{port}/mcp")
        k2env.add(Reply(reasoning="r", tool_calls=[Call("web__add", {"a": 40, "b": 2})]),
                  Reply(reasoning="r2", content="42"))
        run = k2nb.run("add", shell=shell, tools="mcp")
        assert tool_messages(k2env.requests[1])[0]["content"] == "42.0"
        assert run.ok
        assert "(streamable HTTP), running" in SERVERS.listing()
    finally:
        SERVERS.remove("web")
        process.terminate()
        process.wait(10)


def test_interrupt_during_an_mcp_call_stops_at_once(shell, k2env, fx):
    import signal
    import threading

    k2env.add(Reply(reasoning="r", tool_calls=[Call("fx__sleep", {"seconds": 30})]))
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    run = k2nb.run("sleep", shell=shell)
    elapsed = time.monotonic() - start
    assert run.stop_reason == "interrupted" and elapsed < 5, elapsed
    # The kernel's connection is still usable afterwards.
    assert SERVERS.servers()["fx"].call("add", {"a": 1, "b": 1}, 10).content[0].text == "2.0"


def test_server_that_died_between_runs_is_restarted_before_the_next(shell, k2env, fx):
    import signal

    old_pid = int(mcp.result_text(fx.call("pid", {}, 10)))
    os.kill(old_pid, signal.SIGKILL)
    time.sleep(0.2)
    k2env.add(Reply(reasoning="r", tool_calls=[Call("fx__pid", {})]),
              Reply(reasoning="r2", content="ok"))
    run = k2nb.run("which pid?", shell=shell, tools="mcp")
    new_pid = tool_messages(k2env.requests[1])[0]["content"]
    assert not run.tool_calls[0].is_error and int(new_pid) != old_pid


@pytest.mark.slow
def test_mcp_in_a_real_kernel(k2env, tmp_path):
    """The same bar in a real kernel (nbclient): the MCP loop thread beside ipykernel's own."""
    from k2nb.testing.notebook import cell_text, run_notebook

    def compute(body: dict[str, Any]) -> Reply:
        numbers = re.findall(r"Q\d (\d+)", tool_messages(body)[-1]["content"])
        return Reply(reasoning="sum", tool_calls=[Call("code_interpreter", {
            "code": f"south_total = sum({[int(n) for n in numbers]})\nprint(south_total)"})])

    k2env.add(Reply(reasoning="ask", tool_calls=[Call("sales__quarterly_units",
                                                      {"region": "south"})]),
              compute,
              lambda body: Reply(reasoning="done",
                                 content=f"South sold {tool_messages(body)[-1]['content'].strip()}."))
    nb = run_notebook([
        "%load_ext k2nb",
        f"%k2 mcp add sales -- {sys.executable} {SERVER}",
        "%%k2 --tools code,mcp\nHow many units did the south region sell?",
        "print(_k2.answer, south_total)",
        "%k2 mcp remove sales",
    ], tmp_path)
    assert "sales__quarterly_units" in cell_text(nb.cells[1])
    assert "South sold 331. 331" in cell_text(nb.cells[3])
    assert "stopped and removed" in cell_text(nb.cells[4])


def test_forked_child_gets_its_own_connection(fx):
    """Heavy mode forks the kernel: a child must not hang on the parent's loop thread."""
    parent_server = int(mcp.result_text(fx.call("pid", {}, 10)))
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            text = mcp.result_text(SERVERS.servers()["fx"].call("pid", {}, 20))
            SERVERS.servers()["fx"].close()
        except BaseException as exc:
            text = f"error: {exc!r}"
        os.write(write_end, text.encode())
        os._exit(0)
    os.close(write_end)
    start = time.monotonic()
    with os.fdopen(read_end) as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    assert answer.isdigit() and int(answer) != parent_server, answer
    assert time.monotonic() - start < 20
    assert int(mcp.result_text(fx.call("pid", {}, 10))) == parent_server  # parent's intact


def test_servers_from_config_start_on_the_first_run(shell, k2env, capsys):
    command = f"{sys.executable} {SERVER}"
    shell.run_line_magic("config", f"K2Magics.mcp_servers = {{'cfg': {{'command': {command!r}}}, "
                         "'broken': {'command': '/nonexistent/server'}}")
    try:
        k2env.add(Reply(reasoning="r", tool_calls=[Call("cfg__add", {"a": 2, "b": 2})]),
                  Reply(reasoning="r2", content="4"))
        shell.run_cell_magic("k2", "--tools mcp", "add")
    finally:
        shell.run_line_magic("config", "K2Magics.mcp_servers = {}")
    assert tool_messages(k2env.requests[1])[0]["content"] == "4.0"
    assert "cfg" in SERVERS.servers() and "broken" not in SERVERS.servers()
    err = capsys.readouterr().err
    assert "MCP server `broken` could not be started" in err and "K2Magics.mcp_servers" in err
