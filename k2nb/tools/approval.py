"""Asking the user before the agent's code runs (``--approve ask|risky``).

Widgets cannot receive clicks while the cell runs, so the question goes through the stdin
channel (``input()``), which JupyterLab, Notebook, VS Code and terminal IPython all serve during
execution. The lab extension may render it as a dialog; it recognises the prompt prefix.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, Callable

from .risk import assess

MODES = ("auto", "ask", "risky")
PROMPT = "k2nb approval · run this code? [y]es / [n]o, skip / [e]dit / [a]ll from now on: "


@dataclass
class Decision:
    action: str  # run | skip
    code: str
    reason: str = ""
    edited: bool = False


class ApprovalUnavailable(Exception):
    """``ask``/``risky`` in a frontend that cannot answer input requests."""


class Approval:
    """Decides, per code_interpreter call, whether to ask the user and what they answered."""

    def __init__(self, mode: str = "auto", ask: Callable[[str], str] | None = None,
                 show: Callable[[str], None] = print):
        if mode not in MODES:
            raise ValueError(f"--approve must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._ask = ask
        self._show = show

    def review(self, code: str) -> Decision:
        if self.mode == "auto":
            return Decision("run", code)
        reasons = assess(code)
        if self.mode == "risky" and not reasons:
            return Decision("run", code)
        why = f" (flagged: {'; '.join(reasons)})" if reasons else ""
        self._show(f"The agent wants to run this code{why}:\n\n{code}\n")
        while True:
            answer = self._input(PROMPT).strip().lower()
            if answer in ("", "y", "yes", "r", "run"):
                return Decision("run", code)
            if answer in ("a", "all"):
                self.mode = "auto"
                return Decision("run", code)
            if answer in ("n", "no", "s", "skip"):
                reason = self._input("Reason for the agent (optional): ").strip()
                return Decision("skip", code, reason)
            if answer in ("e", "edit"):
                edited = self._input("Replacement code (\\n for new lines): ")
                edited = edited.replace("\\n", "\n")
                if edited.strip():
                    return Decision("run", edited, edited=True)
            self._show("Please answer y, n, e or a.")

    def _input(self, prompt: str) -> str:
        ask = self._ask or builtins.input
        return ask(prompt)


def stdin_available(shell: Any) -> bool:
    """Whether the current frontend answers input requests (False under nbclient)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))
    import sys

    return bool(getattr(sys.stdin, "isatty", lambda: False)())
