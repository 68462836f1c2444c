"""``k2nb.run``: one agent run in an IPython session — the function behind ``%%k2``.

A run is composed of parts, each chosen from the settings and the kernel's :class:`Session`:
where its steps come from (a model, or a recording to replay), its tools, whether calls wait for
the user's approval, its transcript, and the views that show it. Heavy mode (``--heavy N``) runs
several such runs in forked copies of the kernel and aggregates them (:mod:`k2nb.heavy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .agent.context import user_cells_text
from .agent.loop import Agent, Budgets, new_run_id
from .agent.prompt import system_prompt
from .backends import choice
from .backends.local import LocalBackend
from .core.backend import Backend, BackendError
from .core.conversation import Conversation, Turn, UserCell
from .core.events import Subscriber
from .core.run import Run
from .heavy import HeavyParts, run_heavy
from .runs import replay as replay_mode
from .runs.store import Found
from .runs.transcript import Transcript
from .session import Session, default_shell
from .tools.catalog import build_tools
from .tools.interpreter.code_interpreter import CodeInterpreter
from .tools.interpreter.history import current_cell, history_session, user_cells
from .tools.interpreter.namespace import describe_namespace
from .tools.observation import OutputStore, secret_values
from .tools.registry import Toolbox
from .tools.safety.approval import Approval, stdin_available


def run(prompt: str, *, backend: Backend | None = None, shell: Any = None,
        subscribers: list[Subscriber] | None = None, replay: Any = None, views: bool = True,
        conversation: Conversation | None = None, **options: Any) -> Run:
    """Run the agent on ``prompt`` in the live IPython namespace and return the :class:`Run`.

    Options are those of ``%%k2`` (:data:`k2nb.options.OPTIONS`: ``model``, ``base_url``,
    ``api_key``, ``max_steps``, ``max_tokens``, ``timeout``, ``heavy``, ...). Outside IPython a
    headless IPython shell runs the code. ``backend`` is a backend object, or the name of the
    ``backend`` setting (``"local"``).

    ``replay``: None (replay a recorded run of this prompt only when no backend is configured,
    or when ``K2NB_REPLAY=1``), True, False, or a run id to replay (see :mod:`k2nb.runs.replay`).
    ``views=False`` shows nothing (the run is still returned and written to its transcript).

    ``conversation``: the :class:`~k2nb.core.conversation.Conversation` this run continues and
    joins as a turn (default: the kernel's, which ``%%k2`` cells share); ``run.conversation`` is
    it. ``new=True`` (``%%k2 --new``) starts it over.
    """
    if isinstance(backend, str):  # k2nb.run(..., backend="local"): the setting, not an object
        options["backend"], backend = backend, None
    plan_given = replay if isinstance(replay, (replay_mode.ReplayPlan, Found)) else None
    if replay is not None and plan_given is None:
        options["replay"] = replay
    shell = shell or default_shell()
    session = Session.of(shell)
    settings = session.settings(options)
    source = _source(session, settings, prompt, backend, plan_given)
    if source.plan is None and settings.heavy and backend is None:
        return run_heavy(prompt, settings, _heavy_parts(shell, prompt, options, subscribers))
    turn = _turn(shell, settings,
                 conversation if conversation is not None else session.conversation)
    return _execute(session, settings, shell, prompt, source, subscribers or [], views, turn)


@dataclass
class TurnContext:
    """What a run carries of its conversation: the earlier turns, the user's own cells since the
    last one, and the cell that runs it."""

    conversation: Conversation
    history: list[Turn]
    cells: list[UserCell]
    omitted_cells: int
    execution_count: int | None
    cell_id: str | None

    def join(self, run: Run) -> None:
        """Add the finished ``run`` to the conversation as its newest turn."""
        run.history, run.conversation = self.history, self.conversation
        self.conversation.add(run.as_turn(user_cells=self.cells,
                                          execution_count=self.execution_count,
                                          cell_id=self.cell_id))


def _turn(shell: Any, settings: Any, conversation: Conversation) -> TurnContext:
    count, cell_id = current_cell(shell)
    conversation.follow(history_session(shell))
    if settings.new:
        conversation.clear()
    secrets = tuple(s for s in (settings.api_key, *secret_values()) if s)
    cells, omitted = [], 0
    if settings.history_turns > 0 and conversation.last_count is not None:
        # The user's own work since the previous turn (none before the first one).
        cells, omitted = user_cells(shell, conversation.last_count, count,
                                    conversation.agent_counts(), secrets)
    return TurnContext(conversation, conversation.history(settings.history_turns, cell_id),
                       cells, omitted, count, cell_id)


@dataclass
class Source:
    """Where a run's steps come from, and what to say about it as the run starts."""

    backend: Backend
    plan: replay_mode.ReplayPlan | None = None
    notices: list[tuple[str, str]] = field(default_factory=list)
    #: Said again at the end of a run that gives no answer (e.g. how to get a capable model).
    advice: str = ""


def _source(session: Session, settings: Any, prompt: str, backend: Backend | None,
            plan_given: Any) -> Source:
    """The given backend, else a recording to replay, else the backend the settings choose."""
    if backend is not None:
        if isinstance(backend, LocalBackend):  # its model's and device's bounds, unless set
            choice.fit(settings, backend, backend.model)
        return Source(backend)
    plan = replay_mode.plan(prompt, settings, plan_given, session.recordings)
    if plan is not None:
        source = Source(replay_mode.backend_for(plan), plan)
        if plan_given is None and replay_mode.requested(settings.replay) == "auto":
            source.notices.append((f"No model is called on replay. {choice.HOW_TO_SWITCH}",
                                   "info"))  # replaying for want of a key
        return source
    try:
        chosen, notice = choice.choose(settings, session.local_backends)
    except BackendError as exc:
        raise ValueError(str(exc)) from None
    if notice is None:
        return Source(chosen)
    return Source(chosen, None, [(notice.text, notice.level)], notice.advice)


def _execute(session: Session, settings: Any, shell: Any, prompt: str, source: Source,
             subscribers: list[Subscriber], views: bool, turn: TurnContext) -> Run:
    approval = _approval(settings, shell)
    store = OutputStore()
    secrets = tuple(s for s in (settings.api_key, *secret_values()) if s)
    toolbox = _toolbox(session, settings, shell, store, secrets, source.plan)
    run_id = new_run_id()
    transcript = _transcript(settings, run_id, source, toolbox, turn)
    shown = session.make_views(settings) if views else []
    check = replay_mode.ReplayCheck(source.plan) if source.plan else None
    namespace = describe_namespace(shell.user_ns, set(getattr(shell, "user_ns_hidden", ())))
    agent = Agent(
        backend=source.backend, toolbox=toolbox,
        system_prompt=system_prompt(namespace, settings.instructions),
        budgets=Budgets(settings.max_steps, settings.max_tokens, settings.temperature,
                        context_window=_window(source.backend, settings)),
        subscribers=[transcript, *shown, *subscribers, *([check] if check else [])],
        approval=approval, advice=source.advice,
        schedule={c.step: c for c in source.plan.record.compactions} if source.plan else None)
    try:
        result = agent.run(prompt, run_id=run_id, transcript_path=str(transcript.path),
                           history=turn.history, preface=user_cells_text(turn.cells,
                                                                         turn.omitted_cells),
                           notices=source.notices)
        if source.plan is not None and check is not None:
            result.replay, result.replay_of = check.report, source.plan.record.run_id
        turn.join(result)
        return result
    finally:
        transcript.close()
        for view in shown:  # after RunFinished a no-op; otherwise the view shows how it ended
            try:
                view.close()
            except Exception:
                pass


def _window(backend: Backend, settings: Any) -> int:
    """A local model's own window, else the ``context_window`` setting."""
    # getattr: backends written before the attribute existed are still welcome
    return getattr(backend, "context_window", None) or settings.context_window


def _approval(settings: Any, shell: Any) -> Approval | None:
    if settings.approve == "auto":
        return None
    if not stdin_available(shell):
        raise ValueError(
            f"--approve {settings.approve} asks you before a tool acts, but this frontend cannot "
            "answer input prompts (nbclient/nbconvert run notebooks without one). Use it in "
            "JupyterLab, Notebook, VS Code or terminal IPython, or use --approve auto here.")
    return Approval(settings.approve)


def _toolbox(session: Session, settings: Any, shell: Any, store: OutputStore,
             secrets: tuple[str, ...], plan: replay_mode.ReplayPlan | None) -> Toolbox:
    interpreter = CodeInterpreter(shell, store, timeout=settings.timeout,
                                  observation_chars=settings.observation_chars, secrets=secrets)
    toolbox = Toolbox(build_tools(settings, store, secrets, interpreter,
                                  user_tools=session.user_tools.list(), mcp=session.mcp,
                                  search_provider=session.search_provider))
    return replay_mode.toolbox_for(toolbox, plan) if plan else toolbox


def _transcript(settings: Any, run_id: str, source: Source, toolbox: Toolbox,
                turn: TurnContext) -> Transcript:
    transcript = Transcript(settings.transcript_dir, run_id)
    transcript.write({"type": "settings", "model": settings.model, "base_url": settings.base_url,
                      "backend": source.backend.name, "max_steps": settings.max_steps,
                      "max_tokens": settings.max_tokens, "temperature": settings.temperature,
                      "tools": toolbox.declarations(),
                      "replay_of": source.plan.record.run_id if source.plan else None})
    # Exactly what this run was given of its conversation.
    transcript.write({"type": "history", "turns": [t.to_dict() for t in turn.history],
                      "user_cells": [c.to_dict() for c in turn.cells],
                      "execution_count": turn.execution_count, "cell_id": turn.cell_id})
    return transcript


def _heavy_parts(shell: Any, prompt: str, options: dict[str, Any],
                 subscribers: list[Subscriber] | None) -> HeavyParts:
    """What heavy mode needs from this kernel: one trajectory run (in a forked child), the
    replay of the chosen one in the user's namespace, and the model for the aggregation. (MCP
    connections notice by themselves that they were forked.)"""
    plain = {k: v for k, v in options.items() if k not in ("heavy", "concurrency", "replay")}

    def trajectory(progress: list[Subscriber], folder: str) -> Run:
        return run(prompt, shell=shell, subscribers=progress, replay=False, views=False,
                   **{**plain, "quiet": True, "transcript_dir": folder})

    def replay(plan: replay_mode.ReplayPlan) -> Run:
        return run(prompt, shell=shell, replay=plan, subscribers=subscribers, **plain)

    return HeavyParts(trajectory=trajectory, replay=replay, model=choice.api_backend,
                      shell=shell)
