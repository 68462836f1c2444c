"""``code_interpreter``: the model's code runs as a real cell in the user's live namespace.

The code goes through IPython's own ``run_cell`` — execution count, ``In``/``Out``, ``_``,
display hooks, magics and tracebacks behave as if the user ran it — while every output is also
recorded: in full (nbformat output dicts, for views, transcripts and export) and as the model's
budgeted rendering (``observation.py``).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import IPython
import pydantic

from .observation import OutputStore, cap, clean_text, redact, render_bundle, render_error
from .registry import ToolOutcome
from .schema import model_parameters

DESCRIPTION = """\
Run Python code in the user's live Jupyter kernel, as a notebook cell.

The namespace is the user's own and persists between calls: variables, imports and functions you \
define stay available, and the user's existing variables are visible. IPython magics (`%timeit`, \
`!ls`) work. The last expression's value is shown, as in a notebook. You receive stdout, stderr, \
the result, a summary of DataFrames, a description of images (plots are shown to the user) and \
errors; long outputs are shortened, and `read_output` pages through the full text."""


_NUMBERS_AT_START = IPython.version_info >= (9,)


class CodeArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    code: str = pydantic.Field(description="Python source to execute, as one notebook cell.")


class ToolTimeout(BaseException):
    """Raised inside runaway code when its time budget ends (a BaseException so that
    ``except Exception`` in generated code cannot swallow it)."""


