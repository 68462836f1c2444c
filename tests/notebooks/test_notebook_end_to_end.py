"""A user's notebook with %%k2, run by nbclient in a real kernel against the strict server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from k2nb.testing import Call, Reply

from k2nb.testing.notebook import cell_text, run_notebook

pytestmark = pytest.mark.slow

SALES = "month,region,total\n2024-01,north,120\n2024-01,south,80\n2024-02,north,200\n2024-02,south,95\n2024-03,north,150\n2024-03,south,60\n"

LOAD = "import pandas as pd\nsales = pd.read_csv('data/sales.csv')\nsales.head()"
TOTALS = "monthly = sales.groupby('month')['total'].sum()\nprint(monthly.idxmax(), monthly.max())"


def answer_from_observation(body: dict) -> Reply:
    """The scripted model reads the month from the last observation, as a real model would."""
    observation = body["messages"][-1]["content"]
    month, total = re.search(r"(\d{4}-\d{2}) (\d+)", observation).groups()
    return Reply(reasoning="The totals are printed; the maximum is clear.",
                 content=f"The month with the highest total is **{month}** ({total}).")


def test_agent_creates_variables_cells_and_answer(k2env, tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sales.csv").write_text(SALES)
    k2env.add(
        Reply(reasoning="I should load the CSV first.",
              tool_calls=[Call("code_interpreter", {"code": LOAD})]),
        Reply(reasoning="Now group by month and find the maximum.",
              tool_calls=[Call("code_interpreter", {"code": TOTALS})]),
        answer_from_observation,
    )
    nb = run_notebook(
        [
            f"%load_ext k2nb\nLOAD_CODE, TOTALS_CODE = {LOAD!r}, {TOTALS!r}",
            "%%k2\nLoad data/sales.csv into a DataFrame called sales, then tell me which month "
            "had the highest total.",
            "print(type(sales).__name__, sales.shape)\nprint(_k2.answer)\n"
            "print(In[3] == LOAD_CODE, In[4] == TOTALS_CODE, len(In))\n"
            "print(_k2.stop_reason, len(_k2.steps), _k2.transcript_path)",
        ],
        tmp_path,
    )
    after = cell_text(nb.cells[2])
    assert "DataFrame (6, 3)" in after
    assert "2024-02" in after and "answered 3" in after
    # The agent's cells are in the history, as if the user had typed them.
    # The agent's cells are In[3] and In[4], and the user's next cell is In[5].
    assert "True True 6" in after
    # The answer is shown in the %%k2 cell.
    assert "2024-02" in cell_text(nb.cells[1])

    requests = k2env.requests
    assert len(requests) == 3
    second = requests[1]["messages"]
    # The observation of the first call reached the server: a schema-aware DataFrame summary.
    tool_msg = [m for m in second if m["role"] == "tool"][-1]
    assert "DataFrame: 5 rows × 3 columns" in tool_msg["content"]
    assert "month: str" in tool_msg["content"] or "month: object" in tool_msg["content"]
    # The reasoning is echoed verbatim on every assistant message that made tool calls.
    third = requests[2]["messages"]
    assistants = [m for m in third if m["role"] == "assistant"]
    assert [m["reasoning_content"] for m in assistants] == [
        "I should load the CSV first.", "Now group by month and find the maximum."]
    assert "2024-02 295" in [m for m in third if m["role"] == "tool"][-1]["content"]
    assert k2env.errors == []

    transcript = Path(tmp_path, re.search(r"(\.k2nb/runs/\S+\.jsonl)", after).group(1))
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    kinds = [r["type"] for r in records]
    assert kinds[0] == "settings" and kinds[-1] == "run_finished"
    calls = [r for r in records if r["type"] == "tool_call_finished"]
    assert [c["execution_count"] for c in calls] == [3, 4]  # In[3], In[4]: real cells
    assert calls[1]["outputs"][0] == {"output_type": "stream", "name": "stdout",
                                      "text": "2024-02 295\n"}


def test_bar_foreign_notebook_env_only(k2env, tmp_path: Path, monkeypatch):
    """The issue's bar: configuration only through MOONSHOT_API_KEY, K2NB_BASE_URL, K2NB_MODEL."""
    monkeypatch.setenv("K2NB_MODEL", "kimi-k2-thinking-turbo")
    stats_code = ("import numpy as np, pandas as pd\nrng = np.random.default_rng(0)\n"
                  "measurements = pd.DataFrame({'x': rng.normal(10, 2, 500), "
                  "'y': rng.normal(-3, 1, 500)})\nmeasurements.describe()")

    def final(body):
        obs = body["messages"][-1]["content"]
        mean = re.search(r"mean\s+([\d.]+)", obs).group(1)
        return Reply(reasoning="I have the statistics.", content=f"FINAL: mean of x is {mean}")

    k2env.add(Reply(reasoning="Make the data, then describe it.",
                    tool_calls=[Call("code_interpreter", {"code": stats_code})]), final)
    nb = run_notebook(["%load_ext k2nb", "%%k2\nSimulate measurements and summarise them.",
                       "print(measurements.shape)"], tmp_path)
    assert "(500, 2)" in cell_text(nb.cells[2])
    assert "FINAL: mean of x is" in cell_text(nb.cells[1])
    body = k2env.requests[1]
    assert body["model"] == "kimi-k2-thinking-turbo"
    observation = body["messages"][-1]["content"]
    for row in ("count", "mean", "std", "min", "max"):
        assert row in observation
    assert all(m.get("reasoning_content") for m in body["messages"] if m["role"] == "assistant")
    assert k2env.errors == []
