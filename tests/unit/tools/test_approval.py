"""--approve: the user answers through the kernel's stdin channel; risky code is flagged."""

from __future__ import annotations

import queue

import pytest

from k2nb.testing import Call, Reply
from k2nb.testing.notebook import cell_text, run_notebook
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
    answers = iter(["y", "n", "not now", "e", "b = 20", ".", "a"])  # c: edited; d, e: run all
    km, kc = k2_kernel
    prompts = []
    msg_id = kc.execute("%%k2 --approve ask\ndo it", allow_stdin=True)
    while True:
        try:
            msg = kc.get_stdin_msg(timeout=0.2)
            prompts.append(msg["content"]["prompt"])
            kc.input(next(answers))
        except queue.Empty:
            reply = None
            try:
                reply = kc.get_shell_msg(timeout=0.05)
            except queue.Empty:
                pass
            if reply and reply["parent_header"]["msg_id"] == msg_id:
                break
    assert reply["content"]["status"] == "ok"
    assert sum(p.startswith("[k2nb:functions.code_interpreter:") for p in prompts) == 4  # a, b, c, d; "all" at d covers e
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
