"""k2nb's cost per step over the minimal tool loop a user would write with the openai SDK.

    .venv/bin/python bench/loop_overhead.py                  # 20 tool steps, median of 5
    .venv/bin/python bench/loop_overhead.py --thinking 4000 --output 4000

Both loops run in this process against the same scripted Moonshot-like server (k2nb.testing,
in another process, no latency) and do the same work each step: stream the reply (reasoning,
then the code_interpreter call), run the code for real in the same headless IPython shell,
send the output back. k2nb runs as ``k2nb.run(..., views=False)`` (its CodeInterpreter runs the
code); the bare loop calls ``client.chat.completions.create(stream=True)`` and runs the code
with plain ``shell.run_cell`` (stdout captured). Runs alternate (k2nb, bare, k2nb, ...) after
one warm-up run of each. Prints the median time per step of each loop (wall clock and this
process's CPU), k2nb's overhead per step and the ratio. Target (issue 14): overhead ≤ 2 ms per
step at 20 steps.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT = "Check the data, one step at a time."
CODE_TOOL = {
    "type": "function",
    "function": {
        "name": "code_interpreter",
        "description": "Run Python code in the notebook's kernel and return its output.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}},
                       "required": ["code"]},
    },
}
MAX_TOKENS = 16_000


class StepModel:
    """Answers from the request alone (any number of runs, either loop): the N-th tool message
    means step N+1; after ``steps`` tool steps, the answer."""

    def __init__(self, steps: int, thinking: int, output: int):
        self.steps, self.thinking, self.output = steps, thinking, output

    def __call__(self, body: dict[str, Any]) -> Any:
        from k2nb.testing import Call, Reply
        from k2nb.testing.long_run import filler

        step = 1 + sum(1 for m in body["messages"] if m.get("role") == "tool")
        if step > self.steps:
            return Reply(reasoning=filler(200, step), content=f"Done after {self.steps} steps.")
        code = f"part_{step} = {step}\nprint({filler(self.output, step)!r})"
        return Reply(reasoning=f"Step {step}. " + filler(self.thinking, step),
                     tool_calls=[Call("code_interpreter", {"code": code})])


def serve(args: argparse.Namespace) -> None:
    """The server process: answer both loops until stdin closes."""
    from k2nb.testing import ScriptedServer

    model = StepModel(args.steps, args.thinking, args.output)
    requests = (args.steps + 1) * 2 * (args.runs + 1)
    with ScriptedServer([model] * requests, api_key="bench") as server:
        print(server.base_url, flush=True)
        sys.stdin.read()
        print(len(server.requests), len(server.errors), flush=True)


def bare_loop(client: Any, shell: Any) -> int:
    """The minimal K2 tool loop with the openai SDK; returns how many requests it made."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a data analyst working in a Jupyter notebook."},
        {"role": "user", "content": PROMPT},
    ]
    requests = 0
    while True:
        stream = client.chat.completions.create(
            model="kimi-k2-thinking", messages=messages, tools=[CODE_TOOL], stream=True,
            stream_options={"include_usage": True}, max_tokens=MAX_TOKENS, temperature=1.0)
        requests += 1
        reasoning, content, calls = [], [], {}
        for chunk in stream:
            for choice in chunk.choices:
                delta = choice.delta
                text = (delta.model_extra or {}).get("reasoning_content")
                if text:
                    reasoning.append(text)
                if delta.content:
                    content.append(delta.content)
                for fragment in delta.tool_calls or []:
                    call = calls.setdefault(fragment.index, {"id": "", "name": "", "args": ""})
                    call["id"] = fragment.id or call["id"]
                    call["name"] = (fragment.function.name or call["name"]) if fragment.function \
                        else call["name"]
                    call["args"] += (fragment.function.arguments or "") if fragment.function else ""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None,
                                   "reasoning_content": "".join(reasoning)}
        if not calls:
            messages.append(message)
            return requests
        message["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"], "arguments": c["args"]}}
            for c in calls.values()]
        messages.append(message)
        for call in calls.values():
            code = json.loads(call["args"])["code"]
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                shell.run_cell(code, store_history=True)
            messages.append({"role": "tool", "tool_call_id": call["id"], "name": call["name"],
                             "content": out.getvalue()})


def k2nb_loop(shell: Any, steps: int) -> int:
    """The same task through ``k2nb.run``, headless; returns how many requests it made."""
    import k2nb
    from k2nb.core.conversation import Conversation

    with contextlib.redirect_stdout(io.StringIO()):
        run = k2nb.run(PROMPT, shell=shell, views=False, max_steps=steps + 1,
                       max_tokens=MAX_TOKENS, conversation=Conversation())
    if not run.ok:
        raise SystemExit(f"k2nb's run failed: {run.stop_reason}: {run.note}")
    return len(run.steps)


def timed(loop: Callable[[], int]) -> tuple[float, float, int]:
    """Wall and CPU milliseconds per request of one run of ``loop``, and its requests."""
    wall, cpu = time.perf_counter(), time.process_time()
    requests = loop()
    return ((time.perf_counter() - wall) * 1000 / requests,
            (time.process_time() - cpu) * 1000 / requests, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="tool steps per run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each loop")
    parser.add_argument("--thinking", type=int, default=1500, help="characters of thinking/step")
    parser.add_argument("--output", type=int, default=1000, help="characters printed per step")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve", *sys.argv[1:]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    base_url = server.stdout.readline().strip()
    os.chdir(tempfile.mkdtemp(prefix="k2nb-overhead-"))
    os.environ.update(K2NB_API_KEY="bench", K2NB_BASE_URL=base_url)
    import openai
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    client = openai.OpenAI(api_key="bench", base_url=base_url, max_retries=0)
    loops = {"k2nb": lambda: k2nb_loop(shell, args.steps), "bare": lambda: bare_loop(client, shell)}
    for loop in loops.values():
        timed(loop)  # warm-up: imports, the connection, first-call caches
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in loops}
    for _ in range(args.runs):
        for name, loop in loops.items():
            results[name].append(timed(loop))
    server.stdin.close()
    served, refused = map(int, server.stdout.readline().split())
    server.wait()
    report(args, results, served, refused)


def report(args: argparse.Namespace, results: dict[str, list[tuple[float, float, int]]],
           served: int, refused: int) -> None:
    requests = {name: {r for _, _, r in runs} for name, runs in results.items()}
    print(f"{args.steps} tool steps per run ({requests['k2nb']} requests with k2nb, "
          f"{requests['bare']} with the bare loop); median of {args.runs} runs each; "
          f"{args.thinking} chars of thinking and {args.output} printed per step; "
          f"server requests {served}, refused {refused}")
    print("bare loop: openai SDK chat.completions.create(stream=True), code run with "
          "shell.run_cell; k2nb: k2nb.run(views=False), code run by its CodeInterpreter")
    for kind, column in (("wall", 0), ("CPU", 1)):
        k2 = statistics.median(r[column] for r in results["k2nb"])
        bare = statistics.median(r[column] for r in results["bare"])
        print(f"{kind:>4} per step: k2nb {k2:.2f} ms, bare loop {bare:.2f} ms; "
              f"overhead {k2 - bare:+.2f} ms per step; ratio {k2 / bare:.2f}")


if __name__ == "__main__":
    main()
