"""Scripted models for the demo notebooks: what a capable model would think, run and answer.

One function per notebook returns the replies for all of its ``%%k2`` cells, in order. The code in
each tool call really does the task (files are written, statistics computed); final answers are
callables that read the last observation from the request body, as a real model would, so a
wrong number in the kernel shows up as a wrong answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from k2nb.testing import Call, Reply

MODEL = "kimi-k2-thinking"


def act(reasoning: str, code: str) -> Reply:
    """A step that runs ``code`` with code_interpreter."""
    return Reply(reasoning=reasoning, tool_calls=[Call("code_interpreter", {"code": code})])


def observed(body: dict[str, Any], pattern: str, back: int = 1) -> re.Match[str]:
    """Search the ``back``-th last tool observation of the request for ``pattern``."""
    tools = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    found = re.search(pattern, tools[-back])
    if found is None:
        raise AssertionError(f"{pattern!r} not in observation: {tools[-back][:2000]}")
    return found


def answer(reasoning: str, build: Callable[[dict[str, Any]], str]) -> Callable[[dict], Reply]:
    return lambda body: Reply(reasoning=reasoning, content=build(body))


# --- 01 quickstart ---------------------------------------------------------------------------

MACHINE = """import os, platform
print("cores:", os.cpu_count())
print("python:", platform.python_version())"""


def quickstart() -> list[Any]:
    return [
        act("The user wants two facts about the machine the kernel runs on. I can read both "
            "directly: os.cpu_count() for the cores and platform.python_version() for Python.",
            MACHINE),
        answer("Both values are printed; I'll report them as they are.", lambda b: (
            "This kernel runs **Python {1}** on a machine with **{0} CPU cores** "
            "(as reported by `os.cpu_count()`).".format(
                *observed(b, r"cores: (\d+)\npython: ([\d.]+)").groups()))),
    ]


# --- 02 explore data --------------------------------------------------------------------------

INSPECT = """import pandas as pd
orders_raw = pd.read_csv("data/orders.csv")
print(orders_raw.shape)
print("regions:", orders_raw["region"].value_counts().to_dict())
print("missing:", orders_raw.isna().sum()[lambda s: s > 0].to_dict())
print("duplicated rows:", orders_raw.duplicated().sum())"""

CLEAN = """orders = orders_raw.drop_duplicates().copy()
orders["region"] = orders["region"].str.strip().str.title()
dropped_missing = int(orders["units"].isna().sum())
orders = orders.dropna(subset=["units"]).astype({"units": int})
orders["date"] = pd.to_datetime(orders["date"])
orders["revenue"] = orders["units"] * orders["unit_price"]
print("clean:", orders.shape, "regions:", sorted(orders["region"].unique()),
      "dropped (missing units):", dropped_missing)"""

GROUPBY = """import matplotlib.pyplot as plt
monthly = (orders.groupby([orders["date"].dt.to_period("M"), "region"])["revenue"]
           .sum().unstack("region"))
ax = monthly.plot(kind="bar", figsize=(9, 4), title="Revenue by month and region")
ax.set_xlabel("month"); ax.set_ylabel("revenue")
plt.tight_layout(); plt.show()
by_region = monthly.sum().sort_values(ascending=False)
print(monthly.round(0).to_string())
print("top region:", by_region.index[0], round(by_region.iloc[0], 2))"""


BY_PRODUCT = """by_product = (orders.groupby([orders["date"].dt.to_period("M"), "product"])["revenue"]
              .sum().unstack("product"))
