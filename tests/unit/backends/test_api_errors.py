"""API failures end in messages a user can act on, with the run and namespace kept."""

from __future__ import annotations

import k2nb
from k2nb.testing import Fail, Reply


def test_wrong_key(shell, k2env, monkeypatch):
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-wrong-wrong-wrong")
    run = k2nb.run("hi", shell=shell)
    assert run.stop_reason == "error"
    assert run.note.startswith(f"Invalid API key for {k2env.base_url} (HTTP 401)")
    assert "MOONSHOT_API_KEY" in run.note or "K2NB_API_KEY" in run.note
    assert "sk-wrong" not in run.note


def test_missing_key(shell, k2env, monkeypatch):
    monkeypatch.delenv("MOONSHOT_API_KEY")
    run = k2nb.run("hi", shell=shell)
    assert run.stop_reason == "error" and run.note.startswith("No API key for")
    assert k2env.requests == []


def test_unknown_model_lists_offered_models(shell, k2env):
    run = k2nb.run("hi", shell=shell, model="kimi-k3-imaginary")
    assert run.stop_reason == "error"
    assert "'kimi-k3-imaginary' is not available" in run.note
    assert "kimi-k2-thinking, kimi-k2-thinking-turbo" in run.note


def test_rate_limit_is_retried_honouring_retry_after(shell, k2env):
    k2env.add(Fail(429, "rate_limit_reached_error", "slow down", retry_after=0.2),
              Fail(503, "engine_overloaded_error", "busy"),
              Reply(reasoning="r", content="finally"))
    run = k2nb.run("hi", shell=shell)
    assert run.ok and run.answer == "finally"
    assert len(k2env.requests) == 3


def test_quota_exhausted_is_not_retried(shell, k2env):
    k2env.add(Fail(429, "exceeded_current_quota_error", "Your account quota is exhausted"),
              Reply(content="never"))
    run = k2nb.run("hi", shell=shell)
    assert run.stop_reason == "error" and "not retried" in run.note
    assert "quota is exhausted" in run.note
    assert len(k2env.requests) == 1
