"""Random and adversarial raw model output never breaks the format parsers (K2, hermes, fenced).

Whatever the text and however it is split into stream chunks, a parser returns deltas and one
message; no streamed text is lost: the reasoning and content deltas add up to the message's text (a stray
``</think>`` may move already-streamed text from content to reasoning, never drop it).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from k2nb.core.events import ContentDelta, ReasoningDelta
from k2nb.backends.local.formats import FencedCodeParser, HermesParser, K2Parser

K2_PIECES = ["<think>", "</think>", "<|tool_calls_section_begin|>", "<|tool_call_section_begin|>",
             "<|tool_calls_section_end|>", "<|tool_call_begin|>", "<|tool_call_argument_begin|>",
             "<|tool_call_end|>", "<|im_end|>", "functions.code_interpreter:0", "functions.x:",
             '{"code": "print(1)"}', '{"code": ', '"', "}", "\n", "plain text ", "<|", "|>", "<"]
OTHER_PIECES = ["<tool_call>", "</tool_call>", '{"name": "code_interpreter", "arguments": ',
                '{"code": "1+1"}', "}", "```python\n", "```", "\n", "print(2)", "text ", "<think>",
                "</think>", "`", "<"]


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:])]


def check(parser, text: str, cuts: list[int]) -> None:
    deltas = []
    for piece in chunked(text, cuts):
        deltas += parser.feed(piece)
    deltas += parser.flush()  # what was held back (a possible marker, an unfinished line)
    message = parser.finish()
    assert isinstance(message.content, str) and isinstance(message.reasoning, str)
    for call in message.tool_calls:
        assert isinstance(call.name, str) and isinstance(call.arguments, str) and call.id
    streamed_reasoning = "".join(d.text for d in deltas if isinstance(d, ReasoningDelta))
    streamed_content = "".join(d.text for d in deltas if isinstance(d, ContentDelta))
    def squash(text: str) -> str:
        return "".join(text.split())

    assert squash(message.reasoning + message.content) == squash(
        streamed_reasoning + streamed_content)
    assert squash(streamed_reasoning) in squash(message.reasoning)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(K2_PIECES), max_size=20).map("".join) | st.text(max_size=120),
       st.lists(st.integers(0, 400), max_size=8))
def test_k2_parser_never_raises(text, cuts):
    check(K2Parser(), text, cuts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(OTHER_PIECES), max_size=16).map("".join) | st.text(max_size=120),
       st.lists(st.integers(0, 400), max_size=8))
def test_hermes_and_fenced_parsers_never_raise(text, cuts):
    check(HermesParser(), text, cuts)
    check(FencedCodeParser(), text, cuts)
