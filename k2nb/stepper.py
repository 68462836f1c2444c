"""``%k2 replay``: replay a recorded run in this cell, whole or one step per execution.

``%k2 replay RUN --step`` is for teaching: each execution of the cell plays the next step — the
model's thinking, then each tool call's code, run for real in the live namespace with its
outputs, what the model read back, and whether the output matches the recording. After the last
step the next execution starts over.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.display import HTML, Markdown, display

from . import config, runner
from .agent.messages import ToolCall
from .compare import compare
from .record import DEFAULT_MAX_BYTES, record_from_transcript, run_record
from .recordings import Found, find, register_notebook
from .replay import LIVE_TOOLS, RecordedTool
from .tools.code_interpreter import CodeInterpreter
from .tools.observation import OutputStore
from .tools.registry import Toolbox


def command(shell: Any, words: list[str], *, step: bool = False, source: str | None = None) -> None:
    """Run ``%k2 replay [RUN] [--step] [--from NOTEBOOK]``."""
    if source:
        records = register_notebook(source)
        if not words:
            print(f"{len(records)} run record(s) in {source}; `%%k2` cells with the same prompt "
                  "now replay from them (with --replay, K2NB_REPLAY=1, or when no key is set):")
            for r in records:
                first = (r.get("prompt") or "").strip().splitlines()[:1]
                print(f"  {r.get('run_id')}  {first[0][:70] if first else ''}")
            return
    if len(words) != 1:
        raise ValueError("Usage: %k2 replay RUN [--step], or %k2 replay --from NOTEBOOK.ipynb "
                         "(RUN: a run id, a transcript file, or `last`).")
    found = resolve_run(shell, words[0])
    if step:
        _stepper(shell, found).play_next()
        return
    result = runner.run(found.record["prompt"], shell=shell,
                        replay=Found(found.record, found.source))
    shell.user_ns["_k2"] = result
    if result.answer and not runner.view_factories:
        display(Markdown(result.answer))
    if not runner.view_factories:
        print(result.replay)


def resolve_run(shell: Any, run: str) -> Found:
    """The record named by ``run``: ``last`` (this kernel's ``_k2``), a transcript, a run id."""
    settings = config.resolve({}, runner.configured_values())
    if run in ("last", "_k2"):
        last = shell.user_ns.get("_k2")
        if last is None:
            raise ValueError("No run yet in this kernel (`_k2` is not set): name a run id.")
        path = getattr(last, "transcript_path", None)
        if path and os.path.isfile(path):
            return Found(record_from_transcript(path), f"transcript {path}")
        return Found(run_record(last, DEFAULT_MAX_BYTES * 40), "this kernel's last run")
    if run.endswith(".jsonl") and Path(run).is_file():
        return Found(record_from_transcript(run), f"transcript {run}")
    found = find(run_id=run, transcript_dir=settings.transcript_dir)
    if found is None:
        raise ValueError(f"No recorded run {run!r}: looked for "
                         f"{settings.transcript_dir}/{run}.jsonl "
                         "and in the records embedded in this folder's notebooks (name another "
                         "notebook with --from NOTEBOOK.ipynb).")
    return found


@dataclass
class StepReplay:
    """A run being replayed one step per cell execution."""

    shell: Any
    found: Found
    position: int = 0

    @property
    def record(self) -> dict[str, Any]:
        return self.found.record

    def play_next(self) -> None:
        steps = self.record.get("steps") or []
        if not steps:
            raise ValueError(f"Run {self.record.get('run_id')} has no recorded steps to replay.")
        if self.position >= len(steps):
            self.position = 0
        step = steps[self.position]
        self.position += 1
        total = len(steps)
        run_id = self.record.get("run_id")
        head = f"**Replay of run `{run_id}` · step {self.position} of {total}**"
        if self.position == 1:
            prompt = "\n".join("> " + line for line in self.record.get("prompt", "").splitlines())
            head += f"  \n{prompt}"
        display(Markdown(head))
        if step.get("reasoning"):
            display(_details("Thinking", step["reasoning"], open_=True))
        if step.get("content") and step.get("calls"):
            display(Markdown(step["content"]))
        for call in step.get("calls") or []:
            self._play_call(step.get("index", self.position), call)
        if not step.get("calls"):
            display(Markdown("**Answer**\n\n" + (step.get("content") or "(no answer)")))
        if self.position < total:
            print(f"Run this cell again for step {self.position + 1} of {total}.")
        else:
            print(f"End of run {run_id} (it stopped: {self.record.get('stop_reason')}). Run this "
                  "cell again to start over.")

    def _play_call(self, index: int, call: dict[str, Any]) -> None:
        settings = config.resolve({}, runner.configured_values())
        interpreter = CodeInterpreter(self.shell, OutputStore(), timeout=settings.timeout,
                                      observation_chars=settings.observation_chars)
        recorded = [] if call["name"] in LIVE_TOOLS else [RecordedTool(call["name"],
                                                                        {call["id"]: call})]
        toolbox = Toolbox([interpreter, *recorded])
        tool_call = ToolCall(call["id"], call["name"], call.get("arguments") or "")
        tool, values, error, _ = toolbox.prepare(tool_call)
        if call["name"] == "code_interpreter" and values:
            code = values["code"]
            display(Markdown(f"`code_interpreter` ({call['id']}):\n```python\n{code}\n```"))
        else:
            display(Markdown(f"`{call['name']}` ({call['id']}): `{call.get('arguments')}`"))
        if error is not None:
            observation, outputs = error, []
        else:
            outcome = tool.invoke(call["id"], values)
            observation, outputs = outcome.observation, outcome.outputs
        if call["name"] in LIVE_TOOLS:
            difference = compare(index, call["id"], call.get("outputs") or [], outputs,
                                 call.get("trimmed") or ())
            if difference is None:
                print("✓ same output as in the recording")
            else:
                print("⚠ " + difference.describe())
        display(_details("What the model read back", observation, open_=False))


_sessions: dict[str, StepReplay] = {}


def _stepper(shell: Any, found: Found) -> StepReplay:
    run_id = found.record.get("run_id", "")
    session = _sessions.get(run_id)
    if session is None or session.shell is not shell:
        session = _sessions[run_id] = StepReplay(shell, found)
    return session


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