ax = by_product.plot(kind="bar", figsize=(9, 4), title="Revenue by month and product")
ax.set_xlabel("month"); ax.set_ylabel("revenue")
plt.tight_layout(); plt.show()
products = by_product.sum().sort_values(ascending=False)
print(by_product.round(0).to_string())
print("top product:", products.index[0], round(products.iloc[0], 2))"""


def follow_up(body: dict[str, Any]) -> Reply:
    """The follow-up only makes sense with the earlier turns: check they are in the request."""
    text = " ".join(str(m.get("content") or "") for m in body["messages"])
    for earlier in ("Show revenue by month and region", "brings the most revenue",
                    'orders.groupby("product")'):
        if earlier not in text:
            raise AssertionError(f"the follow-up's request lacks the earlier turn: {earlier!r}")
    return act("'The same' is the month × region view from before, now by product; the user "
               "already summed revenue per product by hand, so add the monthly breakdown and "
               "the plot, and compare the leaders.", BY_PRODUCT)


def explore() -> list[Any]:
    return [
        act("First look at the raw file: shape, how region is spelled, what is missing and "
            "whether rows repeat.", INSPECT),
        act("Region names differ by case and trailing spaces, a few rows are duplicated and "
            "some units are missing. Deduplicate, normalise the names, drop rows without units "
            "(we cannot guess a quantity) and add revenue.", CLEAN),
        answer("Cleaning worked; summarise what changed.", lambda b: (
            "Loaded `orders_raw` {} and cleaned it into `orders`: removed {} duplicated rows, "
            "merged region spellings into {}, dropped {} rows with no units, added "
            "`revenue = units × unit_price`. Result: {}.".format(
                observed(b, r"^\((\d+, \d+)\)", 2).group(1),
                observed(b, r"duplicated rows: (\d+)", 2).group(1),
                observed(b, r"regions: (\[[^\]]*\])").group(1),
                observed(b, r"dropped \(missing units\): (\d+)").group(1),
                observed(b, r"clean: \((\d+, \d+)\)").group(1)))),
        act("Group revenue by month and region, plot it as grouped bars, and print the table.",
            GROUPBY),
        answer("The plot is shown; report the leading region from the printed totals.",
               lambda b: "Revenue by month and region is plotted above and kept in `monthly`. "
               "**{}** brings the most revenue over the half year ({}).".format(
                   *observed(b, r"top region: (\w+) ([\d.]+)").groups())),
        follow_up,
        answer("Report the leading product next to the leading region.", lambda b: (
            "By product, **{}** leads with {} over the half year; the monthly split is plotted "
            "above and kept in `by_product`. (By region, the leader was the one named "
            "before.)".format(*observed(b, r"top product: (.+?) ([\d.]+)\s*$").groups()))),
    ]


# --- 03 teaching ------------------------------------------------------------------------------

FALL = """import math
g, h = 9.81, 20.0
t = math.sqrt(2 * h / g)
v = g * t
print(f"t = {t:.3f} s, v = {v:.2f} m/s")"""

SIMULATE = """dt, y, speed, time = 1e-4, 20.0, 0.0, 0.0
while y > 0:
    speed += 9.81 * dt
    y -= speed * dt
    time += dt
print(f"simulated: t = {time:.3f} s, v = {speed:.2f} m/s")"""


def teaching() -> list[Any]:
    return [
        act("A dropped ball starts at rest, so h = ½·g·t². Solving for t: t = √(2h/g). The speed "
            "at impact is v = g·t (or √(2gh), the same thing). Let me compute rather than do the "
            "arithmetic in my head.", FALL),
        act("t ≈ 2.02 s and v ≈ 19.8 m/s. Is that plausible? I can check the formula "
            "independently by simulating the fall in small time steps: if both agree, neither "
            "the algebra nor the code is wrong.", SIMULATE),
        answer("The simulation agrees with the closed form to the printed precision.", lambda b: (
            "The ball hits the ground after **{} s** at **{} m/s**: from h = ½gt², "
            "t = √(2h/g), and v = g·t. A step-by-step simulation gives the same numbers.".format(
                *observed(b, r"simulated: t = ([\d.]+) s, v = ([\d.]+)").groups()))),
    ]


# --- 04 monthly operations report ---------------------------------------------------------

OPS_LOAD = """import pandas as pd
ops = pd.read_csv("data/operations_2025-10.csv", parse_dates=["date"])
kpis = {
    "orders": int(ops["orders"].sum()),
    "revenue": round(float(ops["revenue"].sum()), 2),
    "tickets opened": int(ops["tickets_opened"].sum()),
    "tickets closed": int(ops["tickets_closed"].sum()),
    "median response (min)": round(float(ops["median_response_min"].median()), 1),
    "mean uptime (%)": round(float(ops["uptime_pct"].mean()), 3),
}
incidents = ops.loc[ops["uptime_pct"] < 99.5, ["date", "uptime_pct", "tickets_opened"]]
print(kpis)
print("incidents:", [d.strftime("%Y-%m-%d") for d in incidents["date"]])"""

OPS_CHARTS = """import os
import matplotlib.pyplot as plt
os.makedirs("reports", exist_ok=True)
weekly = ops.set_index("date").resample("W-SUN").agg(
    {"orders": "sum", "revenue": "sum", "tickets_opened": "sum", "tickets_closed": "sum"})
