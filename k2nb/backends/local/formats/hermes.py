"""The "hermes" format of Qwen3(-MoE), Granite and many others: ``<tool_call>{json}</tool_call>``.

Each call is a JSON object ``{"name": ..., "arguments": {...}}`` between the tags; thinking, when
the model thinks, is wrapped in ``<think>`` tags. A call is emitted when its closing tag arrives
(the name is inside the JSON). A call cut off before its closing tag (by the token limit, or an
end-of-turn token) is emitted at the end of the turn as unclosed: shown, never run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import json_repair

from ....core.messages import Message
from ....core.events import StreamDelta
from .base import ThinkingParser, openai_messages

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>")

_NAME = re.compile(r'"name"\s*:\s*"([^"]*)"')


def parse_call_body(body: str) -> tuple[str, str]:
    """``(name, arguments as text)`` from one call's body; arguments stay raw when unparsable."""
    text = body.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = json_repair.loads(text) if text else None
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        arguments = value.get("arguments", value.get("parameters", {}))
        if isinstance(arguments, str):
            return value["name"], arguments
        return value["name"], json.dumps(arguments, ensure_ascii=False)
    match = _NAME.search(text)
    return (match.group(1) if match else ""), text


def partial_call_body(body: str) -> tuple[str, str]:
    """``(name, arguments as written)`` of a call cut before its closing tag: the name when it
    was written whole, the arguments' text exactly as far as it goes (never repaired)."""
    text = body.strip()
    match = _NAME.search(text)
    arguments = re.search(r'"(?:arguments|parameters)"\s*:\s*', text)
    return (match.group(1) if match else ""), (text[arguments.end():] if arguments else text)


class HermesParser(ThinkingParser):
    """Streaming parser of one hermes-style assistant turn."""

    extra_markers = (CALL_OPEN, CALL_CLOSE)
    end_markers = END_MARKERS
    call_end_marker = CALL_CLOSE

    def __init__(self, *, starts_in_reasoning: bool = False, call_offset: int = 0):
        super().__init__(starts_in_reasoning=starts_in_reasoning, call_offset=call_offset)
        self._body = ""
        self._return_mode = "content"

    def _marker(self, marker: str, out: list[StreamDelta]) -> None:
        if marker == CALL_OPEN:
            if self.mode != "call":
                # A call inside the think block ends nothing: thinking resumes after it.
                self._return_mode = "reasoning" if self.mode == "reasoning" else "content"
                self.mode = "call"
                self._body = ""
        elif marker == CALL_CLOSE:
            if self.mode == "call":
                self._emit(out, closed=True)
                self.mode = self._return_mode
        elif marker in self.end_markers:
            self._close_open_call(out)
            self.done = True
        elif self.mode != "call":
            super()._marker(marker, out)

    def _text(self, text: str, out: list[StreamDelta]) -> None:
        if self.mode == "call":
            self._body += text
        elif self.mode == "content" and self.calls and not text.strip():
            return  # newlines between consecutive calls
        else:
            super()._text(text, out)

    def _emit(self, out: list[StreamDelta], closed: bool = False) -> None:
        name, arguments = parse_call_body(self._body) if closed else partial_call_body(self._body)
        self._new_call("", name, out).closed = closed
        self._add_arguments(arguments, out)
        self._body = ""

    def _close_open_call(self, out: list[StreamDelta]) -> None:
        if self.mode == "call" and self._body.strip():
            self._emit(out)  # unclosed: shown as written, never run
            self.mode = self._return_mode


class HermesFormat:
    """``<tool_call>{json}</tool_call>``; tools are declared through the chat template."""

    name = "hermes"

    def parser(
        self,
        *,
        tool_names: Iterable[str] = (),
        starts_in_reasoning: bool = False,
        call_offset: int = 0,
    ) -> HermesParser:
        return HermesParser(starts_in_reasoning=starts_in_reasoning, call_offset=call_offset)

    def template_messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        return openai_messages(messages, arguments_as_dict=True)

    def template_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        return tools or None

    def system_addendum(self, tools: list[dict[str, Any]]) -> str:
        return ""  # the chat template declares the tools
