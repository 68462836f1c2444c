"""Comparing a replayed call's outputs with the recorded ones.

Outputs are reduced to what a reader checks — stdout and stderr text, the plain-text (or first
textual) form of results and displays, the name and message of an error, the kind of each image —
and normalised for what legitimately changes between runs: memory addresses (``0x7f…``), timings
(``1.23 ms``, ``%timeit`` lines), wall-clock timestamps, temporary paths, ANSI colours. Image bytes
are not compared (renderer versions change them); an image that appears or vanishes is.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from typing import Any

from .record import drop_images, drop_rich_duplicates

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NORMALISE = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x…"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
     "<datetime>"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?\s?(?:ns|µs|us|ms|s|sec|secs|seconds|min)"
                r"(?![\w])"), "<time>"),
    (re.compile(r"\d+(?:\.\d+)?\s?(?:it|s)/(?:s|it)"), "<rate>"),
    (re.compile(r"/tmp/[^\s'\")]+"), "<tmp>"),
]
TEXT_MIMES = ("text/plain", "text/markdown", "text/latex", "application/json", "text/html")


def normalise(text: str) -> str:
    """``text`` with run-to-run noise replaced by placeholders."""
    text = _ANSI.sub("", text)
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def essentials(outputs: list[dict[str, Any]]) -> list[str]:
    """The outputs as normalised lines, one block per output, in order."""
    blocks: list[tuple[str, str]] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            name, text = out.get("name", "stdout"), _text(out.get("text", ""))
            if blocks and blocks[-1][0] == name:  # chunking of streams is not meaningful
                blocks[-1] = (name, blocks[-1][1] + text)
            else:
                blocks.append((name, text))
        elif kind in ("display_data", "execute_result"):
            data = out.get("data") or {}
            images = sorted(k for k in data if k.startswith("image/"))
            for mime in images:
                blocks.append((mime, "<image>"))
            textual = next((m for m in TEXT_MIMES if m in data), None)
            if textual and not (images and textual == "text/plain"):
                blocks.append(("result" if kind == "execute_result" else "display",
                               _text(data[textual])))
        elif kind == "error":
            blocks.append(("error", f"{out.get('ename')}: {out.get('evalue')}"))
    lines = []
    for label, text in blocks:
        if label in ("stdout", "stderr", "result", "display") and not text.strip():
            continue
        lines.append(f"[{label}]")
        lines.extend(normalise(text).splitlines())
    return lines


@dataclass
class Difference:
    """A replayed call whose outputs differ from the recording."""

    step: int
    call_id: str
    diff: list[str]  # a short unified diff, recorded (-) against now (+)

    def describe(self, max_lines: int = 12) -> str:
        body = self.diff[:max_lines]
        more = len(self.diff) - len(body)
        tail = [f"… {more} more line(s)"] if more > 0 else []
        title = (f"Step {self.step}, call {self.call_id}: the output differs from the recording "
                 "(- recorded, + now):")
        return "\n".join([title, *body, *tail])


def compare(step: int, call_id: str, recorded: list[dict[str, Any]],
            now: list[dict[str, Any]],
            trimmed: list[str] | tuple[str, ...] = ()) -> Difference | None:
    """None when ``now`` matches ``recorded`` after normalisation, else the difference.

    ``trimmed``: what the record's size cap removed from this call ("images", "rich", "text",
    "outputs"); only what was kept is compared.
    """
    if "outputs" in trimmed:
        return None
    if "images" in trimmed or "rich" in trimmed:
        # Reduce the live outputs the way the size cap reduced the recorded ones.
        now = copy.deepcopy(now)
        for output in now:
            drop_images(output)
            if "rich" in trimmed:
                drop_rich_duplicates(output)
    if "text" in trimmed:
        old, new = _kinds(recorded), _kinds(now)
    else:
        old, new = essentials(recorded), essentials(now)
    if old == new:
        return None
    diff = [line for line in difflib.unified_diff(old, new, "recorded", "now", n=1, lineterm="")
            if not line.startswith(("---", "+++"))]
    return Difference(step, call_id, diff)


def _kinds(outputs: list[dict[str, Any]]) -> list[str]:
    return [line for line in essentials(outputs) if line.startswith("[")]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(value)
    if isinstance(value, dict):
        import json

        return json.dumps(value, sort_keys=True)
    return str(value)
