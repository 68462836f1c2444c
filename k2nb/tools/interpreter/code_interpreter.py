"""``code_interpreter``: the model's code runs as a real cell in the user's live namespace.

The code goes through IPython's own ``run_cell`` — execution count, ``In``/``Out``, ``_``,
display hooks, magics and tracebacks behave as if the user ran it — while every output is also
recorded (``capture.py``) and rendered into the model's budgeted observation (``observation.py``).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import IPython
import pydantic

from ...core.tool import BaseTool, ToolOutcome
from ..observation import OutputStore, cap, clean_text, render_bundle, render_error
from ..safety.risk import assess
from ..schema import model_parameters
from .capture import RECORD_LIMIT, Recording, recording_outputs
from .guards import AgentCodeRefused, ToolTimeout, guarded, time_limit

__all__ = ["CodeInterpreter", "ToolTimeout"]

DESCRIPTION = """\
Run Python code in the user's live Jupyter kernel, as a notebook cell.

The namespace is the user's own and persists between calls: variables, imports and functions you \
define stay available, and the user's existing variables are visible. IPython magics (`%timeit`, \
`!ls`) work. The last expression's value is shown, as in a notebook. You receive stdout, stderr, \
the result, a summary of DataFrames, a description of images (plots are shown to the user) and \
errors; long outputs are shortened, and `read_output` pages through the full text. Nobody can \
answer input() prompts."""

EMPTY_CODE = "The code was empty; send the Python to run."

_NUMBERS_AT_START = IPython.version_info >= (9,)


class CodeArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    code: str = pydantic.Field(description="Python source to execute, as one notebook cell.")


class CodeInterpreter(BaseTool):
    """The ``code_interpreter`` tool bound to one IPython shell."""

    name = "code_interpreter"
    description = DESCRIPTION
    arguments = CodeArguments
    side_effects = True  # it runs code in the user's kernel

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
        if not code.strip():
            # Running nothing would report success and teach a weak model nothing; an error
            # also counts towards the loop's repeated-call stop when the model insists.
            return ToolOutcome(EMPTY_CODE, is_error=True, status="error")
        return self._run(call_id, code)

    def risks(self, values: dict[str, Any]) -> list[str]:
        """What the static check flags in the code (``--approve risky`` asks when it flags)."""
        return assess(values.get("code") or "")

    def _run(self, call_id: str, code: str) -> ToolOutcome:
        shell = self.shell
        recording = Recording(secrets=self.secrets)
        start = time.monotonic()
        # IPython >= 9 numbers a cell when it starts, so a nested run_cell takes the next number
        # by itself. Older IPython numbers it when it ends: the %%k2 cell still holds its number,
        # so we step past it and step back, and the user's next cell follows the agent's last.
        step_past = not _NUMBERS_AT_START
        if step_past:
            shell.execution_count += 1
        try:
            with recording_outputs(shell, recording), guarded(shell), time_limit(self.timeout):
                result = shell.run_cell(code, store_history=True, silent=False)
        finally:
            if step_past:
                shell.execution_count -= 1
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
        duration = time.monotonic() - start

        error = result.error_before_exec or result.error_in_exec
        if isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt  # a stop by the user, never an observation
        if result.result is not None and not any(
            o["output_type"] == "execute_result" for o in recording.outputs
        ):
            recording.texts.append(("result", recording.redact(render_bundle({}, obj=result.result))))
        for output in recording.outputs:
            if output["output_type"] == "execute_result":
                output["execution_count"] = result.execution_count

        status = "ok" if error is None else "timeout" if isinstance(error, ToolTimeout) else "error"
        text = recording.redact(self._render(recording, error))
        self.store.put(call_id, text)
        observation = cap(text, self.observation_chars)
        if observation != text:
            observation += (
                f"\n[Output shortened for you; the user sees it. Call read_output with "
                f'call_id="{call_id}" and an offset to read the rest.]'
            )
        return ToolOutcome(
            observation=observation,
            is_error=status != "ok",
            outputs=recording.outputs,
            execution_count=result.execution_count,
            status=status,
            duration_s=duration,
        )

    def _render(self, recording: Recording, error: BaseException | None) -> str:
        parts = []
        if isinstance(error, ToolTimeout):
            parts.append(
                f"Timed out after {self.timeout:g} s: the code was interrupted (it may loop "
                "forever or be too slow; try a smaller input or a faster approach)."
            )
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
        if recording.dropped:
            parts.append(f"[… {recording.dropped:,} more chars of output were discarded: the code "
                         f"printed more than {RECORD_LIMIT:,} chars. Print less, e.g. a summary.]")
        if isinstance(error, SystemExit):
            parts.append(f"The code called sys.exit({error.code!r}); the kernel keeps running. "
                         "Agent code cannot end the session.")
        elif isinstance(error, AgentCodeRefused):
            parts.append(f"Refused: {error}")
        elif error is not None and not isinstance(error, ToolTimeout):
            parts.append(render_error(error, _cell_files(self.shell)))
        body = "\n".join(p for p in parts if p != "")
        return body if body.strip() else "(the code ran and produced no output)"


def _cell_files(shell: Any) -> dict[str, Any]:
    return getattr(getattr(shell, "compile", None), "_filename_map", {}) or {}
