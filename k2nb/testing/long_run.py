"""A scripted model for long runs (K2 runs for 200–300 steps): each step thinks, runs code that
prints a marked output, and checks that the previous step's output reached it.

Used by the long-run tests and ``bench/long_run.py``::

    model = LongRunModel(steps=299, thinking=4000, output=4000)
    with ScriptedServer([model] * 1000, context_window=262_144) as server:
        run = k2nb.run("Work through the data.", max_steps=300)
    assert not model.missed  # every step saw the observation it asked for

Summary requests (the loop's tool-less side request when the window fills up) get a summary
that names the last step it covers; everything else is counted as a step of the run.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from .server import Call, Reply, prompt_tokens

WORDS = ("the", "column", "mean", "grows", "region", "check", "outlier", "north", "rate",
         "because", "sample", "fits", "table", "value", "compare", "result")
MARK = re.compile(r"MARK-(\d+)\b")


def filler(chars: int, seed: int) -> str:
    """``chars`` characters of varied words (numbers in it, so it tokenises like real thinking)."""
    words, i = [], seed
    total = 0
    while total < chars:
        word = WORDS[(i * 7 + seed) % len(WORDS)] if i % 5 else str(i * 37 % 1000)
        words.append(word)
        total += len(word) + 1
        i += 1
    return " ".join(words)[:chars]


@dataclass
class LongRunModel:
    """Plays a run of ``steps`` tool steps, then answers. Thread-safe (a server calls it)."""

    steps: int = 299
    thinking: int = 4_000  # characters of reasoning per step
    output: int = 4_000  # characters each step's code prints
    summaries: int = 0  # summary requests answered
    missed: list[int] = field(default_factory=list)  # steps whose previous output was missing
    largest_prompt: int = 0  # the largest request, in the server's own count
    _step: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            size = prompt_tokens(body)
            self.largest_prompt = max(self.largest_prompt, size)
            if not body.get("tools"):
                return self._summary(body)
            self._step += 1
            step = self._step
            if step > 1 and not self._saw(body, step - 1):
                self.missed.append(step)
        if step > self.steps:
            return Reply(reasoning=filler(self.thinking // 4, step),
                         content=f"Done after {self.steps} steps: the data is consistent.")
        code = (f"print('MARK-{step}')\n"
                f"print({filler(self.output, step)!r})")
        return Reply(reasoning=f"Step {step}. " + filler(self.thinking, step),
                     tool_calls=[Call("code_interpreter", {"code": code})])

    def _saw(self, body: dict[str, Any], step: int) -> bool:
        """Whether the latest tool message carries step ``step``'s mark (not a placeholder)."""
        tools = [m for m in body["messages"] if m.get("role") == "tool"]
        return bool(tools) and f"MARK-{step}" in (tools[-1].get("content") or "")

    def _summary(self, body: dict[str, Any]) -> Reply:
        self.summaries += 1
        text = json.dumps(body.get("messages"))
        marks = [int(m) for m in MARK.findall(text)]
        last = max(marks) if marks else 0
        return Reply(reasoning="Summarise the progress.",
                     content=f"Progress: steps up to {last} checked the data; every output "
                             "looked consistent; variables: none new. Left: keep checking.")
