"""Heavy mode: N trajectories in forked copies of the namespace, one aggregation, one replay."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from k2nb.heavy import mode as heavy, trajectories
from k2nb.testing import Call, Reply
from k2nb.testing.notebook import cell_text, run_notebook

DELAY = 0.06  # seconds between streamed chunks: a trajectory takes about a second


class HeavyScript:
    """The scripted model for heavy runs: each trajectory sets x to its own value; the
    aggregator picks trajectory 2 and quotes the value that trajectory's code produced."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first_steps: list[float] = []  # arrival times of each trajectory's first request
        self.first_texts: list[str] = []  # and what each carried
        self.aggregations = 0

    def __call__(self, body: dict) -> Reply:
        messages = body["messages"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        if "aggregator of a heavy-mode run" in system:
            self.aggregations += 1
            task = messages[-1]["content"]
            found = re.search(r"## Trajectory 2 .*?Output:\n```\nx = (\d+)", task, re.DOTALL)
            value = found.group(1)
            return Reply(reasoning="Trajectory 2's code is sound and its output is clear.",
                         content=f"x is now **{value}**.\n\nChosen trajectory: 2", delay=DELAY)
        if not any(m["role"] == "tool" for m in messages):
            with self.lock:
                self.first_steps.append(time.monotonic())
                self.first_texts.append(" ".join(str(m["content"]) for m in messages))
                k = len(self.first_steps)
            code = f"x = 100 + {k}\ntraj_{k} = {k}\nprint('x =', x)"
            return Reply(reasoning=f"Attempt {k}: set x and report it. " * 3,
                         tool_calls=[Call("code_interpreter", {"code": code})], delay=DELAY)
        printed = re.search(r"x = (\d+)", messages[-1]["content"]).group(1)
        return Reply(reasoning="The code printed the value; answer.", content=f"x = {printed}",
                     delay=DELAY)


@pytest.mark.slow
def test_three_trajectories_isolated_concurrent_and_winner_replayed(k2env, tmp_path: Path):
    script = HeavyScript()
    k2env.add(*[script] * 14)
    nb = run_notebook(
        [
            "%load_ext k2nb\nimport json",
            "%%k2 --heavy 3 --concurrency 1\nSet x to a new value and tell me what it is.",
            ("print(json.dumps({'wall': _k2.wall_s, 'each': _k2.trajectory_seconds}))\n"
             "x = 1\nuntouched = 'yes'\n"
             "for name in [k for k in globals() if k.startswith('traj_')]:\n"
             "    del globals()[name]"),
            "%%k2 --heavy 3 --concurrency 3\nSet x to a new value and tell me what it is.",
            ("print(json.dumps({'x': x, 'untouched': untouched, "
             "'traj': sorted(k for k in globals() if k.startswith('traj_')), "
             "'chosen': _k2.chosen, 'wall': _k2.wall_s, 'each': _k2.trajectory_seconds, "
             "'answer': _k2.answer, 'replay': str(_k2.replay)}))"),
        ],
        tmp_path, timeout=120,
    )
    import json

    sequential = json.loads(cell_text(nb.cells[2]))
    state = json.loads(cell_text(nb.cells[4]))
    # Only the chosen trajectory's code ran in the user's namespace: its variable, its x.
    assert len(state["traj"]) == 1, state
    k = int(state["traj"][0].split("_")[1])
    assert state["x"] == 100 + k and state["untouched"] == "yes" and state["chosen"] == 2
    assert state["answer"] == f"x is now **{100 + k}**."
    assert "from trajectory 2 of 3" in state["replay"] and "match the recording" in state["replay"]
    heavy_cell = cell_text(nb.cells[3])
    assert "Heavy mode · 3 trajectories, 3 at a time" in heavy_cell
    assert "Aggregation chose trajectory 2" in heavy_cell and f"x = {100 + k}" in heavy_cell

    # --concurrency 1: one after another, so the wall time is the sum (3 trajectories).
    assert sequential["wall"] > 0.9 * sum(sequential["each"]), sequential
    assert script.first_steps[2] - script.first_steps[0] > 1.5 * min(sequential["each"])
    # --concurrency 3: they overlap, and the whole takes well under 3x one trajectory.
    one = sequential["wall"] / 3
    assert state["wall"] < 1.9 * one, (state, sequential)
    assert script.first_steps[5] - script.first_steps[3] < 0.5 * one
    assert script.aggregations == 2 and k2env.errors == []
    # The second heavy cell's trajectories start from the same conversation: the first cell's
    # answer and the user's own cell in between.
    for text in script.first_texts[3:]:
        assert "x is now **" in text and "untouched = 'yes'" in text
    assert not any("x is now" in text for text in script.first_texts[:3])
    print(f"\nheavy x3: --concurrency 3 wall {state['wall']:.2f} s (each {state['each']}); "
          f"--concurrency 1 wall {sequential['wall']:.2f} s (each {sequential['each']}); "
          f"ratio to one trajectory {state['wall'] / one:.2f}")


def test_heavy_needs_fork(shell, k2env, monkeypatch):
    monkeypatch.setattr(heavy, "available", lambda: False)
    result = shell.run_cell("%%k2 --heavy 2\nAnything.")
    message = str(result.error_in_exec)
    assert "cannot fork" in message and "without --heavy" in message
    assert k2env.requests == []


def test_heavy_without_key_and_without_record(shell, k2env, monkeypatch):
    monkeypatch.delenv("MOONSHOT_API_KEY")
    result = shell.run_cell("%%k2 --heavy 2\nAnything.")
    assert "Heavy mode needs a model: no API key is set" in str(result.error_in_exec)


def test_aggregation_choice_parsing():
    from k2nb.core.run import Run, Step

    attempts = [heavy.Trajectory(i, status="answered",
                                 record=Run(f"t{i}", "p", "m", "api", answer=f"a{i}",
                                            steps=[Step(1)])) for i in (1, 2, 3)]
    agg = Run("r", "p", "m", "api", answer="Final.\n\n**Chosen trajectory: 3**")
    agg.steps = [Step(1, reasoning="why")]
    assert heavy._choose(agg, attempts) == (3, "Final.", "")
    agg.answer = "Final, no choice named."
    chosen, answer, note = heavy._choose(agg, attempts)
    assert chosen == 1 and answer == "Final, no choice named." and "named no usable" in note
    agg.stop_reason, agg.note = "error", "HTTP 500"
    chosen, answer, note = heavy._choose(agg, attempts)
    assert (chosen, answer) == (1, "a1") and "did not answer (HTTP 500)" in note


@pytest.mark.slow
def test_heavy_cell_replays_in_a_fresh_kernel_without_a_model(k2env, tmp_path: Path, monkeypatch):
    """A notebook with a heavy cell, re-run with no key and no server: nothing forks, the chosen
    trajectory's code and the aggregated answer replay, and the variables come out the same."""
    import nbformat

    script = HeavyScript()
    k2env.add(*[script] * 7)
    cells = ["%load_ext k2nb\nx = 1",
             "%%k2 --heavy 3\nSet x to a new value and tell me what it is.",
             "print(x, sorted(k for k in globals() if k.startswith('traj_')))"]
    first = run_notebook(cells, tmp_path)
    nbformat.write(first, str(tmp_path / "heavy.ipynb"))
    for name in ("MOONSHOT_API_KEY", "K2NB_BASE_URL"):
        monkeypatch.delenv(name)
    requests = len(k2env.requests)
    second = run_notebook(cells, tmp_path)
    assert len(k2env.requests) == requests
    text = cell_text(second.cells[1])
    assert "Replay of run" in text and "no API key is set" in text and "match the recording" in text
    assert "Heavy mode ·" not in text  # nothing was forked
    assert "x is now **" in text
    assert cell_text(second.cells[2]) == cell_text(first.cells[2])


def test_interrupt_stops_every_trajectory(shell, k2env):
    """The kernel's interrupt during the trajectories kills them all; the namespace is intact."""
    import os
    import signal

    k2env.add(*[Reply(reasoning="slow " * 40, delay=0.5)] * 3)
    shell.user_ns["x"] = 1
    spawned: list[int] = []
    real_spawn = trajectories._spawn

    def spawn(t, *args):
        real_spawn(t, *args)
        spawned.append(t.pid)

    trajectories._spawn = spawn
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        result = shell.run_cell("%%k2 --heavy 3\nSomething slow.")
    finally:
        trajectories._spawn = real_spawn
        timer.cancel()
    assert time.monotonic() - started < 5
    assert isinstance(result.error_in_exec, heavy.HeavyStopped)
    assert "all 3 trajectories were stopped" in str(result.error_in_exec)
    assert len(spawned) == 3 and shell.user_ns["x"] == 1
    for pid in spawned:  # reaped: no process, no zombie
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_all_trajectories_failing_is_one_clear_error(shell, k2env):
    result = shell.run_cell("%%k2 --heavy 2 --model no-such-model\nAnything.")
    message = str(result.error_in_exec)
    assert message.startswith("All 2 trajectories failed, so there is nothing to aggregate")
    assert "The model 'no-such-model' is not available" in message
    assert message.count("no-such-model' is not") == 1  # the same error is said once
    assert "x" not in shell.user_ns
