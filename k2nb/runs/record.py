"""A run's record embedded in the notebook: :meth:`Run.to_dict`, capped in size.

The ``%%k2`` cell keeps its run's record in its output metadata (``metadata.k2nb.record``), so a
saved notebook replays in a fresh kernel without its transcript folder. A notebook must stay a
reasonable size, so the record is capped (``%config K2Magics.record_bytes``): images go first,
then rich duplicates of plain text, then long texts are cut (head and tail kept), then outputs;
what was left out is listed in the record's and each call's ``trimmed``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ..core.run import Run

#: MIME type of the otherwise empty output that carries a record when the view shows the run.
RECORD_MIME = "application/vnd.k2nb.record+json"
#: Default cap for a record embedded in a notebook (per %%k2 cell).
DEFAULT_MAX_BYTES = 256_000


def notebook_record(run: Run, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """The record of ``run`` for the notebook: its dict form, within ``max_bytes``."""
    return trim(run.to_dict(), max_bytes)


def capped(run: Run, max_bytes: int) -> Run:
    """A copy of ``run`` cut to ``max_bytes`` the way the notebook's record is."""
    return Run.from_dict(notebook_record(run, max_bytes))


# --- size cap ---------------------------------------------------------------------------------


def size(record: dict[str, Any]) -> int:
    """Bytes of the record as UTF-8 JSON (what it adds to the .ipynb, near enough)."""
    return len(json.dumps(record, ensure_ascii=False, default=str).encode("utf-8"))


def trim(record: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Cut a record's dict form in place until it fits ``max_bytes``; returns it.

    Each call whose outputs were cut says so in ``call["trimmed"]`` (replay then compares only
    what was kept).
    """
    if size(record) <= max_bytes:
        return record
    if record.get("history"):  # the earlier turns are in their own records and transcripts
        record["history"] = []
        record["trimmed"].append("the earlier turns the run was given")
        if size(record) <= max_bytes:
            return record
    calls = [c for s in record["steps"] for c in s["calls"]]
    if _each(calls, drop_images, "images"):
        record["trimmed"].append("images")
    if size(record) <= max_bytes:
        return record
    if _each(calls, drop_rich_duplicates, "rich"):
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


def drop_images(output: dict[str, Any]) -> bool:
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


def drop_rich_duplicates(output: dict[str, Any]) -> bool:
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
                     "record": notebook_record(run, max_bytes)}}
