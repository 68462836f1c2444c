"""Trajectories in forked copies of the kernel, for heavy mode (:mod:`k2nb.heavy`).

Each trajectory is a child process made with ``fork()``: it has its own copy of the user's
namespace, runs the ordinary agent loop in it (the runner gives the function that does), and
sends progress lines and finally its run record back over a pipe. The parent reads every pipe with a selector, keeps at
most ``concurrency`` children alive, and never changes the user's variables. An interrupt stops
(and reaps) every child.
"""

from __future__ import annotations

import builtins
import getpass
import json
import multiprocessing
import os
import selectors
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import events as ev
from ..core.run import Run
from ..runs.record import notebook_record

RECORD_BYTES = 4_000_000  # a trajectory's record sent back to the parent


@dataclass
class Trajectory:
    """One trajectory as the parent sees it."""

    index: int  # 1-based
    status: str = "waiting"  # waiting | running | answered | stopped | failed
    pid: int | None = None
    fd: int | None = None
    step: int = 0
    calls: int = 0
    started: float | None = None
    finished: float | None = None
    record: Run | None = None
    error: str = ""
    buffer: bytes = b""

    @property
    def duration_s(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    @property
    def answer(self) -> str:
        return self.record.answer if self.record else ""


def available() -> bool:
    """Whether this platform can give each trajectory its own copy of the namespace (fork)."""
    return hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods()



#: Runs one trajectory in the child: (progress subscribers, transcript folder) → its Run.
RunOne = Callable[[list[ev.Subscriber], str], Run]


def run_all(trajectories: list[Trajectory], concurrency: int, run_one: RunOne, shell: Any,
            folder: Path,
            on_change: Callable[[list[Trajectory], bool], None]) -> None:
    """Run every trajectory, ``concurrency`` at a time; ``on_change(trajectories, final)`` is
    called as they progress. Records, statuses and errors end up on the ``Trajectory`` objects."""
    waiting = list(trajectories)
    active: dict[int, Trajectory] = {}
    selector = selectors.DefaultSelector()
    try:
        while waiting or active:
            while waiting and len(active) < concurrency:
                t = waiting.pop(0)
                _spawn(t, run_one, shell, folder)
                active[t.fd] = t  # type: ignore[index]
                selector.register(t.fd, selectors.EVENT_READ, t)  # type: ignore[arg-type]
                on_change(trajectories, False)
            for key, _ in selector.select(timeout=0.25):
                t = key.data
                chunk = os.read(t.fd, 1 << 16)
                if chunk:
                    t.buffer += chunk
                    _read_messages(t)
                    continue
                selector.unregister(t.fd)
                os.close(t.fd)
                del active[t.fd]
                _reap(t)
            on_change(trajectories, False)
    except BaseException:
        for t in active.values():  # an interrupt stops every trajectory; the namespace is intact
            _stop(t)
        raise
    finally:
        selector.close()
    on_change(trajectories, True)


def _spawn(t: Trajectory, run_one: RunOne, shell: Any, folder: Path) -> None:
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python >= 3.12 warns that forking a threaded process may deadlock the child: the child
        # here touches none of the kernel's threads' objects (see _isolate) and never returns.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into the kernel's code
        code = 70
        try:
            os.close(read_end)
            _isolate(shell)
            code = _trajectory(run_one, folder, write_end)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, then exit
            try:
                _send(write_end, {"type": "failed", "error": f"{type(exc).__name__}: {exc}"})
            except BaseException:  # noqa: BLE001, S110 - the parent reports the exit code instead
                pass
        finally:
            os._exit(code)
    os.close(write_end)
    t.pid, t.fd, t.status, t.started = pid, read_end, "running", time.monotonic()


def _isolate(shell: Any) -> None:
    """Cut a forked child off the kernel's channels: its output goes nowhere but its record.

    The kernel's sockets and threads belong to the parent (the threads do not exist in the child,
    and a message sent on an inherited socket would corrupt the parent's stream), so stdio,
    displays, the display hook, input and the history writer are replaced by local ones.
    """
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher

    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives until the child exits
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    shell.display_pub = DisplayPublisher(shell=shell)
    hook = DisplayHook(shell=shell, cache_size=shell.cache_size)
    shell.displayhook = hook
    shell.display_trap.hook = hook
    sys.displayhook = hook
    history = getattr(shell, "history_manager", None)
    if history is not None:
        # The saving thread is gone in the child, and its locks may have been held at the fork;
        # the child's cells stay out of the history database (they are in its transcript).
        history.using_thread = False
        history.save_thread = None
        history.db_input_cache_lock = threading.Lock()
        history.db_output_cache_lock = threading.Lock()

    def no_input(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("input() is not available in a heavy-mode trajectory (it runs in the "
                           "background)")

    builtins.input = no_input
    getpass.getpass = no_input


def _trajectory(run_one: RunOne, folder: Path, fd: int) -> int:
    def progress(event: ev.Event) -> None:
        if isinstance(event, ev.StepStarted):
            _send(fd, {"type": "step", "step": event.step})
        elif isinstance(event, ev.ToolCallFinished):
            _send(fd, {"type": "call", "step": event.step, "status": event.status})

    result = run_one([progress], str(folder))
    _send(fd, {"type": "result", "record": notebook_record(result, RECORD_BYTES)})
    return 0


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    while data:
        data = data[os.write(fd, data):]


def _read_messages(t: Trajectory) -> None:
    *lines, t.buffer = t.buffer.split(b"\n")
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        kind = message.get("type")
        if kind == "step":
            t.step = message["step"]
        elif kind == "call":
            t.calls += 1
        elif kind == "result":
            t.record = Run.from_dict(message["record"])
        elif kind == "failed":
            t.error = message.get("error", "")


def _reap(t: Trajectory) -> None:
    _, status = os.waitpid(t.pid, 0)  # type: ignore[arg-type]
    t.finished = time.monotonic()
    if t.record is not None:
        t.status = "answered" if t.record.stop_reason == "answered" else "stopped"
        if t.status == "stopped":
            t.error = t.record.note or t.record.stop_reason
        return
    t.status = "failed"
    if not t.error:
        code = os.waitstatus_to_exitcode(status)
        t.error = (f"killed by signal {-code}" if code < 0 else f"exited with code {code}")


def _stop(t: Trajectory) -> None:
    if t.pid is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(t.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            done, _ = os.waitpid(t.pid, os.WNOHANG)
            if done:
                t.pid = None
                break
            time.sleep(0.02)
        if t.pid is None:
            break
    if t.fd is not None:
        try:
            os.close(t.fd)
        except OSError:
            pass
    t.status = "stopped"