fig, ax = plt.subplots(figsize=(8, 3.5))
ops.plot(x="date", y="orders", ax=ax, legend=False, title="Orders per day, October 2025")
for day in incidents["date"]:
    ax.axvline(day, color="red", linestyle="--", linewidth=1)
fig.tight_layout(); fig.savefig("reports/orders.png", dpi=100); plt.show()
fig, ax = plt.subplots(figsize=(8, 3.5))
weekly[["tickets_opened", "tickets_closed"]].plot(kind="bar", ax=ax, title="Support tickets per week")
ax.set_xticklabels([d.strftime("%d %b") for d in weekly.index], rotation=0)
fig.tight_layout(); fig.savefig("reports/tickets.png", dpi=100); plt.show()
print(sorted(os.listdir("reports")))"""

OPS_WRITE = """def md_table(frame):
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\\n".join([head, rule, *rows])

kpi_table = pd.DataFrame({"metric": list(kpis), "October 2025": [f"{v:,}" for v in kpis.values()]})
incident_table = incidents.assign(date=incidents["date"].dt.strftime("%Y-%m-%d"))
best = ops.loc[ops["orders"].idxmax()]
report = f\"\"\"# Operations report — October 2025

## Key figures

{md_table(kpi_table)}

The busiest day was {best['date']:%A %d %B} with {best['orders']} orders.

## Orders

![Orders per day](orders.png)

## Support

Tickets opened: {kpis['tickets opened']}, closed: {kpis['tickets closed']}
(backlog change {kpis['tickets opened'] - kpis['tickets closed']:+d}).

![Tickets per week](tickets.png)

## Incidents (uptime below 99.5 %)

{md_table(incident_table)}
\"\"\"
with open("reports/operations-2025-10.md", "w") as f:
    f.write(report)
