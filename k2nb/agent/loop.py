"""The agent loop: plan → call tools → observe → reflect → answer, free of Jupyter.

One :class:`Agent` runs one prompt to an answer or to a budget. It streams each step from a
backend, forwards deltas as events, executes every tool call of a step in order (asking the user
first when an approval mode says so), and feeds the observations back. Interrupts
(KeyboardInterrupt) stop it at once with the partial run kept.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..core import events as ev
from ..core.backend import Backend, BackendError, ModelRequest, StepResult
from ..core.events import ContentDelta, ReasoningDelta
from ..core.k2 import CONTEXT_WINDOW, STEP_TOKENS, TEMPERATURE
from ..core.messages import (
    AssistantMessage,
    ToolCall,
    ToolMessage,
)
from ..core.run import Run, Step, ToolCallResult
from ..core.tool import Tool, ToolOutcome
from ..tools.registry import Toolbox
from ..core.conversation import Turn
from ..tools.safety.approval import Approval, ApprovalRequest
from .compaction import fallback_summary, summary_request
from .context import TARGET_SHARE, Compaction, RunContext, budget_for, estimate_tokens


class Interrupted(KeyboardInterrupt):
    """Raised by :meth:`Agent.run` callers that want a clean one-line message for a stop."""


@dataclass
class Budgets:
    max_steps: int = 50
    max_tokens: int = STEP_TOKENS  # per step; K2's reasoning counts against it
    temperature: float = TEMPERATURE
    stream_retries: int = 2  # restarts of a step whose stream was cut
    context_window: int = CONTEXT_WINDOW  # tokens
    context_threshold: float = 0.9  # make room when a request would pass this share of it
    summary_tokens: int = 16_000  # the compaction side request's budget, thinking included
    nudge_after: int = 3  # identical consecutive calls before the model is told
    stop_after: int = 5  # identical consecutive calls that end the run


class RepeatedCalls(Exception):
    """The model kept making the same call; the run ends with this message."""


@dataclass
class Agent:
    backend: Backend
    toolbox: Toolbox
    system_prompt: str = ""
    budgets: Budgets = field(default_factory=Budgets)
    subscribers: list[ev.Subscriber] = field(default_factory=list)
    #: Asks the user before calls of tools with side effects; None runs them unasked.
    approval: Approval | None = None
    #: Compactions to repeat at given steps (a replay repeats its recording's); when set, the
    #: loop makes no summary requests of its own.
    schedule: dict[int, Compaction] | None = None
    #: Added to the note of a run that ends without an answer (how to get a capable model, when
    #: a tiny one ran).
    advice: str = ""

    def run(self, prompt: str, *, run_id: str | None = None,
            transcript_path: str | None = None, history: Iterable[Turn] = (),
            preface: str = "", notices: Sequence[tuple[str, str]] = ()) -> Run:
        """Run ``prompt`` after the earlier turns ``history``; ``preface`` (the user's own cells
        since the last turn) goes before the prompt in its message; ``notices`` ((text, level)
        pairs) are shown right after the run starts."""
        run_id = run_id or new_run_id()
        run = Run(run_id, prompt, self.backend.model, self.backend.name,
                  transcript_path=transcript_path, started_at=round(time.time(), 3))
        turns = list(history)
        context = RunContext(self.system_prompt, prompt, turns, preface,
                             estimate_tokens((), self.toolbox.declarations()))
        self.emit(ev.RunStarted(run_id, prompt, self.backend.model, self.backend.name,
                                 transcript_path, self.budgets.context_window, len(turns)))
        for text, level in notices:
            self.emit(ev.Notice(run_id, text, level))
        self._last_call: tuple[str, str] | None = None
        self._repeats = 0
        self._ceiling: int | None = None  # prompt tokens a server refused, less a margin
        try:
            self._steps(run, context)
        except KeyboardInterrupt:
            run.stop_reason = "interrupted"
            run.note = f"Stopped by user at step {len(run.steps)}."
            self._close_partial_step(run, context)
        except BackendError as exc:
            run.stop_reason = "error"
            run.note = str(exc)
        except RepeatedCalls as exc:
            run.stop_reason = "loop"
            run.note = str(exc)
        if self.advice and not (run.stop_reason == "answered" and run.answer.strip()):
            run.note = f"{run.note} {self.advice}".strip()
        run.messages = context.messages()
        run.compactions = list(context.compactions)
        run.finished_at = round(time.time(), 3)
        self.emit(ev.RunFinished(run_id, run.answer, run.stop_reason, len(run.steps), run.usage,
                                  run.note))
        return run

    def _steps(self, run: Run, context: RunContext) -> None:
        """Step until the model answers or a budget ends the run."""
        while True:
            if len(run.steps) >= self.budgets.max_steps:
                run.stop_reason = "max_steps"
                run.note = (
                    f"Stopped: the step budget (--max-steps {self.budgets.max_steps}) ran out "
                    "before the model gave a final answer. Raise it with --max-steps N or "
                    "%config K2Magics.max_steps = N; the partial run is kept.")
                return
            step = Step(len(run.steps) + 1, started_at=round(time.time(), 3))
            run.steps.append(step)
            self.emit(ev.StepStarted(run.run_id, step.index))
            self._make_room(run, step, context)
            result = self._stream_step(run, step, context)
            message = result.message
            context.start_step(step.index)
            context.add(message)
            run.usage = run.usage + result.usage
            self.emit(ev.StepFinished(run.run_id, step.index, message, result.usage,
                                       result.finish_reason))
            if result.finish_reason == "length":
                self._cut_by_token_budget(run, step, context, message, result.notice)
                return
            if not message.tool_calls:
                run.answer = message.content
                run.stop_reason = "answered"
                return
            for position, call in enumerate(message.tool_calls):
                try:
                    self._execute(run, step, context, call)
                except KeyboardInterrupt:
                    for rest in message.tool_calls[position:]:
                        self._close_call(run, step, context, rest,
                                         "not run: stopped by the user", "interrupted")
                    raise

    def _cut_by_token_budget(self, run: Run, step: Step, context: RunContext,
                             message: AssistantMessage, why: str = "") -> None:
        """The step was cut off before it finished: by its token budget or, when the backend
        says ``why``, by a local model's time limit or repetition guard."""
        run.stop_reason = "max_tokens"
        run.answer = message.content
        if why:
            run.note = f"Stopped: step {step.index} was cut off before it finished. {why}"
            cut = "not run: the step was cut off before the call was finished"
        else:
            run.note = (
                f"Stopped: step {step.index} used its whole token budget (--max-tokens "
                f"{self.budgets.max_tokens}, thinking included) before finishing. Raise "
                "it with --max-tokens N (for Kimi K2, 16,000 or more).")
            cut = "not run: the step was cut off by the token budget"
        # Tool calls cut mid-arguments are not run; close them for a valid history.
        for call in message.tool_calls:
            self._close_call(run, step, context, call, cut, "skipped")

    def _close_partial_step(self, run: Run, context: RunContext) -> None:
        """A step interrupted while streaming still ends, with its partial text, for the record."""
        if not run.steps:
            return
        step = run.steps[-1]
        streamed = bool(context.steps) and context.steps[-1].index == step.index
        if streamed or step.tool_calls or step.finish_reason is not None:
            return
        step.finish_reason = "interrupted"
        partial = AssistantMessage(step.content, step.reasoning)
        self.emit(ev.StepFinished(run.run_id, step.index, partial, step.usage, "interrupted"))

    # --- one step -------------------------------------------------------------------------

    def _stream_step(self, run: Run, step: Step, context: RunContext) -> StepResult:
        tools = self.toolbox.declarations()
        started = time.monotonic()
        attempt = 0
        overflowed = False
        while True:
            estimate = context.estimate()
            request = ModelRequest(messages=context.messages(), tools=tools,
                                   max_tokens=self.budgets.max_tokens,
                                   temperature=self.budgets.temperature)
            try:
                result = self._consume(run, step, self.backend.stream(request))
            except BackendError as exc:
                if exc.context_overflow and not overflowed:
                    # The server's window is smaller than we thought (or it counts more): stay
                    # well under what it refused from now on, make room, retry.
                    overflowed = True
                    step.reasoning = step.content = ""
                    self._ceiling = int(context.projected() * 0.9)
                    self.emit(ev.Notice(run.run_id, "The server said the conversation is too "
                                         "long for the model's window; making room and trying "
                                         "again.", "warning", step.index))
                    self._make_room(run, step, context)
                    continue
                if not exc.retryable or attempt >= self.budgets.stream_retries:
                    raise
                attempt += 1
                step.reasoning = step.content = ""
                self.emit(ev.Notice(run.run_id, f"{exc} Retrying step {step.index} "
                                     f"(attempt {attempt + 1}).", "warning", step.index))
                continue
            if result.notice:  # the backend ended the step early or empty, and says why
                self.emit(ev.Notice(run.run_id, result.notice, "warning", step.index))
            context.reported(result.usage.prompt_tokens, estimate)
            message = result.message
            step.reasoning, step.content = message.reasoning, message.content
            step.usage, step.finish_reason = result.usage, result.finish_reason
            step.experts = result.experts
            step.duration_s = time.monotonic() - started
            step.finished_at = round(time.time(), 3)
            return result

    def _consume(self, run: Run, step: Step, stream: Iterable) -> StepResult:
        """Forward one stream's deltas (stamped with the run and step) and return its result."""
        result: StepResult | None = None
        try:
            for item in stream:
                if isinstance(item, StepResult):
                    result = item
                    continue
                item.run_id, item.step = run.run_id, step.index
                if isinstance(item, ReasoningDelta):
                    step.reasoning += item.text
                elif isinstance(item, ContentDelta):
                    step.content += item.text
                self.emit(item)
        finally:
            stream.close()  # type: ignore[attr-defined]
        if result is None:
            raise BackendError("The backend ended a step without a result.")
        return result

    # --- the window --------------------------------------------------------------------

    def _make_room(self, run: Run, step: Step, context: RunContext,
                   budget: int | None = None) -> None:
        """Keep the next request inside the window (see :mod:`k2nb.agent.context`)."""
        if self.schedule is not None:
            planned = self.schedule.get(step.index)
            if planned is not None:
                steps = [s for s in context.steps if planned.first <= s.index <= planned.last]
                if steps:
                    self._compacted(run, step, context, steps, planned.summary)
            return
        budget = budget or budget_for(self.budgets.context_window, self.budgets.max_tokens,
                                      self.budgets.context_threshold)
        if self._ceiling is not None:
            budget = min(budget, self._ceiling)
        if context.projected() <= budget:
            return
        target = int(budget * TARGET_SHARE)
        shrunk = context.shrink_history(target)
        hidden = context.hide_observations(target) if context.projected() > target else 0
        if shrunk or hidden:
            what = [f"{shrunk} earlier turn(s) shortened to their prompt and answer"] * bool(
                shrunk) + [f"{hidden} older tool output(s) hidden"] * bool(hidden)
            self.emit(ev.Notice(run.run_id, f"The conversation neared the context window "
                                 f"({self.budgets.context_window:,} tokens): "
                                 f"{' and '.join(what)}; reasoning and the latest outputs are "
                                 "kept.", "info", step.index))
        if context.projected() > target:
            steps = context.compactable(budget)
            if steps:
                self._compacted(run, step, context, steps,
                                self._summarise(run, step, context, steps, budget))
        if context.projected() > budget and context.drop_history(target):
            self.emit(ev.Notice(run.run_id, "Earlier turns were left out of this request to fit "
                                 "the window.", "warning", step.index))

    def _summarise(self, run: Run, step: Step, context: RunContext, steps: list,
                   budget: int) -> str:
        """The model's summary of ``steps`` (a tool-less side request), or k2nb's digest."""
        first = context.summarised[0] if context.summarised else steps[0].index
        self.emit(ev.Notice(run.run_id, f"The context window is filling up: summarising steps "
                             f"{first}–{steps[-1].index} to make room…", "info", step.index))
        request = ModelRequest(
            messages=summary_request(context.prompt, context.summary, steps, budget // 2),
            tools=[], max_tokens=min(self.budgets.max_tokens, self.budgets.summary_tokens),
            temperature=self.budgets.temperature, purpose="compaction")
        try:
            result = None
            stream = self.backend.stream(request)
            try:
                for item in stream:
                    if isinstance(item, StepResult):
                        result = item
            finally:
                stream.close()  # type: ignore[attr-defined]
            if result is not None:
                run.usage = run.usage + result.usage
            summary = result.message.content.strip() if result else ""
            why = "it returned no text" if result else "no result"
        except BackendError as exc:
            summary, why = "", str(exc)
        if summary:
            return summary
        self.emit(ev.Notice(run.run_id, f"The summary request failed ({why}); k2nb kept a "
                             "digest of those steps instead.", "warning", step.index))
        return fallback_summary(steps, context.summary, why)

    def _compacted(self, run: Run, step: Step, context: RunContext, steps: list,
                   summary: str) -> None:
        before = context.projected()
        done = context.compact(steps, summary, step.index)
        self.emit(ev.ContextCompacted(run.run_id, step.index, done.first, done.last, summary,
                                       before, context.projected()))

    # --- tool calls -----------------------------------------------------------------------

    def _check_repeats(self, run: Run, step: Step, context: RunContext,
                       call: ToolCall) -> str:
        """Track identical consecutive calls: '' (fine), a nudge to append, or raise to stop."""
        key = (call.name, _canonical(call.arguments))
        self._repeats = self._repeats + 1 if key == self._last_call else 1
        self._last_call = key
        if self._repeats >= self.budgets.stop_after:
            self._close_call(run, step, context, call, "not run: the same call was repeated "
                             f"{self._repeats} times in a row", "skipped")
            raise RepeatedCalls(
                f"Stopped: the model made the same `{call.name}` call {self._repeats} times in "
                "a row, so it was stuck in a loop. Rephrase the task or break it into smaller "
                "steps; the partial run is kept.")
        if self._repeats >= self.budgets.nudge_after:
            return (f"\n[Note from k2nb: this is the same `{call.name}` call with the same "
                    f"arguments {self._repeats} times in a row; its result will not change. Try a "
                    "different approach, or give your answer with what you have.]")
        return ""

    def _execute(self, run: Run, step: Step, context: RunContext, call: ToolCall) -> None:
        nudge = self._check_repeats(run, step, context, call)
        tool, values, error, repaired = self.toolbox.prepare(call)
        outcome: ToolOutcome | None = None
        edited = ""
        if tool is not None and values is not None and tool.side_effects and self.approval:
            values, outcome, edited = self._approve(run, step, call, tool, values)
        code = values.get("code") if values and call.name == "code_interpreter" else None
        self.emit(ev.ToolCallStarted(run.run_id, step.index, call, code))
        if repaired and values is not None:
            self.emit(ev.Notice(run.run_id, f"Repaired invalid JSON in the arguments of "
                                 f"`{call.name}` ({call.id}).", "info", step.index))
        if error is not None:
            outcome = ToolOutcome(error, is_error=True, status="error")
        elif outcome is None:
            outcome = self._invoke(tool, call, values)
        if edited:
            outcome.observation = edited + outcome.observation
        if nudge:
            outcome.observation += nudge
        self._record(run, step, context, call, outcome)

    def _invoke(self, tool: Tool, call: ToolCall, values: dict) -> ToolOutcome:
        try:
            return tool.invoke(call.id, values)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a tool bug must not end the run
            return ToolOutcome(f"Tool `{call.name}` failed: {type(exc).__name__}: {exc}",
                               is_error=True, status="error")

    def _approve(self, run: Run, step: Step, call: ToolCall, tool: Tool,
                 values: dict) -> tuple[dict, ToolOutcome | None, str]:
        """Ask the user, when the approval mode says so, before the call is announced.

        Returns the values to run with, an outcome when the call is not run, and a note for
        the model when the user edited the call."""
        code = values.get("code") if call.name == "code_interpreter" else None
        request = ApprovalRequest(call.id, step.index, call.name, call.arguments, code,
                                  tool.risks(values))
        assert self.approval is not None
        if not self.approval.needs_asking(request):
            return values, None, ""
        self.emit(ev.ApprovalRequested(run.run_id, step.index, call, code, list(request.reasons)))
        decision = self.approval.ask(request)
        if not decision.runs:
            reason = f" Their reason: {decision.reason}" if decision.reason else ""
            what = "this code" if code is not None else f"this `{call.name}` call"
            return values, ToolOutcome(f"The user chose not to run {what}.{reason}",
                                       is_error=True, status="skipped"), ""
        if decision.text == request.text:
            return values, None, ""
        if code is not None:
            return ({**values, "code": decision.text}, None,
                    f"The user edited your code before it ran; it ran as:\n{decision.text}\n---\n")
        _, edited, error, _ = self.toolbox.prepare(ToolCall(call.id, call.name, decision.text))
        if edited is None:
            return values, ToolOutcome(f"The user edited the arguments, and they are not valid: "
                                       f"{error}", is_error=True, status="skipped"), ""
        return (edited, None, f"The user edited your arguments before the call; it ran with:\n"
                f"{decision.text}\n---\n")

    def _close_call(self, run: Run, step: Step, context: RunContext, call: ToolCall,
                    text: str, status: str) -> None:
        if any(c.call.id == call.id for c in step.tool_calls):
            return
        self._record(run, step, context, call, ToolOutcome(text, is_error=True, status=status))

    def _record(self, run: Run, step: Step, context: RunContext, call: ToolCall,
                outcome: ToolOutcome) -> None:
        context.add(ToolMessage(call.id, call.name, outcome.observation))
        step.tool_calls.append(ToolCallResult(call, outcome.observation, outcome.is_error,
                                              outcome.status, outcome.outputs,
                                              outcome.execution_count, outcome.duration_s,
                                              round(time.time(), 3)))
        self.emit(ev.ToolCallFinished(run.run_id, step.index, call, outcome.observation,
                                       outcome.is_error, outcome.outputs,
                                       outcome.execution_count, outcome.duration_s,
                                       outcome.status))

    def emit(self, event: ev.Event) -> None:
        """Give ``event`` to every subscriber, then emit the events they answered with."""
        answers: list[ev.Event] = []
        for subscriber in list(self.subscribers):
            try:
                more = subscriber(event)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # a broken view must not lose the run
                self.subscribers.remove(subscriber)
                print(f"k2nb: a view stopped after an error ({type(exc).__name__}: {exc}); "
                      "the run goes on.", file=sys.stderr)
                continue
            if more:
                answers.extend(more)
        for answer in answers:
            self.emit(answer)


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except (ValueError, TypeError):
        return arguments.strip()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
