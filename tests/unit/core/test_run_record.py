"""The typed run record: one form written by a run, embedded in notebooks, sent by heavy mode,
and read back by replay, export and comparison — including records saved by earlier releases."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from k2nb.core.messages import ToolCall, Usage
from k2nb.core.run import RECORD_VERSION, Run, Step, ToolCallResult, prompt_hash

ROOT = Path(__file__).resolve().parents[3]


def a_run() -> Run:
    call = ToolCallResult(ToolCall("functions.code_interpreter:0", "code_interpreter",
                                   '{"code": "x = 1\\nprint(x)"}'),
                          "1", outputs=[{"output_type": "stream", "name": "stdout",
                                         "text": "1\n"}],
                          execution_count=3, duration_s=0.25, finished_at=1700000001.5)
    return Run("20250101-000000-abcdef", "Set x.", "kimi-k2-thinking", "api", answer="x is 1",
               steps=[Step(1, "think", "", [call], Usage(10, 5, 15), "tool_calls", 1.0,
                           1700000000.0, 1700000001.0),
                      Step(2, "done", "x is 1", usage=Usage(20, 3, 23), finish_reason="stop")],
               usage=Usage(30, 8, 38), started_at=1700000000.0, finished_at=1700000002.0,
               transcript_path=".k2nb/runs/x.jsonl")


def test_round_trip_keeps_every_field_a_reader_uses():
    run = a_run()
    data = json.loads(json.dumps(run.to_dict()))  # through JSON, as a notebook stores it
    assert data["format"] == "k2nb-record" and data["version"] == RECORD_VERSION
    assert data["prompt_hash"] == prompt_hash("Set x.") == prompt_hash("  Set x.  \n")
    back = Run.from_dict(data)
    assert back.to_dict() == run.to_dict()
    call = back.steps[0].tool_calls[0]
    assert call.code == "x = 1\nprint(x)" and call.outputs[0]["text"] == "1\n"
    assert back.usage.total_tokens == 38 and back.steps[1].finish_reason == "stop"
    assert back.tool_calls == [call] and back.ok


@pytest.mark.parametrize("notebook", ["01-quickstart.ipynb", "03-teaching-visible-reasoning.ipynb"])
def test_records_saved_in_the_demo_notebooks_still_read(notebook):
    from k2nb.runs.store import notebook_records

    records = notebook_records(ROOT / "notebooks" / notebook)
    assert records, f"{notebook} should carry embedded run records"
    for record in records:
        assert record.steps and record.prompt and record.stop_reason == "answered"
        assert any(c.code for c in record.tool_calls)


def test_unknown_or_newer_records_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="not a k2nb run record"):
        Run.from_dict({"format": "something-else"})
    with pytest.raises(ValueError, match="upgrade k2nb"):
        Run.from_dict({"format": "k2nb-record", "version": RECORD_VERSION + 1})


def test_public_api_imports_without_the_local_extra(tmp_path):
    """`import k2nb` and the paths users hold work on a machine without torch."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers", "bitsandbytes"):
                    raise ImportError(f"{name} is not installed (blocked by the test)")
                return None
        sys.meta_path.insert(0, Block())
    """))
    code = textwrap.dedent("""
        import sys
        import k2nb
        from k2nb import Run, load_ipython_extension, run, tool
        from k2nb.backends.local import LocalBackend
        from k2nb.core.run import ToolCallRecord
        from k2nb.testing import Call, Fail, Reply, ScriptedServer
        import k2nb.kernel.magics, k2nb.runner, k2nb.heavy, k2nb.ui
        print(sorted(m for m in ("torch", "transformers", "bitsandbytes") if m in sys.modules))
    """)
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
