"""Asking the user before the agent's code runs (``--approve ask|risky``).

Widgets cannot receive clicks while the cell runs, so the question goes through the stdin
channel (``input()``), which JupyterLab, Notebook, VS Code and terminal IPython all serve during
execution. The prompt starts with ``[k2nb:<call id>]``: the lab extension recognises it, shows a
dialog (Run / Skip / Edit / Run all) and answers with JSON; a person types a letter.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Callable

from .risk import assess

MODES = ("auto", "ask", "risky")
LETTERS = {"": "run", "y": "run", "yes": "run", "r": "run", "run": "run",
           "n": "skip", "no": "skip", "s": "skip", "skip": "skip",
           "a": "all", "all": "all", "e": "edit", "edit": "edit"}
END_OF_EDIT = "."


@dataclass
class Decision:
    """What the user chose: ``action`` is run, skip, all or edit (``code`` is what will run)."""

    action: str
    code: str
    reason: str = ""
    complete: bool = False  # a dialog's JSON answer: no follow-up questions


    @property
    def runs(self) -> bool:
        return self.action != "skip"


def prompt_for(call_id: str) -> str:
    return f"[k2nb:{call_id}] Run this code? [y]es / [n]o, skip / [e]dit / [a]ll from now on: "


def parse_answer(answer: str, code: str) -> Decision | None:
    """The decision in one reply, or None when it is not an answer.

    The extension replies with JSON (``{"action": ..., "code": ..., "reason": ...}``).
    """
    text = answer.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        action = data.get("action")
        if action not in ("run", "skip", "all", "edit"):
            return None
        edited = data.get("code")
        if action == "edit":
            if isinstance(edited, str) and edited.strip():
                return Decision("edit", edited, complete=True)
            return None
        return Decision(action, code, str(data.get("reason") or ""), complete=True)
    action = LETTERS.get(text.lower())
    return Decision(action, code) if action else None


class ApprovalUnavailable(Exception):
    """``ask``/``risky`` in a frontend that cannot answer input requests."""


class Approval:
    """Decides, per code_interpreter call, whether to ask the user, and asks."""

    def __init__(self, mode: str = "auto", ask: Callable[[str], str] | None = None,
                 show: Callable[[str], None] = print,
                 notify: Callable[[str, int, str], None] | None = None):
        if mode not in MODES:
            raise ValueError(f"--approve must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._ask = ask
        self._show = show
        self.notify = notify  # e.g. the lab extension bridge: (call_id, step, code)

    def review(self, code: str, call_id: str = "call", step: int = 0) -> Decision:
        if self.mode == "auto":
            return Decision("run", code)
        reasons = assess(code)
        if self.mode == "risky" and not reasons:
            return Decision("run", code)
        why = f" (flagged: {'; '.join(reasons)})" if reasons else ""
        if self.notify is not None:
            self.notify(call_id, step, code)
        self._show(f"The agent wants to run this code{why}:\n\n{code}\n")
        prompt = prompt_for(call_id)
        while True:
            decision = parse_answer(self._input(prompt), code)
            if decision is None:
                prompt = f"[k2nb:{call_id}] Please answer y (run), n (skip), e (edit) or a (all): "
                continue
            if decision.action == "all":
                self.mode = "auto"
            elif decision.complete:
                pass
            elif decision.action == "skip" and not decision.reason:
                decision.reason = self._input("Reason for the agent (optional): ").strip()
            elif decision.action == "edit" and decision.code == code:
                edited = self._edit()
                if not edited.strip():
                    continue
                decision.code = edited
            return decision

    def _edit(self) -> str:
        lines = []
        prompt = f"New code, line by line; a line with only '{END_OF_EDIT}' ends it: "
        while True:
            line = self._input(prompt)
            if line.strip() == END_OF_EDIT:
                return "\n".join(lines)
            lines.append(line)
            prompt = "... "

    def _input(self, prompt: str) -> str:
        ask = self._ask or builtins.input  # looked up now: the kernel swaps it in per cell
        return ask(prompt)


def stdin_available(shell: object) -> bool:
    """Whether the current frontend answers input requests (False under nbclient)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))
    import sys

    return bool(getattr(sys.stdin, "isatty", lambda: False)())
