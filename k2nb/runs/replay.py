"""Replay mode: when a ``%%k2`` cell replays its recorded run, and checking what it produces.

A cell replays when asked (``--replay``, ``--replay RUN_ID``, ``K2NB_REPLAY=1``) or, by itself,
when no backend is configured (no API key) and a record of the same prompt exists. The recorded
thinking is streamed again, the recorded tool calls run again for real in the live namespace, and
:class:`ReplayCheck` compares each call's new outputs with the recorded ones: every difference
becomes a warning :class:`~k2nb.core.events.Notice` and is kept in the run's
:class:`ReplayReport` (``_k2.replay``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..backends.replay import ReplayBackend
from ..core import events as ev
from ..core.run import Run, Step, ToolCallResult
from ..core.tool import BaseTool, ToolOutcome
from ..tools.registry import Toolbox
from .compare import Difference, compare
from .store import Found, Recordings

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def requested(option: Any) -> str:
    """Normalise a replay request: "auto" (decide), "on", "off", or a run id.

    ``option`` is the ``replay`` setting: ``--replay [RUN]``, else ``K2NB_REPLAY`` (None when
    neither says anything), or a plan, True or False from Python.
    """
    if isinstance(option, (Found, ReplayPlan)) or option is True:
        return "on"
    if option is False:
        return "off"
    if option in (None, "", "auto"):
        return "auto"
    text = str(option).strip()
    return "on" if text.lower() in TRUE else "off" if text.lower() in FALSE else text


def backend_configured(settings: Any) -> bool:
    """Whether a live backend could run: an API key, or a non-API backend chosen."""
    return bool(settings.api_key) or getattr(settings, "backend", "api") not in ("api", None)


@dataclass
class ReplayPlan:
    """A decision to replay: the record, where it came from and why replay was chosen."""

    found: Found
    reason: str
    backend_name: str = "replay"  # "heavy" for heavy mode's replay of its chosen trajectory

    @property
    def record(self) -> Run:
        return self.found.record


def plan(prompt: str, settings: Any, option: Any = None,
         recordings: Recordings | None = None) -> ReplayPlan | None:
    """Decide whether this run replays; ``ValueError`` (with what to do) if asked but impossible.

    ``option``: a plan or a found record (replay it), or None to follow ``settings.replay``.
    """
    if isinstance(option, ReplayPlan):
        return option
    if isinstance(option, Found):
        return ReplayPlan(option, "replaying as asked")
    recordings = recordings or Recordings()
    given = option if option is not None else settings.replay
    mode = requested(given)
    if mode == "off":
        return None
    if mode == "auto":
        if backend_configured(settings):
            return None
        found = recordings.find(prompt, transcript_dir=settings.transcript_dir)
        if found is None:
            return None  # the backend explains the missing key
        return ReplayPlan(found, f"no API key is set ({settings.key_hint}), so the recorded run "
                                 "replays")
    run_id = None if mode == "on" else mode
    found = recordings.find(None if run_id else prompt, run_id,
                            transcript_dir=settings.transcript_dir)
    if found is None:
        what = f"run {run_id}" if run_id else "this prompt"
        raise ValueError(
            f"No recording of {what} was found to replay: looked in {settings.transcript_dir} "
            "and in the records embedded in the notebooks of this folder. Keep the "
            "transcript folder next to the notebook, or name the notebook that holds the "
            "record with `%k2 replay --from NOTEBOOK.ipynb`.")
    why = ("K2NB_REPLAY is set" if option is None and settings.source("replay") == "K2NB_REPLAY"
           else "--replay")
    return ReplayPlan(found, f"replaying because {why}")


def backend_for(replay: ReplayPlan) -> ReplayBackend:
    try:
        return ReplayBackend(replay.record, name=replay.backend_name)
    except ValueError as exc:
        raise ValueError(f"{exc} (from {replay.found.source})") from None


@dataclass
class ReplayReport:
    """What a replay did: which run it replayed, from where, and how the outputs compared."""

    source_run_id: str
    source: str
    reason: str
    recorded_at: float | None = None
    compared: int = 0
    not_compared: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return not self.differences

    def header(self) -> str:
        when = (time.strftime(" recorded %Y-%m-%d %H:%M", time.localtime(self.recorded_at))
                if self.recorded_at else "")
        return (f"Replay of run {self.source_run_id}{when}, from {self.source} ({self.reason}). "
                "The recorded thinking is shown again; the recorded code runs again in your "
                "namespace and its outputs are compared with the recording.")

    def summary(self) -> str:
        skipped = (f"; {self.not_compared} not compared (trimmed from the record)"
                   if self.not_compared else "")
        if not self.compared:
            return f"Replay check: no tool call outputs to compare{skipped}."
        if not self.differences:
            return (f"Replay check: all {self.compared} tool call output(s) match the "
                    f"recording{skipped}.")
        return (f"Replay check: {len(self.differences)} of {self.compared} tool call output(s) "
                f"differ from the recording{skipped}:\n"
                + "\n".join(d.describe() for d in self.differences))

    def __str__(self) -> str:
        return f"{self.header()}\n{self.summary()}"


class ReplayCheck:
    """Subscriber that announces a replay and compares each call's outputs with the record.

    It answers the events it comments on with :class:`~k2nb.core.events.Notice` events, which
    the loop emits right after them.
    """

    def __init__(self, replay: ReplayPlan):
        record = replay.record
        self.report = ReplayReport(record.run_id or "?", replay.found.source, replay.reason,
                                   record.started_at or record.finished_at)
        # By step and id: a model's call ids may repeat within a run once older steps were
        # compacted out of its sight (Moonshot numbers them over what the model sees).
        self.expected = {(s.index, c.call.id): c for s in record.steps for c in s.tool_calls}

    def __call__(self, event: ev.Event) -> list[ev.Notice] | None:
        if isinstance(event, ev.RunStarted):
            return [ev.Notice(event.run_id, self.report.header(), "info")]
        if isinstance(event, ev.ToolCallFinished):
            difference = self._check(event)
            if difference is not None:
                return [ev.Notice(event.run_id, difference.describe(), "warning", event.step)]
        elif isinstance(event, ev.StepFinished) and not event.message.tool_calls:
            level = "info" if self.report.matched else "warning"
            return [ev.Notice(event.run_id, self.report.summary(), level, event.step)]
        return None

    def _check(self, event: ev.ToolCallFinished) -> Difference | None:
        recorded = self.expected.get((event.step, event.call.id))
        if recorded is None or event.call.name not in LIVE_TOOLS:
            return None
        if "outputs" in recorded.trimmed:
            self.report.not_compared += 1
            return None
        self.report.compared += 1
        difference = compare(event.step, event.call.id, recorded.outputs, event.outputs,
                             recorded.trimmed)
        if difference is not None:
            self.report.differences.append(difference)
        return difference


#: Tools whose calls really run again on replay; others give back their recorded observation
#: (a web search or a fetch would not reproduce, and may not be reachable where a lesson runs).
LIVE_TOOLS = ("code_interpreter",)


class RecordedTool(BaseTool):
    """Stands in for a tool on replay: returns the observation and outputs it gave originally,
    in the order they were given (an id can recur in a long run)."""

    raw_arguments = True
    description = "replayed from the recording"

    def __init__(self, name: str, calls: list[ToolCallResult]):
        self.parameters: dict[str, Any] = {"type": "object", "properties": {}}
        self.name = name
        self._calls = list(calls)

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        call = next((c for c in self._calls if c.call.id == call_id), None)
        if call is None:
            return ToolOutcome(f"(no recorded result for {self.name} call {call_id})",
                               is_error=True, status="error")
        self._calls.remove(call)
        return ToolOutcome(call.observation, call.is_error, list(call.outputs),
                           call.execution_count, call.status, 0.0)


def toolbox_for(toolbox: Toolbox, replay: ReplayPlan) -> Toolbox:
    """The run's toolbox with every recorded non-code tool answered from the recording."""
    by_tool: dict[str, list[ToolCallResult]] = {}
    for call in replay.record.tool_calls:
        if call.call.name not in LIVE_TOOLS:
            by_tool.setdefault(call.call.name, []).append(call)
    tools = [t for name, t in toolbox.tools.items() if name not in by_tool]
    return Toolbox([*tools, *(RecordedTool(name, calls) for name, calls in by_tool.items())])


@dataclass
class StepThrough:
    """A recorded run played one step per execution of a cell (``%k2 replay RUN --step``);
    after the last step it starts over."""

    found: Found
    position: int = 0  # steps played so far

    @property
    def total(self) -> int:
        return len(self.found.record.steps)

    def next_step(self) -> Step:
        """The step to play now (``position`` becomes its 1-based number)."""
        if not self.total:
            raise ValueError(f"Run {self.found.record.run_id} has no recorded steps to replay.")
        if self.position >= self.total:
            self.position = 0
        self.position += 1
        return self.found.record.steps[self.position - 1]
