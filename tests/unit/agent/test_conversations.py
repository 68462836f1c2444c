"""Conversations from Python: `k2nb.run` takes and returns a `k2nb.Conversation`, turns carry
digests and the user's own cells (capped, secrets redacted), and `history_turns` bounds them."""

from __future__ import annotations

import json

import k2nb
from k2nb.core.conversation import Conversation
from k2nb.testing import Call, Reply

SECRET = "tok-live-5e4f3a2b1c0d9e8f7a6b"


def texts(body) -> str:
    return json.dumps(body["messages"], ensure_ascii=False)


def test_scripts_can_hold_several_conversations(shell, k2env):
    k2env.add(Reply(reasoning="a", content="answer A1"), Reply(reasoning="b", content="answer B1"),
              Reply(reasoning="c", content="answer A2"))
    one, two = k2nb.Conversation(), k2nb.Conversation()
    first = k2nb.run("question A1", shell=shell, conversation=one)
    k2nb.run("question B1", shell=shell, conversation=two)
    again = k2nb.run("question A2", shell=shell, conversation=one)
    assert first.conversation is one and again.conversation is one and len(one) == 2
    request = texts(k2env.requests[2])
    assert "question A1" in request and "answer A1" in request and "B1" not in request
    assert [t.prompt for t in again.history] == ["question A1"]
    assert len(k2nb.Session.current().conversation) == 0  # the kernel's own is untouched
    assert Conversation.from_dict(json.loads(json.dumps(one.to_dict()))).to_dict() == one.to_dict()


def test_turn_digests_drop_thinking_and_keep_the_head_of_outputs(shell, k2env):
    code = "print('row ' * 1000)"
    k2env.add(Reply(reasoning="SECRET THOUGHTS", tool_calls=[Call("code_interpreter",
                                                                   {"code": code})]),
              Reply(reasoning="done", content="printed rows"),
              Reply(reasoning="r", content="ok"))
    k2nb.run("print rows", shell=shell)
    k2nb.run("and now?", shell=shell)
    request = texts(k2env.requests[2])
    assert "print rows" in request and "printed rows" in request and code in request
    assert "SECRET THOUGHTS" not in request and "reasoning_content" not in request
    assert "more characters not kept in the conversation" in request  # the output's head only


def test_user_cells_are_carried_capped_and_redacted(shell, k2env, monkeypatch):
    monkeypatch.setenv("PAYMENTS_API_TOKEN", SECRET)
    k2env.add(Reply(reasoning="r", content="first"), Reply(reasoning="r", content="second"))
    shell.run_cell("%%k2\nfirst question", store_history=True)
    shell.run_cell(f"token = {SECRET!r}\nlong = 1", store_history=True)
    shell.run_cell("x = 1\n" + "# padding\n" * 400, store_history=True)
    shell.run_cell("%k2 history", store_history=True)  # k2nb's own commands are not carried
    shell.run_cell("%%k2\nsecond question", store_history=True)
    request = texts(k2env.requests[1])
    assert "Cells I ran myself since your last answer" in request
    assert SECRET not in request and "[redacted]" in request
    assert "x = 1" in request and "more characters not kept" in request  # capped per cell
    assert "%k2 history" not in request


def test_history_turns_zero_runs_each_cell_alone(shell, k2env):
    k2env.add(Reply(reasoning="r", content="ANSWER-ONE"), Reply(reasoning="r", content="two"))
    shell.run_line_magic("config", "K2Magics.history_turns = 0")
    try:
        shell.run_cell("%%k2\nQUESTION-ONE", store_history=True)
        shell.run_cell("y = 2", store_history=True)
        shell.run_cell("%%k2\nQUESTION-TWO", store_history=True)
    finally:
        shell.run_line_magic("config", "K2Magics.history_turns = 20")
    second = texts(k2env.requests[1])
    assert "QUESTION-TWO" in second
    assert "QUESTION-ONE" not in second and "ANSWER-ONE" not in second and "y = 2" not in second


def test_k2_is_hidden_from_the_user_variables_and_the_models_summary(shell, k2env):
    k2env.add(Reply(reasoning="r", content="one"), Reply(reasoning="r", content="two"))
    shell.run_cell("%%k2\nfirst", store_history=True)
    assert "_k2" in shell.user_ns_hidden and shell.user_ns["_k2"].answer == "one"
    shell.run_cell("%%k2\nsecond", store_history=True)
    system = k2env.requests[1]["messages"][0]["content"]
    assert "_k2" not in system
