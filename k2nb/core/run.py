"""A run as the user gets it back (``_k2``, ``k2nb.run(...)``), and its saved form.

:class:`Run` is also the run *record*: :meth:`Run.to_dict` is the JSON that a notebook embeds in
the ``%%k2`` cell's output metadata and that heavy mode sends between processes, and
:meth:`Run.from_dict` reads it back (every schema version written so far). Replay, export,
comparison and heavy mode all read this one typed form.
"""

from __future__ import annotations

import copy
import hashlib
import html
from dataclasses import dataclass, field
from typing import Any

from .conversation import CODE_HEAD, OBSERVATION_HEAD, CallDigest, Turn, UserCell, head
from .messages import Message, ToolCall, Usage, code_of

RECORD_FORMAT = "k2nb-record"
#: The record's schema version; :meth:`Run.from_dict` reads every version up to this one.
#: 1: the first records. 2: adds ``history`` (the earlier turns the run was given) and
#: ``compactions`` (older steps replaced by a summary when the window filled up).
RECORD_VERSION = 2
STOP_REASONS = ("answered", "max_steps", "max_tokens", "interrupted", "error", "loop")


def prompt_hash(prompt: str) -> str:
    """A short, stable hash of a cell's prompt (line endings and trailing spaces ignored)."""
    text = "\n".join(line.rstrip() for line in prompt.strip().splitlines())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class ToolCallResult:
    """One tool call of a step and what it gave: the observation the model read and the full
    outputs the user saw. ``trimmed`` lists what a size-capped record left out of it."""

    call: ToolCall
    observation: str
    is_error: bool = False
    status: str = "ok"  # ok | error | timeout | skipped | interrupted
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    duration_s: float = 0.0
    finished_at: float | None = None
    trimmed: list[str] = field(default_factory=list)

    @property
    def code(self) -> str | None:
        """The code of a code_interpreter call, if it parsed."""
        return code_of(self.call.name, self.call.arguments)

    def to_dict(self) -> dict[str, Any]:
        data = {"id": self.call.id, "name": self.call.name, "arguments": self.call.arguments,
                "observation": self.observation, "is_error": self.is_error,
                "status": self.status, "outputs": copy.deepcopy(self.outputs),
                "execution_count": self.execution_count,
                "duration_s": round(self.duration_s, 3), "finished_at": self.finished_at}
        if self.trimmed:
            data["trimmed"] = list(self.trimmed)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], position: int = 0) -> ToolCallResult:
        name = data.get("name") or ""
        call = ToolCall(data.get("id") or f"functions.{name}:{position}", name,
                        data.get("arguments") or "")
        return cls(call, data.get("observation") or "", bool(data.get("is_error")),
                   data.get("status") or "ok", list(data.get("outputs") or []),
                   data.get("execution_count"), float(data.get("duration_s") or 0.0),
                   data.get("finished_at"), list(data.get("trimmed") or []))


#: The name the first releases used; kept for code that imported it.
ToolCallRecord = ToolCallResult


@dataclass
class Compaction:
    """Before step ``step``, steps ``first``–``last`` were replaced by ``summary`` (the window
    had filled up); a replay repeats it at the same step."""

    step: int
    first: int
    last: int
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "first": self.first, "last": self.last,
                "summary": self.summary}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Compaction:
        return cls(int(data["step"]), int(data["first"]), int(data["last"]),
                   data.get("summary") or "")


