"""The whole local loop for real: a tiny MoE trained in the test writes a K2 tool call, k2nb runs it
in the live namespace, the model reads the observation and answers.

The model is trained on the exact requests the agent loop sends (recorded with a scripted backend
first), behind a few random system prompts as well, then runs greedy through the 4-bit local
backend — in this process and in a real Jupyter kernel.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "torch", reason="the local extra (torch, transformers, bitsandbytes) is not installed"
)
pytest.importorskip("bitsandbytes", reason="the local extra is not installed")

import k2nb
from k2nb.core.messages import AssistantMessage
from k2nb.agent.prompt import BASE
from k2nb.core.backend import ModelRequest, StepResult
from k2nb.testing.tiny_moe import Example, build_tiny_moe, tool_call_reply, train_tool_caller

pytestmark = pytest.mark.slow

PROMPT = "Set x to 42."
CALL = tool_call_reply("code_interpreter", {"code": "x = 6 * 7\nprint(x)"}, reasoning="Compute x.")
ANSWER = AssistantMessage(content="x is 42.", reasoning="It printed 42.")
RUN_OPTIONS = dict(max_steps=3, max_tokens=120, quiet=True)


class ScriptedBackend:
    """Replies with the scripted turns and keeps every request the loop sent."""

    name = "local"
    model = "scripted"

    def __init__(self, replies: list[AssistantMessage]):
        self.replies = list(replies)
        self.requests: list[ModelRequest] = []

    def stream(self, request: ModelRequest) -> Iterator[Any]:
        self.requests.append(request)
        message = self.replies.pop(0)
        yield StepResult(message, "tool_calls" if message.tool_calls else "stop")


def fresh_shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.reset(new_session=True)
    return shell


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        recorder = ScriptedBackend([CALL, ANSWER])
        k2nb.run(PROMPT, backend=recorder, shell=fresh_shell(), **RUN_OPTIONS)
    first, second = recorder.requests
    examples = [
        Example(first.messages, CALL, first.tools),
        Example(second.messages, ANSWER, second.tools),
    ]
    corpus = [
        BASE,
        json.dumps(first.tools),
        *(m.content for m in second.messages if isinstance(m.content, str)),
    ]
    path = build_tiny_moe(work / "model", corpus=corpus, vocab_size=2048)
    stats = train_tool_caller(path, examples, seconds=300)
    assert stats["reproduced"], f"the tiny model did not learn its replies: {stats}"
    return path


def test_trained_model_runs_its_tool_call_in_the_live_namespace(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k2nb.backends.local import LocalBackend

    monkeypatch.chdir(tmp_path)
    backend = LocalBackend(str(trained), temperature=0, progress=False)  # 4-bit, experts included
    shell = fresh_shell()
    run = k2nb.run(PROMPT, backend=backend, shell=shell, **RUN_OPTIONS)
    assert shell.user_ns["x"] == 42  # the model's own code ran in the user's namespace
    assert "42" in run.answer
    assert (
        backend.step_stats[1].reused_tokens > backend.step_stats[0].prompt_tokens // 2
    )  # KV reuse
    assert len(backend.expert_counts) == 2


def test_in_a_real_kernel(trained: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "%load_ext k2nb",
        (
            "import k2nb\nfrom k2nb.backends.local import LocalBackend as _Local\n"
            f"_backend = _Local({str(trained)!r}, temperature=0, progress=False)"
        ),
        f"_run = k2nb.run({PROMPT!r}, backend=_backend, max_steps=3, max_tokens=120)",
        textwrap.dedent("""\
            assert x == 42, x
            print(_run.answer)
            print(_backend.load_report.summary())"""),
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
        pytest.fail(f"{error}\noutputs: {outputs}")
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "42" in printed and "uint8" in printed


def test_magic_backend_local_in_a_real_kernel(trained: Path, tmp_path: Path) -> None:
    """What a user types: `%k2 backend local --model PATH`, then `%%k2`."""
    from k2nb.testing.notebook import cell_text, run_notebook

    nb = run_notebook(
        [
            "%load_ext k2nb",
            f"%k2 backend local --model {trained}",
            f"%%k2 --temperature 0 --max-steps 3 --max-tokens 120\n{PROMPT}",
            "print(x, _k2.stop_reason, len(_k2.expert_counts), _k2.expert_counts[0].layers[0])",
        ],
        tmp_path,
        timeout=300,
    )
    assert "Runs use" in cell_text(nb.cells[1]) and "uint8" in cell_text(nb.cells[1])
    printed = cell_text(nb.cells[3])
    assert printed.startswith("42 answered 2 ")  # two steps: the call, then the answer
    assert "experts" in printed
    # The run view shows which experts the router chose: a heat map image.
    assert any("image/png" in o.get("data", {}) for o in nb.cells[2].outputs)
