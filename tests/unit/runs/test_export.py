"""%k2 export: a run as a valid notebook (or Markdown) that re-executes to the same outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from k2nb.runs.compare import essentials
from k2nb.testing import Call, Reply

SALES = "region,total\nnorth,120\nsouth,80\neast,200\n"
LOAD = "import pandas as pd\nsales = pd.read_csv('sales.csv')\nsales.describe()"
BEST = "best = sales.loc[sales.total.idxmax(), 'region']\nprint('best region:', best)"


@pytest.fixture
def recorded(shell, k2env, tmp_path: Path):
    (tmp_path / "sales.csv").write_text(SALES)
    k2env.add(
        Reply(reasoning="Load the **CSV** first.",
              tool_calls=[Call("code_interpreter", {"code": LOAD})]),
        Reply(reasoning="Then the maximum.", content="Looking at the totals.",
              tool_calls=[Call("code_interpreter", {"code": BEST})]),
        Reply(reasoning="Clear.", content="**east** sold the most."),
    )
    shell.run_cell("%%k2\nWhich region sold the most?")
    run = shell.user_ns["_k2"]
    assert run.ok
    return run


def test_export_notebook_is_valid_with_provenance(recorded, shell, tmp_path: Path, capsys):
    shell.run_cell(f"%k2 export {recorded.run_id} out/run.ipynb")
    assert "Exported run to out/run.ipynb" in capsys.readouterr().out
    nb = nbformat.read(tmp_path / "out" / "run.ipynb", as_version=4)
    nbformat.validate(nb)
    meta = nb.metadata["k2nb"]
    assert meta["run_id"] == recorded.run_id and meta["model"] == "kimi-k2-thinking"
    assert meta["prompt"] == "Which region sold the most?" and meta["usage"]["total_tokens"] > 0
    assert meta["started_at"] and meta["finished_at"]

    kinds = [c.cell_type for c in nb.cells]
    assert kinds == ["markdown", "markdown", "code", "markdown", "code", "markdown", "markdown"]
    assert "> Which region sold the most?" in nb.cells[0].source
    thinking = nb.cells[1].source
    assert thinking.startswith("<details><summary>Thinking · step 1</summary>")
    assert "Load the **CSV** first." in thinking and thinking.endswith("</details>")
    assert "Looking at the totals." in nb.cells[3].source  # visible text of a tool-call step
    load, best = nb.cells[2], nb.cells[4]
    assert load.source == LOAD and best.source == BEST
    assert [load.execution_count, best.execution_count] == [c.execution_count
                                                            for c in recorded.tool_calls]
    assert best.outputs[0]["text"] == "best region: east\n"
    assert load.outputs[0]["output_type"] == "execute_result"
    provenance = best.metadata["k2nb"]
    assert provenance["run_id"] == recorded.run_id and provenance["step"] == 2
    assert provenance["call_id"] == recorded.tool_calls[1].call.id
    assert provenance["tool"] == "code_interpreter" and provenance["finished_at"]
    assert nb.cells[5].metadata["k2nb"]["usage"]["completion_tokens"] > 0
    assert nb.cells[-1].source == "## Answer\n\n**east** sold the most."


@pytest.mark.slow
def test_exported_notebook_re_executes_to_the_same_outputs(recorded, tmp_path: Path):
    from k2nb.runs.export import export

    path = export(recorded, str(tmp_path / "run.ipynb"))
    nb = nbformat.read(path, as_version=4)
    recorded_outputs = [c.outputs for c in nb.cells if c.cell_type == "code"]
    NotebookClient(nb, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    again = [c.outputs for c in nb.cells if c.cell_type == "code"]
    assert [essentials(o) for o in again] == [essentials(o) for o in recorded_outputs]
    assert "best region: east" in again[1][0]["text"]


def test_export_markdown(recorded, shell, tmp_path: Path):
    shell.run_cell("%k2 export last run.md")
    text = (tmp_path / "run.md").read_text()
    assert text.startswith("# k2nb run")
    thinking = "<details><summary>Thinking · step 2</summary>\n\nThen the maximum.\n\n</details>"
    assert thinking in text
    assert f"```python\n{BEST}\n```" in text and "best region: east" in text
    assert text.rstrip().endswith("**east** sold the most.")
    shell.run_cell("%k2 export last run.txt --format markdown")
    assert (tmp_path / "run.txt").read_text() == text


def test_export_unknown_run_is_a_clear_error(shell, k2env):
    result = shell.run_cell("%k2 export no-such-run x.ipynb")
    assert "No recorded run 'no-such-run'" in str(result.error_in_exec)
