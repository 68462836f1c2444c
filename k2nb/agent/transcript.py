"""Each run's transcript, appended to disk as JSON lines while it happens.

An interrupt, a crash or a dead kernel leaves a readable record up to the last finished step.
Streaming deltas are not written one by one (a step is written when it ends, or its partial text
when it is interrupted); everything else is.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from .events import ContentDelta, Event, ReasoningDelta, ToolCallDelta, event_to_dict

SKIPPED = (ReasoningDelta, ContentDelta, ToolCallDelta)


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
    """The records of a transcript, skipping a torn last line."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