print("wrote reports/operations-2025-10.md:", len(report), "chars,", report.count("![") , "charts")"""


def operations_report() -> list[Any]:
    return [
        act("Start with the month's totals and find the bad days: uptime below 99.5 % counts as "
            "an incident.", OPS_LOAD),
        act("One incident, on 14 October. Two charts: daily orders with the incident marked, and "
            "weekly tickets opened vs closed. Save them as PNG next to the report.", OPS_CHARTS),
        act("Now write the Markdown report with a KPI table, both charts and the incident "
            "table. No tabulate here, so I build the tables myself.", OPS_WRITE),
        answer("Report written; give the user the headline numbers.", lambda b: (
            "The report is in `reports/operations-2025-10.md` ({} chars, {} charts: "
            "`reports/orders.png`, `reports/tickets.png`). October had {} orders and {} in "
            "revenue; the one incident was {}.".format(
                *observed(b, r"(\d+) chars, (\d+) charts").groups(),
                observed(b, r"'orders': (\d+)", 3).group(1),
                observed(b, r"'revenue': ([\d.]+)", 3).group(1),
                observed(b, r"incidents: \['([\d-]+)'\]", 3).group(1)))),
    ]


# --- 05 gomoku ------------------------------------------------------------------------------

GOMOKU_HTML = r'''<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Gomoku with skills</title>
<style>
 body { font-family: sans-serif; margin: 12px; background: #faf7f0; }
 canvas { background: #e3b76b; border-radius: 4px; cursor: pointer; }
 .bar { margin: 8px 0; } button { margin-right: 6px; }
 #status { font-weight: bold; }
</style></head>
<body>
<div class="bar"><span id="status"></span></div>
<canvas id="board" width="600" height="600"></canvas>
<div class="bar" id="skills"></div>
<div class="bar"><button id="restart">New game</button></div>
<script>
const SIZE = 15, CELL = 40, MARGIN = 20;
const SKILLS = { undo: "Undo: take back the opponent's last stone",
                 double: "Double: place two stones this turn",
                 bomb: "Bomb: remove one opponent stone" };

function newGame() {
  return { board: Array.from({ length: SIZE }, () => Array(SIZE).fill(0)), player: 1,
           history: [], winner: 0, pendingStones: 1, mode: "place",
           skills: { 1: { undo: 1, double: 1, bomb: 1 }, 2: { undo: 1, double: 1, bomb: 1 } } };
}

function fiveInRow(board, r, c) {
  const me = board[r][c];
  if (!me) return false;
  for (const [dr, dc] of [[0, 1], [1, 0], [1, 1], [1, -1]]) {
    let n = 1;
    for (const s of [1, -1]) {
      let i = r + dr * s, j = c + dc * s;
      while (i >= 0 && i < SIZE && j >= 0 && j < SIZE && board[i][j] === me) {
        n++; i += dr * s; j += dc * s;
      }
    }
    if (n >= 5) return true;
  }
  return false;
}

function place(game, r, c) {
  if (game.winner || game.board[r][c]) return false;
  const other = 3 - game.player;
  game.board[r][c] = game.player;
  game.history.push({ r, c, player: game.player });
  if (fiveInRow(game.board, r, c)) { game.winner = game.player; return true; }
  game.pendingStones -= 1;
  if (game.pendingStones === 0) { game.player = other; game.pendingStones = 1; }
  return true;
}

function bomb(game, r, c) {
  const other = 3 - game.player;
  if (game.board[r][c] !== other) return false;
  game.board[r][c] = 0;
  game.history = game.history.filter(m => !(m.r === r && m.c === c));
  game.mode = "place";
  return true;
}

function useSkill(game, name) {
  const left = game.skills[game.player];
  if (game.winner || !left[name]) return false;
  const other = 3 - game.player;
  if (name === "undo") {
    const last = [...game.history].reverse().find(m => m.player === other);
    if (!last) return false;
    game.board[last.r][last.c] = 0;
    game.history.splice(game.history.lastIndexOf(last), 1);
  } else if (name === "double") {
    game.pendingStones = 2;
  } else if (name === "bomb") {
    if (!game.history.some(m => m.player === other)) return false;
    game.mode = "bomb";
  }
  left[name] -= 1;
  return true;
}

let game = newGame();

function draw() {
  const ctx = document.getElementById("board").getContext("2d");
  ctx.clearRect(0, 0, 600, 600);
  ctx.strokeStyle = "#5a3d12";
  for (let i = 0; i < SIZE; i++) {
    ctx.beginPath(); ctx.moveTo(MARGIN, MARGIN + i * CELL); ctx.lineTo(MARGIN + 14 * CELL, MARGIN + i * CELL); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(MARGIN + i * CELL, MARGIN); ctx.lineTo(MARGIN + i * CELL, MARGIN + 14 * CELL); ctx.stroke();
  }
  for (let r = 0; r < SIZE; r++) for (let c = 0; c < SIZE; c++) {
    if (!game.board[r][c]) continue;
    ctx.beginPath(); ctx.arc(MARGIN + c * CELL, MARGIN + r * CELL, 16, 0, 2 * Math.PI);
    ctx.fillStyle = game.board[r][c] === 1 ? "#111" : "#fafafa"; ctx.fill(); ctx.stroke();
  }
  const name = p => (p === 1 ? "Black" : "White");
  document.getElementById("status").textContent = game.winner
    ? name(game.winner) + " wins!"
    : name(game.player) + " to play" + (game.mode === "bomb" ? " — pick an opponent stone to bomb"
      : game.pendingStones === 2 ? " — two stones this turn" : "");
  const box = document.getElementById("skills");
  box.innerHTML = "";
  for (const [key, label] of Object.entries(SKILLS)) {
    const b = document.createElement("button");
    b.textContent = label + " (" + game.skills[game.player][key] + " left)";
    b.disabled = !game.skills[game.player][key] || !!game.winner;
    b.onclick = () => { useSkill(game, key); draw(); };
    box.appendChild(b);
  }
}

if (typeof document !== "undefined") {
  document.getElementById("board").addEventListener("click", e => {
    const rect = e.target.getBoundingClientRect();
    const c = Math.round((e.clientX - rect.left - MARGIN) / CELL);
    const r = Math.round((e.clientY - rect.top - MARGIN) / CELL);
    if (r < 0 || r >= SIZE || c < 0 || c >= SIZE) return;
    if (game.mode === "bomb") bomb(game, r, c); else place(game, r, c);
    draw();
  });
  document.getElementById("restart").onclick = () => { game = newGame(); draw(); };
  draw();
}
</script>
</body></html>
'''

GOMOKU_WRITE = f'''html = {GOMOKU_HTML!r}
with open("gomoku.html", "w") as f:
    f.write(html)
print("gomoku.html:", len(html), "bytes")'''

GOMOKU_CHECK = """import re
from IPython.display import IFrame, display
html = open("gomoku.html").read()
external = re.findall(r'(?:src|href)="(https?:[^"]+)"', html)
print("scripts:", html.count("<script>"), "external resources:", external,
      "skills:", re.findall(r"^\\s*(\\w+): \\"", html, re.M))
display(IFrame("gomoku.html", width=640, height=720))"""


def gomoku() -> list[Any]:
    return [
        act("One self-contained HTML file: a canvas board, the game state in plain functions "
            "(so the rules can be checked without a browser), five-in-a-row detection in four "
            "directions, and three one-use skills per player: Undo, Double and Bomb.",
            GOMOKU_WRITE),
        act("Check that nothing is loaded from outside and that the skills are defined, then "
            "show the game in an IFrame.", GOMOKU_CHECK),
        answer("The file is self-contained and shown.", lambda b: (
            "`gomoku.html` is a single file ({} bytes) with no external resources, shown "
            "above. Black and White alternate on a 15×15 board; five in a row (any direction) "
            "wins. Each player has one use of each skill: {}.".format(
                observed(b, r"gomoku.html: (\d+) bytes", 2).group(1),
                ", ".join(observed(b, r"skills: \[([^\]]*)\]").group(1)
                          .replace("'", "").split(", "))))),
    ]


# --- 06 academic results table ----------------------------------------------------------

STATS_LOAD = """import pandas as pd
results = pd.read_csv("data/results.csv")
wide = results.pivot_table(index=["benchmark", "seed"], columns="method", values="accuracy")
summary = wide.groupby("benchmark").agg(["mean", "std"]).round(2)
print(summary)
print("seeds per benchmark:", wide.groupby("benchmark").size().to_dict())"""

STATS_TEST = """import itertools, math
import numpy as np

def paired_test(ours, base):
    \"\"\"Paired t statistic and the exact two-sided sign-flip permutation p-value.\"\"\"
    d = np.asarray(ours) - np.asarray(base)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    observed = abs(d.mean())
    flips = np.array(list(itertools.product([1, -1], repeat=len(d))))
    null = np.abs((flips * d).mean(axis=1))
    return t, float((null >= observed - 1e-12).mean())

rows = []
for bench, g in wide.groupby("benchmark"):
    t, p = paired_test(g["ours"], g["baseline"])
    rows.append({"benchmark": bench, "diff": (g["ours"] - g["baseline"]).mean(), "t": t, "p": p})
tests = pd.DataFrame(rows).set_index("benchmark")
for bench, r in tests.iterrows():
    print(f"{bench}: diff={r['diff']:+.2f} t={r['t']:.2f} p={r['p']:.4f}")"""

STATS_LATEX = r'''def cell(mean, std, bold=False):
    text = f"{mean:.2f} $\\pm$ {std:.2f}"
    return f"\\textbf{{{text}}}" if bold else text

lines = [
    r"\section{Detailed results}\label{app:results}",
    r"Accuracy (\%) over " + str(wide.groupby("benchmark").size().iloc[0]) + r" seeds, mean $\pm$ standard deviation.",
    r"$p$: exact two-sided paired permutation test over seeds; bold: $p < 0.05$.",
    r"\begin{table}[h]", r"\centering", r"\begin{tabular}{lcccc}", r"\toprule",
    r"Benchmark & Baseline & Ours & $\Delta$ & $p$ \\", r"\midrule",
]
for bench, r in tests.iterrows():
    s = summary.loc[bench]
    sig = r["p"] < 0.05
    lines.append(f"{bench} & {cell(s[('baseline', 'mean')], s[('baseline', 'std')])} & "
                 f"{cell(s[('ours', 'mean')], s[('ours', 'std')], sig)} & "
                 f"{r['diff']:+.2f} & {r['p']:.4f} \\\\")
lines += [r"\bottomrule", r"\end{tabular}",
          r"\caption{Ours vs.\ baseline per benchmark.}\label{tab:results}", r"\end{table}"]
with open("appendix_results.tex", "w") as f:
    f.write("\n".join(lines) + "\n")
print("wrote appendix_results.tex:", len(lines), "lines; significant:",
      [b for b, r in tests.iterrows() if r["p"] < 0.05])'''


def academic() -> list[Any]:
    return [
        act("Pivot to one row per (benchmark, seed) with both methods side by side: the seeds "
            "pair the runs, so the test must be paired.", STATS_LOAD),
        act("Eight seeds per benchmark is too few to trust a normal approximation, and scipy "
            "is not needed: the exact sign-flip permutation test enumerates all 2^8 "
            "assignments. I report the paired t statistic too.", STATS_TEST),
        act("Write the booktabs table as a LaTeX appendix; bold where p < 0.05.", STATS_LATEX),
        answer("Done; report which differences hold up.", lambda b: (
            "`appendix_results.tex` holds the table ({} lines, booktabs; needs "
            "`\\usepackage{{booktabs}}`). Significant at p < 0.05 (exact paired permutation "
            "test over seeds): {}.".format(
                observed(b, r"appendix_results.tex: (\d+) lines").group(1),
                observed(b, r"significant: \[([^\]]*)\]").group(1).replace("'", "")))),
    ]


# --- 07 stock indicators ------------------------------------------------------------------

INDICATORS = """import pandas as pd
prices = pd.read_csv("data/prices_K2X.csv", parse_dates=["date"], index_col="date")
close = prices["close"]
ema12 = close.ewm(span=12, adjust=False).mean()
ema26 = close.ewm(span=26, adjust=False).mean()
ind = pd.DataFrame({"close": close, "macd": ema12 - ema26})
ind["signal"] = ind["macd"].ewm(span=9, adjust=False).mean()
ind["hist"] = ind["macd"] - ind["signal"]
delta = close.diff()
gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
ind["rsi"] = 100 - 100 / (1 + gain / loss)
last = ind.iloc[-1]
print(f"last: macd={last.macd:.3f} signal={last.signal:.3f} rsi={last.rsi:.1f}")
print("overbought days:", int((ind.rsi > 70).sum()), "oversold days:", int((ind.rsi < 30).sum()))"""

CHART = """import ipywidgets as widgets
import matplotlib.pyplot as plt

def plot_window(window):
    part = ind.iloc[window[0]:window[1] + 1]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 7), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 2, 2]})
    a1.plot(part.index, part.close, color="black", label="close"); a1.legend(loc="upper left")
    a1.set_title("K2X (synthetic prices): close, MACD (12, 26, 9), RSI (14)")
    a2.plot(part.index, part.macd, label="MACD"); a2.plot(part.index, part.signal, label="signal")
    a2.bar(part.index, part.hist, color=["green" if h > 0 else "red" for h in part.hist])
    a2.legend(loc="upper left")
    a3.plot(part.index, part.rsi, color="purple")
    a3.axhline(70, color="red", linestyle="--"); a3.axhline(30, color="green", linestyle="--")
    a3.set_ylim(0, 100); a3.set_ylabel("RSI")
    plt.tight_layout(); plt.show()

