"""Asking the user before a tool call that acts (``--approve ask|risky``).

Which tools act is each tool's own ``side_effects``; what makes a call risky is its ``risks``
(``k2nb.core.tool``): the static code check for ``code_interpreter``, the server's annotations
for MCP tools, the host for a gated ``fetch_url``, the declaration for ``@k2nb.tool`` functions.

Widgets cannot receive clicks while the cell runs, so the question goes through the stdin
channel (``input()``), which JupyterLab, Notebook, VS Code and terminal IPython all serve during
execution. The prompt starts with ``[k2nb:<call id>]``: the lab extension recognises it, shows a
dialog (Run / Skip / Edit / Run all) and answers with JSON; a person types a letter. The loop
announces each question with an ``ApprovalRequested`` event first (docs/comm-protocol.md).
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field
from typing import Callable

MODES = ("auto", "ask", "risky")
LETTERS = {"": "run", "y": "run", "yes": "run", "r": "run", "run": "run",
           "n": "skip", "no": "skip", "s": "skip", "skip": "skip",
           "a": "all", "all": "all", "e": "edit", "edit": "edit"}
END_OF_EDIT = "."
CODE_TOOL = "code_interpreter"


@dataclass
class ApprovalRequest:
    """A call waiting for the user's yes: ``code`` for code_interpreter, else ``arguments``."""

    call_id: str
    step: int
    name: str
    arguments: str
    code: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """What the user reviews and may edit: the code, or the JSON arguments."""
        return self.code if self.code is not None else self.arguments


@dataclass
class Decision:
    """What the user chose: ``action`` is run, skip, all or edit; ``text`` is the code (or the
    arguments) that will run."""

    action: str
    text: str
    reason: str = ""
    complete: bool = False  # a dialog's JSON answer: no follow-up questions

    @property
    def runs(self) -> bool:
        return self.action != "skip"

    @property
    def code(self) -> str:  # the name the first releases used
        return self.text


def prompt_for(request: ApprovalRequest) -> str:
    question = "Run this code?" if request.code is not None else f"Call {request.name}?"
    return (f"[k2nb:{request.call_id}] {question} [y]es / [n]o, skip / [e]dit / [a]ll from now "
            "on: ")


def parse_answer(answer: str, text: str) -> Decision | None:
    """The decision in one reply, or None when it is not an answer.

    ``text`` is what was shown (code or arguments). The extension replies with JSON
    (``{"action": ..., "code" | "arguments": ..., "reason": ...}``).
    """
    reply = answer.strip()
    if reply.startswith("{"):
        try:
            data = json.loads(reply)
        except ValueError:
            return None
        action = data.get("action")
        if action not in ("run", "skip", "all", "edit"):
            return None
        if action == "edit":
            edited = data.get("code", data.get("arguments"))
            if isinstance(edited, str) and edited.strip():
                return Decision("edit", edited, complete=True)
            return None
        return Decision(action, text, str(data.get("reason") or ""), complete=True)
    action = LETTERS.get(reply.lower())
    return Decision(action, text) if action else None


class Approval:
    """Decides, per call of a tool with side effects, whether to ask the user, and asks."""

    def __init__(self, mode: str = "auto", ask: Callable[[str], str] | None = None,
                 show: Callable[[str], None] = print):
        if mode not in MODES:
            raise ValueError(f"--approve must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._ask = ask
        self._show = show

    def needs_asking(self, request: ApprovalRequest) -> bool:
        """Whether this call (of a tool with side effects) waits for the user: every one under
        ``ask``; under ``risky`` those with ``reasons`` (the tool's own :meth:`risks`: what the
        static check flags in code, an MCP tool's annotations, a gated fetch's host, ...).
        Empty code is never asked about: nothing would run (the tool answers with an error)."""
        if self.mode == "auto":
            return False
        if request.code is not None and not request.code.strip():
            return False
        return self.mode == "ask" or bool(request.reasons)

    def ask(self, request: ApprovalRequest) -> Decision:
        """Show the call and wait for run / skip (with a reason) / edit / all."""
        why = f" (flagged: {'; '.join(request.reasons)})" if request.reasons else ""
        if request.code is not None:
            self._show(f"The agent wants to run this code{why}:\n\n{request.code}\n")
        else:
            self._show(f"The agent wants to call {request.name}{why} with:\n\n"
                       f"{_pretty(request.arguments)}\n")
        prompt = prompt_for(request)
        while True:
            decision = parse_answer(self._input(prompt), request.text)
            if decision is None:
                prompt = (f"[k2nb:{request.call_id}] Please answer y (run), n (skip), e (edit) "
                          "or a (all): ")
                continue
            if decision.action == "all":
                self.mode = "auto"
            elif decision.complete:
                pass
            elif decision.action == "skip" and not decision.reason:
                decision.reason = self._input("Reason for the agent (optional): ").strip()
            elif decision.action == "edit" and decision.text == request.text:
                edited = self._edit("code" if request.code is not None else "arguments")
                if not edited.strip():
                    continue
                decision.text = edited
            return decision

    def review(self, request: ApprovalRequest) -> Decision:
        """Ask when the mode says so; otherwise the call runs as it is."""
        if not self.needs_asking(request):
            return Decision("run", request.text)
        return self.ask(request)

    def _edit(self, what: str) -> str:
        lines = []
        prompt = f"New {what}, line by line; a line with only '{END_OF_EDIT}' ends it: "
        while True:
            line = self._input(prompt)
            if line.strip() == END_OF_EDIT:
                return "\n".join(lines)
            lines.append(line)
            prompt = "... "

    def _input(self, prompt: str) -> str:
        ask = self._ask or builtins.input  # looked up now: the kernel swaps it in per cell
        return ask(prompt)


def _pretty(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return arguments


def stdin_available(shell: object) -> bool:
    """Whether the current frontend answers input requests (False under nbclient)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))
    import sys

    return bool(getattr(sys.stdin, "isatty", lambda: False)())
