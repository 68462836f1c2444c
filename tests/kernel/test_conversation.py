"""The notebook is the conversation: each %%k2 cell continues the kernel's conversation in
execution order, with the user's own cells in between; `--new` starts over; `_k2` stays out of
the user's variables. Run by nbclient in a real kernel against the strict scripted server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from k2nb.testing import Call, Reply
from k2nb.testing.notebook import cell_text, run_notebook

pytestmark = pytest.mark.slow

FIRST = "Load the numbers 3, 5, 8 into a list called nums."
FIRST_ANSWER = "nums now holds 3, 5 and 8."
USER_CELL = "nums.append(13)  # the user's own step"
SECOND = "Now add them up."
SECOND_ANSWER = "The total of nums is 29."
THIRD = "And what is their mean?"
NEW = "What is 2 + 2?"


def request_text(body: dict[str, Any]) -> str:
    return json.dumps(body["messages"], ensure_ascii=False)


def test_three_turns_a_user_cell_and_new(k2env, tmp_path: Path):
    k2env.add(
        Reply(reasoning="Make the list.",
              tool_calls=[Call("code_interpreter", {"code": "nums = [3, 5, 8]\nnums"})]),
        Reply(reasoning="Done.", content=FIRST_ANSWER),
        Reply(reasoning="Sum what is there now.",
              tool_calls=[Call("code_interpreter", {"code": "total = sum(nums)\nprint(total)"})]),
        Reply(reasoning="29.", content=SECOND_ANSWER),
        Reply(reasoning="Mean.", content="The mean is 7.25."),
        Reply(reasoning="Easy.", content="4"),
    )
    nb = run_notebook(["%load_ext k2nb", f"%%k2\n{FIRST}", USER_CELL, f"%%k2\n{SECOND}",
                       f"%%k2\n{THIRD}", "%k2 history", f"%%k2 --new\n{NEW}", "%k2 history",
                       "%who", "print(sorted(k for k in get_ipython().user_ns_hidden "
                       "if k == '_k2'), _k2.answer, len(_k2.history))"], tmp_path)
    assert k2env.errors == []  # every request was valid, the reasoning rule included
    starts = [b for b in k2env.requests if not any(m["role"] == "tool" for m in b["messages"])]
    first, second, third, new = (request_text(b) for b in starts)
    assert FIRST in first and SECOND not in first
    # The second turn's first request: the first prompt and answer, and the user's own cell.
    assert FIRST in second and FIRST_ANSWER in second and "nums.append(13)" in second
    assert "nums = [3, 5, 8]" in second  # the digest of the first turn's call
    assert "Make the list." not in second  # earlier thinking is not carried
    # The third carries both earlier turns.
    assert all(t in third for t in (FIRST, FIRST_ANSWER, SECOND, SECOND_ANSWER))
    # --new carries none of them.
    assert not any(t in new for t in (FIRST, FIRST_ANSWER, SECOND, SECOND_ANSWER, "nums.append"))
    history = cell_text(nb.cells[5])
    assert "carries 3 of 3 turn(s)" in history and "'Now add them up.'" in history
    assert re.search(r"2\. In \[\d+\] 'Now add them up\.' .*\n\s+after your cells In \[\d+\]",
                     history)
    assert "carries 1 of 1 turn(s)" in cell_text(nb.cells[7])
    who = cell_text(nb.cells[8])
    assert "nums" in who and "total" in who and "_k2" not in who
    assert cell_text(nb.cells[9]).strip() == "['_k2'] 4 0"


def test_rerunning_a_cell_in_jupyterlab_redoes_its_turn(k2_kernel, k2env):
    """JupyterLab names the cell in each execute request (metadata.cellId): running the same
    %%k2 cell again replaces its turn instead of adding a second copy."""
    manager, client = k2_kernel
    k2env.add(Reply(reasoning="a", content="first try"), Reply(reasoning="b", content="retry"),
              Reply(reasoning="c", content="other"))

    def execute(code: str, cell_id: str) -> None:
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
        msg = client.session.msg("execute_request", content, metadata={"cellId": cell_id})
        client.shell_channel.send(msg)
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["content"]["status"] == "ok", reply["content"]
                return

    execute("%%k2\nSummarise the data.", "cell-a")
    execute("%%k2\nSummarise the data.", "cell-a")  # the same cell, run again
    execute("%%k2\nSomething else.", "cell-b")
    last = request_text(k2env.requests[-1])
    assert "retry" in last and "first try" not in last
    assert last.count("Summarise the data.") == 1
    out: list[str] = []
    client.execute_interactive("print(len(get_ipython()._k2nb_session.conversation))",
                               output_hook=lambda m: out.append(m["content"].get("text", "")),
                               timeout=30)
    assert "".join(out).strip() == "2"
