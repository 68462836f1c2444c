"""A long run, as K2 does them (200–300 steps): does it finish, what did compaction do, and does
k2nb's own cost per step stay flat? Every figure is measured in this run.

    .venv/bin/python bench/long_run.py                          # 300 steps, ~4,000 chars each
    .venv/bin/python bench/long_run.py --thinking 1500 --output 4000
    .venv/bin/python bench/long_run.py --steps 120 --window 65536
    .venv/bin/python bench/long_run.py --server thread           # the server in this process

The scripted Moonshot-like server (k2nb.testing, enforcing the window with its own token count)
runs in another process with no latency, so the CPU measured here is k2nb's: the loop, the
request, the code cells (run for real in a headless IPython shell), the transcript. With
``--server thread`` it runs in this process instead, as ``ScriptedServer`` does in tests (the
issue's Bar measures so): the CPU then includes the server's own work per request. Prints:
steps completed, compactions, the largest request against the window, whether every step saw
the previous step's output, and k2nb's median CPU per step over steps 21–50 against the last 30.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def long_run_server(args: argparse.Namespace) -> tuple[Any, Any]:
    """The scripted server playing the long-run model, not yet started, and the model."""
    from k2nb.testing import ScriptedServer
    from k2nb.testing.long_run import LongRunModel

    model = LongRunModel(args.steps - 1, args.thinking, args.output)
    server = ScriptedServer([model] * (args.steps * 3), api_key="bench",
                            context_window=args.window)
    return server, model


def figures(server: Any, model: Any) -> str:
    """What the server saw, as one line: summaries, missed steps, largest prompt, refusals."""
    return f"{model.summaries} {len(model.missed)} {model.largest_prompt} {len(server.errors)}"


def serve(args: argparse.Namespace) -> None:
    """The server process: play the long-run model until stdin closes."""
    server, model = long_run_server(args)
    with server:
        print(server.base_url, flush=True)
        sys.stdin.read()
        print(figures(server, model), flush=True)


class ServerProcess:
    """The scripted server in another process (its CPU is not k2nb's)."""

    def __init__(self, args: argparse.Namespace):
        self._process = subprocess.Popen([sys.executable, __file__, "--serve", *sys.argv[1:]],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.base_url = self._process.stdout.readline().strip()

    def finish(self) -> str:
        self._process.stdin.close()
        line = self._process.stdout.readline()
        self._process.wait()
        return line


class ServerThread:
    """The scripted server in this process, as tests run it (its CPU counts with k2nb's)."""

    def __init__(self, args: argparse.Namespace):
        self._server, self._model = long_run_server(args)
        self._server.start()
        self.base_url = self._server.base_url

    def finish(self) -> str:
        self._server.stop()
        return figures(self._server, self._model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps, the answer included")
    parser.add_argument("--thinking", type=int, default=4000, help="characters of thinking/step")
    parser.add_argument("--output", type=int, default=4000, help="characters printed per step")
    parser.add_argument("--window", type=int, default=262_144, help="the server's token limit")
    parser.add_argument("--server", choices=("process", "thread"), default="process",
                        help="run the scripted server in another process (default) or in a "
                             "thread of this one")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    server = (ServerThread if args.server == "thread" else ServerProcess)(args)
    base_url = server.base_url
    os.chdir(tempfile.mkdtemp(prefix="k2nb-long-"))
    os.environ.update(K2NB_API_KEY="bench", K2NB_BASE_URL=base_url)
    from IPython.core.interactiveshell import InteractiveShell

    import k2nb
    from k2nb.core import events as ev

    shell = InteractiveShell.instance()
    cpu: dict[int, float] = {}
    compactions: list[tuple[int, int, int]] = []

    def stamp(event: ev.Event) -> None:
        if isinstance(event, ev.StepStarted):
            cpu[event.step] = time.process_time()
        elif isinstance(event, ev.ContextCompacted):
            compactions.append((event.step, event.first, event.last))

    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):  # the cells' own prints
        run = k2nb.run("Check every part of the data, one step at a time.", shell=shell,
                       subscribers=[stamp], max_steps=args.steps, views=False,
                       context_window=args.window)
    cpu[len(run.steps) + 1] = time.process_time()
    wall = time.monotonic() - started
    summaries, missed, largest, refused = map(int, server.finish().split())
    per_step = {s: (cpu[s + 1] - cpu[s]) * 1000 for s in cpu if s + 1 in cpu}
    done = len(run.steps)
    early = statistics.median(per_step[s] for s in range(21, 51) if s in per_step)
    late_steps = [s for s in range(max(1, done - 29), done + 1) if s in per_step]
    late = statistics.median(per_step[s] for s in late_steps)
    print(f"server: {args.server}; steps completed: {done} of {args.steps} ({run.stop_reason}); "
          f"wall {wall:.1f} s")
    print(f"compactions: {len(compactions)} "
          + ", ".join(f"at step {s} (steps {a}–{b})" for s, a, b in compactions[:6])
          + (" …" if len(compactions) > 6 else ""))
    print(f"summary requests answered by the server: {summaries}; requests refused: {refused}")
    print(f"largest request: {largest:,} tokens (server's count) of a {args.window:,} window "
          f"= {largest / args.window:.0%}")
    print(f"steps whose previous output was missing from the request: {missed}")
    whose = "k2nb" if args.server == "process" else "process (k2nb and the server)"
    print(f"{whose} CPU per step: steps 21–50 median {early:.1f} ms; steps "
          f"{late_steps[0]}–{late_steps[-1]} median {late:.1f} ms; late / early = "
          f"{late / early:.2f}")


if __name__ == "__main__":
    main()
