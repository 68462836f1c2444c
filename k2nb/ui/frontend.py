"""The kernel side of the JupyterLab extension: each code_interpreter call becomes a real cell.

:class:`FrontendBridge` subscribes to a run's events and tells the extension, on comm target
``k2nb`` (one comm per run), when the run starts, when each call starts and ends, when the run
asks for approval, and when it finishes. The messages are specified once, in
``docs/comm-protocol.md``.

The tool code runs inside the ``%%k2`` cell's execution, so every message carries that cell's
execute request as parent, in order on iopub with the call's outputs. Nothing here waits for an
answer: without the extension (nbclient, VS Code, a terminal) the messages go unheard and the
outputs stay in the ``%%k2`` cell.
"""

from __future__ import annotations

import sys
from typing import Any

from ..core import events as ev

COMM_TARGET = "k2nb"
PROTOCOL_VERSION = 1


def _kernel_present() -> bool:
    """Whether this code runs in an IPython kernel (where comms reach a frontend)."""
    from . import in_kernel

    return in_kernel()


def _flush_streams() -> None:
    # ipykernel sends stdout/stderr from a buffer; flushing puts what the code printed on
    # iopub before our next comm message, so the extension attributes it to the right cell.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _drain_iopub(timeout: float = 1.0, settle: float = 0.05) -> None:
    """Wait until ipykernel's iopub thread has sent what is queued, then a moment more."""
    import threading
    import time

    try:
        from IPython import get_ipython

        thread = get_ipython().kernel.iopub_thread
        sent = threading.Event()
        thread.schedule(sent.set)
        sent.wait(timeout)
    except Exception:
        pass
    time.sleep(settle)


def _running_cell_number() -> int | None:
    """The number (In[n]) of the cell running the agent, stored when that cell started.

    The kernel's reply gives that cell the number after its last nested call instead, so the
    extension puts this one back.
    """
    try:
        from IPython import get_ipython

        history = get_ipython().user_ns.get("In")
        return len(history) - 1 if history else None
    except Exception:
        return None


class FrontendBridge:
    """An event subscriber that mirrors a run's code_interpreter calls to the lab extension.

    Build one per run, inside the ``%%k2`` cell's execution, and pass it every event of that
    run; call :meth:`close` when the run ends however it ends (it is idempotent).
    """

    def __init__(self, model: str = ""):
        self.model = model
        self._comm: Any = None
        self._run_id = ""
        self._open_calls: dict[str, int] = {}  # call id -> step
        self._enabled = _kernel_present()
        self._closed = False

    def __call__(self, event: ev.Event) -> None:
        if not self._enabled or self._closed:
            return
        if isinstance(event, ev.RunStarted):
            self._open(event)
        elif isinstance(event, ev.ToolCallStarted):
            self._tool_call_started(event)
        elif isinstance(event, ev.ToolCallFinished):
            self._tool_call_finished(event)
        elif isinstance(event, ev.ApprovalRequested):
            self._approval_requested(event)
        elif isinstance(event, ev.RunFinished):
            self._send({"type": "run_finished", "run_id": event.run_id,
                        "stop_reason": event.stop_reason})
            self.close()

    def close(self) -> None:
        """End the run for the extension: open calls are marked interrupted, the comm closes."""
        if self._closed:
            return
        for call_id in list(self._open_calls):
            self._send({"type": "tool_call_finished", "run_id": self._run_id,
                        "call_id": call_id, "execution_count": None, "status": "interrupted"})
        self._open_calls.clear()
        self._closed = True
        if self._comm is not None:
            try:
                self._comm.close()
            except Exception:
                pass
            self._comm = None

    def _open(self, event: ev.RunStarted) -> None:
        if self._comm is not None:
            return
        self._run_id = event.run_id
        self.model = self.model or event.model
        try:
            from comm import create_comm

            _flush_streams()
            self._comm = create_comm(
                target_name=COMM_TARGET,
                data={"type": "run_started", "version": PROTOCOL_VERSION,
                      "run_id": event.run_id, "model": self.model,
                      "execution_count": _running_cell_number()},
            )
        except Exception:
            # No comm machinery (an unusual kernel): the run goes on without real cells.
            self._enabled = False
            self._comm = None

    def _tool_call_started(self, event: ev.ToolCallStarted) -> None:
        if event.code is None:
            return  # only code_interpreter calls become cells
        self._open_calls[event.call.id] = event.step
        self._send({
            "type": "tool_call_started",
            "run_id": event.run_id,
            "step": event.step,
            "call_id": event.call.id,
            "name": event.call.name,
            "code": event.code,
            "model": self.model,
            "execution_count": None,
        })

    def _tool_call_finished(self, event: ev.ToolCallFinished) -> None:
        if self._open_calls.pop(event.call.id, None) is None:
            return
        self._send({
            "type": "tool_call_finished",
            "run_id": event.run_id,
            "call_id": event.call.id,
            "execution_count": event.execution_count,
            "status": event.status,
        })

    def _approval_requested(self, event: ev.ApprovalRequested) -> None:
        """Tell the extension that the next stdin prompt asks to approve this call."""
        self._send({"type": "approval_request", "run_id": event.run_id, "step": event.step,
                    "call_id": event.call.id, "name": event.call.name,
                    "code": event.code if event.code is not None else "",
                    "arguments": event.call.arguments, "reasons": list(event.reasons)})
        if self._comm is not None:
            # iopub leaves through a background thread while stdin is sent from this one:
            # let this message (and the comm's opening) reach the server first.
            _drain_iopub()

    def _send(self, data: dict[str, Any]) -> None:
        if self._comm is None:
            return
        _flush_streams()
        try:
            self._comm.send(data)
        except Exception:
            # A frontend that went away must never break the run.
            pass


def view_factory(settings: Any, shell: Any) -> FrontendBridge | None:
    """For ``Session.views``: a bridge per run when a kernel can reach a frontend."""
    if not _kernel_present():
        return None
    return FrontendBridge(settings.model)
