"""Runs of any length: K2 works for 200–300 steps. The latest observation always reaches the
model; when the window fills up, older steps are compacted (summarised by the model in a side
request) and the run goes on; an interrupt during that request leaves a usable conversation;
a replay repeats the recorded compaction."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

import k2nb
from k2nb.core import events as ev
from k2nb.runs.transcript import read_run, read_transcript
from k2nb.testing import Reply, ScriptedServer
from k2nb.testing.long_run import LongRunModel

WINDOW = 262_144


@pytest.mark.slow
def test_299_steps_with_long_thinking_finish_under_a_strict_window(shell, monkeypatch):
    """Bar: ~4,000 characters of thinking per step, a server that enforces 262,144 tokens with
    its own count; the run ends with the model's answer and every step's observation reaches the
    model in the next request."""
    model = LongRunModel(steps=299, thinking=4000, output=4000)
    compactions: list[ev.ContextCompacted] = []
    with ScriptedServer([model] * 400, api_key="k", context_window=WINDOW) as server:
        monkeypatch.setenv("K2NB_BASE_URL", server.base_url)
        monkeypatch.setenv("K2NB_API_KEY", "k")
        run = k2nb.run("Check the data one step at a time.", shell=shell, max_steps=300,
                       views=False, subscribers=[lambda e: isinstance(e, ev.ContextCompacted)
                                                 and compactions.append(e)])
        refused = list(server.errors)
    assert run.ok, run.note
    assert run.answer == "Done after 299 steps: the data is consistent."
    assert len(run.steps) == 300 and model.missed == []
    assert compactions and model.summaries == len(compactions)
    assert model.largest_prompt <= WINDOW and refused == []
    first = compactions[0]
    assert first.first == 1 and first.last < first.step and first.tokens_after < first.tokens_before
    # The transcript keeps every summary, so the record (and a replay) has them.
    recorded = read_run(run.transcript_path)
    assert [c.summary for c in recorded.compactions] == [c.summary for c in compactions]


def small_window_run(shell, monkeypatch, tmp_path: Path, steps: int = 12, **server_options):
    """A run in a small window (12 steps of ~2,000 chars each in 8,000 tokens)."""
    model = LongRunModel(steps=steps, thinking=2000, output=2000)
    server = ScriptedServer([model] * 100, api_key="k", context_window=8_000, **server_options)
    monkeypatch.setenv("K2NB_BASE_URL", server.base_url)
    monkeypatch.setenv("K2NB_API_KEY", "k")
    return model, server


def test_compaction_keeps_the_strict_reasoning_rule_and_says_so(shell, monkeypatch, tmp_path):
    model, server = small_window_run(shell, monkeypatch, tmp_path)
    notices: list[str] = []
    with server:
        run = k2nb.run("Check the data.", shell=shell, max_steps=20, max_tokens=1000,
                       context_window=8_000, views=False,
                       subscribers=[lambda e: isinstance(e, ev.Notice) and notices.append(e.text)])
        assert server.errors == []  # the strict server accepted every request
        compacted = [b for b in server.requests if b.get("tools") and any(
            "were replaced by this summary you wrote" in (m.get("content") or "")
            for m in b["messages"])]
    assert run.ok and model.missed == [] and run.compactions
    assert any("summarising steps 1–" in n for n in notices)
    # After a compaction every kept tool-call step still carries its reasoning.
    for body in compacted:
        calls = [m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
        assert calls and all(m.get("reasoning_content") for m in calls)


def test_interrupt_during_the_compaction_request_leaves_a_usable_conversation(
        shell, monkeypatch, tmp_path):
    model, server = small_window_run(shell, monkeypatch, tmp_path)

    def slow_summary(body):
        if body.get("tools"):
            return model(body)
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        return Reply(reasoning="Summarising " * 400, content="never", delay=0.01)

    server.script = [slow_summary] * 100
    with server:
        run = k2nb.run("Check the data.", shell=shell, max_steps=20, max_tokens=1000,
                       context_window=8_000, views=False)
        assert run.stop_reason == "interrupted" and not run.compactions
        server.script = [Reply(reasoning="ok", content="still here")]
        after = k2nb.run("Are you still there?", shell=shell, max_tokens=1000,
                         context_window=8_000, views=False)
        assert server.errors == []
    assert after.ok and after.answer == "still here"
    assert [t.stop_reason for t in after.history] == ["interrupted"]
    assert "Check the data." in json.dumps(server.requests[-1]["messages"])


def test_replay_repeats_the_recorded_compaction(shell, monkeypatch, tmp_path):
    model, server = small_window_run(shell, monkeypatch, tmp_path)
    with server:
        recorded = k2nb.run("Check the data.", shell=shell, max_steps=20, max_tokens=1000,
                            context_window=8_000, views=False)
        requests = len(server.requests)
        replayed = k2nb.run("Check the data.", shell=shell, replay=recorded.run_id,
                            max_tokens=1000, context_window=8_000, views=False)
        assert len(server.requests) == requests  # no model was called
    assert recorded.compactions and replayed.ok and replayed.replay.matched
    assert [(c.step, c.first, c.last, c.summary) for c in replayed.compactions] == [
        (c.step, c.first, c.last, c.summary) for c in recorded.compactions]
    lines = list(read_transcript(replayed.transcript_path))
    assert any(line["type"] == "context_compacted" for line in lines)
