"""Tiny mixture-of-experts models built offline (random weights, a tokenizer trained here), each
built once per test session and shared by the local-backend tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_moe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~1M-parameter DeepSeek-V3-layout MoE with the K2 chat template (saved in bf16)."""
    pytest.importorskip("torch", reason="the local extra (torch, transformers) is not installed")
    from k2nb.testing.tiny_moe import build_tiny_moe

    return build_tiny_moe(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def bench_moe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~40M parameters, 94% of them routed experts, like real MoEs (bf16 checkpoint ≈ 80 MB)."""
    pytest.importorskip("torch", reason="the local extra (torch, transformers) is not installed")
    from k2nb.testing.tiny_moe import build_tiny_moe

    return build_tiny_moe(tmp_path_factory.mktemp("moe") / "model", preset="bench")


# --- a tiny model trained to act --------------------------------------------------------------

#: The trained call's code acts twice, so a test sees whether any of it ran: it writes a file
#: in the working directory and sets ``x``.
TRAINED_PROMPT = "Set x to 42."
TRAINED_CODE = 'open("ran.txt", "w").write("ran")\nx = 6 * 7\nprint(x)'


@dataclass(frozen=True)
class TrainedCaller:
    """A tiny MoE trained to answer :attr:`prompt` with one K2 ``code_interpreter`` call whose
    code is :attr:`code` (it writes ``ran.txt`` and sets ``x = 42``), then to answer "x is 42."
    once it has read the observation."""

    path: Path
    prompt: str
    code: str
    #: the keyword arguments of ``k2nb.run`` the model was trained under (the first step's
    #: request must be the one it learnt)
    run_options: dict[str, Any]
    #: the exact text of its first turn, from ``<think>`` to ``<|im_end|>``
    first_turn: str


class ScriptedBackend:
    """Replies with the scripted turns and keeps every request the loop sent."""

    name = "local"
    model = "scripted"

    def __init__(self, replies: list[Any]):
        self.replies = list(replies)
        self.requests: list[Any] = []

    def stream(self, request: Any) -> Iterator[Any]:
        from k2nb.core.backend import StepResult

        self.requests.append(request)
        message = self.replies.pop(0)
        yield StepResult(message, "tool_calls" if message.tool_calls else "stop")


def fresh_shell() -> Any:
    """The process's IPython shell, its namespace emptied."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.reset(new_session=True)
    return shell


@pytest.fixture(scope="session")
def trained_caller(tmp_path_factory: pytest.TempPathFactory) -> TrainedCaller:
    """Trained once per session (about 100 s on one core): the model learns the exact requests
    the agent loop sends (recorded with a scripted backend first), behind a few random system
    prompts as well."""
    pytest.importorskip("torch", reason="the local extra (torch, transformers) is not installed")
    import k2nb
    from k2nb.agent.prompt import BASE
    from k2nb.backends.local.formats.k2 import render_assistant_turn
    from k2nb.core.messages import AssistantMessage
    from k2nb.testing.tiny_moe import Example, build_tiny_moe, tool_call_reply, train_tool_caller

    call = tool_call_reply("code_interpreter", {"code": TRAINED_CODE}, reasoning="Compute x.")
    answer = AssistantMessage(content="x is 42.", reasoning="It printed 42.")
    options = dict(max_steps=3, max_tokens=120, quiet=True)
    work = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        recorder = ScriptedBackend([call, answer])
        k2nb.run(TRAINED_PROMPT, backend=recorder, shell=fresh_shell(), **options)
    first, second = recorder.requests
    examples = [
        Example(first.messages, call, first.tools),
        Example(second.messages, answer, second.tools),
    ]
    corpus = [
        BASE,
        json.dumps(first.tools),
        *(m.content for m in second.messages if isinstance(m.content, str)),
    ]
    path = build_tiny_moe(work / "model", corpus=corpus, vocab_size=2048)
    stats = train_tool_caller(path, examples, seconds=900)  # ~100 s on an idle core
    assert stats["reproduced"], f"the tiny model did not learn its replies: {stats}"
    turn = render_assistant_turn(call.reasoning, call.content,
                                 [(c.id, c.arguments) for c in call.tool_calls])
    return TrainedCaller(path, TRAINED_PROMPT, TRAINED_CODE, options, turn)
