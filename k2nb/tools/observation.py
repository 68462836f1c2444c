"""The model's view of outputs: budgeted, schema-aware, secret-free text.

The user sees every output in full in the notebook. The model reads a rendering made for it:
DataFrames as shape/dtypes/head, images as a short description, tracebacks trimmed to the frames
that matter, and the whole capped with a visible head+tail marker. The full rendering is kept in
an :class:`OutputStore` so the ``read_output`` tool can page through it on request.
"""

from __future__ import annotations

import base64
import html
import re
import struct
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Container, Iterable

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SECRET_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\b(?:ghp|gho|github_pat)_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
]
REDACTED = "[redacted]"
TABLE_ROWS_IN_FULL = 20  # a DataFrame this short is shown whole (e.g. df.describe())
HEAD_ROWS = 5


def clean_text(text: str) -> str:
    """Drop terminal colour codes and unprintable control characters (binary garbage)."""
    text = ANSI.sub("", text)
    text = text.replace("\r\n", "\n")
    text = CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text


SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.I)


def secret_values(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Values of environment variables whose names look secret (``*KEY*``, ``*TOKEN*``, ...)."""
    import os

    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and v and len(v) >= 8}
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values and key-shaped strings."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def cap(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` chars, marking what was left out."""
    if limit <= 0 or len(text) <= limit:
        return text
    head = int(limit * 0.7)
    tail = limit - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[… {omitted} chars omitted …]\n{text[len(text) - tail:]}"


# --- rich outputs -------------------------------------------------------------------------


def dataframe_summary(df: Any) -> str:
    """Shape, columns with dtypes and nulls, and the first rows (all rows if few)."""
    import pandas as pd

    rows, cols = df.shape
    lines = [f"DataFrame: {rows} rows × {cols} columns"]
    if isinstance(df.index, pd.RangeIndex):
        lines[0] += " (RangeIndex)"
    else:
        lines[0] += f" (index: {df.index.name or 'unnamed'}, {df.index.dtype})"
    if cols:
        nulls = df.isna().sum()
        described = []
        for name, dtype in list(df.dtypes.items())[:50]:
            missing = int(nulls[name]) if not hasattr(nulls[name], "__len__") else 0
            described.append(f"{name}: {dtype}" + (f" ({missing} null)" if missing else ""))
        if cols > 50:
            described.append(f"… {cols - 50} more columns")
        lines.append("Columns: " + ", ".join(described))
    with pd.option_context("display.max_columns", 30, "display.width", 160):
        if rows <= TABLE_ROWS_IN_FULL:
            lines.append(df.to_string(max_colwidth=60))
        else:
            lines.append(f"First {HEAD_ROWS} rows:")
            lines.append(df.head(HEAD_ROWS).to_string(max_colwidth=60))
    return "\n".join(lines)


def series_summary(series: Any) -> str:
    if len(series) <= TABLE_ROWS_IN_FULL:
        body = series.to_string()
    else:
        body = f"First {HEAD_ROWS} values:\n" + series.head(HEAD_ROWS).to_string()
    name = f" '{series.name}'" if series.name is not None else ""
    return f"Series{name}: {len(series)} values, dtype {series.dtype}\n{body}"


def image_size(mime: str, payload: Any) -> tuple[int, int] | None:
    """Width and height of a base64 PNG, JPEG or GIF, read from its header."""
    try:
        raw = base64.b64decode(payload[:2000] if isinstance(payload, str) else payload)
    except Exception:
        return None
    if mime == "image/png" and raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        return struct.unpack(">II", raw[16:24])
    if mime == "image/gif" and raw[:4] == b"GIF8" and len(raw) >= 10:
        return struct.unpack("<HH", raw[6:10])
    if mime == "image/jpeg" and raw[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(raw):
            if raw[i] != 0xFF:
                break
            marker, length = raw[i + 1], struct.unpack(">H", raw[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", raw[i + 5 : i + 9])
                return width, height
            i += 2 + length
    return None


def describe_image(mime: str, payload: Any, metadata: dict[str, Any] | None = None) -> str:
    size = image_size(mime, payload)
    meta = (metadata or {}).get(mime) or {}
    if size is None and "width" in meta and "height" in meta:
        size = (meta["width"], meta["height"])
    dims = f" {size[0]}×{size[1]}" if size else ""
    return f"[{mime}{dims} shown to the user]"


DEFAULT_REPR = re.compile(r"^<[\w.]+ (object|at 0x[0-9a-f]+)[^>]*>$")
TAG = re.compile(r"<[^>]+>")


def html_to_text(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d)>", "\n", markup)
    text = html.unescape(TAG.sub("", markup))
    return re.sub(r"\n\s*\n+", "\n", text).strip()


def render_bundle(data: dict[str, Any], metadata: dict[str, Any] | None = None,
                  obj: Any = None) -> str:
    """The model's text for one display_data / execute_result."""
    if obj is not None:
        special = render_object(obj)
        if special is not None:
            return special
    for mime in ("image/png", "image/jpeg", "image/gif"):
        if mime in data:
            return describe_image(mime, data[mime], metadata)
    if "image/svg+xml" in data:
        return "[image/svg+xml shown to the user]"
    widget = data.get("application/vnd.jupyter.widget-view+json")
    if widget:
        plain = data.get("text/plain", "")
        return f"[interactive widget shown to the user: {plain or 'widget'}]"
    plain = _text(data.get("text/plain"))
    if plain and not DEFAULT_REPR.match(plain.strip()):
        return plain
    for mime in ("text/markdown", "text/latex"):
        if mime in data:
            return _text(data[mime])
    if "text/html" in data:
        return html_to_text(_text(data["text/html"]))
    if "application/json" in data:
        return str(data["application/json"])
    kinds = ", ".join(sorted(data)) or "empty output"
    return f"[{kinds} shown to the user]"


def render_object(obj: Any) -> str | None:
    """Schema-aware renderings for objects we know; None for everything else."""
    module = type(obj).__module__ or ""
    if module.startswith("pandas"):
        name = type(obj).__name__
        if name == "DataFrame":
            return dataframe_summary(obj)
        if name == "Series":
            return series_summary(obj)
    return None


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(value)
    return "" if value is None else str(value)


# --- errors -----------------------------------------------------------------------------------


def render_error(exc: BaseException, cell_files: Container[str] = (), max_frames: int = 6) -> str:
    """Exception type and message plus the frames that matter: notebook cells' and the last ones."""
    frames = traceback.extract_tb(_tb(exc))
    keep: list[traceback.FrameSummary] = []
    for i, frame in enumerate(frames):
        if frame.filename in cell_files or i >= len(frames) - 2:
            keep.append(frame)
    keep = keep[-max_frames:]
    lines = ["Traceback (most relevant calls last):"] if keep else []
    for frame in keep:
        where = "cell" if frame.filename in cell_files else frame.filename
        lines.append(f'  {where}, line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    lines.append(message)
    return "\n".join(lines)


def _tb(exc: BaseException) -> TracebackType | None:
    tb = exc.__traceback__
    # Skip IPython's own frames (run_code) so the first frame is the cell.
    while tb is not None and "IPython/core" in tb.tb_frame.f_code.co_filename:
        tb = tb.tb_next
    return tb


# --- paging -----------------------------------------------------------------------------------


@dataclass
class OutputStore:
    """The full model renderings of this run's outputs, for ``read_output``."""

    texts: dict[str, str] = field(default_factory=dict)

    def put(self, call_id: str, text: str) -> None:
        self.texts[call_id] = text

    def page(self, call_id: str, offset: int = 0, length: int = 4000) -> str:
        if call_id not in self.texts:
            known = ", ".join(self.texts) or "none yet"
            return f"No stored output for call id `{call_id}`. Known ids: {known}."
        text = self.texts[call_id]
        offset = max(0, offset)
        if offset >= len(text):
            return f"Offset {offset} is past the end; the output of `{call_id}` has {len(text)} chars."
        chunk = text[offset : offset + length]
        end = offset + len(chunk)
        more = (
            f"[… {len(text) - end} more chars: call read_output with offset={end} …]"
            if end < len(text)
            else "[end of output]"
        )
        return f"[chars {offset}–{end} of {len(text)}]\n{chunk}\n{more}"