slider = widgets.IntRangeSlider(value=(len(ind) - 120, len(ind) - 1), min=0, max=len(ind) - 1,
                                description="days", continuous_update=False,
                                layout=widgets.Layout(width="90%"))
chart = widgets.interactive(plot_window, window=slider)
display(chart)
print("interactive chart over", len(ind), "days; showing", slider.value)"""


def stock() -> list[Any]:
    return [
        act("MACD is EMA12 − EMA26 with a 9-period EMA signal line; RSI(14) uses Wilder's "
            "smoothing, which is an EWM with alpha = 1/14.", INDICATORS),
        act("An interactive chart: a range slider over the days, redrawing price, MACD with "
            "its histogram, and RSI with the 70/30 bands.", CHART),
        answer("Report the latest readings.", lambda b: (
            "Indicators are in `ind` (columns macd, signal, hist, rsi); the chart above has a "
            "slider to choose the window. Latest close: MACD {} vs signal {}; RSI {}.".format(
                *observed(b, r"macd=(-?[\d.]+) signal=(-?[\d.]+) rsi=([\d.]+)", 2).groups()))),
    ]


# --- 08 local 4-bit ------------------------------------------------------------------------

LOCAL_LOAD = """import time
from k2nb.backends import choice as backend_choice
from k2nb.backends.local.loading import load_local_model
folder = str(backend_choice.smollm2_model_folder())
sizes = {}
for quantization in (None, "nf4"):
    lm, tok, report = load_local_model(folder, quantization=quantization, progress=False)
    sizes[quantization or "bf16"] = report.total_bytes
    print(quantization or "bf16", "->", report.summary())
