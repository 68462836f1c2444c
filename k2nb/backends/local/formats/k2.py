"""The Kimi K2 raw token format (K2_PROTOCOL.md §3): parser, message rendering, chat template.

Model output::

    <think> reasoning </think> text <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:0
    <|tool_call_argument_begin|>{"json": "args"}<|tool_call_end|><|tool_calls_section_end|><|im_end|>

Accepted quirks: a tool section opened without ``</think>`` (the section ends the reasoning); tool
calls inside the think block; output without ``<think>``; the singular
``<|tool_call_section_begin|>`` spelling; a call without a section; arguments that are not JSON
(kept verbatim for the loop to repair or report).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ....core.messages import Message
from ....core.events import StreamDelta
from .base import ThinkingParser, openai_messages

SECTION_BEGIN = "<|tool_calls_section_begin|>"
SECTION_END = "<|tool_calls_section_end|>"
CALL_BEGIN = "<|tool_call_begin|>"
ARGUMENT_BEGIN = "<|tool_call_argument_begin|>"
CALL_END = "<|tool_call_end|>"
END_OF_TURN = "<|im_end|>"

SECTION_BEGINS = (SECTION_BEGIN, "<|tool_call_section_begin|>")
SECTION_ENDS = (SECTION_END, "<|tool_call_section_end|>")

#: Every special token of the format, in the order a tokenizer should add them.
SPECIAL_TOKENS = [
    "<|im_system|>",
    "<|im_user|>",
    "<|im_assistant|>",
    "<|im_middle|>",
    END_OF_TURN,
    "<think>",
    "</think>",
    SECTION_BEGIN,
    SECTION_END,
    CALL_BEGIN,
    ARGUMENT_BEGIN,
    CALL_END,
]


def name_from_id(call_id: str) -> str:
    """``functions.get_weather:3`` → ``get_weather`` (K2's native call ids name the function)."""
    name = call_id.strip()
    name = name.removeprefix("functions.")
    head, sep, tail = name.rpartition(":")
    if sep and tail.strip().isdigit():
        name = head
    return name.strip()


class K2Parser(ThinkingParser):
    """Streaming parser of one K2 assistant turn."""

    extra_markers = (*SECTION_BEGINS, *SECTION_ENDS, CALL_BEGIN, ARGUMENT_BEGIN, CALL_END)
    end_markers = (END_OF_TURN,)
    call_end_marker = CALL_END

    def __init__(self, *, starts_in_reasoning: bool = False, call_offset: int = 0):
        super().__init__(starts_in_reasoning=starts_in_reasoning, call_offset=call_offset)
        self._pending_id = ""

    def default_id(self, name: str, index: int) -> str:
        return f"functions.{name}:{self.call_offset + index}"

    def _marker(self, marker: str, out: list[StreamDelta]) -> None:
        if marker in SECTION_BEGINS:
            self._close_open_call(out)
            self.mode = "section"
        elif marker == CALL_BEGIN:
            self._close_open_call(out)
            self.mode = "call_id"
            self._pending_id = ""
        elif marker == ARGUMENT_BEGIN:
            if self.mode == "call_id":
                self._open_call(out)
                self.mode = "arguments"
        elif marker == CALL_END:
            if self.mode == "call_id":
                self._open_call(out)
            if self.mode in ("call_id", "arguments"):
                self.calls[-1].closed = True  # only this marker makes a call complete
                self.mode = "section"
        elif marker in SECTION_ENDS:
            self._close_open_call(out)
            self.mode = "after_tools"
        elif marker in self.end_markers:
            self._close_open_call(out)
            self.done = True
        elif self.mode in ("section", "call_id", "arguments", "after_tools"):
            # <think>/</think> inside or after the tool section: nothing to switch.
            return
        else:
            super()._marker(marker, out)

    def _text(self, text: str, out: list[StreamDelta]) -> None:
        if self.mode == "call_id":
            self._pending_id += text
        elif self.mode == "arguments":
            self._add_arguments(text, out)
        elif self.mode == "section":
            return  # whitespace between calls
        elif self.mode == "after_tools":
            if text.strip():
                self._add_content(text, out)
        else:
            super()._text(text, out)

    def _open_call(self, out: list[StreamDelta]) -> None:
        raw = self._pending_id.strip()
        self._new_call(raw, name_from_id(raw), out)
        self._pending_id = ""

    def _close_open_call(self, out: list[StreamDelta]) -> None:
        # A call cut in its id is still shown (as not run); one cut in its arguments already is.
        if self.mode == "call_id" and self._pending_id.strip():
            self._open_call(out)


class K2Format:
    """Kimi K2's token format; tools are declared through the chat template (``tools=``)."""

    name = "k2"

    def parser(
        self,
        *,
        tool_names: Iterable[str] = (),
        starts_in_reasoning: bool = False,
        call_offset: int = 0,
    ) -> K2Parser:
        return K2Parser(starts_in_reasoning=starts_in_reasoning, call_offset=call_offset)

    def template_messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        # Arguments stay the exact text the model wrote, so a re-rendered history matches the
        # tokens already in the KV cache.
        return openai_messages(messages, arguments_as_dict=False)

    def template_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        return tools or None

    def system_addendum(self, tools: list[dict[str, Any]]) -> str:
        return ""  # the chat template declares the tools


#: A chat template that renders K2_PROTOCOL.md §3 exactly (used by the tiny test model; real K2
#: checkpoints ship their own). Turns up to the last answer without tool calls get an empty
#: ``<think></think>``; the current tool chain keeps its reasoning.
K2_CHAT_TEMPLATE = (
    "{%- if tools -%}<|im_system|>tool_declare<|im_middle|>{{ tools | tojson }}<|im_end|>{%- endif -%}"
    "{%- set ns = namespace(last_answer=-1) -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' and not m.tool_calls -%}{%- set ns.last_answer = loop.index0 -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'tool' -%}"
    "<|im_system|>tool<|im_middle|>## Return of {{ m.tool_call_id }}\n{{ m.content }}<|im_end|>"
    "{%- elif m.role == 'assistant' -%}"
    "<|im_assistant|>assistant<|im_middle|>"
    "{%- if loop.index0 > ns.last_answer -%}<think>{{ m.reasoning_content or '' }}</think>"
    "{%- else -%}<think></think>{%- endif -%}"
    "{{ m.content or '' }}"
    "{%- if m.tool_calls -%}<|tool_calls_section_begin|>"
    "{%- for tc in m.tool_calls -%}<|tool_call_begin|>{{ tc.id }}<|tool_call_argument_begin|>"
    "{%- if tc.function.arguments is string -%}{{ tc.function.arguments }}"
    "{%- else -%}{{ tc.function.arguments | tojson }}{%- endif -%}<|tool_call_end|>"
    "{%- endfor -%}<|tool_calls_section_end|>{%- endif -%}<|im_end|>"
    "{%- else -%}"
    "<|im_{{ m.role }}|>{{ m.name or m.role }}<|im_middle|>{{ m.content }}<|im_end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_assistant|>assistant<|im_middle|>{%- endif -%}"
)


def render_assistant_turn(reasoning: str, content: str, calls: list[tuple[str, str]]) -> str:
    """The text a K2 model generates for one turn (used to write training transcripts)."""
    text = f"<think>{reasoning}</think>{content}"
    if calls:
        text += SECTION_BEGIN
        for call_id, arguments in calls:
            text += f"{CALL_BEGIN}{call_id}{ARGUMENT_BEGIN}{arguments}{CALL_END}"
        text += SECTION_END
    return text + END_OF_TURN
