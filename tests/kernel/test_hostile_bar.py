"""Issue 6's bar in one real kernel: a hostile sequence loses no run and leaks no secret."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from k2nb.testing import Call, Fail, Reply

pytestmark = pytest.mark.slow

SECRET = "tok-live-4f9a8b7c6d5e4f3a2b1c"


def test_hostile_sequence(k2env, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PAYMENTS_API_TOKEN", SECRET)
    key = os.environ["MOONSHOT_API_KEY"]
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    outputs: list[str] = []

    def run(code: str, timeout: float = 60) -> dict:
        return kc.execute_interactive(code, timeout=timeout, output_hook=lambda m: outputs.append(
            json.dumps(m["content"])))

    try:
        run("%load_ext k2nb")
        # 1. Wrong key: a clear error, nothing else happens.
        run("%env MOONSHOT_API_KEY=sk-wrong-key-000000")
        reply = run("%%k2\nhello")
        assert reply["content"]["ename"] == "K2Error"
        run(f"%env MOONSHOT_API_KEY={key}")
        # 2. 429 then success; 3. a cut stream; 4. malformed arguments; 5. an infinite loop;
        # 6. code printing the environment with a secret in it.
        k2env.add(
            Fail(429, "rate_limit_reached_error", "slow down", retry_after=0.1),
            Reply(reasoning="first " * 20, tool_calls=[Call("code_interpreter", {"code": "a=1"})],
                  cut_after=2),
            Reply(reasoning="look around",
                  tool_calls=[Call("code_interpreter", '{"code": "import os\\nprint(os.environ)"')]),
            Reply(reasoning="loop", tool_calls=[Call("code_interpreter",
                                                     {"code": "while True:\n    pass"})]),
            Reply(reasoning="done", content="Survived everything."),
        )
        reply = run("%%k2 --timeout 1\nDo risky things.")
        assert reply["content"]["status"] == "ok"
        # 7. Interrupt during a tool call.
        k2env.add(Reply(reasoning="sleep", tool_calls=[
            Call("code_interpreter", {"code": "import time\ntime.sleep(60)"})]))
        msg_id = kc.execute("%%k2\nSleep.")
        time.sleep(2)
        km.interrupt_kernel()
        while (m := kc.get_shell_msg(timeout=30))["parent_header"].get("msg_id") != msg_id:
            pass
        assert m["content"]["ename"] == "K2Stopped"
        run("print(_k2.stop_reason, len(_k2.steps))")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    text = "\n".join(outputs)
    assert "Survived everything." in text and "interrupted 1" in text
    transcripts = sorted((tmp_path / ".k2nb" / "runs").glob("*.jsonl"))
    assert len(transcripts) == 3  # wrong key, the hostile run, the interrupted run: 0 lost
    for path in transcripts:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert records[-1]["type"] == "run_finished"
    everything = text + "".join(p.read_text() for p in transcripts) + json.dumps(k2env.requests)
    assert SECRET not in everything  # 0 secrets in outputs, transcripts or what the model read
    observations = [m["content"] for m in k2env.requests[-2]["messages"] if m["role"] == "tool"]
    # The cut step was retried and got the next reply: the environment dump, then the loop.
    assert "[redacted]" in observations[0] and "PAYMENTS_API_TOKEN" in observations[0]
    assert observations[1].startswith("Timed out after 1 s")
