"""The kernel side of the JupyterLab extension: each code_interpreter call becomes a real cell.

:class:`FrontendBridge` subscribes to a run's events and tells the extension, on comm target
``k2nb`` (one comm per run), when the run starts, when each call starts and ends, when the run
asks for approval, and when it finishes. The messages are specified once, in
``docs/comm-protocol.md``.

The tool code runs inside the ``%%k2`` cell's execution, so every message carries that cell's
execute request as parent, in order on iopub with the call's outputs. Nothing here waits for an
answer: without the extension (nbclient, VS Code, a terminal) the messages go unheard and the
outputs stay in the ``%%k2`` cell.

:class:`Hellos` keeps what the extension says about itself (its hello), by client, so that the
run view knows when a run's calls will be cells of their own and can show each as a line.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core import events as ev
from .static import cell_call_id

COMM_TARGET = "k2nb"
PROTOCOL_VERSION = 1
REAL_CELLS = "real_cells"  # the hello's feature: each code call becomes a cell of its own
REPLIES_AWAITED = 8  # closed runs' comms still listened to for the extension's reply


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a frontend that can show widgets and HTML, and comms)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


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


def _comm_manager() -> Any:
    from comm import get_comm_manager

    return get_comm_manager()


class Hellos:
    """What the frontends attached to this kernel said they can do, in their hello.

    The lab extension says hello when it connects (a comm it opens on target ``k2nb``) and in
    reply to each run it takes (a message on the run's comm, which reaches the kernel once the
    ``%%k2`` cell has ended and the comm is closed: :meth:`await_reply` keeps listening on it).
    Each hello is kept under the client that sent it (the session id in its header), so a run
    asks about the frontend that runs *its* cell: a console on the same kernel, or nbclient,
    has not said hello and gets the full view.

    ``features`` is the Session's store (client session id → features); it is filled in place.
    """

    def __init__(self, features: dict[str, set[str]]) -> None:
        self.features = features
        self._awaited: deque[_ReplyCatcher] = deque()

    def listen(self) -> bool:
        """Register the comm target ``k2nb`` for the extension's connect-time hello (in a
        kernel; elsewhere there is no frontend to hear from)."""
        if not in_kernel():
            return False
        try:
            _comm_manager().register_target(COMM_TARGET, self._opened)
        except Exception:
            return False
        return True

    def ask(self) -> None:
        """Ask the frontends attached now to say hello: a comm on target ``k2nb`` with a
        ``hello_request``, closed at once; the extensions' replies come once the cell that ran
        ``%load_ext k2nb`` has ended, before the next cell. Without this, a notebook that loads
        k2nb in a cell would have its first run rendered in full: the extension's connect-time
        hello went to a kernel that had no ``k2nb`` target yet. Only from inside a request
        (a kernel that loads k2nb at start has no frontend to ask yet: they say hello when
        they connect)."""
        if not in_kernel() or _running_client() is None:
            return
        try:
            from comm import create_comm

            comm = create_comm(target_name=COMM_TARGET,
                               data={"type": "hello_request", "version": PROTOCOL_VERSION})
            comm.close()
            self.await_reply(comm.comm_id, replies=None)
        except Exception:
            pass  # no comm machinery: the first run shows the full view, which is correct

    def heard(self, msg: dict[str, Any]) -> None:
        """Record a hello (a comm_open or comm_msg whose data is one); ignore anything else."""
        data = (msg.get("content") or {}).get("data") or {}
        client = (msg.get("header") or {}).get("session")
        if data.get("type") != "hello" or not client:
            return
        features = data.get("features")
        if isinstance(features, list):
            self.features[client] = {f for f in features if isinstance(f, str)}

    def current(self) -> set[str]:
        """The features of the frontend whose request the kernel is running now (none known:
        an empty set)."""
        client = _running_client()
        return self.features.get(client, set()) if client else set()

    def await_reply(self, comm_id: str, replies: int | None = 1) -> None:
        """Keep hearing a closed comm: the comm package drops messages for comms it closed, and
        the extension's reply to a run arrives only after the run. A few are kept at a time
        (a frontend without the extension never replies). ``replies``: how many to take before
        letting go (None: any number, e.g. one per frontend attached to the kernel)."""
        manager = _comm_manager()
        catcher = _ReplyCatcher(comm_id, self.heard, manager, replies)
        manager.register_comm(catcher)
        self._awaited.append(catcher)
        while len(self._awaited) > REPLIES_AWAITED:
            self._awaited.popleft().forget()

    def _opened(self, comm: Any, msg: dict[str, Any]) -> None:
        # The extension closes this comm itself once the kernel has handled the opening.
        self.heard(msg)


class _ReplyCatcher:
    """Stands in the comm manager for a run's comm once it is closed, until the reply comes."""

    def __init__(self, comm_id: str, on_msg: Callable[[dict[str, Any]], None],
                 manager: Any, replies: int | None = 1) -> None:
        self.comm_id = comm_id
        self.target_name = COMM_TARGET  # what comm_info requests list
        self._closed = False  # the comm manager sets it on a comm_close
        self._on_msg = on_msg
        self._manager = manager
        self._left = replies

    def handle_msg(self, msg: dict[str, Any]) -> None:
        try:
            self._on_msg(msg)
        finally:
            if self._left is not None:
                self._left -= 1
                if self._left <= 0:
                    self.forget()

    def handle_close(self, msg: dict[str, Any]) -> None:
        """The frontend closed it (the manager has already let it go)."""

    def forget(self) -> None:
        if self._manager.comms.get(self.comm_id) is self:
            del self._manager.comms[self.comm_id]


