"""Fenced ```python blocks as code_interpreter actions, for models without tool calling."""

from __future__ import annotations

import json

import pytest

from k2nb.core.messages import AssistantMessage, SystemMessage, ToolCall, ToolMessage, UserMessage
from k2nb.core.events import ContentDelta, ToolCallDelta
from k2nb.core.tool import UnclosedToolCall
from k2nb.backends.local.formats import FencedCodeFormat, FencedCodeParser, detect_format


def parse(text: str, chunk: int = 10_000, **options):
    parser = FencedCodeParser(**options)
    deltas = []
    for i in range(0, len(text), chunk):
        deltas += parser.feed(text[i : i + chunk])
        if parser.done:
            break
    return deltas, parser.finish(), parser


@pytest.mark.parametrize("chunk", [1, 2, 5, 10_000])
def test_first_python_block_is_a_call_and_ends_the_turn(chunk: int) -> None:
    text = 'I will compute it.\n```python\nx = 6 * 7\nprint("a`b", x)\n```\nThe output is 42 (invented).'
    deltas, message, parser = parse(text, chunk)
    assert parser.done
    assert message.content == "I will compute it."
    assert len(message.tool_calls) == 1 and message.tool_calls[0].name == "code_interpreter"
    assert json.loads(message.tool_calls[0].arguments) == {"code": 'x = 6 * 7\nprint("a`b", x)\n'}
    streamed = "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta))
    assert json.loads(streamed) == json.loads(message.tool_calls[0].arguments)
    assert "invented" not in "".join(d.text for d in deltas if isinstance(d, ContentDelta))


def test_other_languages_stay_text() -> None:
    _, message, _ = parse("Run:\n```bash\nls\n```\nand\n```py\nprint(2)\n```\n", 3)
    assert "```bash\nls\n```" in message.content
    assert json.loads(message.tool_calls[0].arguments)["code"] == "print(2)\n"


def test_inline_backticks_mid_line_are_not_a_fence() -> None:
    _, message, _ = parse("Use ```python``` inline, then stop.", 2)
    assert message.tool_calls == [] and "inline" in message.content


def test_unclosed_block_at_token_limit_is_shown_as_valid_json_and_unclosed() -> None:
    parser = FencedCodeParser()
    deltas = parser.feed("```python\nfor i in range(3):\n    print(i)") + parser.flush()
    message = parser.finish()
    assert json.loads(message.tool_calls[0].arguments) == {
        "code": "for i in range(3):\n    print(i)"
    }
    assert isinstance(message.tool_calls[0], UnclosedToolCall)  # shown, never run
    assert message.tool_calls[0].end_marker == "```"
    streamed = "".join(d.arguments or "" for d in deltas if isinstance(d, ToolCallDelta))
    assert streamed == message.tool_calls[0].arguments


def test_without_code_interpreter_blocks_are_plain_text() -> None:
    _, message, _ = parse("```python\nprint(1)\n```\nbye", enabled=False)
    assert message.tool_calls == [] and message.content.endswith("bye")


def test_history_shows_code_to_the_model_and_observations_as_user_turns() -> None:
    fmt = FencedCodeFormat()
    call = ToolCall("call_0", "code_interpreter", json.dumps({"code": "print(1)"}))
    rendered = fmt.template_messages(
        [
            SystemMessage("s"),
            UserMessage("q"),
            AssistantMessage("Let me run it.", "", [call]),
            ToolMessage("call_0", "code_interpreter", "1"),
        ]
    )
    assert rendered[2] == {
        "role": "assistant",
        "content": "Let me run it.\n\n```python\nprint(1)\n```",
    }
    assert rendered[3] == {"role": "user", "content": "Output of the code:\n1"}
    tools = [{"type": "function", "function": {"name": "code_interpreter"}}]
    assert "```python" in fmt.system_addendum(tools) and fmt.template_tools(tools) is None


class _Tok:
    def __init__(self, vocab, template):
        self._vocab, self.chat_template = vocab, template

    def get_vocab(self):
        return self._vocab


def test_format_is_detected_from_tokens_and_template_not_the_name() -> None:
    assert detect_format(_Tok({"<|tool_calls_section_begin|>": 5}, "")).name == "k2"
    assert detect_format(_Tok({}, "{% if tools %}<tool_call>{% endif %}")).name == "hermes"
    assert detect_format(_Tok({"<|im_start|>": 1}, "{{ messages }}")).name == "fenced"
