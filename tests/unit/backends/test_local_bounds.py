"""A local step is bounded and visible: its budget fits the device, it reports progress while it
generates, and a step that loops, runs out of time or says nothing ends with a notice that the
agent loop shows. On a tiny random MoE (random weights fall into token cycles within a few
hundred tokens, like a stuck small model)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip(
    "torch", reason="the local extra (torch, transformers, bitsandbytes) is not installed"
)
pytest.importorskip("bitsandbytes", reason="the local extra is not installed")

import k2nb
from k2nb.backends.local import LocalBackend
from k2nb.backends.local.backend import default_step_tokens
from k2nb.core import events as ev
from k2nb.core.backend import ModelRequest, StepResult
from k2nb.core.messages import SystemMessage, UserMessage
from k2nb.testing.tiny_moe import CODE_TOOL


def load(tiny_moe: Path, **options) -> LocalBackend:
    return LocalBackend(str(tiny_moe), quantization=None, compute_dtype="float32",
                        temperature=0, record_experts=False, progress=False, **options)


def request(max_tokens: int) -> ModelRequest:
    return ModelRequest([SystemMessage("You are helpful."), UserMessage("Set x to 42.")],
                        [CODE_TOOL], max_tokens=max_tokens, temperature=1.0)


def timed(stream) -> list[tuple[float, object]]:
    return [(time.monotonic(), item) for item in stream]


def test_the_default_budget_is_a_few_thousand_tokens_on_a_cpu_and_fits_the_window(
        tiny_moe: Path) -> None:
    assert default_step_tokens("cpu", 131_072) == 4_096
    assert default_step_tokens("cuda", 131_072) == 16_384
    assert default_step_tokens("cpu", 8_192) == 2_048  # a quarter of a small window
    backend = load(tiny_moe)
    assert backend.device == "cpu" and backend.device_name == "the CPU"
    assert backend.step_tokens == 4_096  # its window is 16,384
    assert load(tiny_moe, step_tokens=300).step_tokens == 300


def test_progress_comes_every_half_second_and_the_time_limit_ends_the_step(
        tiny_moe: Path) -> None:
    backend = load(tiny_moe, stop_repetition=False, step_seconds=1.6)
    started = time.monotonic()
    items = timed(backend.stream(request(10_000)))
    took = items[-1][0] - started
    progress = [(at, item) for at, item in items if isinstance(item, ev.GenerationProgress)]
    assert 1.6 <= took < 4.0
    assert 2 <= len(progress) <= 4  # at 0.5, 1.0 and 1.5 s
    counts = [item.tokens for _, item in progress]
    assert counts == sorted(counts) and counts[-1] > 0
    assert all(item.budget == 10_000 for _, item in progress)
    assert progress[-1][1].tokens_per_s > 0
    result = items[-1][1]
    assert isinstance(result, StepResult)
    assert result.notice.startswith(f"{backend.model} had not finished this step after 1.6 s "
                                    "(the time limit per step on the CPU)")
    assert result.usage.completion_tokens < 10_000
    assert backend._active is None  # the worker has ended


def test_a_looping_step_ends_early_with_a_notice_that_quotes_the_loop(tiny_moe: Path) -> None:
    backend = load(tiny_moe)
    backend.advice = "Try a bigger model."
    result = list(backend.stream(request(5_000)))[-1]
    assert result.usage.completion_tokens < 1_000  # not the 5,000 the budget allowed
    assert result.notice.startswith(f"{backend.model} was repeating itself (the same ")
    assert "over and over), so k2nb ended the step there. Try a bigger model." in result.notice
    assert backend._active is None
    # Without the guard the same step runs on (the guard, not the model, ended it).
    unguarded = load(tiny_moe, stop_repetition=False)
    assert list(unguarded.stream(request(1_500)))[-1].usage.completion_tokens == 1_500


def test_a_turn_with_nothing_in_it_says_so(tiny_moe: Path) -> None:
    backend = load(tiny_moe)
    first = list(backend.stream(request(2)))[-1]
    assert first.usage.completion_tokens == 2 and first.notice == ""
    # Make the model's first token (greedy, so the same again) end its turn: an empty turn.
    first_token = backend._kv.ids[len(backend.render(request(2))[0])]  # cached: all but the last
    backend.end_ids = [*backend.end_ids, first_token]
    backend.reset_cache()
    result = list(backend.stream(request(50)))[-1]
    assert result.message.content == "" and not result.message.tool_calls
    assert result.notice == f"{backend.model} ended its turn without writing anything."


def test_the_loop_forwards_progress_and_shows_the_notice_as_a_warning(
        tiny_moe: Path, shell) -> None:
    backend = load(tiny_moe, stop_repetition=False, step_seconds=1.2)
    seen: list = []
    run = k2nb.run("Set x to 42.", backend=backend, shell=shell, subscribers=[seen.append],
                   max_steps=1, views=False, replay=False)
    progress = [e for e in seen if isinstance(e, ev.GenerationProgress)]
    assert progress and all(e.run_id == run.run_id and e.step == 1 for e in progress)
    notices = [e for e in seen if isinstance(e, ev.Notice) and e.level == "warning"]
    assert len(notices) == 1 and notices[0].step == 1
    assert notices[0].text.startswith(f"{backend.model} had not finished this step after 1.2 s")
    finished = next(e for e in seen if isinstance(e, ev.StepFinished))
    assert seen.index(notices[0]) < seen.index(finished)
