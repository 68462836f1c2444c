"""Where recorded runs are found: transcript files, and records embedded in notebooks.

A fresh kernel cannot read the notebook it runs in (nbclient does not tell it; JupyterLab only
names it in ``JPY_SESSION_NAME``), so records are looked up, in this order:

1. transcripts in the transcript folder (``.k2nb/runs`` next to the notebook, by default): full
   fidelity, and the folder travels with the notebook (zip it, commit it, ship it on Binder);
2. notebooks named with ``%k2 replay --from lesson.ipynb`` in this kernel session;
3. the notebook of this kernel session, when the frontend names it (``JPY_SESSION_NAME``,
   JupyterLab and Jupyter Server do);
4. every ``*.ipynb`` in the working directory, most recently saved first — the record embedded in
   the ``%%k2`` cell's output metadata (``metadata["k2nb"]["record"]``) of the saved file.

Records are matched to a ``%%k2`` cell by the hash of its prompt text, or by run id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.run import RECORD_FORMAT, Run, prompt_hash
from .transcript import read_run

MAX_TRANSCRIPTS = 5_000


@dataclass
class Found:
    """A recorded run and where it came from (said in the cell when it replays)."""

    record: Run
    source: str  # "transcript .k2nb/runs/….jsonl" | "the record embedded in lesson.ipynb"


class Recordings:
    """Where this kernel session looks for recorded runs besides the transcript folder:
    notebooks named with ``%k2 replay --from``, and the records read from notebooks (cached by
    modification time: a folder of notebooks is scanned once per change)."""

    def __init__(self) -> None:
        self.notebooks: list[Path] = []
        self._cache: dict[Path, tuple[float, list[Run]]] = {}

    def register(self, path: str | os.PathLike[str]) -> list[Run]:
        """Search ``path`` for records from now on; returns the records it holds."""
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file():
            raise FileNotFoundError(f"No notebook at {path}.")
        records = self.notebook_records(resolved)
        if resolved not in self.notebooks:
            self.notebooks.insert(0, resolved)
        return records

    def notebook_records(self, path: str | os.PathLike[str]) -> list[Run]:
        """Every run record embedded in a saved notebook's outputs."""
        path = Path(path).resolve()
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return []
        cached = self._cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        records = notebook_records(path)
        self._cache[path] = (mtime, records)
        return records

    def find(self, prompt: str | None = None, run_id: str | None = None, *,
             transcript_dir: str | os.PathLike[str] = ".k2nb/runs",
             cwd: str | os.PathLike[str] | None = None) -> Found | None:
        """See :func:`find`; also searches this session's registered notebooks."""
        return find(prompt, run_id, transcript_dir=transcript_dir, cwd=cwd, recordings=self)


def find(prompt: str | None = None, run_id: str | None = None, *,
         transcript_dir: str | os.PathLike[str] = ".k2nb/runs",
         cwd: str | os.PathLike[str] | None = None,
         recordings: Recordings | None = None) -> Found | None:
    """The best record for a prompt (or a run id), or None.

    For a prompt, an answered run wins over a stopped one, an original run over replays of it
    (a replay's outputs are only as good as the run it replayed), then the newest. Runs that
    ended in an error (a missing key, a server failure) are never replayed.
    """
    want = prompt_hash(prompt) if prompt is not None else None
    cwd = Path(cwd or os.getcwd())
    recordings = recordings or Recordings()
    directory = Path(transcript_dir)
    if not directory.is_absolute():
        directory = cwd / directory
    if run_id:
        path = directory / f"{run_id}.jsonl"
        if path.is_file():
            return Found(read_run(path), f"transcript {_show(path, cwd)}")
        for path in directory.glob(f"**/{run_id}.jsonl"):  # heavy trajectories, aggregations
            return Found(read_run(path), f"transcript {_show(path, cwd)}")
    candidates: list[tuple[tuple[bool, bool, float], Path]] = []
    if want is not None:
        for path, head in _transcript_heads(directory):
            if head.get("prompt_hash") == want and head["stop_reason"] != "error":
                rank = (head["stop_reason"] == "answered", head["backend"] != "replay",
                        head["time"])
                candidates.append((rank, path))
        if candidates:
            path = max(candidates)[1]
            return Found(read_run(path), f"transcript {_show(path, cwd)}")
    for notebook in notebooks_to_search(cwd, recordings.notebooks):
        matching = [r for r in recordings.notebook_records(notebook)
                    if (run_id and r.run_id == run_id)
                    or (want is not None and r.prompt_hash == want and r.stop_reason != "error")]
        if matching:
            best = max(matching, key=lambda r: (r.stop_reason == "answered",
                                                r.backend != "replay", r.finished_at or 0))
            return Found(best, f"the record embedded in {_show(notebook, cwd)}")
    return None


