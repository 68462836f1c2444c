"""Heavy mode (``%%k2 --heavy N``): N independent trajectories, one aggregation, one replay.

K2's heavy mode (K2_PROTOCOL.md §4) runs several trajectories in parallel and reflects over their
results. Here each trajectory is a forked copy of the kernel: it runs the ordinary agent loop
against its own copy of the user's namespace and sends its run record back over a pipe, so no
trajectory can touch the user's variables. Then one aggregation call reads every trajectory's
answer and code and gives the final answer, naming the trajectory it relied on; that trajectory's
code is then replayed in the user's namespace (its outputs compared with the trajectory's), so
the variables the answer talks about really exist. At most ``concurrency`` trajectories run at
once (Moonshot's lowest tier allows one concurrent request).
"""

from __future__ import annotations

import copy
import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..agent.loop import Agent, Budgets, new_run_id
from ..core.backend import Backend
from ..core.events import Subscriber
from ..core.messages import Usage
from ..core.run import Run, Step
from ..runs.replay import ReplayPlan, backend_configured
from ..runs.store import Found
from ..runs.transcript import Transcript
from ..tools.registry import Toolbox
from .trajectories import Trajectory, available, run_all

MAX_TRAJECTORIES = 16
AGGREGATION_CHARS = 60_000  # all trajectories together, as the aggregator reads them

AGGREGATOR = """\
You are the aggregator of a heavy-mode run. Several independent attempts ("trajectories") worked \
on the same task, each in its own copy of the user's Jupyter namespace. Read each trajectory's \
code, what that code printed, and its answer. Reflect on where they agree and disagree, and on \
which answer is best supported by what the code actually produced. Then write the final answer to \
the task for the user, in Markdown. The chosen trajectory's code will be run again in the user's \
namespace, so its variables will exist: name them where useful. End with a last line exactly of \
the form

Chosen trajectory: K

where K is the number of the trajectory whose code and results support your answer best."""

_CHOSEN = re.compile(r"^[\s*_>]*chosen trajectory[\s*_]*:?[\s*_#]*(\d+)[\s*_.]*$",
                     re.IGNORECASE | re.MULTILINE)


@dataclass
class HeavyParts:
    """What heavy mode needs from the kernel's session, given by the runner."""

    #: Runs one trajectory (in a forked child): (progress subscribers, transcript folder) → Run.
    trajectory: Callable[[list[Subscriber], str], Run]
    #: Replays the chosen trajectory in the user's namespace.
    replay: Callable[[ReplayPlan], Run]
    #: The model for the aggregation call, from the settings.
    model: Callable[[Any], Backend]
    #: The user's shell (each child cuts its copy off the kernel's channels).
    shell: Any


@dataclass(repr=False)
class HeavyRun(Run):
    """The run of a heavy cell: the replayed chosen trajectory ending with the aggregated answer.

    ``trajectories`` holds every trajectory's record, ``chosen`` the 1-based number of the one
    replayed, ``aggregation`` the aggregation call's run, ``wall_s`` the wall time of all the
    trajectories together and ``trajectory_seconds`` each one's own.
    """

    trajectories: list[Run] = field(default_factory=list)
    chosen: int | None = None
    aggregation: Run | None = None
    wall_s: float = 0.0
    trajectory_seconds: list[float] = field(default_factory=list)


