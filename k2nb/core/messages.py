"""The conversation as the agent keeps it: messages, tool calls and token usage.

Backends translate these to their wire format (OpenAI JSON, a chat template); the loop, the
transcript and the views only ever see these types. Messages are frozen: a message that must
change (an observation hidden, the prompt after a compaction) is replaced by a new one, which is
what lets a backend encode each message once and keep it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Union


@dataclass
class ToolCall:
    """One call the model asked for; ``arguments`` is the raw text the model produced."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Usage:
    """Token counts as servers report them (``cached_tokens`` is Moonshot's flat field)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.cached_tokens + other.cached_tokens,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        cached = data.get("cached_tokens")
        if cached is None:
            cached = (data.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        prompt = int(data.get("prompt_tokens") or 0)
        completion = int(data.get("completion_tokens") or 0)
        total = int(data.get("total_tokens") or prompt + completion)
        return cls(prompt, completion, total, int(cached))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class SystemMessage:
    content: str
    role: Literal["system"] = "system"


@dataclass(frozen=True)
class UserMessage:
    content: str
    role: Literal["user"] = "user"


@dataclass(frozen=True)
class AssistantMessage:
    """A model turn. ``reasoning`` is kept verbatim: K2 requires it back on tool-call turns."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    role: Literal["assistant"] = "assistant"


@dataclass(frozen=True)
class ToolMessage:
    """The observation returned for one tool call."""

    tool_call_id: str
    name: str
    content: str
    role: Literal["tool"] = "tool"


Message = Union[SystemMessage, UserMessage, AssistantMessage, ToolMessage]


def code_of(name: str, arguments: str | None) -> str | None:
    """The code of a ``code_interpreter`` call, or None (another tool, or unparsable arguments)."""
    if name != "code_interpreter":
        return None
    try:
        code = json.loads(arguments or "{}").get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def message_to_dict(message: Message) -> dict[str, Any]:
    """A JSON-ready dict of any message (used by transcripts and tests)."""
    return asdict(message)


def message_from_dict(data: dict[str, Any]) -> Message:
    """Inverse of :func:`message_to_dict`."""
    role = data["role"]
    if role == "system":
        return SystemMessage(data["content"])
    if role == "user":
        return UserMessage(data["content"])
    if role == "tool":
        return ToolMessage(data["tool_call_id"], data["name"], data["content"])
    if role == "assistant":
        calls = [ToolCall(**c) for c in data.get("tool_calls") or []]
        return AssistantMessage(data.get("content") or "", data.get("reasoning") or "", calls)
    raise ValueError(f"unknown message role {role!r}")