def notebooks_to_search(cwd: Path, registered: Iterable[Path] = ()) -> list[Path]:
    """Registered notebooks, this session's notebook, then ``*.ipynb`` in ``cwd`` (newest first)."""
    found: list[Path] = []
    session = os.environ.get("JPY_SESSION_NAME")
    candidates = list(registered)
    if session:  # an absolute path, or a path relative to the server's root
        candidates.append(Path(session) if os.path.isabs(session) else cwd / session)
        candidates.append(cwd / Path(session).name)
    try:
        local = sorted(cwd.glob("*.ipynb"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        local = []
    for path in [*candidates, *local]:
        path = path.resolve()
        if path.is_file() and path not in found:
            found.append(path)
    return found


def notebook_records(path: str | os.PathLike[str]) -> list[Run]:
    """Every run record embedded in a saved notebook's outputs (``metadata.k2nb.record``)."""
    try:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    records = []
    for cell in notebook.get("cells") or []:
        for output in cell.get("outputs") or []:
            meta = (output.get("metadata") or {}).get("k2nb") or {}
            record = meta.get("record") if isinstance(meta, dict) else None
            if isinstance(record, dict) and record.get("format") == RECORD_FORMAT:
                try:
                    records.append(Run.from_dict(record))
                except ValueError:
                    continue  # a newer k2nb's record: not ours to replay
    return records


def _transcript_heads(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """For each top-level transcript: its prompt hash, backend, start time and how it ended.

    Only the first lines and the last line are read, so a folder of long runs scans fast.
    (Heavy mode keeps its trajectories in sub-folders: they are not candidates for a cell.)
    """
    if not directory.is_dir():
        return
    paths = sorted(directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in paths[:MAX_TRANSCRIPTS]:
        head: dict[str, Any] = {"backend": "", "time": 0.0, "stop_reason": "incomplete"}
        try:
            with open(path, "rb") as f:
                for _ in range(3):
                    line = f.readline()
                    if not line:
                        break
                    try:
                        item = json.loads(line)
                    except ValueError:
                        continue
                    if item.get("type") == "settings":
                        head["backend"] = item.get("backend", "")
                    elif item.get("type") == "run_started":
                        head["prompt_hash"] = prompt_hash(item.get("prompt", ""))
                        head["time"] = item.get("time") or 0.0
                        head["backend"] = head["backend"] or item.get("backend", "")
                        break
                last = _last_line(f)
                if b'"type": "run_finished"' in last:
                    try:
                        head["stop_reason"] = json.loads(last).get("stop_reason", "")
                    except ValueError:
                        pass
        except OSError:
            continue
        if "prompt_hash" in head:
            yield path, head


def _last_line(f: Any) -> bytes:
    f.seek(0, os.SEEK_END)
    end = f.tell()
    f.seek(max(0, end - 4096))
    lines = f.read().rstrip(b"\n").split(b"\n")
    return lines[-1] if lines else b""


def _show(path: Path, cwd: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)