def stop_listening() -> None:
    """Unregister the comm target (the extension is being unloaded)."""
    if in_kernel():
        try:
            _comm_manager().targets.pop(COMM_TARGET, None)
        except Exception:
            pass


def _running_client() -> str | None:
    """The session id of the client whose request the kernel runs now (its execute request)."""
    try:
        from IPython import get_ipython

        parent = get_ipython().kernel.get_parent()
        return (parent.get("header") or {}).get("session") or None
    except Exception:
        return None


class FrontendBridge:
    """An event subscriber that mirrors a run's code_interpreter calls to the lab extension.

    Build one per run, inside the ``%%k2`` cell's execution, and pass it every event of that
    run; call :meth:`close` when the run ends however it ends (it is idempotent). With
    ``hellos``, the extension's reply to the run (its hello) is recorded there.
    """

    def __init__(self, model: str = "", hellos: Hellos | None = None):
        self.model = model
        self._hellos = hellos
        self._comm: Any = None
        self._run_id = ""
        self._open_calls: dict[str, int] = {}  # call id -> step
        self._enabled = in_kernel()
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
        for call_id, step in self._open_calls.items():
            self._send({"type": "tool_call_finished", "run_id": self._run_id,
                        "call_id": cell_call_id(self._run_id, step, call_id),
                        "execution_count": None, "status": "interrupted"})
        self._open_calls.clear()
        self._closed = True
        if self._comm is not None:
            try:
                self._comm.close()
                if self._hellos is not None:
                    self._hellos.await_reply(self._comm.comm_id)
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
            if self._hellos is not None:  # a reply while the run goes on (a kernel that
                self._comm.on_msg(self._hellos.heard)  # handles comms on a subshell)
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
            "call_id": cell_call_id(event.run_id, event.step, event.call.id),
            "name": event.call.name,
            "code": event.code,
            "model": self.model,
            "execution_count": None,
        })

    def _tool_call_finished(self, event: ev.ToolCallFinished) -> None:
        step = self._open_calls.pop(event.call.id, None)
        if step is None:
            return
        self._send({
            "type": "tool_call_finished",
            "run_id": event.run_id,
            "call_id": cell_call_id(event.run_id, step, event.call.id),
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


def view_factory(settings: Any, shell: Any, hellos: Hellos | None = None) -> FrontendBridge | None:
    """For ``Session.views``: a bridge per run when a kernel can reach a frontend."""
    if not in_kernel():
        return None
    return FrontendBridge(settings.model, hellos)
