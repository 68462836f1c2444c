"""A synthetic run: events from a zero-latency source, for exercising the views.

Used by the UI tests (in-process and in a real kernel) and by ``bench/stream_ui.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core import events as ev
from ..core.messages import AssistantMessage, ToolCall, Usage


def token(i: int) -> str:
    """The i-th synthetic thinking token: words, with a line break every 40 tokens."""
    return f"t{i}" + ("\n" if i % 40 == 39 else " ")


def stream_run(
    subscriber: Callable[[ev.Event], None],
    tokens: int,
    *,
    rate: float = 0.0,
    run_id: str = "synthetic",
    model: str = "kimi-k2-thinking",
    answer: str = "The answer is **42**.",
    stop_reason: str = "answered",
) -> str:
    """Stream one step of ``tokens`` thinking tokens, then the answer; returns the thinking.

    ``rate``: tokens per second (0: as fast as the subscriber takes them). With
    ``stop_reason="interrupted"`` the run ends mid-thought, without StepFinished.
    """
    emit = subscriber
    emit(ev.RunStarted(run_id, "synthetic prompt", model, "synthetic", None))
    emit(ev.StepStarted(run_id, 1))
    start = time.perf_counter()
    pieces = []
    try:
        for i in range(tokens):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            piece = token(i)
            pieces.append(piece)
            emit(ev.ReasoningDelta(piece, run_id, 1))
    except KeyboardInterrupt:  # as the agent loop does: the run ends, the partial run is kept
        stop_reason = "interrupted"
    thinking = "".join(pieces)
    if stop_reason == "interrupted":
        emit(ev.RunFinished(run_id, "", "interrupted", 1, Usage(), "Stopped by user at step 1."))
        return thinking
    emit(ev.ContentDelta(answer, run_id, 1))
    usage = Usage(1000, tokens + 8, tokens + 1008)
    emit(ev.StepFinished(run_id, 1, AssistantMessage(answer, thinking), usage, "stop"))
    emit(ev.RunFinished(run_id, answer, stop_reason, 1, usage))
    return thinking


def tool_run(subscriber: Callable[[ev.Event], None], run_id: str = "synthetic-tools") -> None:
    """A two-step run with one code_interpreter call that prints (outputs go to the cell)."""
    emit = subscriber
    call = ToolCall("call-1", "code_interpreter", '{"code": "print(6 * 7)"}')
    emit(ev.RunStarted(run_id, "what is 6*7?", "kimi-k2-thinking", "synthetic", None))
    emit(ev.StepStarted(run_id, 1))
    for piece in ("I should ", "compute `6 * 7`", " with Python."):
        emit(ev.ReasoningDelta(piece, run_id, 1))
    emit(ev.ToolCallDelta(0, "functions.code_interpreter:0", "code_interpreter",
                          '{"code": "print(6 * 7)"}', run_id, 1))
    message = AssistantMessage("", "I should compute `6 * 7` with Python.", [call])
    emit(ev.StepFinished(run_id, 1, message, Usage(500, 30, 530), "tool_calls"))
    emit(ev.ToolCallStarted(run_id, 1, call, "print(6 * 7)"))
    started = time.perf_counter()
    print(6 * 7)  # stands in for the call's real output
    outputs = [{"output_type": "stream", "name": "stdout", "text": "42\n"}]
    emit(
        ev.ToolCallFinished(run_id, 1, call, "42", False, outputs, 3, time.perf_counter() - started)
    )
    emit(ev.StepStarted(run_id, 2))
    emit(ev.ReasoningDelta("It printed 42.", run_id, 2))
    emit(ev.ContentDelta("6 × 7 = **42**.", run_id, 2))
    emit(
        ev.StepFinished(
            run_id,
            2,
            AssistantMessage("6 × 7 = **42**.", "It printed 42."),
            Usage(600, 12, 612),
            "stop",
        )
    )
    emit(ev.RunFinished(run_id, "6 × 7 = **42**.", "answered", 2, Usage(1100, 42, 1142)))


class KernelProbe:
    """A real kernel driven through jupyter_client, recording the iopub of each execution.

    ``execute(code)`` returns an :class:`Execution`: every iopub message the request caused,
    the outputs a frontend would keep (display updates applied by display id), and the run time
    measured by the kernel's own busy/idle timestamps.
    """

    def __init__(self, startup_timeout: float = 60) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(extra_arguments=["--HistoryManager.enabled=False"])
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=startup_timeout)

    def execute(
        self, code: str, timeout: float = 300, interrupt_after: float | None = None
    ) -> Execution:
        """Run ``code``; with ``interrupt_after``, interrupt the kernel that many seconds in."""
        import queue

        msg_id = self.client.execute(code)
        messages = []
        deadline = time.monotonic() + timeout
        interrupt_at = None if interrupt_after is None else time.monotonic() + interrupt_after
        while True:
            if interrupt_at is not None and time.monotonic() >= interrupt_at:
                self.manager.interrupt_kernel()
                interrupt_at = None
            try:
                msg = self.client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no idle after {timeout} s") from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        reply = self.client.get_shell_msg(timeout=timeout)
        return Execution(messages, reply["content"])

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)

    def __enter__(self) -> KernelProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Execution:
    """The iopub record of one execute request."""

    COMM = ("comm_open", "comm_msg", "comm_close")

    def __init__(self, messages: list[dict], reply: dict) -> None:
        self.messages = messages
        self.reply = reply
        busy = next(m for m in messages if m["msg_type"] == "status")
        idle = messages[-1]
        self.seconds = (idle["header"]["date"] - busy["header"]["date"]).total_seconds()

    def of_type(self, *types: str) -> list[dict]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def widget_messages(self) -> list[dict]:
        return self.of_type(*self.COMM)

    @property
    def bytes(self) -> int:
        """Bytes of message content (JSON) the frontend had to take in."""
        import json

        return sum(len(json.dumps(m["content"], default=str)) for m in self.messages)

    def outputs(self) -> list[dict]:
        """The cell's outputs as a frontend keeps them: displays updated in place by id."""
        outputs: list[dict] = []
        for msg in self.messages:
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("display_data", "execute_result", "stream", "error"):
                outputs.append({"output_type": kind, **content})
            elif kind == "update_display_data":
                target = content.get("transient", {}).get("display_id")
                for out in outputs:
                    if out.get("transient", {}).get("display_id") == target:
                        out["data"] = content["data"]
                        out["metadata"] = content.get("metadata", {})
        return outputs

    def widget_state(self) -> dict[str, dict]:
        """Each widget model's state after all comm messages, keyed by model id."""
        models: dict[str, dict] = {}
        for msg in self.widget_messages:
            content = msg["content"]
            comm_id = content["comm_id"]
            if msg["msg_type"] == "comm_open":
                models[comm_id] = dict(content["data"]["state"])
            elif msg["msg_type"] == "comm_msg" and comm_id in models:
                models[comm_id].update(content["data"].get("state", {}))
            elif msg["msg_type"] == "comm_close":
                models.setdefault(comm_id, {})["_closed"] = True
        return models
