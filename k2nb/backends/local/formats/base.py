"""What a raw-text tool-call format provides, and the thinking logic the formats share.

A local model writes its turn as one string with markers in it. A *format* knows those markers:
it renders the agent's messages into the dicts the tokenizer's chat template expects, and it
makes a *parser* that is fed the decoded text piece by piece and turns it into the same deltas the
API backend streams (reasoning, content, tool-call fragments), then the assembled message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ....core.messages import AssistantMessage, Message, ToolCall
from ....core.events import ContentDelta, ReasoningDelta, StreamDelta, ToolCallDelta
from ....core.tool import UnclosedToolCall
from .scanner import MarkerScanner

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class FormatParser(Protocol):
    """Streaming parser of one model turn."""

    #: True once the turn is over (end-of-turn marker, or an action that must run before more
    #: text makes sense); the backend then stops generating.
    done: bool

    def feed(self, text: str) -> list[StreamDelta]: ...

    def flush(self) -> list[StreamDelta]: ...

    def finish(self) -> AssistantMessage: ...


class ToolCallFormat(Protocol):
    """A raw-text format of thinking and tool calls."""

    name: str

    def parser(
        self,
        *,
        tool_names: Iterable[str] = (),
        starts_in_reasoning: bool = False,
        call_offset: int = 0,
    ) -> FormatParser: ...

    def template_messages(self, messages: list[Message]) -> list[dict[str, Any]]: ...

    def template_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]] | None: ...

    def system_addendum(self, tools: list[dict[str, Any]]) -> str:
        """Text added to the system prompt (formats whose tools are not in the template)."""
        ...


@dataclass
class CallDraft:
    id: str
    name: str
    arguments: str = ""
    #: The format's own end marker of the call was seen. A call without it was cut (by the
    #: token budget, an end-of-turn token, a stop) and must never run.
    closed: bool = False


class ThinkingParser:
    """Reasoning/content bookkeeping shared by formats that wrap thinking in ``<think>`` tags.

    Modes: ``start`` (nothing but whitespace seen), ``reasoning``, ``content``; subclasses add
    their own for tool calls. Quirks accepted: output that starts without ``<think>`` is content;
    a stray ``</think>`` with no opener means everything before it was reasoning (the template
    opened the block); content's leading whitespace is not streamed.
    """

    extra_markers: tuple[str, ...] = ()
    end_markers: tuple[str, ...] = ()
    #: The text that closes a call in this format (named in the error an unclosed call gets).
    call_end_marker: str = ""

    def __init__(self, *, starts_in_reasoning: bool = False, call_offset: int = 0):
        self._scanner = MarkerScanner(
            (THINK_OPEN, THINK_CLOSE, *self.extra_markers, *self.end_markers)
        )
        self.mode = "reasoning" if starts_in_reasoning else "start"
        self._opened_think = starts_in_reasoning
        self._reasoning: list[str] = []
        self._content: list[str] = []
        self._content_started = False
        self._reclassify = False
        self._stray_split = 0
        self.calls: list[CallDraft] = []
        self.call_offset = call_offset
        self.done = False
        self._flushed = False

    # -- the stream ---------------------------------------------------------------------------
    def feed(self, text: str) -> list[StreamDelta]:
        out: list[StreamDelta] = []
        for piece, is_marker in self._scanner.feed(text):
            if self.done:
                break
            if is_marker:
                self._marker(piece, out)
            else:
                self._text(piece, out)
        return out

    def flush(self) -> list[StreamDelta]:
        """The deltas of what is still held back at the end of the turn: text that could have
        begun a marker, an unfinished line, a call cut off mid-way. Call it before :meth:`finish`
        so that nothing the message holds was left unstreamed."""
        if self._flushed:
            return []
        self._flushed = True
        out: list[StreamDelta] = []
        for piece, is_marker in self._scanner.flush():
            if not self.done and not is_marker:
                self._text(piece, out)
        self._close_open_call(out)
        return out

    def finish(self) -> AssistantMessage:
        self.flush()
        reasoning = "".join(self._reasoning)
        content = "".join(self._content)
        if self._reclassify:
            reasoning, content = (
                reasoning + content[: self._stray_split],
                content[self._stray_split :],
            )
        calls = [ToolCall(c.id, c.name, c.arguments) if c.closed
                 else UnclosedToolCall(c.id, c.name, c.arguments, self.call_end_marker)
                 for c in self.calls]
        return AssistantMessage(content=content.strip(), reasoning=reasoning, tool_calls=calls)

    # -- hooks for subclasses -----------------------------------------------------------------
    def _marker(self, marker: str, out: list[StreamDelta]) -> None:
        if marker in self.end_markers:
            self.done = True
        elif marker == THINK_OPEN:
            if self.mode in ("start", "content"):
                self.mode = "reasoning"
                self._opened_think = True
        elif marker == THINK_CLOSE:
            if self.mode == "reasoning":
                self.mode = "content"
            elif (
                self.mode in ("start", "content")
                and not self._opened_think
                and not self._reclassify
            ):
                # The chat template opened <think> for the model: what came so far was thinking.
                self._reclassify = True
                self._stray_split = sum(len(t) for t in self._content)
                self.mode = "content"

    def _text(self, text: str, out: list[StreamDelta]) -> None:
        if self.mode == "start":
            if not text.strip():
                return
            self.mode = "content"
        if self.mode == "reasoning":
            self._reasoning.append(text)
            out.append(ReasoningDelta(text))
        elif self.mode == "content":
            self._add_content(text, out)

    def _add_content(self, text: str, out: list[StreamDelta]) -> None:
        if not self._content_started:
            text = text.lstrip()
            if not text:
                return
            self._content_started = True
        self._content.append(text)
        out.append(ContentDelta(text))

    def _close_open_call(self, out: list[StreamDelta]) -> None:
        """Called when a call must end without its end marker (a new one, the end of the turn);
        a subclass emits what it holds of the call, streaming that into ``out``. The call stays
        unclosed: it is shown, never run."""

    # -- helpers ------------------------------------------------------------------------------
    def _new_call(self, raw_id: str, name: str, out: list[StreamDelta]) -> CallDraft:
        index = len(self.calls)
        used = {c.id for c in self.calls}
        call_id = raw_id if raw_id and raw_id not in used else self.default_id(name, index)
        call = CallDraft(call_id, name)
        self.calls.append(call)
        out.append(ToolCallDelta(index=index, id=call_id, name=name))
        return call

    def _add_arguments(self, text: str, out: list[StreamDelta]) -> None:
        if not text:
            return
        call = self.calls[-1]
        call.arguments += text
        out.append(ToolCallDelta(index=len(self.calls) - 1, arguments=text))

    def default_id(self, name: str, index: int) -> str:
        return f"call_{self.call_offset + index}"


def arguments_for_template(arguments: str) -> Any:
    """A tool call's arguments as chat templates want them: a dict when the text is a JSON object.

    Templates differ (some ``tojson`` whatever they get, some print strings as they are); a dict
    renders correctly in both, and a non-JSON string is passed through unchanged.
    """
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        return arguments
    return value if isinstance(value, dict) else arguments


def openai_messages(messages: list[Message], *, arguments_as_dict: bool) -> list[dict[str, Any]]:
    """Messages as the dicts chat templates read (OpenAI shape, reasoning as ``reasoning_content``)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.reasoning:
                item["reasoning_content"] = m.reasoning
            if m.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": arguments_for_template(c.arguments)
                            if arguments_as_dict
                            else c.arguments,
                        },
                    }
                    for c in m.tool_calls
                ]
            out.append(item)
        elif m.role == "tool":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": m.tool_call_id,
                    "name": m.name,
                    "content": m.content,
                }
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out
