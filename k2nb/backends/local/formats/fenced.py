"""Fenced code blocks as actions, for small models that cannot call tools.

Such models (SmolLM2, most base chat models) answer a task with a fenced ```python block. This
format reads the first Python block of a turn as a ``code_interpreter`` call — arguments streamed
as the JSON ``{"code": "..."}`` — and ends the turn when the block closes, so the model sees the
real output instead of inventing one. History is rendered back the same way: calls become fenced
blocks in the assistant's text, observations become user turns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from ....core.messages import Message
from ....core.events import StreamDelta
from .base import ThinkingParser

TOOL_NAME = "code_interpreter"
_OPEN = re.compile(r"^[ \t]*```[ \t]*(python3?|py|ipython)?[ \t]*$", re.IGNORECASE)
_OTHER_OPEN = re.compile(r"^[ \t]*```[ \t]*\S+")
_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")

INSTRUCTIONS = (
    "You can run Python code in the user's Jupyter kernel: write the code in a markdown code block "
    "that starts with ```python and ends with ```. Write one block, then stop and wait: the next "
    "message shows its output. When you know the answer, reply in plain text."
)


class FencedCodeParser(ThinkingParser):
    """Streaming parser: text is content; the first ```python block is a code_interpreter call."""

    end_markers = ("<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>")
    call_end_marker = "```"

    def __init__(
        self, *, enabled: bool = True, starts_in_reasoning: bool = False, call_offset: int = 0
    ):
        super().__init__(starts_in_reasoning=starts_in_reasoning, call_offset=call_offset)
        self.enabled = enabled
        self._line = ""  # the current, unfinished line of content or code
        self._other_fence = False
        self._mid_line = False

    def _text(self, text: str, out: list[StreamDelta]) -> None:
        if not self.enabled or self.mode == "reasoning":
            super()._text(text, out)
            return
        self._line += text
        while "\n" in self._line and not self.done:
            line, self._line = self._line.split("\n", 1)
            if self._mid_line:  # the rest of a line already streamed: cannot be a fence
                self._mid_line = False
                self._plain(line + "\n", out)
            else:
                self._whole_line(line + "\n", out)
        if self.done:
            self._line = ""  # whatever follows the action is not part of the turn
        elif self._line and (self._mid_line or not self._maybe_fence(self._line)):
            self._partial_line(out)
            self._mid_line = True

    def _marker(self, marker: str, out: list[StreamDelta]) -> None:
        self._flush_line(out)
        super()._marker(marker, out)

    def _maybe_fence(self, text: str) -> bool:
        stripped = text.lstrip(" \t")
        return stripped.startswith("```") or "```".startswith(stripped)

    def _partial_line(self, out: list[StreamDelta]) -> None:
        text, self._line = self._line, ""
        self._plain(text, out)

    def _plain(self, text: str, out: list[StreamDelta]) -> None:
        if self.mode == "code":
            self._add_arguments(_escaped(text), out)
        else:
            super()._text(text, out)

    def _whole_line(self, line: str, out: list[StreamDelta]) -> None:
        bare = line.rstrip("\n")
        if self.mode == "code":
            if _CLOSE.match(bare):
                self._add_arguments('"}', out)
                self.calls[-1].closed = True
                self.mode = "content"
                self.done = True  # the action must run before the model says more
            else:
                self._add_arguments(_escaped(line), out)
        elif self._other_fence:
            self._other_fence = not _CLOSE.match(bare)
            super()._text(line, out)
        elif _OPEN.match(bare):
            self._new_call("", TOOL_NAME, out)
            self._add_arguments('{"code": "', out)
            self.mode = "code"
        else:
            self._other_fence = bool(_OTHER_OPEN.match(bare))
            super()._text(line, out)

    def _flush_line(self, out: list[StreamDelta]) -> None:
        if not self._line:
            return
        if self.mode == "code" and not self._mid_line and _CLOSE.match(self._line):
            self._line = ""
            self._whole_line("```\n", out)
        else:
            self._partial_line(out)

    def _close_open_call(self, out: list[StreamDelta]) -> None:
        self._flush_line(out)
        if self.mode == "code":
            # Cut off (token limit, end of turn) before the closing fence: the code may stop
            # mid-line, so it is shown as written — valid JSON for the views — and never run.
            self._add_arguments('"}', out)
            self.mode = "content"


def _escaped(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def code_of(arguments: str) -> str:
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    return value.get("code", arguments) if isinstance(value, dict) else arguments


class FencedCodeFormat:
    """Code blocks as actions; the tools are described in the system prompt, not the template."""

    name = "fenced"

    def parser(
        self,
        *,
        tool_names: Iterable[str] = (),
        starts_in_reasoning: bool = False,
        call_offset: int = 0,
    ) -> FencedCodeParser:
        return FencedCodeParser(
            enabled=TOOL_NAME in set(tool_names),
            starts_in_reasoning=starts_in_reasoning,
            call_offset=call_offset,
        )

    def template_messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "assistant":
                text = m.content
                for call in m.tool_calls:
                    code = code_of(call.arguments) if call.name == TOOL_NAME else call.arguments
                    text = f"{text}\n\n```python\n{code.rstrip()}\n```".lstrip()
                out.append({"role": "assistant", "content": text})
            elif m.role == "tool":
                out.append({"role": "user", "content": f"Output of the code:\n{m.content}"})
            else:
                out.append({"role": m.role, "content": m.content})
        return _merge_consecutive(out)

    def template_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        return None

    def system_addendum(self, tools: list[dict[str, Any]]) -> str:
        names = {t.get("function", {}).get("name") for t in tools}
        return INSTRUCTIONS if TOOL_NAME in names else ""


def _merge_consecutive(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Templates of small chat models expect alternating roles: join neighbours with one role."""
    merged: list[dict[str, Any]] = []
    for m in messages:
        if merged and merged[-1]["role"] == m["role"] and m["role"] != "system":
            merged[-1] = {**merged[-1], "content": merged[-1]["content"] + "\n\n" + m["content"]}
        else:
            merged.append(dict(m))
    return merged
