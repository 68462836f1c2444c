"""The loop's budgets, events and the reasoning protocol, against the strict server."""

from __future__ import annotations

import pytest

import k2nb
from k2nb.core import events as ev
from k2nb.testing import Call, Reply, ScriptedServer


def looping_reply(body):
    n = sum(1 for m in body["messages"] if m["role"] == "tool")
    return Reply(reasoning=f"step {n}", tool_calls=[Call("code_interpreter", {"code": f"n = {n}"})])


def test_max_steps_budget_stops_with_a_clear_note(shell, k2env):
    k2env.add(*[looping_reply] * 3)
    run = k2nb.run("never ends", shell=shell, max_steps=3)
    assert run.stop_reason == "max_steps"
    assert len(run.steps) == 3 and len(k2env.requests) == 3
    assert "--max-steps 3" in run.note and "ran out" in run.note
    assert shell.user_ns["n"] == 2  # every call of the last step still ran


def test_max_tokens_per_step(shell, k2env):
    k2env.add(Reply(reasoning="x" * 4000, content="never reached"))
    run = k2nb.run("think a lot", shell=shell, max_tokens=200)
    assert k2env.requests[0]["max_tokens"] == 200
    assert run.stop_reason == "max_tokens"
    assert "--max-tokens 200" in run.note
    assert run.steps[0].reasoning and len(run.steps[0].reasoning) < 4000


def test_defaults_sent_to_server(shell, k2env):
    k2env.add(Reply(reasoning="hmm", content="hi"))
    k2nb.run("hello", shell=shell)
    body = k2env.requests[0]
    assert body["temperature"] == 1.0 and body["max_tokens"] == 32000
    assert body["tool_choice"] == "auto" and body["stream"] is True
    assert body["model"] == "kimi-k2-thinking"
    names = [t["function"]["name"] for t in body["tools"]]
    assert names[:2] == ["code_interpreter", "read_output"]
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][-1] == {"role": "user", "content": "hello"}


def test_namespace_summary_in_system_prompt(shell, k2env):
    import pandas as pd

    shell.user_ns["sales"] = pd.DataFrame({"month": ["a"], "total": [1]})
    shell.user_ns["secret_number"] = 12345
    k2env.add(Reply(reasoning="r", content="ok"))
    k2nb.run("hi", shell=shell)
    system = k2env.requests[0]["messages"][0]["content"]
    assert "- sales: pandas DataFrame 1×2 (columns: month, total)" in system
    assert "secret_number: int" in system and "12345" not in system


def test_events_and_usage(shell, k2env):
    seen = []
    k2env.add(Reply(reasoning="abc" * 20, tool_calls=[Call("code_interpreter", {"code": "1"})]),
              Reply(reasoning="done", content="answer text"))
    run = k2nb.run("go", shell=shell, subscribers=[seen.append])
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    reasoning = "".join(e.text for e in seen if isinstance(e, ev.ReasoningDelta) and e.step == 1)
    assert reasoning == "abc" * 20  # no delta lost
    started = [e for e in seen if isinstance(e, ev.ToolCallStarted)]
    assert started[0].code == "1"
    finished = [e for e in seen if isinstance(e, ev.ToolCallFinished)]
    assert finished[0].observation == "1" and finished[0].status == "ok"
    assert kinds.index("ToolCallStarted") < kinds.index("ToolCallFinished")
    assert run.usage.total_tokens == sum(s.usage.total_tokens for s in run.steps) > 0
    assert run.steps[0].usage.completion_tokens == 15 + 3  # reasoning + arguments, as billed


def test_reasoning_field_detected_from_vllm_style_server(shell, monkeypatch, tmp_path):
    with ScriptedServer(api_key="k", reasoning_field="reasoning") as srv:
        monkeypatch.setenv("K2NB_BASE_URL", srv.base_url)
        monkeypatch.setenv("K2NB_API_KEY", "k")
        srv.add(Reply(reasoning="vllm thinks", tool_calls=[Call("code_interpreter", {"code": "2"})]),
                Reply(reasoning="more", content="done"))
        run = k2nb.run("go", shell=shell)
        assert run.ok, run.note
        assistant = [m for m in srv.requests[1]["messages"] if m["role"] == "assistant"][0]
        assert assistant["reasoning"] == "vllm thinks" and "reasoning_content" not in assistant
        assert srv.errors == []


def test_server_rejects_missing_reasoning(k2env):
    """The strict server enforces Moonshot's rule, so the tests above really check the echo."""
    import httpx

    body = {"model": "kimi-k2-thinking", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "functions.f:0", "type": "function",
             "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions.f:0", "content": "1"}]}
    response = httpx.post(k2env.base_url + "/chat/completions", json=body,
                          headers={"Authorization": "Bearer sk-test-0123456789abcdef"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "thinking is enabled but reasoning_content is missing in assistant tool call message "
        "at index 1")


def test_stream_cut_mid_step_is_retried_without_duplicating_calls(shell, k2env):
    k2env.add(
        Reply(reasoning="first try " * 10, tool_calls=[Call("code_interpreter", {"code": "x"})],
              cut_after=3),
        Reply(reasoning="second try", tool_calls=[
            Call("code_interpreter", {"code": "counter = globals().get('counter', 0) + 1"})]),
        Reply(reasoning="r", content="done"),
    )
    notices = []
    run = k2nb.run("go", shell=shell, subscribers=[
        lambda e: notices.append(e.text) if isinstance(e, ev.Notice) else None])
    assert run.ok and shell.user_ns["counter"] == 1
    assert run.steps[0].reasoning == "second try"
    assert any("cut" in n and "Retrying step 1" in n for n in notices), notices


@pytest.mark.parametrize("bad", [{"max_steps": 0}, {"temperature": 5}, {"max_steps": "many"}])
def test_bad_options_are_explained(shell, k2env, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        k2nb.run("x", shell=shell, **bad)


def test_usage_from_choices_only(shell, monkeypatch):
    """Moonshot reports usage in choices[0].usage of the last chunk, with no top-level chunk."""
    with ScriptedServer(api_key="k", top_level_usage=False) as srv:
        monkeypatch.setenv("K2NB_BASE_URL", srv.base_url)
        monkeypatch.setenv("K2NB_API_KEY", "k")
        srv.add(Reply(reasoning="r" * 40, content="c" * 40))
        run = k2nb.run("go", shell=shell)
        assert run.usage.completion_tokens == 20 and run.usage.prompt_tokens > 0


def test_a_run_without_an_answer_ends_with_the_advice():
    """A tiny local model that stops without an answer: the run's last line says how to get a
    capable model (the advice), not only why it stopped."""
    from k2nb.agent.loop import Agent, Budgets
    from k2nb.core.backend import StepResult
    from k2nb.core.messages import AssistantMessage
    from k2nb.tools.registry import Toolbox

    class Says:
        name, model, context_window = "local", "tiny", 8192

        def __init__(self, text: str):
            self.text = text

        def stream(self, request):
            yield StepResult(AssistantMessage(self.text), "stop")

    run = Agent(Says(""), Toolbox([]), budgets=Budgets(max_steps=2),
                advice="Set a key.").run("What is 2 + 2?")
    assert run.answer == "" and run.note.endswith("Set a key.")
    assert Agent(Says("4"), Toolbox([]), advice="Set a key.").run("What is 2 + 2?").note == ""
