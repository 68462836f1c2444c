"""Keeping the conversation inside the model's window, the way K2 itself does.

When tool outputs push the history past a threshold of the context window, older observations
are replaced by a short placeholder while all reasoning and the latest observations stay.
"""

from __future__ import annotations

import json
from dataclasses import replace

from ..core.messages import AssistantMessage, Message, ToolMessage

HIDDEN = ("[output hidden to keep the conversation within the context window; call read_output "
          "with call_id=\"{id}\" to see it again]")
CHARS_PER_TOKEN = 3.5  # a deliberately cautious average for mixed code, prose and numbers


def estimate_tokens(messages: list[Message], tools: list[dict] | None = None) -> int:
    """A quick upper-leaning estimate of the prompt's tokens (no tokenizer round trip)."""
    chars = len(json.dumps(tools or [])) if tools else 0
    for m in messages:
        chars += len(m.content or "") + 16
        if isinstance(m, AssistantMessage):
            chars += len(m.reasoning)
            chars += sum(len(c.arguments) + len(c.name) + 32 for c in m.tool_calls)
    return int(chars / CHARS_PER_TOKEN)


def hide_old_observations(messages: list[Message], keep_last: int = 2) -> tuple[list[Message], int]:
    """Replace all but the last ``keep_last`` tool observations with a placeholder.

    Returns the new list and how many observations were hidden.
    """
    tool_positions = [i for i, m in enumerate(messages) if isinstance(m, ToolMessage)]
    hide = tool_positions[: max(0, len(tool_positions) - keep_last)]
    out = list(messages)
    hidden = 0
    for i in hide:
        m = out[i]
        placeholder = HIDDEN.format(id=m.tool_call_id)
        if m.content != placeholder:
            out[i] = replace(m, content=placeholder)
            hidden += 1
    return out, hidden


def fit(messages: list[Message], tools: list[dict], window: int, threshold: float = 0.8
        ) -> tuple[list[Message], int]:
    """Hide old observations, oldest first, until the estimate is under ``threshold × window``."""
    limit = int(window * threshold)
    if estimate_tokens(messages, tools) <= limit:
        return messages, 0
    total_tools = sum(isinstance(m, ToolMessage) for m in messages)
    for keep in range(total_tools, -1, -1):
        trimmed, hidden = hide_old_observations(messages, keep)
        if estimate_tokens(trimmed, tools) <= limit or keep == 0:
            return trimmed, hidden
    return messages, 0
