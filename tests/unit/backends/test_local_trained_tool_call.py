"""The whole local loop for real: a tiny MoE trained in the test writes a K2 tool call, k2nb runs it
in the live namespace, the model reads the observation and answers.

The model is trained on the exact requests the agent loop sends (recorded with a scripted backend
first), behind a few random system prompts as well, then runs greedy through the 4-bit local
backend — in this process and in a real Jupyter kernel.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "torch", reason="the local extra (torch, transformers, bitsandbytes) is not installed"
)
pytest.importorskip("bitsandbytes", reason="the local extra is not installed")

import k2nb

pytestmark = pytest.mark.slow


def fresh_shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.reset(new_session=True)
    return shell


def test_trained_model_runs_its_tool_call_in_the_live_namespace(
    trained_caller: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k2nb.backends.local import LocalBackend

    monkeypatch.chdir(tmp_path)
    trained = trained_caller
    backend = LocalBackend(str(trained.path), temperature=0, progress=False)  # 4-bit, experts too
    shell = fresh_shell()
    run = k2nb.run(trained.prompt, backend=backend, shell=shell, **trained.run_options)
    assert shell.user_ns["x"] == 42  # the model's own code ran in the user's namespace
    assert (tmp_path / "ran.txt").read_text() == "ran"
    assert "42" in run.answer
    assert (
        backend.step_stats[1].reused_tokens > backend.step_stats[0].prompt_tokens // 2
    )  # KV reuse
    assert len(backend.expert_counts) == 2


def test_in_a_real_kernel(trained_caller: Any, tmp_path: Path) -> None:
    trained = trained_caller
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "%load_ext k2nb",
        (
            "import k2nb\nfrom k2nb.backends.local import LocalBackend as _Local\n"
            f"_backend = _Local({str(trained.path)!r}, temperature=0, progress=False)"
        ),
        f"_run = k2nb.run({trained.prompt!r}, backend=_backend, max_steps=3, max_tokens=120)",
        textwrap.dedent("""\
            assert x == 42, x
            assert open("ran.txt").read() == "ran"
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


def test_magic_backend_local_in_a_real_kernel(trained_caller: Any, tmp_path: Path) -> None:
    """What a user types: `%k2 backend local --model PATH`, then `%%k2`."""
    trained = trained_caller
    from k2nb.testing.notebook import cell_text, run_notebook

    nb = run_notebook(
        [
            "%load_ext k2nb",
            f"%k2 backend local --model {trained.path}",
            f"%%k2 --temperature 0 --max-steps 3 --max-tokens 120\n{trained.prompt}",
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


def test_a_call_cut_by_the_token_budget_never_runs(
    trained_caller: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bar (1) of issue 15: ``max_tokens`` cuts the model's turn at every token from its tool
    section's opening marker to the one before the end of the turn — the call's id, each token of
    its arguments, the markers around them. The call never runs (no file, no ``x``), and every
    run says that the token budget stopped it and how to raise it."""
    from k2nb.backends.local import LocalBackend
    from k2nb.backends.local.formats.k2 import ARGUMENT_BEGIN, END_OF_TURN, SECTION_BEGIN

    trained = trained_caller
    monkeypatch.chdir(tmp_path)
    backend = LocalBackend(str(trained.path), temperature=0, progress=False)
    tokenizer = backend.tokenizer
    turn = tokenizer(trained.first_turn, add_special_tokens=False)["input_ids"]
    vocab = tokenizer.get_vocab()
    section, arguments, end = (turn.index(vocab[m])
                               for m in (SECTION_BEGIN, ARGUMENT_BEGIN, END_OF_TURN))
    cuts = range(section + 1, end + 1)  # tokens generated: the last one kept is turn[cut - 1]
    assert len(cuts) > 30
    ran_file = tmp_path / "ran.txt"
    shell = fresh_shell()
    executed, misreported = [], []
    for cut in cuts:
        shell.reset(new_session=True)
        options = {**trained.run_options, "max_tokens": cut}
        run = k2nb.run(trained.prompt, backend=backend, shell=shell, **options)
        assert backend.step_stats[-1].generated_tokens == cut
        assert len(run.steps) == 1 and run.steps[0].reasoning == "Compute x."
        if ran_file.exists() or "x" in shell.user_ns:
            executed.append(cut)
            ran_file.unlink(missing_ok=True)
        calls = run.steps[0].tool_calls
        told = (run.stop_reason == "max_tokens"
                and f"token budget (--max-tokens {cut}" in (run.note or "")
                and "Raise it with --max-tokens N" in run.note
                and all(c.status == "skipped" and "cut off by the token budget" in c.observation
                        for c in calls)
                and (cut <= arguments or len(calls) == 1))  # the partial call is shown, not run
        if not told:
            misreported.append((cut, run.stop_reason, run.note,
                                [(c.status, c.observation) for c in calls]))
    assert executed == [], f"{len(executed)} of {len(cuts)} cut calls ran: cuts {executed}"
    assert misreported == []
    # The same backend, given room, writes the whole call and runs it: the cuts were real.
    shell.reset(new_session=True)
    run = k2nb.run(trained.prompt, backend=backend, shell=shell, **trained.run_options)
    assert backend.step_stats[-2].generated_tokens == len(turn)
    assert shell.user_ns["x"] == 42 and ran_file.read_text() == "ran"


def test_a_cut_call_is_shown_as_not_run_in_a_real_kernel(
    trained_caller: Any, tmp_path: Path
) -> None:
    """What the user sees when ``--max-tokens`` cuts the call mid-arguments: the partial call,
    marked skipped and why, and the run's note on how to raise the budget; nothing ran."""
    from k2nb.testing.notebook import cell_text, run_notebook

    nb = run_notebook(
        [
            "%load_ext k2nb",
            f"%k2 backend local --model {trained_caller.path}",
            f"%%k2 --temperature 0 --max-steps 3 --max-tokens 40\n{trained_caller.prompt}",
            "import os\nprint('x' in dir(), os.path.exists('ran.txt'), _k2.stop_reason)",
        ],
        tmp_path,
        timeout=300,
    )
    shown = cell_text(nb.cells[2])
    assert "code_interpreter · skipped" in shown
    assert '{"code": "open(' in shown  # the partial arguments, as the model wrote them
    assert "not run: the step was cut off by the token budget" in shown
    assert "used its whole token budget (--max-tokens 40, thinking included)" in shown
    assert "Raise it with --max-tokens N" in shown
    assert cell_text(nb.cells[3]).strip() == "False False max_tokens"
