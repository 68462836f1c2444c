"""The K2 raw token format: every quirk of K2_PROTOCOL.md §3, at every streaming split."""

from __future__ import annotations

import json

import pytest

from k2nb.core.messages import AssistantMessage, SystemMessage, ToolCall, ToolMessage, UserMessage
from k2nb.core.events import ContentDelta, ReasoningDelta, ToolCallDelta
from k2nb.core.tool import UnclosedToolCall
from k2nb.backends.local.formats import K2_CHAT_TEMPLATE, K2Format, K2Parser

CANONICAL = (
    "<think> The user wants weather. </think>Let me check."
    "<|tool_calls_section_begin|>"
    '<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|>'
    '<|tool_call_begin|>functions.code_interpreter:1<|tool_call_argument_begin|>{"code": "x = 1"}<|tool_call_end|>'
    "<|tool_calls_section_end|><|im_end|>"
)


def parse(text: str, chunk: int = 10_000, **options) -> tuple[list, AssistantMessage]:
    parser = K2Parser(**options)
    deltas = []
    for i in range(0, len(text), chunk):
        deltas += parser.feed(text[i : i + chunk])
    return deltas, parser.finish()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 13, 10_000])
def test_canonical_output_parses_the_same_at_any_split(chunk: int) -> None:
    deltas, message = parse(CANONICAL, chunk)
    assert message.reasoning == " The user wants weather. "
    assert message.content == "Let me check."
    assert message.tool_calls == [
        ToolCall("functions.get_weather:0", "get_weather", '{"city": "Paris"}'),
        ToolCall("functions.code_interpreter:1", "code_interpreter", '{"code": "x = 1"}'),
    ]
    # The stream carries exactly what the message holds: no marker leaks into any delta.
    assert "".join(d.text for d in deltas if isinstance(d, ReasoningDelta)) == message.reasoning
    assert "".join(d.text for d in deltas if isinstance(d, ContentDelta)) == message.content
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert [(d.index, d.id, d.name) for d in calls if d.name] == [
        (0, "functions.get_weather:0", "get_weather"),
        (1, "functions.code_interpreter:1", "code_interpreter"),
    ]
    assert "".join(d.arguments for d in calls if d.index == 1) == '{"code": "x = 1"}'
    assert not any("<|" in getattr(d, "text", "") + getattr(d, "arguments", "") for d in deltas)


def test_reasoning_streams_before_the_call_is_complete() -> None:
    parser = K2Parser()
    assert parser.feed("<think>step one") == [ReasoningDelta("step one")]
    assert parser.feed(" and two</think>") == [ReasoningDelta(" and two")]


def test_tool_section_without_closing_think_ends_the_reasoning() -> None:
    _, message = parse(
        "<think>I need the weather<|tool_calls_section_begin|><|tool_call_begin|>functions.w:0"
        '<|tool_call_argument_begin|>{"q": 1}<|tool_call_end|><|tool_calls_section_end|><|im_end|>',
        chunk=4,
    )
    assert message.reasoning == "I need the weather"
    assert message.content == ""
    assert message.tool_calls == [ToolCall("functions.w:0", "w", '{"q": 1}')]


def test_singular_section_marker_variant_is_accepted() -> None:
    _, message = parse(
        "<think>x</think><|tool_call_section_begin|><|tool_call_begin|>functions.f:0"
        "<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_call_section_end|>"
    )
    assert message.tool_calls == [ToolCall("functions.f:0", "f", "{}")]


def test_output_without_think_is_plain_content() -> None:
    _, message = parse("The answer is 4.<|im_end|>")
    assert (message.reasoning, message.content, message.tool_calls) == ("", "The answer is 4.", [])


def test_closing_think_without_opener_means_the_template_opened_it() -> None:
    _, message = parse("reasoning first</think>\n\nthen the answer", chunk=3)
    assert message.reasoning == "reasoning first"
    assert message.content == "then the answer"


def test_arguments_that_are_not_json_are_kept_verbatim() -> None:
    _, message = parse(
        "<think></think><|tool_calls_section_begin|><|tool_call_begin|>functions.code_interpreter:0"
        "<|tool_call_argument_begin|>{'code': print(1)<|tool_call_end|><|tool_calls_section_end|>"
    )
    assert message.tool_calls[0].arguments == "{'code': print(1)"
    assert message.tool_calls[0].name == "code_interpreter"


