"""The local backend on a tiny random DeepSeek-V3-layout MoE: streaming, stopping, KV reuse, experts.

Everything loads through the real ``from_pretrained`` (+ ``BitsAndBytesConfig``) path from a folder
written by :func:`k2nb.testing.tiny_moe.build_tiny_moe`; only the weights are random.
"""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip(
    "torch", reason="the local extra (torch, transformers, bitsandbytes) is not installed"
)
pytest.importorskip("bitsandbytes", reason="the local extra is not installed")

from k2nb.core.messages import AssistantMessage, SystemMessage, ToolMessage, UserMessage
from k2nb.core.backend import Backend, ModelRequest, StepResult
from k2nb.core.events import ContentDelta
from k2nb.backends.local import LocalBackend
from k2nb.testing.tiny_moe import CODE_TOOL

TOOLS = [CODE_TOOL]


@pytest.fixture(scope="module")
def exact(tiny_moe: Path) -> LocalBackend:
    """fp32, unquantized, greedy: outputs can be compared token for token."""
    return LocalBackend(
        str(tiny_moe), quantization=None, compute_dtype="float32", temperature=0, progress=False
    )


@pytest.fixture(scope="module")
def fresh(tiny_moe: Path) -> LocalBackend:
    """Like ``exact`` but encoding every prompt from scratch: the reference for cache reuse."""
    return LocalBackend(
        str(tiny_moe), quantization=None, compute_dtype="float32", temperature=0,
        reuse_cache=False, record_experts=False, progress=False,
    )


@pytest.fixture(scope="module")
def endless(tiny_moe: Path) -> LocalBackend:
    """Generates as long as asked: random weights fall into short token cycles, which the
    repetition guard would end after a few hundred tokens."""
    return LocalBackend(
        str(tiny_moe), quantization=None, compute_dtype="float32", temperature=0,
        stop_repetition=False, record_experts=False, progress=False,
    )


def request(*messages, max_tokens: int = 12) -> ModelRequest:
    return ModelRequest(list(messages), TOOLS, max_tokens=max_tokens, temperature=1.0)


def conversation() -> list:
    return [SystemMessage("You are helpful."), UserMessage("Set x to 42.")]


def test_is_a_backend_and_loads_4bit_with_experts_quantized(tiny_moe: Path) -> None:
    backend = LocalBackend(str(tiny_moe), temperature=0, progress=False)
    assert isinstance(backend, Backend)
    assert backend.name == "local" and backend.model == str(tiny_moe)
    assert backend.format.name == "k2"  # chosen from the tokenizer's special tokens
    report = backend.load_report
    assert report.experts_quantized == 2  # both MoE layers
    assert report.parameter_bytes.get("uint8", 0) > report.parameter_bytes.get("bfloat16", 0)
    items = list(backend.stream(request(*conversation())))
    assert isinstance(items[-1], StepResult) and all(
        not isinstance(i, StepResult) for i in items[:-1]
    )
    assert items[-1].usage.completion_tokens == 12 and items[-1].finish_reason == "length"


def test_streamed_deltas_add_up_to_the_final_message(exact: LocalBackend) -> None:
    exact.reset_cache()
    items = list(exact.stream(request(*conversation(), max_tokens=30)))
    result = items[-1]
    text = "".join(i.text for i in items if isinstance(i, ContentDelta))
    assert text.strip() == result.message.content
    assert result.usage.prompt_tokens == len(exact.render(request(*conversation()))[0])


def test_next_step_encodes_only_new_tokens_and_matches_a_fresh_encode(
    exact: LocalBackend, fresh: LocalBackend
) -> None:
    exact.reset_cache()
    history = conversation()
    first = list(exact.stream(request(*history)))[-1]
    history += [first.message, UserMessage("Now add one.")]
    reused = list(exact.stream(request(*history)))[-1]
    again = list(fresh.stream(request(*history)))[-1]
    stats = exact.step_stats[-1]
    assert stats.reused_tokens >= exact.step_stats[-2].prompt_tokens  # the whole first prompt
    assert stats.encoded_tokens < stats.prompt_tokens // 2
    assert reused.usage.cached_tokens == stats.reused_tokens
    assert reused.message == again.message  # fp32: identical to encoding everything again


