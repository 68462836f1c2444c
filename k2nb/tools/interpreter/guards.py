"""Keeping generated code from hanging, killing or wiping the user's kernel.

While the agent's code runs: ``input()``/``getpass`` fail at once (nobody is there to type),
``exit()``/``quit()``, ``os._exit`` and ``%reset`` are refused, and a time limit interrupts
runaway code. Each refusal is an ordinary exception in the cell, so the model reads it as an
observation and can adapt.
"""

from __future__ import annotations

import builtins
import getpass
import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator


class ToolTimeout(BaseException):
    """Raised inside runaway code when its time budget ends (a BaseException so that
    ``except Exception`` in generated code cannot swallow it)."""


class AgentCodeRefused(RuntimeError):
    """Generated code tried something that would hang or break the user's session."""


def _refuse(message: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AgentCodeRefused(message)

    return refuse


@contextmanager
def guarded(shell: Any) -> Iterator[None]:
    """Refuse input, exit and reset for the duration of one agent cell."""
    saved = [
        (builtins, "input", builtins.input),
        (getpass, "getpass", getpass.getpass),
        (os, "_exit", os._exit),
    ]
    builtins.input = _refuse("input() is not available to the agent's code: nobody is there to "
                             "type an answer. Use a value or a variable instead.")
    getpass.getpass = _refuse("getpass() is not available to the agent's code.")
    os._exit = _refuse("os._exit() would kill the user's kernel; it is refused for agent code.")
    shell_patches = {
        "ask_exit": _refuse("exit()/quit() would shut down the user's kernel; it is refused for "
                            "agent code. Just finish the cell instead."),
        "reset": _refuse("%reset would erase the user's variables; it is refused for agent "
                         "code. Delete specific variables with `del name` if needed."),
    }
    for name, replacement in shell_patches.items():
        setattr(shell, name, replacement)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
        for name in shell_patches:
            shell.__dict__.pop(name, None)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
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
