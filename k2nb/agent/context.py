"""What the model sees: earlier turns, this run's prompt and steps — kept inside the window.

A run's messages are held in sections — the system prompt, the earlier turns of the
conversation, this run's prompt, a summary of compacted steps, then one section per step — with
a running estimate of their tokens, each message estimated once and corrected by the count the
server reports. When the next request would not fit, :class:`RunContext` makes room, in this
order, and never hides the latest observation:

1. earlier turns shrink to their prompt and answer (oldest first);
2. older observations of this run are hidden behind a placeholder (oldest first), as K2 itself
   does;
3. the older steps are *compacted*: the caller summarises them (a short tool-less request to
   the same model) and the run goes on from the prompt, that summary and the latest steps.

Every step kept after a compaction keeps its reasoning, so the strict reasoning rule (every
assistant tool-call message after the last plain assistant message carries its reasoning) holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ..core.conversation import Turn, UserCell
from ..core.run import Compaction
from ..core.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolMessage,
    UserMessage,
)

HIDDEN = ("[output hidden to keep the conversation within the context window; call read_output "
          "with call_id=\"{id}\" to see it again]")
CHARS_PER_TOKEN = 3.5  # a deliberately cautious average for mixed code, prose and numbers
#: Share of the budget the latest steps may keep when the older ones are compacted.
KEEP_RECENT_SHARE = 0.35
#: After making room, aim this far under the budget, so that room is not made again next step.
TARGET_SHARE = 0.75


def estimate_message(message: Message) -> int:
    """A quick upper-leaning estimate of one message's tokens (no tokenizer round trip)."""
    chars = len(message.content or "") + 16
    if isinstance(message, AssistantMessage):
        chars += len(message.reasoning)
        chars += sum(len(c.arguments) + len(c.name) + 32 for c in message.tool_calls)
    return int(chars / CHARS_PER_TOKEN) + 1


def estimate_tokens(messages: Iterable[Message], tools: list[dict] | None = None) -> int:
    """The estimate of a whole request (messages and tool declarations)."""
    total = sum(estimate_message(m) for m in messages)
    return total + (int(len(json.dumps(tools)) / CHARS_PER_TOKEN) if tools else 0)


# --- earlier turns as messages ----------------------------------------------------------------


def user_cells_text(cells: list[UserCell], omitted: int = 0) -> str:
    """The user's own cells, as the start of the next user message."""
    if not cells:
        return ""
    blocks = [f"In [{c.count}]:\n```python\n{c.code.rstrip()}\n```" for c in cells]
    more = f" ({omitted} earlier cell(s) not shown)" if omitted else ""
    return ("Cells I ran myself since your last answer" + more + ":\n\n" + "\n".join(blocks)
            + "\n\n")


def turn_messages(turn: Turn, brief: bool = False) -> list[Message]:
    """An earlier turn as a user message (the user's cells, then the prompt) and one assistant
    message: a digest of its tool calls (unless ``brief``), then its answer. No thinking: K2
    needs it only on the current turn's tool-call messages."""
    user = UserMessage(user_cells_text(turn.user_cells) + turn.prompt)
    parts = []
    if turn.calls and not brief:
        lines = [f"(Tool calls I made for this, as k2nb recorded them — {len(turn.calls)}:)"]
        for i, call in enumerate(turn.calls, 1):
            where = f" [In {call.execution_count}]" if call.execution_count else ""
            status = "" if call.status == "ok" else f" ({call.status})"
            body = (f"```python\n{call.text.rstrip()}\n```" if call.name == "code_interpreter"
                    else call.text)
            lines.append(f"{i}. {call.name}{where}{status}:\n{body}\n→ "
                         f"{call.observation.strip() or '(no output)'}")
        parts.append("\n".join(lines))
    if turn.answer:
        parts.append(turn.answer)
    else:
        parts.append(f"(This turn ended without an answer: {turn.stop_reason}. {turn.note})".strip())
    return [user, AssistantMessage("\n\n".join(parts))]


# --- the context of one run -------------------------------------------------------------------


@dataclass
class Sized:
    """Messages with their estimated tokens (computed once)."""

    messages: list[Message]
    tokens: int = 0

    def __post_init__(self) -> None:
        self.tokens = sum(estimate_message(m) for m in self.messages)


@dataclass
class StepMessages:
    """One step's assistant message and the observations of its calls."""

    index: int
    messages: list[Message]
    tokens: int = 0
    hidden: bool = False

    def __post_init__(self) -> None:
        self.tokens = sum(estimate_message(m) for m in self.messages)

    def add(self, message: Message) -> None:
        self.messages.append(message)
        self.tokens += estimate_message(message)


