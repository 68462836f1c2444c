"""Run records: one JSON-ready dict per run, enough to replay, compare and export it.

A record holds the prompt, every step's thinking and visible text, every tool call with its
arguments, observation and full outputs, and the answer. It is built from a :class:`Run` (to embed
in the notebook, size-capped) or from a transcript file (full fidelity, with timestamps), and both
give the same shape, so replay and export read one format::

    {"format": "k2nb-record", "version": 1, "run_id", "prompt", "prompt_hash", "model",
     "backend", "stop_reason", "answer", "note", "usage", "started_at", "finished_at",
     "transcript", "replay_of", "trimmed": [...],
     "steps": [{"index", "reasoning", "content", "finish_reason", "usage", "duration_s",
                "started_at", "finished_at",
                "calls": [{"id", "name", "arguments", "observation", "is_error", "status",
                           "outputs", "execution_count", "duration_s", "finished_at"}]}]}
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import time
from typing import Any

from .agent.run import Run
from .agent.transcript import read_transcript

FORMAT = "k2nb-record"
VERSION = 1
#: MIME type of the otherwise empty output that carries a record when the view shows the run.
RECORD_MIME = "application/vnd.k2nb.record+json"
#: Default cap for a record embedded in a notebook (per %%k2 cell).
DEFAULT_MAX_BYTES = 256_000


def prompt_hash(prompt: str) -> str:
    """A short, stable hash of a cell's prompt (line endings and trailing spaces ignored)."""
    text = "\n".join(line.rstrip() for line in prompt.strip().splitlines())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_record(run: Run, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """A size-capped copy of ``run`` with thinking, calls and outputs, for the notebook.

    Over ``max_bytes`` (UTF-8 JSON), images go first, then rich duplicates of plain text, then
    long texts are cut (head and tail kept), then outputs; what was dropped is listed in
    ``record["trimmed"]``. The tool-call arguments are kept as long as anything is: without them
    the record cannot replay.
    """
    replay = getattr(run, "replay", None)
    record: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run.run_id,
        "prompt": run.prompt,
        "prompt_hash": prompt_hash(run.prompt),
        "model": run.model,
        "backend": run.backend,
        "stop_reason": run.stop_reason,
        "answer": run.answer,
        "note": run.note,
        "usage": run.usage.to_dict(),
        "started_at": None,
        "finished_at": round(time.time(), 3),
        "transcript": run.transcript_path,
        "replay_of": getattr(replay, "source_run_id", None),
        "trimmed": [],
        "steps": [],
    }
    for step in run.steps:
        record["steps"].append({
            "index": step.index,
            "reasoning": step.reasoning,
            "content": step.content,
            "finish_reason": step.finish_reason,
            "usage": step.usage.to_dict(),
            "duration_s": round(step.duration_s, 3),
            "started_at": None,
            "finished_at": None,
            "calls": [{
                "id": c.call.id,
                "name": c.call.name,
                "arguments": c.call.arguments,
                "observation": c.observation,
                "is_error": c.is_error,
                "status": c.status,
                "outputs": copy.deepcopy(c.outputs),
                "execution_count": c.execution_count,
                "duration_s": round(c.duration_s, 3),
                "finished_at": None,
            } for c in step.tool_calls],
        })
    _add_times_from_transcript(record)
    return trim(record, max_bytes)


