"""Raw-text formats of thinking and tool calls, for backends that see the model's own text.

:func:`detect_format` picks one from a tokenizer's special tokens and chat template.
"""

from __future__ import annotations

from typing import Any

from .base import FormatParser, ToolCallFormat
from .fenced import FencedCodeFormat, FencedCodeParser
from .hermes import HermesFormat, HermesParser
from .k2 import K2_CHAT_TEMPLATE, K2Format, K2Parser

FORMATS: dict[str, type] = {"k2": K2Format, "hermes": HermesFormat, "fenced": FencedCodeFormat}


def get_format(name: str) -> ToolCallFormat:
    """The format called ``name`` (``k2``, ``hermes`` or ``fenced``)."""
    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(
            f"unknown tool-call format {name!r}; choose one of {sorted(FORMATS)}"
        ) from None


def detect_format(tokenizer: Any) -> ToolCallFormat:
    """The format a model writes, judged from its tokenizer, not its name.

    K2 special tokens → ``k2``; a chat template or vocabulary with ``<tool_call>`` → ``hermes``;
    anything else (no tool calling in the template) → ``fenced`` code blocks.
    """
    vocab = set(tokenizer.get_vocab())
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    if "<|tool_calls_section_begin|>" in vocab or "<|tool_calls_section_begin|>" in template:
        return K2Format()
    if "<tool_call>" in vocab or "<tool_call>" in template:
        return HermesFormat()
    return FencedCodeFormat()


__all__ = [
    "FORMATS",
    "K2_CHAT_TEMPLATE",
    "FencedCodeFormat",
    "FencedCodeParser",
    "FormatParser",
    "HermesFormat",
    "HermesParser",
    "K2Format",
    "K2Parser",
    "ToolCallFormat",
    "detect_format",
    "get_format",
]