def test_edited_history_cuts_the_cache_back_and_stays_correct(
    exact: LocalBackend, fresh: LocalBackend
) -> None:
    exact.reset_cache()
    call = AssistantMessage("", "plan", [])
    history = conversation() + [
        call,
        UserMessage("a long observation " * 20),
        call,
        UserMessage("go on"),
    ]
    list(exact.stream(request(*history)))
    edited = history[:4] + [UserMessage("(hidden)")] + history[5:]
    prefix = len(exact.render(request(*history[:3]))[0])
    result = list(exact.stream(request(*edited)))[-1]
    stats = exact.step_stats[-1]
    assert prefix - 5 <= stats.reused_tokens < len(exact.render(request(*history))[0])
    assert result.message == list(fresh.stream(request(*edited)))[-1].message


def test_closing_the_stream_stops_generation_within_a_second(endless: LocalBackend) -> None:
    endless.reset_cache()
    stream = endless.stream(request(*conversation(), max_tokens=100_000))
    next(stream)
    time.sleep(0.2)
    generation = endless._active
    assert generation is not None and not generation.join(timeout=0)  # still generating
    started = time.perf_counter()
    stream.close()
    assert time.perf_counter() - started < 1.0
    assert generation.join(timeout=0) and endless._active is None
    assert endless.step_stats[-1].generated_tokens < 5_000
    # The backend is usable right away, and the partial step's cache was kept consistent.
    assert (
        list(endless.stream(request(*conversation(), max_tokens=3)))[-1].usage.completion_tokens == 3
    )


def test_keyboard_interrupt_stops_generation_within_a_second(endless: LocalBackend) -> None:
    endless.reset_cache()
    timer = threading.Timer(0.5, _thread.interrupt_main)
    seen = []
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        for item in endless.stream(request(*conversation(), max_tokens=100_000)):
            seen.append(time.perf_counter())
    interrupted = time.perf_counter()
    assert seen and endless._active is None  # the worker thread has ended
    assert interrupted - seen[-1] < 1.0


def test_router_choices_are_counted_per_step_and_layer(exact: LocalBackend) -> None:
    exact.reset_cache()
    before = len(exact.expert_counts)
    list(exact.stream(request(*conversation(), max_tokens=10)))
    usage = exact.expert_counts[before]
    top_k = exact.lm.config.num_experts_per_tok
    assert len(usage.layers) == 2 and usage.num_experts == exact.lm.config.n_routed_experts
    prompt_tokens = exact.step_stats[-1].encoded_tokens
    for layer in range(2):
        assert sum(usage.prompt[layer]) == prompt_tokens * top_k
        # the last sampled token is never fed back, so 10 generated tokens = 9 decode forwards
        assert sum(usage.generated[layer]) == 9 * top_k


def test_expert_heat_map_draws_layers_by_experts(exact: LocalBackend) -> None:
    pytest.importorskip("matplotlib")
    from k2nb.backends.local.experts import expert_heatmap

    figure = expert_heatmap(exact.expert_counts[-3:])
    image = figure.axes[0].images[0].get_array()
    assert image.shape == (2, exact.lm.config.n_routed_experts)
    assert image.sum() == sum(sum(map(sum, u.generated)) for u in exact.expert_counts[-3:])


def test_tool_results_render_as_k2_return_blocks(exact: LocalBackend) -> None:
    from k2nb.core.messages import ToolCall

    call = ToolCall("functions.code_interpreter:0", "code_interpreter", '{"code": "x = 42"}')
    _, text = exact.render(
        request(
            *conversation(),
            AssistantMessage("", "r", [call]),
            ToolMessage(call.id, call.name, "done"),
        )
    )
    assert (
        "<|im_system|>tool<|im_middle|>## Return of functions.code_interpreter:0\ndone<|im_end|>"
        in text
    )
    assert text.endswith("<|im_assistant|>assistant<|im_middle|>")
