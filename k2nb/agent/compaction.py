"""The side request that summarises older steps when the window fills up, and its fallback.

The same model writes the summary, without tools, from a compact rendering of the steps (their
visible text, an excerpt of their thinking, each call's code and the head of what it returned)
and the previous summary, if any. If that request fails or comes back empty, k2nb writes a
mechanical digest instead, so the run goes on either way.
"""

from __future__ import annotations

from ..core.messages import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage
from .context import CHARS_PER_TOKEN, StepMessages

SUMMARIZER = """\
You are summarising your own earlier work on a task, so that you can continue it with less \
context. Write, for yourself, the progress so far: the facts you found (with the exact numbers \
and names), the variables, files and functions you created in the user's Python namespace and \
what each holds, what you tried that failed and why, and what is left to do. Be concise — at \
most about 400 words, as a list — and write nothing else."""

MIN_STEP_CHARS = 240


def summary_request(prompt: str, previous: str, steps: list[StepMessages],
                    budget_tokens: int) -> list[Message]:
    """The messages of the summary request, within ``budget_tokens``."""
    first, last = steps[0].index, steps[-1].index
    room = max(MIN_STEP_CHARS * len(steps), int(budget_tokens * CHARS_PER_TOKEN))
    room -= len(prompt) + len(previous)
    per_step = max(MIN_STEP_CHARS, room // max(1, len(steps)))
    body = [f"The task:\n{prompt}"]
    if previous:
        body.append(f"Your summary of the steps before these:\n{previous}")
    body.append(f"Your steps {first}–{last}:")
    body.extend(render_step(step, per_step) for step in steps)
    body.append(f"Write the summary of the progress so far (steps 1–{last}).")
    return [SystemMessage(SUMMARIZER), UserMessage("\n\n".join(body))]


def render_step(step: StepMessages, chars: int) -> str:
    """One step in at most about ``chars`` characters: text, thinking excerpt, calls, results."""
    lines = [f"Step {step.index}:"]
    share = max(60, chars // 4)
    for m in step.messages:
        if isinstance(m, AssistantMessage):
            if m.reasoning:
                lines.append("thought: " + _excerpt(m.reasoning, share))
            if m.content:
                lines.append("wrote: " + _excerpt(m.content, share))
            for call in m.tool_calls:
                lines.append(f"called {call.name}: " + _excerpt(call.arguments, share))
        elif isinstance(m, ToolMessage):
            lines.append("it returned: " + _excerpt(m.content, share))
    return "\n".join(lines)


def fallback_summary(steps: list[StepMessages], previous: str, why: str,
                     chars: int = 16_000) -> str:
    """A digest k2nb writes itself when the model's summary could not be had (at most about
    ``chars`` characters, however many times it happens)."""
    lines = [f"(k2nb could not get a summary from the model: {why}. A digest instead.)"]
    if previous:
        lines.append(_excerpt(previous, chars // 3))
    per_step = max(MIN_STEP_CHARS, (chars * 2 // 3) // max(1, len(steps)))
    lines.extend(render_step(step, per_step) for step in steps[-(chars // MIN_STEP_CHARS):])
    return "\n".join(lines)


def _excerpt(text: str, chars: int) -> str:
    text = " ".join(text.split())
    if len(text) <= chars:
        return text
    head = chars * 2 // 3
    return f"{text[:head]} … {text[len(text) - (chars - head):]}"
