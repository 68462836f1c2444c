"""Recording a cell's outputs while IPython shows them: streams, displays, results, errors.

Everything passes through to the user's frontend as usual — redacted of secrets, and with a
flood limit so that code printing 50 MB cannot wedge the browser — and is recorded twice: as
nbformat output dicts (for views, transcripts and export) and as text for the model.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..observation import redact, render_bundle

DISPLAY_LIMIT = 2_000_000  # chars of stream output shown to the user per call
RECORD_LIMIT = 4_000_000  # chars of stream output kept in memory per call


@dataclass
class Recording:
    """Outputs of one cell, in order: nbformat dicts and the model's text for each."""

    secrets: tuple[str, ...] = ()
    outputs: list[dict[str, Any]] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)
    # Terminal IPython prints results and displays to stdout; those are recorded once, as such.
    muted: bool = False
    shown: int = 0  # stream chars forwarded to the user
    kept: int = 0  # stream chars recorded
    dropped: int = 0  # stream chars neither shown nor kept

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def stream(self, name: str, text: str) -> None:
        if self.muted:
            return
        if self.kept + len(text) > RECORD_LIMIT:
            room = max(0, RECORD_LIMIT - self.kept)
            self.dropped += len(text) - room
            text = text[:room]
            if not text:
                return
        self.kept += len(text)
        if self.outputs and self.outputs[-1].get("name") == name and self.texts[-1][0] == name:
            self.outputs[-1]["text"] += text
            self.texts[-1] = (name, self.texts[-1][1] + text)
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})
            self.texts.append((name, text))

    def add_rich(self, kind: str, data: dict[str, Any], metadata: dict[str, Any] | None,
                 obj: Any) -> dict[str, Any]:
        """Record a display_data / execute_result; returns the redacted bundle to show."""
        data = {k: self._redact_value(v) for k, v in data.items()}
        output: dict[str, Any] = {"output_type": kind, "data": data,
                                  "metadata": dict(metadata or {})}
        if kind == "execute_result":
            output["execution_count"] = None
        self.outputs.append(output)
        self.texts.append(("result" if kind == "execute_result" else "display",
                           self.redact(render_bundle(data, metadata, obj))))
        return data

    def _redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [self.redact(v) for v in value]
        return value


class _Tee:
    """Writes through to the real stream (redacted, flood-limited) and records what was written."""

    def __init__(self, target: Any, name: str, recording: Recording, owner: int):
        self._target, self._name, self._recording, self._owner = target, name, recording, owner

    def write(self, text: str) -> int:
        if not isinstance(text, str) or threading.get_ident() != self._owner:
            # Output from threads the cell started is shown to the user but not attributed.
            return self._target.write(text)
        rec = self._recording
        text = rec.redact(text)
        rec.stream(self._name, text)
        if rec.muted:
            return self._target.write(text)
        room = DISPLAY_LIMIT - rec.shown
        if room <= 0:
            return len(text)
        shown = text[:room]
        rec.shown += len(shown)
        self._target.write(shown)
        if len(shown) < len(text):
            self._target.write(f"\n[k2nb: output shortened for display after {DISPLAY_LIMIT:,} "
                               "characters; the model reads a summary]\n")
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _muting(recording: Recording, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        recording.muted = True
        try:
            return method(*args, **kwargs)
        finally:
            recording.muted = False

    return call


@contextmanager
def recording_outputs(shell: Any, recording: Recording) -> Iterator[None]:
    """Record stdout/stderr, display_data, execute_result and errors while a cell runs."""
    owner = threading.get_ident()
    formatted: dict[str, Any] = {}
    formatter, publisher, displayhook = shell.display_formatter, shell.display_pub, shell.displayhook
    original_format = formatter.format
    original_publish = publisher.publish
    original_write = displayhook.write_format_data
    original_showtb = shell._showtraceback

    def format(obj: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_format(obj, *args, **kwargs)
        formatted["obj"], formatted["data"] = obj, result[0] if result else None
        return result

    def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == owner and isinstance(data, dict):
            obj = formatted.get("obj") if formatted.get("data") is data else None
            data = recording.add_rich("display_data", data, metadata, obj)
        return _muting(recording, original_publish)(data, metadata, *args, **kwargs)

    def write_format_data(format_dict: Any, md_dict: Any = None) -> Any:
        obj = formatted.get("obj") if formatted.get("data") is format_dict else None
        format_dict = recording.add_rich("execute_result", format_dict, md_dict, obj)
        return _muting(recording, original_write)(format_dict, md_dict)

    def showtraceback(etype: Any, evalue: Any, stb: Any) -> Any:
        stb = [recording.redact(line) for line in stb]
        recording.outputs.append({
            "output_type": "error",
            "ename": getattr(etype, "__name__", str(etype)),
            "evalue": recording.redact(str(evalue)),
            "traceback": stb,
        })
        recording.texts.append(("error", ""))
        return _muting(recording, original_showtb)(etype, evalue, stb)

    patches = [
        (formatter, "format", format),
        (publisher, "publish", publish),
        (displayhook, "write_format_data", write_format_data),
        (displayhook, "write_output_prompt", _muting(recording, displayhook.write_output_prompt)),
        (displayhook, "finish_displayhook", _muting(recording, displayhook.finish_displayhook)),
        (shell, "_showtraceback", showtraceback),
    ]
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = _Tee(stdout, "stdout", recording, owner)
    sys.stderr = _Tee(stderr, "stderr", recording, owner)
    for target, attr, replacement in patches:
        setattr(target, attr, replacement)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        # Deleting the instance attributes reveals the class methods again.
        for target, attr, _ in patches:
            target.__dict__.pop(attr, None)
