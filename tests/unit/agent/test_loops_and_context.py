"""Repeated identical calls get a nudge then stop the run; long histories are trimmed K2's way."""

from __future__ import annotations

import pytest

import k2nb
from k2nb.core import events as ev
from k2nb.agent.context import RunContext, estimate_tokens
from k2nb.core.messages import AssistantMessage, ToolCall, ToolMessage, UserMessage
from k2nb.testing import Call, Fail, Reply, ScriptedServer


def same_call(body):
    return Reply(reasoning="try again", tool_calls=[Call("code_interpreter", {"code": "tries += 1"})])


def test_same_call_nudged_then_stopped(shell, k2env):
    shell.user_ns["tries"] = 0
    k2env.add(*[same_call] * 6)
    run = k2nb.run("loop", shell=shell)
    assert run.stop_reason == "loop"
    assert "same `code_interpreter` call 5 times in a row" in run.note
    assert shell.user_ns["tries"] == 4  # the 5th identical call was not run
    observations = [c.observation for c in run.tool_calls]
    assert "Note from k2nb" not in observations[1]
    assert "same arguments 3 times in a row" in observations[2]
    assert "4 times in a row" in observations[3]
    assert len(k2env.requests) == 5


def test_different_calls_reset_the_count(shell, k2env):
    replies = []
    for i in range(6):
        code = "x = 1" if i % 2 else "y = 2"
        replies.append(Reply(reasoning="r", tool_calls=[Call("code_interpreter", {"code": code})]))
    k2env.add(*replies, Reply(reasoning="r", content="done"))
    run = k2nb.run("alternate", shell=shell)
    assert run.ok and not any("Note from k2nb" in c.observation for c in run.tool_calls)


def test_old_observations_hidden_near_the_window(shell, k2env):
    big = "print('z' * 6000)"
    replies = [Reply(reasoning=f"step {i}", tool_calls=[Call("code_interpreter", {"code": big})])
               for i in range(4)]
    k2env.add(*replies, Reply(reasoning="r", content="done"))
    notices = []
    run = k2nb.run("big outputs", shell=shell, context_window=5000, observation_chars=6000,
                   max_tokens=500, subscribers=[lambda e: isinstance(e, ev.Notice) and
                                                notices.append(e.text)])
    assert run.ok
    last = k2env.requests[-1]["messages"]
    tools = [m["content"] for m in last if m["role"] == "tool"]
    assert tools[-1].startswith("zzz")  # the latest observation is kept
    assert "output hidden to keep the conversation within the context window" in tools[0]
    # Reasoning is never dropped.
    assert [m["reasoning_content"] for m in last if m["role"] == "assistant"] == [
        f"step {i}" for i in range(4)]
    assert any("neared the context window" in n for n in notices)


def test_server_token_limit_triggers_trim_and_retry(shell, monkeypatch, tmp_path):
    from k2nb.testing.server import _prompt_tokens

    with ScriptedServer(api_key="k") as srv:
        monkeypatch.setenv("K2NB_BASE_URL", srv.base_url)
        monkeypatch.setenv("K2NB_API_KEY", "k")

        def second(body):
            # The window just fits this request; the next one (+2,000 chars) will not.
            srv.context_window = _prompt_tokens(body) + body["max_tokens"] + 200
            return Reply(reasoning="b", tool_calls=[
                Call("code_interpreter", {"code": "print('w' * 2000)"})])

        srv.add(Reply(reasoning="a", tool_calls=[
                    Call("code_interpreter", {"code": "print('y' * 12000)"})]),
                second,
                Reply(reasoning="c", content="fits now"))
        run = k2nb.run("x", shell=shell, max_tokens=100, observation_chars=20000)
        assert run.ok and run.answer == "fits now", run.note
        assert any("exceeded model token limit" in e for e in srv.errors)
        retried = srv.requests[-1]["messages"]
        tools = [m["content"] for m in retried if m["role"] == "tool"]
        assert "output hidden" in tools[0] and tools[1].startswith("www")


def test_context_hides_oldest_observations_first_never_the_latest():
    context = RunContext("system", "hi")
    for index, size in ((1, 3500), (2, 3500), (3, 10)):
        context.start_step(index)
        call = ToolCall(f"c{index}", "code_interpreter", "{}")
        context.add(AssistantMessage("", f"think{index}", [call]))
        context.add(ToolMessage(call.id, call.name, "x" * size))
    messages = context.messages()
    assert context.estimate() == estimate_tokens(messages) > 2000
    assert context.hide_observations(target=0) == 2  # not the latest step's
    tools = [m.content for m in context.messages() if isinstance(m, ToolMessage)]
    assert "read_output" in tools[0] and "read_output" in tools[1] and tools[2] == "x" * 10
    assert [m.reasoning for m in context.messages() if isinstance(m, AssistantMessage)] == [
        "think1", "think2", "think3"]  # reasoning is never hidden
    assert messages[3].content == "x" * 3500  # an earlier request's list is untouched
    assert context.estimate() == estimate_tokens(context.messages())  # kept in step


@pytest.mark.parametrize("status, message", [
    (400, "This model's maximum context length is 8192 tokens. However, you requested 9000."),
    (413, "prompt is too long: 270000 tokens > 262144 maximum"),
    (422, "Input is too long for the context window of this model"),
])
def test_other_servers_overflow_wording_also_trims_and_retries(shell, k2env, status, message):
    """OpenAI-compatible servers word a full window differently (and vLLM-like ones answer 400,
    proxies 413 or 422): each is taken as "make room and try again", not as a failed run."""
    k2env.add(Reply(reasoning="a", tool_calls=[
                  Call("code_interpreter", {"code": "print('y' * 12000)"})]),
              Reply(reasoning="b", tool_calls=[
                  Call("code_interpreter", {"code": "print('w' * 20)"})]),
              Fail(status, "invalid_request_error", message),
              Reply(reasoning="c", content="fits now"))
    run = k2nb.run("x", shell=shell, max_tokens=100, observation_chars=20000)
    assert run.ok and run.answer == "fits now", run.note
    retried = k2env.requests[-1]["messages"]
    tools = [m["content"] for m in retried if m["role"] == "tool"]
    assert "output hidden" in tools[0] and tools[1].startswith("www")