print(f"nf4 / bf16 = {sizes['nf4'] / sizes['bf16']:.2f}")"""

LOCAL_SPEED = """import torch
ids = tok.apply_chat_template([{"role": "user", "content": "Name three primary colours."}],
                              add_generation_prompt=True, return_tensors="pt")
ids = getattr(ids, "input_ids", ids)
start = time.perf_counter()
with torch.no_grad():
    out = lm.generate(ids, max_new_tokens=24, do_sample=False)
elapsed = time.perf_counter() - start
new = out.shape[1] - ids.shape[1]
print(repr(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
print(f"{new} tokens in {elapsed:.2f} s = {new / elapsed:.1f} tok/s")"""


def local_model() -> list[Any]:
    return [
        act("Load the wheel's model twice through k2nb's loader — full bf16 and nf4 4-bit — and "
            "compare the bytes of parameters actually on the device.", LOCAL_LOAD),
        act("Now measure greedy generation speed of the 4-bit model on a short chat prompt.",
            LOCAL_SPEED),
        answer("Memory and speed measured; summarise.", lambda b: (
            "SmolLM2-135M-Instruct in nf4 holds {}× the parameter bytes of bf16 and generated "
            "at {} tok/s on this CPU.".format(
                observed(b, r"nf4 / bf16 = ([\d.]+)", 2).group(1),
                observed(b, r"= ([\d.]+) tok/s").group(1)))),
    ]


# --- 10 custom tools --------------------------------------------------------------------------


def custom_tools() -> list[Any]:
    return [
        Reply(reasoning="The user's own exchange_rate tool gives rates against the euro. I need "
                        "both USD and JPY.",
              tool_calls=[Call("exchange_rate", {"currency": "USD"}),
                          Call("exchange_rate", {"currency": "JPY"})]),
        lambda body: act(
            "USD→EUR→JPY: amount / rate(USD) * rate(JPY). Compute it exactly in Python.",
            "usd, jpy = {}, {}\nprint(f'250 USD = {{250 / usd * jpy:.2f}} JPY')".format(
                *[m["content"] for m in body["messages"] if m["role"] == "tool"][-2:])),
        answer("The conversion is printed.", lambda b: "250 USD is **{} JPY** at today's "
               "rates from your `exchange_rate` tool.".format(
                   observed(b, r"250 USD = ([\d.]+) JPY").group(1))),
    ]


SCRIPTS: dict[str, Callable[[], list[Any]]] = {
    "01-quickstart": quickstart,
    "02-explore-data": explore,
    "03-teaching-visible-reasoning": teaching,
    "04-monthly-operations-report": operations_report,
    "05-gomoku-with-skills": gomoku,
    "06-academic-results-latex": academic,
    "07-stock-indicators": stock,
    "08-local-4bit-model": local_model,
    "10-custom-tools": custom_tools,
}