def record_from_transcript(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The full record of a transcript file (a stopped or torn run gives what was written)."""
    record: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "run_id": "", "prompt": "", "prompt_hash": "",
        "model": "", "backend": "", "stop_reason": "incomplete", "answer": "",
        "note": "The transcript ends before the run finished (the kernel may have died).",
        "usage": {}, "started_at": None, "finished_at": None, "transcript": str(path),
        "replay_of": None, "trimmed": [], "steps": [],
    }
    steps: dict[int, dict[str, Any]] = {}
    for item in read_transcript(path):
        kind, at = item.get("type"), item.get("time")
        if kind == "settings":
            record["backend"] = item.get("backend", "")
            record["model"] = item.get("model", "")
            record["replay_of"] = item.get("replay_of")
        elif kind == "run_started":
            record.update(run_id=item["run_id"], prompt=item["prompt"],
                          prompt_hash=prompt_hash(item["prompt"]), started_at=at,
                          model=item.get("model") or record["model"],
                          backend=item.get("backend") or record["backend"])
        elif kind == "step_started":
            steps[item["step"]] = _empty_step(item["step"], at)
        elif kind == "step_finished":
            step = steps.setdefault(item["step"], _empty_step(item["step"], at))
            message = item.get("message") or {}
            step.update(reasoning=message.get("reasoning") or "",
                        content=message.get("content") or "",
                        finish_reason=item.get("finish_reason"), usage=item.get("usage") or {},
                        finished_at=at)
            if step["started_at"] and at:
                step["duration_s"] = round(at - step["started_at"], 3)
            step["_calls"] = [dict(c) for c in message.get("tool_calls") or []]
        elif kind == "tool_call_finished":
            step = steps.setdefault(item["step"], _empty_step(item["step"], at))
            call = item.get("call") or {}
            step["calls"].append({
                "id": call.get("id"), "name": call.get("name"),
                "arguments": call.get("arguments", ""), "observation": item.get("observation", ""),
                "is_error": item.get("is_error", False), "status": item.get("status", "ok"),
                "outputs": item.get("outputs") or [],
                "execution_count": item.get("execution_count"),
                "duration_s": item.get("duration_s", 0.0), "finished_at": at,
            })
        elif kind == "run_finished":
            record.update(answer=item.get("answer", ""), stop_reason=item.get("stop_reason", ""),
                          note=item.get("note", ""), usage=item.get("usage") or {},
                          finished_at=at)
    for step in steps.values():
        # A call the message asked for but the transcript never closed (a dead kernel).
        done = {c["id"] for c in step["calls"]}
        for call in step.pop("_calls", []):
            if call.get("id") not in done:
                step["calls"].append({
                    "id": call.get("id"), "name": call.get("name"),
                    "arguments": call.get("arguments", ""), "observation": "",
                    "is_error": True, "status": "interrupted", "outputs": [],
                    "execution_count": None, "duration_s": 0.0, "finished_at": None,
                })
    record["steps"] = [steps[i] for i in sorted(steps)]
    return record


def _empty_step(index: int, at: float | None) -> dict[str, Any]:
    return {"index": index, "reasoning": "", "content": "", "finish_reason": None, "usage": {},
            "duration_s": 0.0, "started_at": at, "finished_at": None, "calls": [], "_calls": []}


def _add_times_from_transcript(record: dict[str, Any]) -> None:
    """Copy timestamps from the run's transcript into a record built from a Run."""
    path = record.get("transcript")
    if not path or not os.path.isfile(path):
        return
    try:
        full = record_from_transcript(path)
    except OSError:
        return
    if full["run_id"] != record["run_id"]:
        return
    record["started_at"] = full["started_at"]
    record["replay_of"] = record["replay_of"] or full.get("replay_of")
    timed = {s["index"]: s for s in full["steps"]}
    for step in record["steps"]:
        source = timed.get(step["index"])
        if not source:
            continue
        step["started_at"], step["finished_at"] = source["started_at"], source["finished_at"]
        finished = {c["id"]: c["finished_at"] for c in source["calls"]}
        for call in step["calls"]:
            call["finished_at"] = finished.get(call["id"])


# --- size cap ---------------------------------------------------------------------------------


def size(record: dict[str, Any]) -> int:
    """Bytes of the record as UTF-8 JSON (what it adds to the .ipynb, near enough)."""
    return len(json.dumps(record, ensure_ascii=False, default=str).encode("utf-8"))


def trim(record: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Cut ``record`` in place until it fits ``max_bytes``; returns it.

    Each call whose outputs were cut says so in ``call["trimmed"]`` (replay then compares only
    what was kept).
    """
    if size(record) <= max_bytes:
        return record
    calls = [c for s in record["steps"] for c in s["calls"]]
    if _each(calls, _drop_images, "images"):
        record["trimmed"].append("images")
    if size(record) <= max_bytes:
        return record
    if _each(calls, _drop_rich_duplicates, "rich"):
        record["trimmed"].append("rich outputs (HTML and the like) where plain text exists")
    for chars in (20_000, 4_000, 1_000, 200):
        if size(record) <= max_bytes:
            return record
        cut = _each(calls, functools.partial(_cap_output, chars=chars), "text")
        for step in record["steps"]:
            for call in step["calls"]:
                call["observation"], c1 = _cap(call["observation"], chars)
                cut |= c1
            step["reasoning"], c2 = _cap(step["reasoning"], chars * 2)
            cut |= c2
        if cut:
            record["trimmed"].append(f"texts over {chars:,} characters (head and tail kept)")
    if size(record) > max_bytes:
        for call in calls:
            call["outputs"] = []
            _mark(call, "outputs")
        record["trimmed"].append("all outputs (they cannot be compared on replay)")
    if size(record) > max_bytes:
        record["steps"] = []
        record["trimmed"].append(
            f"every step: the run's code alone is over the {max_bytes:,}-byte limit, so the "
            "notebook cannot replay it (keep the transcript file with the notebook)")
    return record


def _each(calls: list[dict[str, Any]], change: Any, mark: str) -> bool:
    changed = False
    for call in calls:
        hit = False
        for output in call["outputs"]:
            hit |= bool(change(output))
        if hit:
            _mark(call, mark)
        changed |= hit
    return changed


def _mark(call: dict[str, Any], what: str) -> None:
    marks = call.setdefault("trimmed", [])
    if what not in marks:
        marks.append(what)


def _drop_images(output: dict[str, Any]) -> bool:
    data = output.get("data")
    if not isinstance(data, dict):
        return False
    images = [k for k in data if k.startswith("image/") or k == "application/pdf"]
    for key in images:
        del data[key]
        (output.get("metadata") or {}).pop(key, None)
    if images:
        data.setdefault("text/plain", f"[{', '.join(images)} not kept in the notebook's record]")
    return bool(images)


def _drop_rich_duplicates(output: dict[str, Any]) -> bool:
    data = output.get("data")
    if not isinstance(data, dict) or "text/plain" not in data:
        return False
    rich = [k for k in data if k != "text/plain"]
    for key in rich:
        del data[key]
    return bool(rich)


def _cap_output(output: dict[str, Any], chars: int) -> bool:
    cut = False
    if output.get("output_type") == "stream":
        output["text"], cut = _cap(_text(output.get("text", "")), chars)
    elif output.get("output_type") == "error":
        cut = len(output.get("traceback", [])) > 3
        output["traceback"] = output.get("traceback", [])[-3:]
        output["evalue"], c = _cap(output.get("evalue", ""), chars)
        cut |= c
    data = output.get("data")
    if isinstance(data, dict):
        for key, value in list(data.items()):
            if isinstance(value, (str, list)):
                data[key], c = _cap(_text(value), chars)
                cut |= c
    return cut


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _cap(text: str, chars: int) -> tuple[str, bool]:
    if len(text) <= chars:
        return text, False
    head, tail = text[: chars * 2 // 3], text[-(chars // 3):]
    return f"{head}\n[… {len(text) - len(head) - len(tail):,} characters not kept …]\n{tail}", True


def record_metadata(run: Run, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Output metadata for the ``%%k2`` cell: the run id, its transcript and the embedded record."""
    return {"k2nb": {"run_id": run.run_id, "transcript": run.transcript_path,
                     "record": run_record(run, max_bytes)}}
