"""``%k2 replay``: replay a recorded run in this cell, whole or one step per execution.

``%k2 replay RUN --step`` is for teaching: each execution of the cell plays the next step — the
model's thinking, then each tool call's code, run for real in the live namespace with its
outputs, what the model read back, and whether the output matches the recording. After the last
step the next execution starts over.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from IPython.display import HTML, Markdown, display

from .. import runner
from ..core.run import ToolCallResult
from ..runs.compare import compare
from ..runs.record import DEFAULT_MAX_BYTES, capped
from ..runs.replay import LIVE_TOOLS, RecordedTool, StepThrough
from ..runs.store import Found
from ..runs.transcript import read_run
from ..session import Session
from ..tools.interpreter.code_interpreter import CodeInterpreter
from ..tools.observation import OutputStore
from ..tools.registry import Toolbox


def replay_command(shell: Any, session: Session, run: str | None, *, step: bool = False,
                   source: str | None = None, settings: Any) -> None:
    """Carry out ``%k2 replay [RUN] [--step] [--from NOTEBOOK]``."""
    if source:
        records = session.recordings.register(source)
        if run is None:
            print(f"{len(records)} run record(s) in {source}; `%%k2` cells with the same prompt "
                  "now replay from them (with --replay, K2NB_REPLAY=1, or when no key is set):")
            for r in records:
                first = r.prompt.strip().splitlines()[:1]
                print(f"  {r.run_id}  {first[0][:70] if first else ''}")
            return
    if run is None:
        raise ValueError("Usage: %k2 replay RUN [--step], or %k2 replay --from NOTEBOOK.ipynb "
                         "(RUN: a run id, a transcript file, or `last`).")
    found = resolve_run(shell, session, run, settings)
    if step:
        through = session.step_throughs.get(found.record.run_id)
        if through is None:
            through = session.step_throughs[found.record.run_id] = StepThrough(found)
        play_next(shell, through, settings)
        return
    result = runner.run(found.record.prompt, shell=shell, replay=found)
    shell.push({"_k2": result}, interactive=False)
    if result.answer and not session.views:
        display(Markdown(result.answer))
    if not session.views:
        print(result.replay)


def resolve_run(shell: Any, session: Session, run: str, settings: Any) -> Found:
    """The record named by ``run``: ``last`` (this kernel's ``_k2``), a transcript, a run id."""
    if run in ("last", "_k2"):
        last = shell.user_ns.get("_k2")
        if last is None:
            raise ValueError("No run yet in this kernel (`_k2` is not set): name a run id.")
        path = last.transcript_path
        if path and os.path.isfile(path):
            return Found(read_run(path), f"transcript {path}")
        return Found(capped(last, DEFAULT_MAX_BYTES * 40), "this kernel's last run")
    if run.endswith(".jsonl") and Path(run).is_file():
        return Found(read_run(run), f"transcript {run}")
    found = session.recordings.find(run_id=run, transcript_dir=settings.transcript_dir)
    if found is None:
        raise ValueError(f"No recorded run {run!r}: looked for "
                         f"{settings.transcript_dir}/{run}.jsonl "
                         "and in the records embedded in this folder's notebooks (name another "
                         "notebook with --from NOTEBOOK.ipynb).")
    return found


def play_next(shell: Any, through: StepThrough, settings: Any) -> None:
    """Show the next step: thinking, each call run for real and compared, and what's next."""
    step = through.next_step()
    record, total = through.found.record, through.total
    head = f"**Replay of run `{record.run_id}` · step {through.position} of {total}**"
    if through.position == 1:
        head += "  \n" + "\n".join("> " + line for line in record.prompt.splitlines())
    display(Markdown(head))
    if step.reasoning:
        display(_details("Thinking", step.reasoning, open_=True))
    if step.content and step.tool_calls:
        display(Markdown(step.content))
    for call in step.tool_calls:
        _play_call(shell, step.index, call, settings)
    if not step.tool_calls:
        display(Markdown("**Answer**\n\n" + (step.content or "(no answer)")))
    if through.position < total:
        print(f"Run this cell again for step {through.position + 1} of {total}.")
    else:
        print(f"End of run {record.run_id} (it stopped: {record.stop_reason}). Run this "
              "cell again to start over.")


def _play_call(shell: Any, index: int, call: ToolCallResult, settings: Any) -> None:
    interpreter = CodeInterpreter(shell, OutputStore(), timeout=settings.timeout,
                                  observation_chars=settings.observation_chars)
    name = call.call.name
    recorded = [] if name in LIVE_TOOLS else [RecordedTool(name, [call])]
    tool, values, error, _ = Toolbox([interpreter, *recorded]).prepare(call.call)
    if name == "code_interpreter" and values:
        display(Markdown(f"`code_interpreter` ({call.call.id}):\n```python\n{values['code']}\n```"))
    else:
        display(Markdown(f"`{name}` ({call.call.id}): `{call.call.arguments}`"))
    if error is not None or tool is None:
        observation, outputs = error or "", []
    else:
        outcome = tool.invoke(call.call.id, values or {})
        observation, outputs = outcome.observation, outcome.outputs
    if name in LIVE_TOOLS:
        difference = compare(index, call.call.id, call.outputs, outputs, call.trimmed)
        print("✓ same output as in the recording" if difference is None
              else "⚠ " + difference.describe())
    display(_details("What the model read back", observation, open_=False))


def _details(title: str, text: str, open_: bool) -> HTML:
    opened = " open" if open_ else ""
    body = (f"<details{opened}><summary>{html.escape(title)}</summary>"
            f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre></details>")
    return _WithText(body, f"{title}:\n{text}")


class _WithText(HTML):
    """HTML with a readable text/plain form (terminals, nbconvert to text)."""

    def __init__(self, body: str, text: str):
        super().__init__(body)
        self._text = text

    def __repr__(self) -> str:
        return self._text