@dataclass
class Step:
    """One model call and the tool calls it made."""

    index: int
    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCallResult] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    duration_s: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    #: A local mixture-of-experts model's router choices in this step (ExpertUsage), or None.
    experts: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reasoning": self.reasoning, "content": self.content,
                "finish_reason": self.finish_reason, "usage": self.usage.to_dict(),
                "duration_s": round(self.duration_s, 3), "started_at": self.started_at,
                "finished_at": self.finished_at,
                "calls": [c.to_dict() for c in self.tool_calls]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        calls = [ToolCallResult.from_dict(c, i) for i, c in enumerate(data.get("calls") or [])]
        return cls(int(data.get("index") or 0), data.get("reasoning") or "",
                   data.get("content") or "", calls, Usage.from_dict(data.get("usage")),
                   data.get("finish_reason"), float(data.get("duration_s") or 0.0),
                   data.get("started_at"), data.get("finished_at"))


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
    #: The conversation as the model last saw it (system prompt, history, this run's steps).
    messages: list[Message] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    #: The run this one replayed, when it is a replay.
    replay_of: str | None = None
    #: What a size cap left out of this record (images, long texts, ...).
    trimmed: list[str] = field(default_factory=list)
    #: A replay's comparison with its recording (k2nb.runs.replay.ReplayReport), else None.
    replay: Any = None
    #: The earlier turns of the conversation this run was given (k2nb.core.conversation.Turn).
    history: list[Any] = field(default_factory=list)
    #: Older steps replaced by a summary when the window filled up.
    compactions: list[Compaction] = field(default_factory=list)
    #: The conversation this run is a turn of (``k2nb.run(..., conversation=...)``).
    conversation: Any = None

    @property
    def ok(self) -> bool:
        return self.stop_reason == "answered"

    @property
    def tool_calls(self) -> list[ToolCallResult]:
        return [c for s in self.steps for c in s.tool_calls]

    @property
    def expert_counts(self) -> list[Any]:
        """Per step, which experts a local MoE's router chose (empty for other backends)."""
        return [s.experts for s in self.steps if s.experts is not None]

    @property
    def prompt_hash(self) -> str:
        return prompt_hash(self.prompt)

    def as_turn(self, *, user_cells: list[UserCell] | None = None,
                execution_count: int | None = None, cell_id: str | None = None) -> Turn:
        """This run as later turns of its conversation see it: prompt, answer and a digest of
        its calls (code and the head of each observation; no thinking)."""
        calls = [CallDigest(c.call.name,
                            head(c.code if c.code is not None else c.call.arguments, CODE_HEAD),
                            head(c.observation, OBSERVATION_HEAD), c.status, c.execution_count)
                 for c in self.tool_calls]
        counts = [c.execution_count for c in self.tool_calls if c.execution_count is not None]
        return Turn(self.run_id, self.prompt, self.answer, self.stop_reason, self.note, calls,
                    list(user_cells or []), execution_count, counts, cell_id)

    # --- the saved form ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The run as a JSON-ready record (outputs included, messages and live objects not)."""
        return {
            "format": RECORD_FORMAT, "version": RECORD_VERSION, "run_id": self.run_id,
            "prompt": self.prompt, "prompt_hash": self.prompt_hash, "model": self.model,
            "backend": self.backend, "stop_reason": self.stop_reason, "answer": self.answer,
            "note": self.note, "usage": self.usage.to_dict(), "started_at": self.started_at,
            "finished_at": self.finished_at, "transcript": self.transcript_path,
            "replay_of": self.replay_of, "trimmed": list(self.trimmed),
            "steps": [s.to_dict() for s in self.steps],
            "history": [t.to_dict() for t in self.history],
            "compactions": [c.to_dict() for c in self.compactions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """Read a record written by :meth:`to_dict` (any version so far)."""
        if data.get("format") not in (None, RECORD_FORMAT):
            raise ValueError(f"not a k2nb run record (format {data.get('format')!r})")
        version = int(data.get("version") or 1)
        if version > RECORD_VERSION:
            raise ValueError(f"this run record has version {version}; this k2nb reads up to "
                             f"{RECORD_VERSION}: upgrade k2nb to read it")
        return cls(
            run_id=data.get("run_id") or "", prompt=data.get("prompt") or "",
            model=data.get("model") or "", backend=data.get("backend") or "",
            answer=data.get("answer") or "",
            steps=[Step.from_dict(s) for s in data.get("steps") or []],
            usage=Usage.from_dict(data.get("usage")),
            stop_reason=data.get("stop_reason") or "incomplete", note=data.get("note") or "",
            transcript_path=data.get("transcript"), started_at=data.get("started_at"),
            finished_at=data.get("finished_at"), replay_of=data.get("replay_of"),
            trimmed=list(data.get("trimmed") or []),
            history=[Turn.from_dict(t) for t in data.get("history") or []],
            compactions=[Compaction.from_dict(c) for c in data.get("compactions") or []])

    # --- display ---------------------------------------------------------------------------

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
