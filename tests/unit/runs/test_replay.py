"""Replay: a recorded run plays again — thinking shown, code re-run for real, outputs compared."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from k2nb.core.run import prompt_hash
from k2nb.runs.record import notebook_record
from k2nb.runs.transcript import read_run
from k2nb.testing import Call, Reply, ScriptedServer
from k2nb.testing.notebook import cell_text

KEY = "sk-test-replay-0123456789"
SALES = "region,total\nnorth,120\nsouth,80\neast,200\n"
LOAD = ("import pandas as pd\nsales = pd.read_csv('sales.csv')\n"
        "print('rows:', len(sales))\nsales.describe()")
BEST = "best = sales.loc[sales.total.idxmax(), 'region']\nprint('best region:', best)"
PLOT = ("import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
        "ax.bar(sales.region, sales.total)\nplt.show()\nchart_made = True")
VARIABLES = ("import types\nprint(sorted((k, repr(v)) for k, v in globals().items() "
             "if not k.startswith('_') and k not in ('In', 'Out', 'get_ipython', 'exit', 'quit')"
             " and not isinstance(v, (types.ModuleType, types.FunctionType, type))))")


def lesson_script() -> list:
    return [
        Reply(reasoning="First load the CSV and look at it.",
              tool_calls=[Call("code_interpreter", {"code": LOAD})]),
        Reply(reasoning="Now find the region with the largest total.",
              tool_calls=[Call("code_interpreter", {"code": BEST})]),
        Reply(reasoning="The best region is east.", content="The best region is **east** (200)."),
        Reply(reasoning="A bar chart shows it.",
              tool_calls=[Call("code_interpreter", {"code": PLOT})]),
        Reply(reasoning="Plotted.", content="Here is the chart of totals by region."),
    ]


LESSON = [
    "%load_ext k2nb",
    "%%k2\nLoad sales.csv and tell me which region sold the most.",
    "%%k2\nPlot the totals by region.",
    VARIABLES,
]


def execute(cells: list[str], cwd: Path, path: Path | None = None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    if path is not None:
        nbformat.write(nb, str(path))
    return nb


def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key and no server: what a teacher's fresh Binder session has."""
    for name in ("K2NB_API_KEY", "MOONSHOT_API_KEY", "K2NB_BASE_URL", "K2NB_MODEL", "K2NB_REPLAY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def recorded_lesson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The lesson executed once against the scripted server, saved as lesson.ipynb."""
    no_model(monkeypatch)
    (tmp_path / "sales.csv").write_text(SALES)
    with ScriptedServer(lesson_script(), api_key=KEY) as server:
        monkeypatch.setenv("MOONSHOT_API_KEY", KEY)
        monkeypatch.setenv("K2NB_BASE_URL", server.base_url)
        first = execute(LESSON, tmp_path, tmp_path / "lesson.ipynb")
        assert server.errors == [] and not server.script
    no_model(monkeypatch)  # the server is gone too: nothing could answer a request now
    return first


@pytest.mark.slow
@pytest.mark.parametrize("source", ["transcripts", "notebook only"])
def test_bar_fresh_kernel_replays_every_cell(recorded_lesson, tmp_path: Path, source: str):
    """The bar: re-executed with no server and no key, every %%k2 cell replays and the notebook
    ends with the same user-visible variables — from the transcript folder, or (with that folder
    deleted) from the records embedded in the saved notebook."""
    if source == "notebook only":
        shutil.rmtree(tmp_path / ".k2nb")
    second = execute(LESSON, tmp_path)

    for index in (1, 2):
        text = cell_text(second.cells[index])
        assert "Replay of run" in text, text
        assert "no API key is set" in text  # the cell says why it replays
        expected = {"transcripts": "transcript .k2nb/runs/",
                    "notebook only": "embedded in lesson.ipynb"}[source]
        assert expected in text
        assert "match the recording" in text and "differ" not in text, text
    assert "The best region is **east**" in cell_text(second.cells[1])
    # The recorded code really ran again: the same outputs, a real figure, the same variables.
    assert "best region: east" in cell_text(second.cells[1])
    assert any("image/png" in o.get("data", {}) for o in second.cells[2].outputs)
    before, after = cell_text(recorded_lesson.cells[3]), cell_text(second.cells[3])
    assert "('best', \"'east'\")" in after and "chart_made" in after
    assert after == before


def test_replay_flags_a_changed_output(shell, k2env, tmp_path: Path):
    """When re-running the recorded code gives a different output, the replay says so."""
    (tmp_path / "sales.csv").write_text(SALES)
    k2env.add(*lesson_script()[:3])
    shell.run_cell("%%k2\nWhich region sold the most?")
    assert shell.user_ns["_k2"].ok
    (tmp_path / "sales.csv").write_text(SALES.replace("east,200", "east,20"))
    notices = []
    shell.user_ns.pop("best")
    from k2nb import runner

    result = runner.run("Which region sold the most?", shell=shell, replay=True,
                        subscribers=[notices.append])
    report = result.replay
    assert report.compared == 2 and len(report.differences) == 2
    text = str(report)
    assert "2 of 2 tool call output(s) differ" in text
    assert "-best region: east" in text and "+best region: north" in text
    warnings = [n.text for n in notices if n.type == "notice" and n.level == "warning"]
    assert any("+best region: north" in w for w in warnings)
    assert shell.user_ns["best"] == "north"  # the code really ran against the new data
    assert len(k2env.requests) == 3  # replay asked the server nothing


def test_noise_is_not_a_difference(shell, k2env):
    """Memory addresses and timings change on every run; they are not flagged."""
    code = ("import time\nt0 = time.perf_counter()\nthing = object()\nprint(thing)\n"
            "print(f'took {time.perf_counter() - t0 + 0.001:.4f} s')\nthing")
    k2env.add(Reply(reasoning="Make a thing.",
                    tool_calls=[Call("code_interpreter", {"code": code})]),
              Reply(content="Done."))
    shell.run_cell("%%k2\nMake a thing.")
    result = __import__("k2nb").run("Make a thing.", shell=shell, replay=True)
    assert result.replay.compared == 1 and result.replay.matched, str(result.replay)


def test_k2nb_replay_env_and_missing_record(shell, k2env, monkeypatch, capsys):
    k2env.add(Reply(reasoning="Set it.", tool_calls=[Call("code_interpreter", {"code": "z = 5"})]),
              Reply(content="z is 5"))
    shell.run_cell("%%k2\nSet z to 5.")
    monkeypatch.setenv("K2NB_REPLAY", "1")
    shell.user_ns.pop("z")
    shell.run_cell("%%k2\nSet z to 5.")
    assert shell.user_ns["z"] == 5 and len(k2env.requests) == 2  # replayed despite the key
    assert "replaying because K2NB_REPLAY is set" in capsys.readouterr().out
    result = shell.run_cell("%%k2\nA prompt never recorded.")
    message = str(result.error_in_exec)
    assert "No recording of this prompt was found to replay" in message
    assert "%k2 replay --from NOTEBOOK.ipynb" in message


def test_step_mode_plays_one_step_per_execution(shell, k2env, tmp_path, capsys):
    (tmp_path / "sales.csv").write_text(SALES)
    k2env.add(*lesson_script()[:3])
    shell.run_cell("%%k2\nWhich region sold the most?")
    run_id = shell.user_ns["_k2"].run_id
    for name in ("sales", "best"):
        shell.user_ns.pop(name)
    capsys.readouterr()

    shell.run_cell(f"%k2 replay {run_id} --step")
    out = capsys.readouterr().out
    assert "First load the CSV" in out and "rows: 3" in out
    assert "same output as in the recording" in out and "step 2 of 3" in out
    assert "sales" in shell.user_ns and "best" not in shell.user_ns  # only step 1 ran

    shell.run_cell(f"%k2 replay {run_id} --step")
    assert shell.user_ns["best"] == "east"
    shell.run_cell(f"%k2 replay {run_id} --step")
    out = capsys.readouterr().out
    assert "The best region is east." in out and "End of run" in out


def test_record_is_capped_images_first(shell, k2env):
    code = ("import base64, os\nfrom IPython.display import display\n"
            "png = base64.b64encode(b'\\x89PNG' + os.urandom(300_000)).decode()\n"
            "display({'image/png': png, 'text/plain': '<img>'}, raw=True)\nprint('x' * 50)")
    k2env.add(Reply(reasoning="think " * 50, tool_calls=[Call("code_interpreter", {"code": code})]),
              Reply(content="ok"))
    shell.run_cell("%%k2\nDraw.")
    run = shell.user_ns["_k2"]
    full = notebook_record(run, max_bytes=10_000_000)
    assert full["trimmed"] == [] and full["prompt_hash"] == prompt_hash("Draw.")
    small = notebook_record(run, max_bytes=80_000)
    assert len(json.dumps(small)) <= 80_000
    call = small["steps"][0]["calls"][0]
    assert small["trimmed"][0] == "images" and call["trimmed"] == ["images"]
    assert call["arguments"] == full["steps"][0]["calls"][0]["arguments"]  # code kept
    assert "x" * 50 in json.dumps(call["outputs"])  # text kept
    tiny = notebook_record(run, max_bytes=400)
    assert tiny["steps"] == [] and "cannot replay" in tiny["trimmed"][-1]
    # The transcript gives the same record, with timestamps, and untrimmed.
    from_file = read_run(run.transcript_path)
    assert from_file.steps[0].tool_calls[0].call.arguments == call["arguments"]
    assert from_file.started_at and os.path.isfile(run.transcript_path)
    assert from_file.to_dict()["steps"][0]["calls"][0]["outputs"] == full["steps"][0]["calls"][0][
        "outputs"]  # untrimmed


def test_replay_from_a_named_notebook(shell, k2env, tmp_path: Path, monkeypatch, capsys):
    """A notebook elsewhere (no transcripts next to it) is named with `%k2 replay --from`."""
    from k2nb.runs.record import record_metadata

    k2env.add(Reply(reasoning="Set it.",
                    tool_calls=[Call("code_interpreter", {"code": "z = 6 * 7\nprint(z)"})]),
              Reply(content="z is 42"))
    shell.run_cell("%%k2\nSet z to six times seven.")
    run = shell.user_ns["_k2"]
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%%k2\nSet z to six times seven.")
    cell.outputs = [nbformat.v4.new_output("display_data", {"text/markdown": "z is 42"},
                                           metadata=record_metadata(run))]
    nb.cells = [cell]
    (tmp_path / "elsewhere").mkdir()
    nbformat.write(nb, str(tmp_path / "elsewhere" / "lesson.ipynb"))
    shutil.rmtree(tmp_path / ".k2nb")
    monkeypatch.delenv("MOONSHOT_API_KEY")
    shell.user_ns.pop("z")

    result = shell.run_cell("%%k2\nSet z to six times seven.")  # not found yet: the key is missing
    assert "No API key" in str(result.error_in_exec)
    capsys.readouterr()
    shell.run_cell("%k2 replay --from elsewhere/lesson.ipynb")
    assert "1 run record(s) in elsewhere/lesson.ipynb" in capsys.readouterr().out
    shell.run_cell("%%k2\nSet z to six times seven.")
    assert shell.user_ns["z"] == 42
    assert "embedded in" in str(shell.user_ns["_k2"].replay)
    shell.user_ns.pop("z")
    shell.run_cell(f"%k2 replay {run.run_id}")  # the whole run, by id, from the same record
    assert shell.user_ns["z"] == 42 and shell.user_ns["_k2"].replay.matched
    assert len(k2env.requests) == 2


def test_session_notebook_is_searched(tmp_path: Path, monkeypatch):
    """JupyterLab names the kernel's notebook in JPY_SESSION_NAME: its records are found even
    when it is not in the working directory."""
    from k2nb.runs.store import find

    record = {"format": "k2nb-record", "run_id": "r1", "prompt": "Hello there",
              "prompt_hash": prompt_hash("Hello there\n"), "stop_reason": "answered",
              "backend": "api", "steps": [{"index": 1, "calls": []}]}
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%%k2\nHello there")
    cell.outputs = [nbformat.v4.new_output("display_data", {"text/plain": ""},
                                           metadata={"k2nb": {"record": record}})]
    nb.cells = [cell]
    (tmp_path / "lab").mkdir()
    nbformat.write(nb, str(tmp_path / "lab" / "course.ipynb"))
    (tmp_path / "cwd").mkdir()
    assert find("Hello there", cwd=tmp_path / "cwd") is None
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "lab" / "course.ipynb"))
    found = find("  Hello there  ", cwd=tmp_path / "cwd")
    assert found.record.run_id == "r1" and found.source.endswith("lab/course.ipynb")


def test_compare_trimmed_images_and_errors():
    from k2nb.runs.compare import compare

    figure = {"output_type": "display_data", "metadata": {},
              "data": {"image/png": "iVBOR...", "text/plain": "<Figure size 640x480 with 1 Axes>"}}
    kept = {"output_type": "display_data", "metadata": {},
            "data": {"text/plain": "<Figure size 640x480 with 1 Axes>"}}
    assert compare(1, "c", [kept], [figure], ["images"]) is None
    assert compare(1, "c", [figure], [dict(figure, data={"image/png": "other bytes",
                                                          "text/plain": "x"})]) is None
    gone = compare(1, "c", [figure], [])
    assert gone is not None and "-[image/png]" in gone.describe()
    error = {"output_type": "error", "ename": "KeyError", "evalue": "'b'",
             "traceback": ["\x1b[31mKeyError\x1b[0m", "Cell In[3], line 1"]}
    moved = dict(error, traceback=["Cell In[9], line 1"])
    assert compare(1, "c", [error], [moved]) is None  # the cell number is not the error
    other = compare(1, "c", [error], [dict(error, ename="ValueError")])
    assert "+[error]" not in other.describe() and "+ValueError: 'b'" in other.describe()