class HeavyStopped(KeyboardInterrupt):
    """The user interrupted the trajectories; every one was stopped, the namespace is unchanged."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[33mk2nb: {self}\x1b[0m"]


def run_heavy(prompt: str, settings: Any, parts: HeavyParts) -> Run:
    """Run ``prompt`` in heavy mode with ``settings.heavy`` trajectories (module docstring)."""
    n = settings.heavy
    concurrency = _check(settings)
    _warm(settings, parts)
    heavy_id = new_run_id()
    folder = Path(settings.transcript_dir) / "heavy" / heavy_id
    view = TrajectoriesView(n, concurrency, quiet=settings.quiet)
    trajectories = [Trajectory(i + 1) for i in range(n)]
    started = time.monotonic()
    try:
        run_all(trajectories, concurrency, parts.trajectory, parts.shell, folder, view.update)
    except KeyboardInterrupt:
        raise HeavyStopped(
            f"Heavy mode stopped by the user: all {n} trajectories were stopped; your namespace "
            f"is unchanged. Their transcripts so far are in {folder}.") from None
    wall = time.monotonic() - started
    _require_usable(trajectories)
    aggregation = _aggregate(prompt, trajectories, settings, parts.model(settings), folder,
                             heavy_id)
    chosen, answer, note = _choose(aggregation, trajectories)
    view.finish(trajectories, aggregation, chosen, note)
    composite = _composite(trajectories[chosen - 1].record, aggregation, answer, heavy_id)
    why = (f"heavy mode: trajectory {chosen} of {n} was chosen; its code runs again in your "
           "namespace")
    result = parts.replay(ReplayPlan(Found(composite, f"trajectory {chosen} of {n}"), why,
                                     backend_name="heavy"))
    heavy = HeavyRun(**{f.name: getattr(result, f.name) for f in fields(Run)},
                     trajectories=[t.record or Run("", prompt, "", "", stop_reason="failed",
                                                   note=t.error or t.status)
                                   for t in trajectories],
                     chosen=chosen, aggregation=aggregation, wall_s=round(wall, 3),
                     trajectory_seconds=[round(t.duration_s, 3) for t in trajectories])
    heavy.usage = aggregation.usage
    for t in trajectories:
        heavy.usage = heavy.usage + (t.record.usage if t.record else Usage())
    if note:
        heavy.note = (heavy.note + " " + note).strip()
    return heavy


def _check(settings: Any) -> int:
    """The concurrency to use; ``ValueError`` saying why heavy mode cannot run here."""
    n = settings.heavy
    if not 1 <= n <= MAX_TRAJECTORIES:
        raise ValueError(f"--heavy takes 1 to {MAX_TRAJECTORIES} trajectories, got {n}.")
    concurrency = min(n, settings.concurrency or min(n, 4))
    if not available():
        raise ValueError(
            "Heavy mode runs each trajectory in a forked copy of the kernel so that none of them "
            "can change your variables, and this platform cannot fork (Windows). Run the cell "
            "without --heavy, or use Linux, macOS or WSL.")
    if settings.backend != "api":
        raise ValueError(
            "Heavy mode forks the kernel once per trajectory, and an in-kernel model cannot be "
            "shared by forked processes (CUDA does not survive a fork). Use --heavy with an API "
            "or OpenAI-compatible server (vLLM, SGLang, Ollama serve many requests at once).")
    if not backend_configured(settings):
        raise ValueError(
            f"Heavy mode needs a model: no API key is set. Set {settings.key_hint} in the "
            "environment or a .env file, or run `%k2 key`.")
    if settings.approve != "auto":
        raise ValueError("Heavy-mode trajectories run in the background and cannot ask before "
                         "running code: use --approve auto (the default) with --heavy.")
    return concurrency


def _require_usable(trajectories: list[Trajectory]) -> None:
    if any(_usable(t) for t in trajectories):
        return
    n = len(trajectories)
    errors = [t.error or t.status for t in trajectories]
    if len(set(errors)) == 1:
        raise ValueError(f"All {n} trajectories failed, so there is nothing to aggregate: "
                         f"{errors[0]}")
    problems = "\n".join(f"#{t.index}: {e}" for t, e in zip(trajectories, errors))
    raise ValueError(f"All {n} trajectories failed, so there is nothing to aggregate:\n"
                     f"{problems}")


def _warm(settings: Any, parts: HeavyParts) -> None:
    """Import what a run needs once, here, so each forked child does not import it again."""
    import dataclasses

    from ..tools.catalog import build_tools
    from ..tools.observation import OutputStore

    parts.model(settings)
    groups = [g for g in ("code", "web", "files") if g in str(settings.tools or "code,web,files")]
    try:  # MCP servers are left out: building their tools would start them here
        build_tools(dataclasses.replace(settings, tools=",".join(groups) or "none"), OutputStore())
    except Exception:  # noqa: BLE001, S110 - such a tool fails in each trajectory, with its message
        pass


# --- aggregation --------------------------------------------------------------------------------


def aggregation_prompt(prompt: str, trajectories: list[Trajectory]) -> str:
    """What the aggregator reads: the task, then each trajectory's code, outputs and answer."""
    share = AGGREGATION_CHARS // max(1, len(trajectories))
    parts = [f"The task:\n\n{prompt}\n"]
    for t in trajectories:
        steps = t.record.steps if t.record else []
        lines = [f"## Trajectory {t.index} ({t.status}, {len(steps)} steps)"]
        for call in (c for step in steps for c in step.tool_calls):
            if call.code is not None:
                lines.append(f"```python\n{call.code}\n```")
            else:
                lines.append(f"Tool `{call.call.name}` {call.call.arguments}")
            lines.append(f"Output:\n```\n{call.observation}\n```")
        lines.append(f"Answer:\n{t.answer or t.error or '(none)'}")
        text = "\n".join(lines)
        if len(text) > share:
            text = text[: share * 2 // 3] + "\n[… shortened …]\n" + text[-(share // 3):]
        parts.append(text)
    parts.append(f"Give the final answer, then the line `Chosen trajectory: K` "
                 f"(K from 1 to {len(trajectories)}).")
    return "\n\n".join(parts)


def _aggregate(prompt: str, trajectories: list[Trajectory], settings: Any, backend: Backend,
               folder: Path, heavy_id: str) -> Run:
    run_id = f"{heavy_id}-aggregation"
    transcript = Transcript(folder, run_id)
    transcript.write({"type": "settings", "model": settings.model, "base_url": settings.base_url,
                      "backend": backend.name, "max_steps": 1,
                      "max_tokens": settings.max_tokens, "temperature": settings.temperature,
                      "tools": [], "heavy": heavy_id})
    agent = Agent(backend=backend, toolbox=Toolbox([]), system_prompt=AGGREGATOR,
                  budgets=Budgets(1, settings.max_tokens, settings.temperature),
                  subscribers=[transcript])
    try:
        return agent.run(aggregation_prompt(prompt, trajectories), run_id=run_id,
                         transcript_path=str(transcript.path))
    finally:
        transcript.close()


def _choose(aggregation: Run, trajectories: list[Trajectory]) -> tuple[int, str, str]:
    """(chosen trajectory, final answer, a note if the aggregation could not be used)."""
    usable = [t.index for t in trajectories if _usable(t)]
    answered = [t.index for t in trajectories if t.status == "answered"] or usable
    if aggregation.stop_reason != "answered" or not aggregation.answer.strip():
        first = answered[0]
        why = aggregation.note or aggregation.stop_reason
        note = f"The aggregation call did not answer ({why}); trajectory {first}'s answer is used."
        return first, trajectories[first - 1].answer, note
    matches = _CHOSEN.findall(aggregation.answer)
    answer = _CHOSEN.sub("", aggregation.answer).rstrip()
    if matches and int(matches[-1]) in usable:
        return int(matches[-1]), answer, ""
    first = answered[0]
    return first, answer, (f"The aggregation named no usable trajectory; trajectory {first}'s "
                           "code is replayed.")


def _usable(t: Trajectory) -> bool:
    """A trajectory worth aggregating: it answered, or ran code before it stopped."""
    if t.record is None:
        return False
    return t.record.stop_reason == "answered" or any(s.tool_calls for s in t.record.steps)


def _composite(winner: Run | None, aggregation: Run, answer: str, heavy_id: str) -> Run:
    """The chosen trajectory's steps, ending with the aggregation's thinking and answer."""
    record = copy.deepcopy(winner) if winner is not None else Run(heavy_id, "", "", "")
    if record.steps and not record.steps[-1].tool_calls:
        record.steps.pop()
    final = aggregation.steps[-1] if aggregation.steps else None
    record.steps.append(Step(len(record.steps) + 1, final.reasoning if final else "", answer,
                             finish_reason="stop"))
    record.answer, record.stop_reason, record.backend = answer, "answered", "heavy"
    return record


# --- view ---------------------------------------------------------------------------------------


class TrajectoriesView:
    """One output area, updated in place: a line per trajectory, then a collapsed summary each."""

    def __init__(self, n: int, concurrency: int, quiet: bool = False, interval: float = 0.3):
        self.n, self.concurrency, self.quiet = n, concurrency, quiet
        self.interval = interval
        self._last = 0.0
        self._handle: Any = None
        self._final: tuple[str, str] | None = None

    def update(self, trajectories: list[Trajectory], force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < self.interval):
            return
        self._last = now
        self._show(*self._render(trajectories))

    def finish(self, trajectories: list[Trajectory], aggregation: Run, chosen: int,
               note: str) -> None:
        text, body = self._render(trajectories, chosen)
        thinking = aggregation.steps[-1].reasoning if aggregation.steps else ""
        text += f"\nAggregation chose trajectory {chosen}." + (f" {note}" if note else "")
        body += (f"<details><summary>Aggregation · thinking · chose trajectory {chosen}</summary>"
                 f"<pre style='white-space:pre-wrap'>{html.escape(thinking)}</pre></details>")
        if note:
            body += f"<p>⚠ {html.escape(note)}</p>"
        if not self.quiet:
            self._show(text, body)

    def _render(self, trajectories: list[Trajectory], chosen: int | None = None) -> tuple[str, str]:
        head = f"Heavy mode · {self.n} trajectories, {self.concurrency} at a time"
        lines, blocks = [head], [f"<div class='k2nb-heavy'><b>{html.escape(head)}</b>"]
        for t in trajectories:
            steps = (len(t.record.steps) if t.record else 0) or t.step
            mark = " ★ chosen" if chosen == t.index else ""
            state = t.status if t.status != "running" else f"running step {t.step}"
            line = (f"#{t.index} {state} · {steps} steps · {t.calls} tool calls · "
                    f"{t.duration_s:.1f} s{mark}")
            if t.error:
                line += f" · {t.error}"
            lines.append(line)
            detail = ""
            if t.record:
                code_html = "".join(f"<pre>{html.escape(c.code or c.call.name)}</pre>"
                                    for c in t.record.tool_calls)
                detail = (f"<div><i>Answer</i><pre style='white-space:pre-wrap'>"
                          f"{html.escape(t.answer or '(none)')}</pre><i>Code</i>{code_html}</div>")
            blocks.append(f"<details><summary>{html.escape(line)}</summary>{detail}</details>")
        blocks.append("</div>")
        return "\n".join(lines), "".join(blocks)

    def _show(self, text: str, body: str) -> None:
        from IPython.display import display

        bundle = {"text/plain": text, "text/html": body}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
