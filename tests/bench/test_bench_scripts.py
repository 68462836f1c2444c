"""The benches keep working: each runs with tiny parameters and prints its figures. No timing
is asserted here (targets are read from the benches' own output, measured in one run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent)}
    for name in ("K2NB_API_KEY", "MOONSHOT_API_KEY", "K2NB_BASE_URL", "K2NB_MODEL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, str(BENCH / script), *args], env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_loop_overhead_prints_both_loops_and_the_ratio():
    out = run_bench("loop_overhead.py", "--steps", "2", "--runs", "1", "--thinking", "40",
                    "--output", "40")
    assert "({3} requests with k2nb, {3} with the bare loop)" in out
    assert "refused 0" in out
    for kind in ("wall", "CPU"):
        assert re.search(rf"{kind} per step: k2nb [\d.]+ ms, bare loop [\d.]+ ms; overhead "
                         r"[+-][\d.]+ ms per step; ratio [\d.]+", out), out


@pytest.mark.parametrize("server", ["process", "thread"])
def test_long_run_prints_its_figures(server):
    out = run_bench("long_run.py", "--server", server, "--steps", "24", "--thinking", "100",
                    "--output", "100")
    assert f"server: {server}; steps completed: 24 of 24 (answered)" in out
    assert "steps whose previous output was missing from the request: 0" in out
    assert "requests refused: 0" in out
    assert re.search(r"CPU per step: steps 21–50 median [\d.]+ ms; steps 1–24 median "
                     r"[\d.]+ ms; late / early = [\d.]+", out), out