def test_call_cut_off_by_the_token_limit_is_returned_unclosed() -> None:
    _, message = parse(
        "<think>a</think><|tool_calls_section_begin|><|tool_call_begin|>functions.f:0"
        '<|tool_call_argument_begin|>{"a": '
    )
    assert message.tool_calls == [UnclosedToolCall("functions.f:0", "f", '{"a": ')]
    assert message.tool_calls[0].end_marker == "<|tool_call_end|>"


def test_only_the_call_end_marker_closes_a_call() -> None:
    """A turn that ends (or moves on) without ``<|tool_call_end|>`` leaves its call unclosed."""
    _, message = parse(
        "<|tool_calls_section_begin|>"
        '<|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{"a": 1}<|tool_call_end|>'
        '<|tool_call_begin|>functions.g:1<|tool_call_argument_begin|>{"b": 2}'
        "<|tool_calls_section_end|><|im_end|>"
    )
    first, second = message.tool_calls
    assert type(first) is ToolCall and isinstance(second, UnclosedToolCall)


def test_text_after_end_of_turn_is_ignored_and_parser_reports_done() -> None:
    parser = K2Parser()
    parser.feed("<think>t</think>done<|im_end|>garbage")
    assert parser.done
    assert parser.finish().content == "done"


def test_missing_or_duplicate_ids_get_native_form_ids_counted_over_the_conversation() -> None:
    _, message = parse(
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}"
        "<|tool_call_end|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}"
        "<|tool_call_end|><|tool_calls_section_end|>",
        call_offset=5,
    )
    assert [c.id for c in message.tool_calls] == ["functions.f:0", "functions.f:6"]


def test_starts_in_reasoning_when_the_prompt_opened_think() -> None:
    _, message = parse("thinking</think>answer", starts_in_reasoning=True)
    assert (message.reasoning, message.content) == ("thinking", "answer")


def test_a_lone_less_than_sign_is_not_held_back_forever() -> None:
    parser = K2Parser()
    out = parser.feed("a < b")
    out += parser.feed(" and c")
    assert "".join(d.text for d in out) == "a < b and c"


def render(messages, tools=None) -> str:
    from jinja2 import Environment  # what transformers renders chat templates with

    env = Environment()
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    return env.from_string(K2_CHAT_TEMPLATE).render(
        messages=K2Format().template_messages(messages), tools=tools, add_generation_prompt=True
    )


def test_chat_template_renders_protocol_layout_exactly() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}]
    call = ToolCall("functions.f:0", "f", '{"a": 1}')
    text = render(
        [
            SystemMessage("sys"),
            UserMessage("q1"),
            AssistantMessage("a1", "old thoughts"),
            UserMessage("q2"),
            AssistantMessage("", "plan", [call]),
            ToolMessage("functions.f:0", "f", "result"),
        ],
        tools,
    )
    assert text == (
        "<|im_system|>tool_declare<|im_middle|>" + json.dumps(tools) + "<|im_end|>"
        "<|im_system|>system<|im_middle|>sys<|im_end|>"
        "<|im_user|>user<|im_middle|>q1<|im_end|>"
        # an answered turn: its thinking is dropped
        "<|im_assistant|>assistant<|im_middle|><think></think>a1<|im_end|>"
        "<|im_user|>user<|im_middle|>q2<|im_end|>"
        # the current tool chain keeps its thinking
        "<|im_assistant|>assistant<|im_middle|><think>plan</think><|tool_calls_section_begin|>"
        '<|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{"a": 1}<|tool_call_end|>'
        "<|tool_calls_section_end|><|im_end|>"
        "<|im_system|>tool<|im_middle|>## Return of functions.f:0\nresult<|im_end|>"
        "<|im_assistant|>assistant<|im_middle|>"
    )


def test_rendered_turn_round_trips_through_the_parser() -> None:
    call = ToolCall("functions.code_interpreter:0", "code_interpreter", '{"code": "print(1)"}')
    history = render([UserMessage("q"), AssistantMessage("ok", "why", [call])])
    generated = history.split("<|im_assistant|>assistant<|im_middle|>")[1]
    _, message = parse(generated, chunk=6)
    assert message == AssistantMessage("ok", "why", [call])