@dataclass
class RunContext:
    """The messages one run sends, in sections, with their running token estimate."""

    system: str
    prompt: str
    turns: list[Turn] = field(default_factory=list)
    preface: str = ""  # the user's own cells since the previous turn
    tools_tokens: int = 0
    summary: str = ""
    summarised: tuple[int, int] | None = None  # (first, last) step of the summary
    steps: list[StepMessages] = field(default_factory=list)
    compactions: list[Compaction] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._head = Sized([SystemMessage(self.system)] if self.system else [])
        self._history = [[Sized(turn_messages(t)), Sized(turn_messages(t, brief=True)), False]
                         for t in self.turns]
        self._prompt = Sized([UserMessage(self._prompt_text())])
        self._ratio = 1.0  # the server's count / our estimate, from the last report
        self._steps_tokens = 0  # the steps' tokens, kept as they change
        self._hidden_upto = 0  # steps before this index have their observations hidden

    # --- building -----------------------------------------------------------------------

    def _prompt_text(self) -> str:
        text = self.preface + self.prompt
        if self.summary:
            first, last = self.summarised or (0, 0)
            text += (f"\n\n[k2nb: the context window filled up, so your steps {first}–{last} of "
                     f"this task were replaced by this summary you wrote of them:]\n{self.summary}")
        return text

    def start_step(self, index: int) -> None:
        self.steps.append(StepMessages(index, []))

    def add(self, message: Message) -> None:
        """Append a message to the current step (its assistant message, then observations)."""
        before = self.steps[-1].tokens
        self.steps[-1].add(message)
        self._steps_tokens += self.steps[-1].tokens - before

    def messages(self) -> list[Message]:
        """The request's messages, in order."""
        out = list(self._head.messages)
        for full, brief, shrunk in self._history:
            out.extend((brief if shrunk else full).messages)
        out.extend(self._prompt.messages)
        for step in self.steps:
            out.extend(step.messages)
        return out

    # --- counting -----------------------------------------------------------------------

    def estimate(self) -> int:
        """Our estimate of the next request's prompt tokens (before correction): a sum over
        sections whose sizes were computed when they changed (no message is estimated twice)."""
        history = sum((b if s else f).tokens for f, b, s in self._history)
        return (self.tools_tokens + self._head.tokens + history + self._prompt.tokens
                + self._steps_tokens)

    def projected(self) -> int:
        """The next request's prompt tokens as the server will count them, best guess."""
        return int(self.estimate() * self._ratio)

    def reported(self, prompt_tokens: int, estimate_at_request: int) -> None:
        """The server counted ``prompt_tokens`` for a request we estimated at
        ``estimate_at_request``: later estimates are scaled by the same ratio."""
        if prompt_tokens > 0 and estimate_at_request > 0:
            self._ratio = min(3.0, max(0.3, prompt_tokens / estimate_at_request))

    # --- making room --------------------------------------------------------------------

    def shrink_history(self, target: int) -> int:
        """Earlier turns down to prompt and answer, oldest first; returns how many."""
        shrunk = 0
        for entry in self._history:
            if self.projected() <= target:
                break
            if not entry[2] and entry[1].tokens < entry[0].tokens:
                entry[2] = True
                shrunk += 1
        return shrunk

    def hide_observations(self, target: int) -> int:
        """Placeholders for older observations, oldest first, never the latest step's; returns
        how many were hidden. Steps already hidden are not looked at again."""
        hidden = 0
        while self._hidden_upto < len(self.steps) - 1 and self.projected() > target:
            step = self.steps[self._hidden_upto]
            self._hidden_upto += 1
            before = step.tokens
            for i, m in enumerate(step.messages):
                if isinstance(m, ToolMessage):
                    placeholder = replace(m, content=HIDDEN.format(id=m.tool_call_id))
                    step.tokens += estimate_message(placeholder) - estimate_message(m)
                    step.messages[i] = placeholder
                    hidden += 1
            step.hidden = True
            self._steps_tokens += step.tokens - before
        return hidden

    def compactable(self, budget: int) -> list[StepMessages]:
        """The older steps to summarise: all but the latest ones that fit in a share of the
        budget (the latest step always stays)."""
        keep, kept = 0, 0
        for step in reversed(self.steps):
            if keep and (kept + step.tokens) * self._ratio > budget * KEEP_RECENT_SHARE:
                break
            keep += 1
            kept += step.tokens
        return self.steps[: len(self.steps) - keep]

    def compact(self, steps: list[StepMessages], summary: str, at_step: int) -> Compaction:
        """Replace ``steps`` (the oldest ones) by ``summary``."""
        first = self.summarised[0] if self.summarised else steps[0].index
        last = steps[-1].index
        self.steps = self.steps[len(steps):]
        self._steps_tokens -= sum(s.tokens for s in steps)
        self._hidden_upto = max(0, self._hidden_upto - len(steps))
        self.summary, self.summarised = summary, (first, last)
        self._prompt = Sized([UserMessage(self._prompt_text())])
        compaction = Compaction(at_step, first, last, summary)
        self.compactions.append(compaction)
        return compaction

    def drop_history(self, target: int) -> int:
        """Last resort: forget earlier turns, oldest first."""
        dropped = 0
        while self._history and self.projected() > target:
            self._history.pop(0)
            dropped += 1
        return dropped


def budget_for(window: int, max_tokens: int, threshold: float) -> int:
    """Prompt tokens a request may use: the window less the step's completion budget (servers
    count both against it), and at most ``threshold`` of the window."""
    room = window - max_tokens - max(256, window // 100)
    return max(window // 4, min(int(window * threshold), room))
