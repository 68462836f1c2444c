"""The hermes format (<tool_call>{json}</tool_call>) of Qwen3-MoE, Granite and others."""

from __future__ import annotations

import json

import pytest

from k2nb.core.messages import AssistantMessage, ToolCall, ToolMessage, UserMessage
from k2nb.core.events import ContentDelta, ReasoningDelta, ToolCallDelta
from k2nb.core.tool import UnclosedToolCall
from k2nb.backends.local.formats import HermesFormat, HermesParser

QWEN = (
    "<think>\nI should look it up.\n</think>\n\nChecking.\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "code_interpreter", "arguments": {"code": "x = 1"}}\n</tool_call><|im_end|>'
)


def parse(text: str, chunk: int = 10_000, **options):
    parser = HermesParser(**options)
    deltas = []
    for i in range(0, len(text), chunk):
        deltas += parser.feed(text[i : i + chunk])
    return deltas, parser.finish()


@pytest.mark.parametrize("chunk", [1, 4, 9, 10_000])
def test_qwen_style_turn(chunk: int) -> None:
    deltas, message = parse(QWEN, chunk)
    assert message.reasoning == "\nI should look it up.\n"
    assert message.content == "Checking."
    assert [(c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("code_interpreter", {"code": "x = 1"}),
    ]
    assert len({c.id for c in message.tool_calls}) == 2
    assert "".join(d.text for d in deltas if isinstance(d, ReasoningDelta)) == message.reasoning
    assert "".join(d.text for d in deltas if isinstance(d, ContentDelta)).strip() == "Checking."
    named = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [d.name for d in named] == ["get_weather", "code_interpreter"]


def test_broken_json_is_repaired_or_kept() -> None:
    _, message = parse('<tool_call>{"name": "f", "arguments": {"a": 1,}</tool_call>')
    assert message.tool_calls[0].name == "f"
    assert json.loads(message.tool_calls[0].arguments) == {"a": 1}


def test_unclosed_call_at_token_limit_is_returned_as_written_and_unclosed() -> None:
    _, message = parse('<tool_call>{"name": "f", "arguments": {"a": 1, "b": "tw')
    call = message.tool_calls[0]
    assert isinstance(call, UnclosedToolCall) and call.end_marker == "</tool_call>"
    assert call.name == "f" and call.arguments == '{"a": 1, "b": "tw'  # not repaired


def test_history_renders_arguments_as_objects_for_templates() -> None:
    call = ToolCall("call_0", "f", '{"a": 1}')
    rendered = HermesFormat().template_messages(
        [UserMessage("q"), AssistantMessage("", "r", [call]), ToolMessage("call_0", "f", "out")]
    )
    assert rendered[1]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert rendered[1]["reasoning_content"] == "r"
    assert rendered[2] == {"role": "tool", "tool_call_id": "call_0", "name": "f", "content": "out"}
