"""The record of one agent run, as the user gets it back (``_k2``, ``k2nb.run(...)``)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from .messages import Message, ToolCall, Usage, code_of


@dataclass
class ToolCallRecord:
    call: ToolCall
    observation: str
    is_error: bool = False
    status: str = "ok"  # ok | error | timeout | skipped | interrupted
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    duration_s: float = 0.0

    @property
    def code(self) -> str | None:
        """The code of a code_interpreter call, if it parsed."""
        return code_of(self.call.name, self.call.arguments)


@dataclass
class Step:
    """One model call and the tool calls it made."""

    index: int
    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    duration_s: float = 0.0


STOP_REASONS = ("answered", "max_steps", "max_tokens", "interrupted", "error", "loop")


@dataclass
class Run:
    """A finished (or stopped) run: the answer, every step, usage and where the transcript is."""

    run_id: str
    prompt: str
    model: str
    backend: str
    answer: str = ""
    steps: list[Step] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "answered"
    note: str = ""
    transcript_path: str | None = None
    messages: list[Message] = field(default_factory=list)
    #: Per step, which experts a local MoE's router chose (``k2nb.backends.experts.ExpertUsage``).
    expert_counts: list[Any] = field(default_factory=list)

    def expert_heatmap(self, which: str = "generated") -> Any:
        """A layers × experts heat map of the router's choices over this run (local MoE only)."""
        if not self.expert_counts:
            raise ValueError("This run has no expert counts: they come from a local MoE model "
                             "(%k2 backend local --model PATH).")
        from ..backends.experts import expert_heatmap

        return expert_heatmap(self.expert_counts, which=which,
                              title=f"Experts chosen per layer · run {self.run_id}")

    @property
    def ok(self) -> bool:
        return self.stop_reason == "answered"

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        return [c for s in self.steps for c in s.tool_calls]

    def __repr__(self) -> str:
        calls = len(self.tool_calls)
        return (
            f"<k2nb Run {self.run_id} {self.stop_reason}: {len(self.steps)} steps, {calls} tool "
            f"calls, {self.usage.total_tokens} tokens>"
        )

    def _repr_html_(self) -> str:
        answer = html.escape(self.answer or self.note or "(no answer)")
        return (
            f"<div class='k2nb-run'><b>k2nb run</b> <code>{self.run_id}</code> · "
            f"{html.escape(self.model)} · {self.stop_reason} · {len(self.steps)} steps · "
            f"{len(self.tool_calls)} tool calls · {self.usage.total_tokens:,} tokens"
            f"<pre style='white-space:pre-wrap'>{answer}</pre></div>"
        )
