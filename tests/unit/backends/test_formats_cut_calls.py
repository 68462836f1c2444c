"""A tool call is complete only when its format's own end marker closes it (issue 15).

A complete turn with one call that would write a file and set ``x`` is cut at every character —
as a token budget, an end-of-turn token or a stop would cut it — and streamed in chunks of any
size. Before the end marker (``<|tool_call_end|>``, ``</tool_call>``, the closing ```` ``` ````)
the parser returns the call as an :class:`UnclosedToolCall`, which the toolbox refuses with an
error observation however repairable its JSON looks; from the marker on it is an ordinary call.
Either way the stream carries exactly the arguments the message holds, so the user sees the
partial call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

import k2nb
from k2nb.backends.local.formats import FencedCodeParser, HermesParser, K2Parser
from k2nb.core.backend import ModelRequest, StepResult
from k2nb.core.events import ToolCallDelta
from k2nb.core.messages import ToolCall
from k2nb.core.tool import UnclosedToolCall
from k2nb.tools.registry import FunctionTool, Toolbox

CODE = 'open("ran.txt", "w").write("ran")\nx = 6 * 7\nprint(x)'
ARGUMENTS = json.dumps({"code": CODE})

#: format → (parser class, a complete turn, its call's end marker)
TURNS: dict[str, tuple[type, str, str]] = {
    "k2": (K2Parser,
           "<think>Compute x.</think>Running it.<|tool_calls_section_begin|><|tool_call_begin|>"
           f"functions.code_interpreter:0<|tool_call_argument_begin|>{ARGUMENTS}"
           "<|tool_call_end|><|tool_calls_section_end|><|im_end|>",
           "<|tool_call_end|>"),
    "hermes": (HermesParser,
               "<think>\nCompute x.\n</think>\n\nRunning it.\n<tool_call>\n"
               f'{{"name": "code_interpreter", "arguments": {ARGUMENTS}}}\n</tool_call><|im_end|>',
               "</tool_call>"),
    "fenced": (FencedCodeParser,
               f"Running it.\n```python\n{CODE}\n```\nThe output is 42 (invented).",
               "```"),
}


def code_tool() -> FunctionTool:
    def code_interpreter(code: str) -> str:
        """Run Python."""
        raise AssertionError("an unclosed call was run")

    return FunctionTool.from_function(code_interpreter, side_effects=True)


def closed_from(text: str, marker: str) -> int:
    """The shortest cut that holds the whole end marker."""
    return text.rindex(marker) + len(marker)


def parse(parser: Any, text: str, chunk: int) -> tuple[list, Any]:
    deltas = []
    for at in range(0, len(text), chunk):
        deltas += parser.feed(text[at:at + chunk])
    deltas += parser.flush()
    return deltas, parser.finish()


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 40))
@example(1)
def test_a_call_cut_before_its_end_marker_is_never_run(chunk: int) -> None:
    toolbox = Toolbox([code_tool()])
    for name, (make, text, marker) in TURNS.items():
        complete = closed_from(text, marker)
        for cut in range(len(text) + 1):
            deltas, message = parse(make(), text[:cut], chunk)
            where = f"{name}, cut at {cut}: {text[:cut][-30:]!r}"
            streamed = "".join(d.arguments or "" for d in deltas if isinstance(d, ToolCallDelta))
            assert streamed == "".join(c.arguments for c in message.tool_calls), where
            if cut >= complete:
                [call] = message.tool_calls
                assert type(call) is ToolCall, where
                assert json.loads(call.arguments)["code"].rstrip() == CODE, where
                continue
            assert len(message.tool_calls) <= 1, where
            for call in message.tool_calls:
                assert isinstance(call, UnclosedToolCall) and call.end_marker == marker, where
                tool, values, error, _ = toolbox.prepare(call)
                assert values is None and error is not None and marker in error, where


class RawTurnBackend:
    """Parses fixed raw model text the way the local backend does when a turn ends at an
    end-of-turn token (not by the budget): the message and ``tool_calls`` when it holds any."""

    name = "local"
    model = "raw-text"

    def __init__(self, *turns: str):
        self.turns = list(turns)
        self.requests: list[ModelRequest] = []

    def stream(self, request: ModelRequest) -> Iterator[Any]:
        self.requests.append(request)
        parser = K2Parser()
        yield from parser.feed(self.turns.pop(0))
        yield from parser.flush()
        message = parser.finish()
        yield StepResult(message, "tool_calls" if message.tool_calls else "stop")


def test_a_call_left_open_at_the_end_of_the_turn_is_an_error_the_model_reads(
    shell: Any, tmp_path: Path
) -> None:
    """``{"code": "..."}<|im_end|>`` without ``<|tool_call_end|>``: its JSON is whole, yet it is
    not run — the model is told what was missing — while its next, closed call runs."""
    section = ("<think>Compute x.</think><|tool_calls_section_begin|><|tool_call_begin|>"
               "functions.code_interpreter:{}<|tool_call_argument_begin|>{}")
    opened = section.format(0, ARGUMENTS) + "<|im_end|>"
    closed = (section.format(1, json.dumps({"code": "y = 1"}))
              + "<|tool_call_end|><|tool_calls_section_end|><|im_end|>")
    backend = RawTurnBackend(opened, closed, "<think>Done.</think>y is 1.<|im_end|>")
    run = k2nb.run("Set y to 1.", backend=backend, shell=shell, max_steps=4, quiet=True)
    first, second = run.steps[0].tool_calls[0], run.steps[1].tool_calls[0]
    assert first.is_error and first.status == "error"
    assert first.observation.startswith("This `code_interpreter` call was not run: your turn "
                                        "ended before the call's end marker `<|tool_call_end|>`")
    told = [m for m in backend.requests[1].messages if m.role == "tool"]
    assert told[0].content == first.observation
    assert second.status == "ok" and shell.user_ns["y"] == 1
    assert "x" not in shell.user_ns and not (tmp_path / "ran.txt").exists()
    assert run.stop_reason == "answered" and run.answer == "y is 1."
