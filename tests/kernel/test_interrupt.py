"""The kernel interrupt (■) stops a run at once, keeps the partial run, and the kernel goes on."""

from __future__ import annotations

import time

import pytest

from k2nb.testing import Call, Reply

pytestmark = pytest.mark.slow


def execute_and_interrupt(km, kc, code: str, after: float):
    msg_id = kc.execute(code)
    time.sleep(after)
    interrupted_at = time.monotonic()
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=30)
    return reply, time.monotonic() - interrupted_at


def value_of(kc, expression: str) -> str:
    out = []
    kc.execute_interactive(f"print({expression})", timeout=30,
                           output_hook=lambda m: out.append(m["content"].get("text", "")))
    return "".join(out).strip()


def test_interrupt_while_thinking_streams(k2_kernel, k2env):
    km, kc = k2_kernel
    k2env.add(Reply(reasoning="slow thought " * 400, content="never", delay=0.01))
    reply, latency = execute_and_interrupt(km, kc, "%%k2\nthink slowly", after=2.0)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "K2Stopped"
    assert latency < 1.0
    assert value_of(kc, "_k2.stop_reason, _k2.note") == "interrupted Stopped by user at step 1."
    assert int(value_of(kc, "len(_k2.steps[0].reasoning)")) > 0  # partial thinking kept
    # The next run works.
    k2env.add(Reply(reasoning="ok", content="second run fine"))
    kc.execute_interactive("%%k2\nagain", timeout=60)
    assert value_of(kc, "_k2.answer") == "second run fine"


def test_interrupt_while_tool_code_runs(k2_kernel, k2env):
    km, kc = k2_kernel
    code = "import time\nstarted = True\nfor i in range(600):\n    time.sleep(0.1)\nfinished = True"
    k2env.add(Reply(reasoning="run it", tool_calls=[Call("code_interpreter", {"code": code}),
                                                    Call("code_interpreter", {"code": "after=1"})]))
    reply, latency = execute_and_interrupt(km, kc, "%%k2\nrun slow code", after=2.5)
    assert reply["content"]["ename"] == "K2Stopped" and latency < 1.0
    assert value_of(kc, "started, 'finished' in dir(), 'after' in dir()") == "True False False"
    statuses = value_of(kc, "[c.status for c in _k2.tool_calls]")
    assert statuses == "['interrupted', 'interrupted']"
    # The model never saw a KeyboardInterrupt as an observation: only one request was made.
    assert len(k2env.requests) == 1
