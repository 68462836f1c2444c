"""Heavy-mode and replay benchmark: every number is a ratio against a baseline from the same run.

    .venv/bin/python bench/heavy.py               # ~20 s
    .venv/bin/python bench/heavy.py --delay 0.1   # more server latency per streamed chunk

Against the scripted Moonshot-like server (loopback, ``--delay`` seconds between chunks), in a
headless IPython shell:
  1. heavy mode, N trajectories: wall time with --concurrency N / wall time of one trajectory run
     alone (target well under N; 1.0 is perfect overlap), and --concurrency 1 / one trajectory
     (about N: the limit is honoured)
  2. replay of a recorded run / the live run it recorded (no model latency: well under 1)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from IPython.core.interactiveshell import InteractiveShell

import k2nb
from k2nb.testing import Call, Reply, ScriptedServer


def scripted_model(delay: float):
    lock, counter = threading.Lock(), [0]

    def reply(body: dict) -> Reply:
        messages = body["messages"]
        if "aggregator of a heavy-mode run" in messages[0]["content"]:
            return Reply(reasoning="Compare them.", content="Done.\n\nChosen trajectory: 1",
                         delay=delay)
        if not any(m["role"] == "tool" for m in messages):
            with lock:
                counter[0] += 1
                k = counter[0]
            code = f"import numpy as np\nv_{k} = np.arange({k} * 1000).sum()\nprint(v_{k})"
            return Reply(reasoning="Compute a value. " * 6,
                         tool_calls=[Call("code_interpreter", {"code": code})], delay=delay)
        value = re.search(r"\d+", messages[-1]["content"]).group(0)
        return Reply(reasoning="Report it.", content=f"The value is {value}.", delay=delay)

    return reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3, help="trajectories")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between chunks")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="k2nb-bench-"))
    model = scripted_model(args.delay)
    quiet = contextlib.redirect_stdout(io.StringIO())  # the benchmarked code's own prints
    with ScriptedServer([model] * 1000, api_key="bench") as server, quiet:
        os.environ.update(MOONSHOT_API_KEY="bench", K2NB_BASE_URL=server.base_url)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "k2nb")
        k2nb.run("warm up", shell=shell, quiet=True)
        k2nb.run("warm up", heavy=1, shell=shell, quiet=True)

        def timed(fn) -> float:
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        one = statistics.median(k2nb.run("bench", heavy=1, shell=shell, quiet=True).wall_s
                                for _ in range(args.repeat))
        parallel = statistics.median(
            k2nb.run("bench", heavy=args.n, concurrency=args.n, shell=shell, quiet=True).wall_s
            for _ in range(args.repeat))
        serial = statistics.median(
            k2nb.run("bench", heavy=args.n, concurrency=1, shell=shell, quiet=True).wall_s
            for _ in range(args.repeat))
        live = timed(lambda: k2nb.run("replay me", shell=shell, quiet=True, replay=False))
        replayed = timed(lambda: k2nb.run("replay me", shell=shell, quiet=True, replay=True))
    print(f"one trajectory alone: {one:.2f} s (server delay {args.delay} s per chunk)")
    print(f"heavy x{args.n}, --concurrency {args.n}: {parallel:.2f} s = "
          f"{parallel / one:.2f}x one trajectory (target well under {args.n})")
    print(f"heavy x{args.n}, --concurrency 1: {serial:.2f} s = {serial / one:.2f}x one trajectory")
    print(f"replay / live run of the same prompt: {replayed:.2f} s / {live:.2f} s = "
          f"{replayed / live:.2f}")


if __name__ == "__main__":
    main()