@dataclass
class Recording:
    """Outputs of one cell, in order: nbformat dicts and the model's text for each."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)
    # Terminal IPython prints results and displays to stdout; those are recorded once, as such.
    muted: bool = False

    def stream(self, name: str, text: str) -> None:
        if self.muted:
            return
        if self.outputs and self.outputs[-1].get("name") == name and self.texts[-1][0] == name:
            self.outputs[-1]["text"] += text
            self.texts[-1] = (name, self.texts[-1][1] + text)
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})
            self.texts.append((name, text))


class _Tee:
    """Writes through to the real stream and records what was written."""

    def __init__(self, target: Any, name: str, recording: Recording, owner: int):
        self._target, self._name, self._recording, self._owner = target, name, recording, owner

    def write(self, text: str) -> int:
        # Output from threads the cell started is shown to the user but not attributed.
        if threading.get_ident() == self._owner and isinstance(text, str):
            self._recording.stream(self._name, text)
        return self._target.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class CodeInterpreter:
    """The ``code_interpreter`` tool bound to one IPython shell."""

    name = "code_interpreter"
    description = DESCRIPTION
    arguments = CodeArguments

    def __init__(
        self,
        shell: Any,
        store: OutputStore,
        *,
        timeout: float = 120.0,
        observation_chars: int = 8000,
        secrets: tuple[str, ...] = (),
    ):
        self.shell = shell
        self.store = store
        self.timeout = timeout
        self.observation_chars = observation_chars
        self.secrets = secrets
        self.parameters = model_parameters(CodeArguments)

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        code = values["code"]
        shell = self.shell
        recording = Recording()
        start = time.monotonic()
        # IPython >= 9 numbers a cell when it starts, so a nested run_cell takes the next number
        # by itself. Older IPython numbers it when it ends: the %%k2 cell still holds its number,
        # so we step past it and step back, and the user's next cell follows the agent's last.
        step_past = not _NUMBERS_AT_START
        if step_past:
            shell.execution_count += 1
        try:
            with _recording_outputs(shell, recording), _time_limit(self.timeout):
                result = shell.run_cell(code, store_history=True, silent=False)
        finally:
            if step_past:
                shell.execution_count -= 1
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
        count = result.execution_count
        duration = time.monotonic() - start

        error = result.error_before_exec or result.error_in_exec
        if isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt  # a stop by the user, never an observation
        if result.result is not None and not _has_execute_result(recording):
            recording.texts.append(("result", render_bundle({}, obj=result.result)))
        status, prefix = "ok", ""
        if isinstance(error, ToolTimeout):
            status = "timeout"
            prefix = (
                f"Timed out after {self.timeout:g} s: the code was interrupted (it may loop "
                "forever or be too slow; try a smaller input or a faster approach).\n"
            )
        elif error is not None:
            status = "error"

        text = prefix + self._render(recording, error, status)
        text = redact(text, self.secrets)
        self.store.put(call_id, text)
        observation = cap(text, self.observation_chars)
        if observation != text:
            observation += (
                f"\n[Output shortened for you; the user sees all of it. Call read_output with "
                f'call_id="{call_id}" and an offset to read the rest.]'
            )
        for output in recording.outputs:
            if output["output_type"] == "execute_result":
                output["execution_count"] = count
        return ToolOutcome(
            observation=observation,
            is_error=status != "ok",
            outputs=recording.outputs,
            execution_count=count,
            status=status,
            duration_s=duration,
        )

    def _render(self, recording: Recording, error: BaseException | None, status: str) -> str:
        parts = []
        for kind, text in recording.texts:
            if kind == "error":
                continue
            text = clean_text(text)
            if kind == "stderr" and text.strip():
                parts.append(f"[stderr]\n{text.rstrip()}")
            elif kind == "stdout":
                parts.append(text.rstrip("\n"))
            elif text.strip():
                parts.append(text)
        if error is not None and status != "timeout":
            parts.append(render_error(error, _cell_files(self.shell)))
        body = "\n".join(p for p in parts if p != "")
        return body if body.strip() else "(the code ran and produced no output)"


def _has_execute_result(recording: Recording) -> bool:
    return any(o["output_type"] == "execute_result" for o in recording.outputs)


def _cell_files(shell: Any) -> dict[str, Any]:
    return getattr(getattr(shell, "compile", None), "_filename_map", {}) or {}


@contextmanager
def _recording_outputs(shell: Any, recording: Recording) -> Iterator[None]:
    """Record stdout/stderr, display_data, execute_result and errors while a cell runs."""
    owner = threading.get_ident()
    formatted: dict[str, Any] = {}
    formatter, publisher, displayhook = shell.display_formatter, shell.display_pub, shell.displayhook
    original_format = formatter.format
    original_publish = publisher.publish
    original_write = displayhook.write_format_data
    original_showtb = shell._showtraceback

    def muted(method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            recording.muted = True
            try:
                return method(*args, **kwargs)
            finally:
                recording.muted = False

        return call

    def format(obj: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_format(obj, *args, **kwargs)
        formatted["obj"], formatted["data"] = obj, result[0] if result else None
        return result

    def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == owner and isinstance(data, dict):
            obj = formatted.get("obj") if formatted.get("data") is data else None
            recording.outputs.append(
                {"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})}
            )
            recording.texts.append(("display", render_bundle(data, metadata, obj)))
        return muted(original_publish)(data, metadata, *args, **kwargs)

    def write_format_data(format_dict: Any, md_dict: Any = None) -> Any:
        obj = formatted.get("obj") if formatted.get("data") is format_dict else None
        recording.outputs.append(
            {
                "output_type": "execute_result",
                "data": dict(format_dict),
                "metadata": dict(md_dict or {}),
                "execution_count": None,
            }
        )
        recording.texts.append(("result", render_bundle(format_dict, md_dict, obj)))
        return muted(original_write)(format_dict, md_dict)

    def showtraceback(etype: Any, evalue: Any, stb: Any) -> Any:
        recording.outputs.append(
            {
                "output_type": "error",
                "ename": getattr(etype, "__name__", str(etype)),
                "evalue": str(evalue),
                "traceback": list(stb),
            }
        )
        recording.texts.append(("error", ""))
        return muted(original_showtb)(etype, evalue, stb)

    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = _Tee(stdout, "stdout", recording, owner)
    sys.stderr = _Tee(stderr, "stderr", recording, owner)
    formatter.format = format
    publisher.publish = publish
    displayhook.write_format_data = write_format_data
    displayhook.write_output_prompt = muted(displayhook.write_output_prompt)
    displayhook.finish_displayhook = muted(displayhook.finish_displayhook)
    shell._showtraceback = showtraceback
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        # Restore by deleting the instance attributes, revealing the class methods again.
        for owner_obj, attr in (
            (formatter, "format"),
            (publisher, "publish"),
            (displayhook, "write_format_data"),
            (displayhook, "write_output_prompt"),
            (displayhook, "finish_displayhook"),
            (shell, "_showtraceback"),
        ):
            owner_obj.__dict__.pop(attr, None)


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`ToolTimeout` in the main thread after ``seconds`` (0 = no limit)."""
    usable = (
        seconds
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise ToolTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
