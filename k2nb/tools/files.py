"""``read_file`` and ``list_files``: the model reads the user's files without running code.

Both are confined to one root folder — the notebook's working directory unless the user widens
it (``%config K2Magics.files_root``) — after resolving ``..`` and symbolic links, so a path can
never lead outside it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pydantic

from .observation import OutputStore, clean_text, redact
from ..core.tool import BaseTool, ToolOutcome
from .schema import model_parameters

MAX_FILE_BYTES = 20_000_000
MAX_ENTRIES = 500
SKIPPED_DIRS = {".git", "__pycache__", "node_modules", ".ipynb_checkpoints", ".venv", ".k2nb",
                ".mypy_cache", ".pytest_cache"}


class OutsideRoot(Exception):
    """A path that leads outside the allowed root."""


def confine(root: Path, path: str) -> Path:
    """``path`` (relative to ``root``, or absolute) resolved, if it lies inside ``root``."""
    candidate = (root / os.path.expanduser(path or ".")).resolve()
    if candidate != root and root not in candidate.parents:
        raise OutsideRoot(
            f"`{path}` is outside the notebook's working directory ({root}); only files under it "
            "can be read. (The user can widen this with `%config K2Magics.files_root = \"/\"`.)")
    return candidate


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class ReadFileArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    path: str = pydantic.Field(description="File path, relative to the notebook's folder.")


class ReadFile(BaseTool):
    """``read_file``: a text file (or a PDF's text), capped, pageable with ``read_output``."""

    name = "read_file"
    arguments = ReadFileArguments

    def __init__(self, root: str | os.PathLike[str], store: OutputStore,
                 observation_chars: int = 8_000, secrets: tuple[str, ...] = ()):
        self.root = Path(root).resolve()
        self.store = store
        self.observation_chars = observation_chars
        self.secrets = secrets
        self.parameters = model_parameters(ReadFileArguments)
        self.description = (
            "Read a text file (or the text of a PDF) from the notebook's folder. Long files are "
            "shortened; read further with `read_output` at the offset given.")

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        start = time.monotonic()
        text, error = self._read(values["path"])
        if error:
            return ToolOutcome(error, is_error=True, status="error",
                               duration_s=time.monotonic() - start)
        text = redact(clean_text(text), self.secrets)
        self.store.put(call_id, text)
        header = f"File: {values['path']} ({text.count(chr(10)) + 1:,} lines, {len(text):,} chars)"
        if len(text) > self.observation_chars:
            header += f"\nShortened: read more with read_output(call_id=\"{call_id}\", offset=N)."
        if len(text) > self.observation_chars:
            body = self.store.page(call_id, 0, self.observation_chars)
        else:
            body = text or "(empty file)"
        return ToolOutcome(f"{header}\n\n{body}", duration_s=time.monotonic() - start)

    def _read(self, path: str) -> tuple[str, str | None]:
        try:
            target = confine(self.root, path)
        except OutsideRoot as exc:
            return "", str(exc)
        if not target.exists():
            return "", f"There is no file `{path}` in {self.root}. Use list_files to see what exists."
        if target.is_dir():
            return "", f"`{path}` is a folder; use list_files to see its contents."
        size = target.stat().st_size
        if size > MAX_FILE_BYTES:
            return "", (f"`{path}` is {_size(size)}, over the {_size(MAX_FILE_BYTES)} read_file "
                        "limit; load it with code_interpreter (e.g. pandas) instead.")
        data = target.read_bytes()
        if data[:5] == b"%PDF-":
            from .web.fetch import FetchError, pdf_text

            try:
                _title, text, _notes = pdf_text(data)
            except FetchError as exc:
                return "", str(exc)
            return text, None
        if b"\x00" in data[:8192]:
            return "", (f"`{path}` is a binary file ({_size(size)}); open it with "
                        "code_interpreter using a library for its format.")
        return data.decode("utf-8", "replace"), None


class ListFilesArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    dir: str = pydantic.Field(".", description="Folder, relative to the notebook's folder.")
    recursive: bool = pydantic.Field(False, description="Also list sub-folders' contents.")


class ListFiles(BaseTool):
    """``list_files``: the entries of a folder under the root, with sizes."""

    name = "list_files"
    arguments = ListFilesArguments

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.parameters = model_parameters(ListFilesArguments)
        self.description = "List the files in a folder of the notebook's working directory."

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        start = time.monotonic()
        try:
            folder = confine(self.root, values["dir"])
        except OutsideRoot as exc:
            return ToolOutcome(str(exc), is_error=True, status="error")
        if not folder.is_dir():
            return ToolOutcome(f"`{values['dir']}` is not a folder under {self.root}.",
                               is_error=True, status="error")
        lines: list[str] = []
        more = self._walk(folder, folder, values["recursive"], lines)
        shown = folder.relative_to(self.root).as_posix() if folder != self.root else "."
        header = f"{shown}/ ({len(lines)} entries{', listing cut short' if more else ''})"
        body = "\n".join(lines) if lines else "(empty folder)"
        return ToolOutcome(f"{header}\n{body}", duration_s=time.monotonic() - start)

    def _walk(self, base: Path, folder: Path, recursive: bool, lines: list[str]) -> bool:
        try:
            entries = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower()))
        except OSError as exc:
            lines.append(f"{folder.relative_to(base).as_posix()}/: unreadable ({exc.strerror})")
            return False
        for entry in entries:
            if len(lines) >= MAX_ENTRIES:
                return True
            rel = entry.relative_to(base).as_posix()
            if entry.is_dir():
                lines.append(f"{rel}/")
                walk = recursive and entry.name not in SKIPPED_DIRS and not entry.is_symlink()
                if walk and self._walk(base, entry, recursive, lines):
                    return True
            else:
                try:
                    lines.append(f"{rel}  {_size(entry.stat().st_size)}")
                except OSError:
                    lines.append(f"{rel}  (unreadable)")
        return False
