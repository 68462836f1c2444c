"""Each run's transcript, appended to disk as JSON lines while it happens, and read back.

An interrupt, a crash or a dead kernel leaves a readable record up to the last finished step.
Streaming deltas are not written one by one (a step is written when it ends, or its partial text
when it is interrupted); everything else is. :func:`read_run` turns a transcript back into the
:class:`~k2nb.core.run.Run` it records.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from ..core.events import (
    ContentDelta,
    Event,
    GenerationProgress,
    ReasoningDelta,
    ToolCallDelta,
    event_to_dict,
)
from ..core.conversation import Turn
from ..core.messages import ToolCall, Usage
from ..core.run import Compaction, Run, Step, ToolCallResult

SKIPPED = (ReasoningDelta, ContentDelta, ToolCallDelta, GenerationProgress)
TORN = "The transcript ends before the run finished (the kernel may have died)."


class Transcript:
    """Appends events of one run to ``<directory>/<run_id>.jsonl``."""

    def __init__(self, directory: str | os.PathLike[str], run_id: str):
        self.path = Path(directory) / f"{run_id}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time(), 3), **record}
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def __call__(self, event: Event) -> None:
        if not isinstance(event, SKIPPED):
            self.write(event_to_dict(event))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_transcript(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The lines of a transcript, skipping a torn last line."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_run(path: str | os.PathLike[str]) -> Run:
    """The run a transcript records (a stopped or torn run gives what was written)."""
    run = Run("", "", "", "", stop_reason="incomplete", note=TORN, transcript_path=str(path))
    steps: dict[int, Step] = {}
    asked: dict[int, list[ToolCall]] = {}  # the calls each step's message asked for
    for item in read_transcript(path):
        kind, at = item.get("type"), item.get("time")
        if kind == "settings":
            run.backend, run.model = item.get("backend", ""), item.get("model", "")
            run.replay_of = item.get("replay_of")
        elif kind == "history":
            run.history = [Turn.from_dict(t) for t in item.get("turns") or []]
        elif kind == "context_compacted":
            run.compactions.append(Compaction(item["step"], item["first"], item["last"],
                                              item.get("summary") or ""))
        elif kind == "run_started":
            run.run_id, run.prompt, run.started_at = item["run_id"], item["prompt"], at
            run.model = item.get("model") or run.model
            run.backend = item.get("backend") or run.backend
        elif kind == "step_started":
            steps[item["step"]] = Step(item["step"], started_at=at)
        elif kind == "step_finished":
            step = steps.setdefault(item["step"], Step(item["step"], started_at=at))
            message = item.get("message") or {}
            step.reasoning = message.get("reasoning") or ""
            step.content = message.get("content") or ""
            step.finish_reason = item.get("finish_reason")
            step.usage = Usage.from_dict(item.get("usage"))
            step.finished_at = at
            if step.started_at and at:
                step.duration_s = round(at - step.started_at, 3)
            asked[step.index] = [ToolCall(c.get("id"), c.get("name"), c.get("arguments", ""))
                                 for c in message.get("tool_calls") or []]
        elif kind == "tool_call_finished":
            step = steps.setdefault(item["step"], Step(item["step"], started_at=at))
            call = item.get("call") or {}
            step.tool_calls.append(ToolCallResult(
                ToolCall(call.get("id"), call.get("name"), call.get("arguments", "")),
                item.get("observation", ""), item.get("is_error", False),
                item.get("status", "ok"), item.get("outputs") or [], item.get("execution_count"),
                item.get("duration_s", 0.0), at))
        elif kind == "run_finished":
            run.answer, run.stop_reason = item.get("answer", ""), item.get("stop_reason", "")
            run.note, run.usage = item.get("note", ""), Usage.from_dict(item.get("usage"))
            run.finished_at = at
    for index, calls in asked.items():
        # A call the message asked for but the transcript never closed (a dead kernel).
        done = {c.call.id for c in steps[index].tool_calls}
        steps[index].tool_calls.extend(
            ToolCallResult(call, "", True, "interrupted") for call in calls if call.id not in done)
    run.steps = [steps[i] for i in sorted(steps)]
    return run
