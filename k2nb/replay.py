"""Replay mode: when a ``%%k2`` cell replays its recorded run, and checking what it produces.

A cell replays when asked (``--replay``, ``--replay RUN_ID``, ``K2NB_REPLAY=1``) or, by itself,
when no backend is configured (no API key) and a record of the same prompt exists. The recorded
thinking is streamed again, the recorded tool calls run again for real in the live namespace, and
:class:`ReplayCheck` compares each call's new outputs with the recorded ones: every difference
becomes a warning :class:`~k2nb.agent.events.Notice` and is kept in the run's
:class:`ReplayReport` (``_k2.replay``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .agent import events as ev
from .backends.replay import ReplayBackend
from .compare import Difference, compare
from .config import Settings
from .recordings import Found, find

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def requested(option: Any) -> str | None:
    """Normalise a replay request: "auto" (decide), "on", "off", or a run id.

    ``option`` comes from ``--replay [RUN]`` (None when absent); ``K2NB_REPLAY`` applies when
    the cell says nothing.
    """
    if isinstance(option, (Found, ReplayPlan)) or option is True:
        return "on"
    if option is False:
        return "off"
    if option not in (None, "", "auto"):
        text = str(option)
        return "on" if text.lower() in TRUE else "off" if text.lower() in FALSE else text
    env = os.environ.get("K2NB_REPLAY", "").strip().lower()
    if env in TRUE:
        return "on"
    if env in FALSE:
        return "off"
    return "auto"


def backend_configured(settings: Settings) -> bool:
    """Whether a live backend could run: an API key, or a non-API backend chosen."""
    return bool(settings.api_key) or getattr(settings, "backend", "api") not in ("api", None)


@dataclass
class ReplayPlan:
    """A decision to replay: the record, where it came from and why replay was chosen."""

    found: Found
    reason: str
    backend_name: str = "replay"  # "heavy" for heavy mode's replay of its chosen trajectory

    @property
    def record(self) -> dict[str, Any]:
        return self.found.record


def plan(prompt: str, settings: Settings, option: Any = None) -> ReplayPlan | None:
    """Decide whether this run replays; ``ValueError`` (with what to do) if asked but impossible."""
    if isinstance(option, ReplayPlan):
        return option
    if isinstance(option, Found):
        return ReplayPlan(option, "replaying as asked")
    mode = requested(option)
    if mode == "off":
        return None
    if mode == "auto":
        if backend_configured(settings):
            return None
        found = find(prompt, transcript_dir=settings.transcript_dir)
        if found is None:
            return None  # the backend explains the missing key
        return ReplayPlan(found, f"no API key is set ({settings.key_hint}), so the recorded run "
                                 "replays")
    run_id = None if mode == "on" else mode
    found = find(None if run_id else prompt, run_id, transcript_dir=settings.transcript_dir)
    if found is None:
        what = f"run {run_id}" if run_id else "this prompt"
        raise ValueError(
            f"No recording of {what} was found to replay: looked in {settings.transcript_dir} "
            "and in the records embedded in the notebooks of this folder. Keep the "
            "transcript folder next to the notebook, or name the notebook that holds the "
            "record with `%k2 replay --from NOTEBOOK.ipynb`.")
    why = "--replay" if option not in (None, "", "auto") else "K2NB_REPLAY is set"
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

    It must be the last subscriber (so its notices follow the event they comment on) and be
    given the agent's ``emit`` to send notices through the same channel as everything else.
    """

    def __init__(self, replay: ReplayPlan):
        record = replay.record
        self.report = ReplayReport(record.get("run_id", "?"), replay.found.source, replay.reason,
                                   record.get("started_at") or record.get("finished_at"))
        self.expected = {c.get("id"): c for s in record.get("steps") or []
                         for c in s.get("calls") or []}
        self.emit: Callable[[ev.Event], None] | None = None
        self._summarised = False

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._notice(event.run_id, self.report.header(), "info")
        elif isinstance(event, ev.ToolCallFinished):
            self._check(event)
        elif isinstance(event, ev.StepFinished) and not event.message.tool_calls:
            self._summarised = True
            level = "info" if self.report.matched else "warning"
            self._notice(event.run_id, self.report.summary(), level, event.step)

    def _check(self, event: ev.ToolCallFinished) -> None:
        recorded = self.expected.get(event.call.id)
        if recorded is None or event.call.name not in LIVE_TOOLS:
            return
        trimmed = recorded.get("trimmed") or ()
        if "outputs" in trimmed:
            self.report.not_compared += 1
            return
        self.report.compared += 1
        difference = compare(event.step, event.call.id, recorded.get("outputs") or [],
                             event.outputs, trimmed)
        if difference is not None:
            self.report.differences.append(difference)
            self._notice(event.run_id, difference.describe(), "warning", event.step)

    def _notice(self, run_id: str, text: str, level: str, step: int | None = None) -> None:
        if self.emit is not None:
            self.emit(ev.Notice(run_id, text, level, step))


#: Tools whose calls really run again on replay; others give back their recorded observation
#: (a web search or a fetch would not reproduce, and may not be reachable where a lesson runs).
LIVE_TOOLS = ("code_interpreter",)


class RecordedTool:
    """Stands in for a tool on replay: returns the observation and outputs it gave originally."""

    raw_arguments = True
    arguments = None
    description = "replayed from the recording"
    def __init__(self, name: str, calls: dict[str, dict[str, Any]]):
        self.parameters: dict[str, Any] = {"type": "object", "properties": {}}
        self.name = name
        self._calls = calls

    def invoke(self, call_id: str, values: dict[str, Any]) -> Any:
        from .tools.registry import ToolOutcome

        call = self._calls.get(call_id)
        if call is None:
            return ToolOutcome(f"(no recorded result for {self.name} call {call_id})",
                               is_error=True, status="error")
        return ToolOutcome(call.get("observation", ""), bool(call.get("is_error")),
                           list(call.get("outputs") or []), call.get("execution_count"),
                           call.get("status", "ok"), 0.0)


def toolbox_for(toolbox: Any, replay: ReplayPlan) -> Any:
    """The run's toolbox with every recorded non-code tool answered from the recording."""
    from .tools.registry import Toolbox

    by_tool: dict[str, dict[str, dict[str, Any]]] = {}
    for step in replay.record.get("steps") or []:
        for call in step.get("calls") or []:
            if call.get("name") not in LIVE_TOOLS:
                by_tool.setdefault(call["name"], {})[call.get("id")] = call
    tools = [t for name, t in toolbox.tools.items() if name not in by_tool]
    return Toolbox([*tools, *(RecordedTool(name, calls) for name, calls in by_tool.items())])
