"""The agent loop: plan → call tools → observe → reflect → answer, free of Jupyter.

One :class:`Agent` runs one prompt to an answer or to a budget. It streams each step from a
backend, forwards deltas as events, executes every tool call of a step in order, and feeds the
observations back. Interrupts (KeyboardInterrupt) stop it at once with the partial run kept.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterable

from ..backends.base import (
    Backend,
    BackendError,
    ContentDelta,
    ModelRequest,
    ReasoningDelta,
    StepResult,
    ToolCallDelta,
)
from ..tools.registry import Toolbox, ToolOutcome
from . import events as ev
from .context import fit, hide_old_observations
from .messages import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage
from .run import Run, Step, ToolCallRecord


class Interrupted(KeyboardInterrupt):
    """Raised by :meth:`Agent.run` callers that want a clean one-line message for a stop."""


@dataclass
class Budgets:
    max_steps: int = 50
    max_tokens: int = 32_000  # per step; K2's reasoning counts against it
    temperature: float = 1.0
    stream_retries: int = 2  # restarts of a step whose stream was cut
    context_window: int = 262_144  # tokens; K2 Thinking's window
    context_threshold: float = 0.8  # hide old observations past this share of the window
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

    def run(self, prompt: str, *, run_id: str | None = None,
            transcript_path: str | None = None, history: Iterable[Message] = ()) -> Run:
        run_id = run_id or new_run_id()
        run = Run(run_id, prompt, self.backend.model, self.backend.name,
                  transcript_path=transcript_path)
        messages: list[Message] = []
        if self.system_prompt:
            messages.append(SystemMessage(self.system_prompt))
        messages.extend(history)
        messages.append(UserMessage(prompt))
        run.messages = messages
        self.emit(ev.RunStarted(run_id, prompt, self.backend.model, self.backend.name,
                                 transcript_path))
        step_index = 0
        self._last_call: tuple[str, str] | None = None
        self._repeats = 0
        try:
            while True:
                if step_index >= self.budgets.max_steps:
                    run.stop_reason = "max_steps"
                    run.note = (
                        f"Stopped: the step budget (--max-steps {self.budgets.max_steps}) ran out "
                        "before the model gave a final answer. Raise it with --max-steps N or "
                        "%config K2Magics.max_steps = N; the partial run is kept."
                    )
                    break
                step_index += 1
                step = Step(step_index)
                run.steps.append(step)
                self.emit(ev.StepStarted(run_id, step_index))
                result = self._stream_step(run, step, messages)
                message = result.message
                messages.append(message)
                run.usage = run.usage + result.usage
                self.emit(ev.StepFinished(run_id, step_index, message, result.usage,
                                           result.finish_reason))
                if result.finish_reason == "length":
                    run.stop_reason = "max_tokens"
                    run.answer = message.content
                    run.note = (
                        f"Stopped: step {step_index} used its whole token budget (--max-tokens "
                        f"{self.budgets.max_tokens}, thinking included) before finishing. Raise "
                        "it with --max-tokens N (K2 works best with 16,000 or more)."
                    )
                    # Tool calls cut mid-arguments are not run; close them for a valid history.
                    for call in message.tool_calls:
                        self._close_call(run, step, messages, call, "not run: the step was cut "
                                         "off by the token budget", "skipped")
                    break
                if not message.tool_calls:
                    run.answer = message.content
                    run.stop_reason = "answered"
                    break
                for position, call in enumerate(message.tool_calls):
                    try:
                        self._execute(run, step, messages, call)
                    except KeyboardInterrupt:
                        for rest in message.tool_calls[position:]:
                            self._close_call(run, step, messages, rest,
                                             "not run: stopped by the user", "interrupted")
                        raise
        except KeyboardInterrupt:
            run.stop_reason = "interrupted"
            run.note = f"Stopped by user at step {step_index}."
            self._close_partial_step(run, messages)
        except BackendError as exc:
            run.stop_reason = "error"
            run.note = str(exc)
        except RepeatedCalls as exc:
            run.stop_reason = "loop"
            run.note = str(exc)
        self.emit(ev.RunFinished(run_id, run.answer, run.stop_reason, len(run.steps), run.usage,
                                  run.note))
        return run

    def _close_partial_step(self, run: Run, messages: list[Message]) -> None:
        """A step interrupted while streaming still ends, with its partial text, for the record."""
        if not run.steps:
            return
        step = run.steps[-1]
        streamed = any(isinstance(m, AssistantMessage) for m in messages[-1:]) or step.tool_calls
        if streamed or step.finish_reason is not None:
            return
        step.finish_reason = "interrupted"
        partial = AssistantMessage(step.content, step.reasoning)
        self.emit(ev.StepFinished(run.run_id, step.index, partial, step.usage, "interrupted"))

    # --- one step -------------------------------------------------------------------------

    def _stream_step(self, run: Run, step: Step, messages: list[Message]) -> StepResult:
        tools = self.toolbox.declarations()
        self._fit_context(run, step, messages, tools)
        started = time.monotonic()
        attempt = 0
        trimmed_for_limit = False
        while True:
            request = ModelRequest(messages=list(messages), tools=tools,
                                   max_tokens=self.budgets.max_tokens,
                                   temperature=self.budgets.temperature)
            stream = self.backend.stream(request)
            result: StepResult | None = None
            try:
                for item in stream:
                    if isinstance(item, ReasoningDelta):
                        step.reasoning += item.text
                        self.emit(ev.ReasoningDelta(run.run_id, step.index, item.text))
                    elif isinstance(item, ContentDelta):
                        step.content += item.text
                        self.emit(ev.ContentDelta(run.run_id, step.index, item.text))
                    elif isinstance(item, ToolCallDelta):
                        self.emit(ev.ToolCallDelta(run.run_id, step.index, item.index,
                                                    item.name, item.arguments))
                    elif isinstance(item, StepResult):
                        result = item
            except BackendError as exc:
                if exc.context_overflow and not trimmed_for_limit:
                    trimmed_for_limit = True
                    messages[:], hidden = hide_old_observations(messages, keep_last=1)
                    self.emit(ev.Notice(run.run_id, f"The server said the conversation is too "
                                         f"long; hid {hidden} older tool outputs and retried.",
                                         "warning", step.index))
                    step.reasoning = step.content = ""
                    continue
                if not exc.retryable or attempt >= self.budgets.stream_retries:
                    raise
                attempt += 1
                step.reasoning = step.content = ""
                self.emit(ev.Notice(run.run_id, f"{exc} Retrying step {step.index} "
                                     f"(attempt {attempt + 1}).", "warning", step.index))
                continue
            finally:
                stream.close()
            if result is None:
                raise BackendError("The backend ended a step without a result.")
            message = result.message
            step.reasoning, step.content = message.reasoning, message.content
            step.usage, step.finish_reason = result.usage, result.finish_reason
            step.duration_s = time.monotonic() - started
            return result

    def _fit_context(self, run: Run, step: Step, messages: list[Message], tools) -> None:
        fitted, hidden = fit(messages, tools, self.budgets.context_window,
                             self.budgets.context_threshold)
        if hidden:
            messages[:] = fitted
            self.emit(ev.Notice(run.run_id, f"The conversation neared the context window "
                                 f"({self.budgets.context_window:,} tokens): hid {hidden} older "
                                 "tool outputs; reasoning and the latest outputs are kept.",
                                 "info", step.index))

    # --- tool calls -----------------------------------------------------------------------

    def _check_repeats(self, run: Run, step: Step, messages: list[Message], call) -> str:
        """Track identical consecutive calls: '' (fine), a nudge to append, or raise to stop."""
        key = (call.name, _canonical(call.arguments))
        self._repeats = self._repeats + 1 if key == self._last_call else 1
        self._last_call = key
        if self._repeats >= self.budgets.stop_after:
            self._close_call(run, step, messages, call, "not run: the same call was repeated "
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

    def _execute(self, run: Run, step: Step, messages: list[Message], call) -> None:
        nudge = self._check_repeats(run, step, messages, call)
        tool, values, error, repaired = self.toolbox.prepare(call)
        skipped = None
        review = getattr(tool, "review", None)
        if values is not None and review is not None:  # e.g. the user's approval
            values, skipped = review(call.id, step.index, values)
        code = values.get("code") if values and call.name == "code_interpreter" else None
        self.emit(ev.ToolCallStarted(run.run_id, step.index, call, code))
        if repaired and values is not None:
            self.emit(ev.Notice(run.run_id, f"Repaired invalid JSON in the arguments of "
                                 f"`{call.name}` ({call.id}).", "info", step.index))
        if error is not None:
            outcome = ToolOutcome(error, is_error=True, status="error")
        elif skipped is not None:
            outcome = skipped
        else:
            try:
                outcome = tool.invoke(call.id, values)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # a tool bug must not end the run
                outcome = ToolOutcome(f"Tool `{call.name}` failed: {type(exc).__name__}: {exc}",
                                      is_error=True, status="error")
        if nudge:
            outcome.observation += nudge
        self._record(run, step, messages, call, outcome)

    def _close_call(self, run, step, messages, call, text: str, status: str) -> None:
        if any(c.call.id == call.id for c in step.tool_calls):
            return
        self._record(run, step, messages, call, ToolOutcome(text, is_error=True, status=status))

    def _record(self, run: Run, step: Step, messages: list[Message], call,
                outcome: ToolOutcome) -> None:
        messages.append(ToolMessage(call.id, call.name, outcome.observation))
        step.tool_calls.append(ToolCallRecord(call, outcome.observation, outcome.is_error,
                                              outcome.status, outcome.outputs,
                                              outcome.execution_count, outcome.duration_s))
        self.emit(ev.ToolCallFinished(run.run_id, step.index, call, outcome.observation,
                                       outcome.is_error, outcome.outputs,
                                       outcome.execution_count, outcome.duration_s,
                                       outcome.status))

    def emit(self, event: ev.Event) -> None:
        for subscriber in list(self.subscribers):
            try:
                subscriber(event)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # a broken view must not lose the run
                self.subscribers.remove(subscriber)
                print(f"k2nb: a view stopped after an error ({type(exc).__name__}: {exc}); "
                      "the run goes on.", file=sys.stderr)


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except (ValueError, TypeError):
        return arguments.strip()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
