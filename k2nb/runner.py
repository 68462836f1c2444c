"""``k2nb.run``: one agent run in the current IPython session — the function behind ``%%k2``."""

from __future__ import annotations

from typing import Any, Callable

from . import backend_choice
from . import replay as replay_mode
from .agent.events import Subscriber
from .agent.loop import Agent, Budgets, new_run_id
from .agent.prompt import system_prompt
from .agent.run import Run
from .agent.transcript import Transcript
from .backends.api import ApiBackend
from .backends.base import Backend, BackendError
from .config import Settings, resolve
from .tools.approval import Approval, stdin_available
from .tools.code_interpreter import CodeInterpreter
from .tools.namespace import describe_namespace
from .tools.observation import OutputStore, secret_values
from .tools.catalog import build_tools
from .tools.registry import Toolbox

# Set by load_ipython_extension: returns the %config K2Magics values the user set.
configured_values: Callable[[], dict[str, Any]] = dict
# Views to attach to a run: a factory taking (settings, shell) and returning a subscriber or None.
view_factories: list[Callable[[Settings, Any], Subscriber | None]] = []


def run(prompt: str, *, backend: Backend | None = None, shell: Any = None,
        subscribers: list[Subscriber] | None = None, replay: Any = None, **options: Any) -> Run:
    """Run the agent on ``prompt`` in the live IPython namespace and return the :class:`Run`.

    Options are those of ``%%k2`` (``model``, ``base_url``, ``api_key``, ``max_steps``,
    ``max_tokens``, ``timeout``, ``temperature``, ``reasoning_field``, ``observation_chars``,
    ``quiet``, ...). Outside IPython a headless IPython shell runs the code.

    ``replay``: None (replay a recorded run of this prompt only when no backend is configured,
    or when ``K2NB_REPLAY=1``), True, False, or a run id to replay (see :mod:`k2nb.replay`).
    """
    if isinstance(backend, str):  # k2nb.run(..., backend="local"): the setting, not an object
        options["backend"], backend = backend, None
    settings = resolve(options, configured_values())
    shell = shell or _shell()
    replay_plan = replay_mode.plan(prompt, settings, replay) if backend is None else None
    mode_notice = None  # says which model runs when it is not the configured API (no key)
    if backend is None:
        if replay_plan:
            backend = replay_mode.backend_for(replay_plan)
            if replay_mode.requested(replay) == "auto":  # replaying for want of a key
                mode_notice = backend_choice.ModeNotice(
                    f"No model is called on replay. {backend_choice.HOW_TO_SWITCH}")
        else:
            try:
                backend, mode_notice = backend_choice.choose(settings)
            except BackendError as exc:
                raise ValueError(str(exc)) from None
    replay_check = replay_mode.ReplayCheck(replay_plan) if replay_plan else None
    store = OutputStore()
    secrets = tuple(s for s in (settings.api_key, *secret_values()) if s)
    if settings.approve != "auto" and not stdin_available(shell):
        raise ValueError(
            f"--approve {settings.approve} asks you before code runs, but this frontend cannot "
            "answer input prompts (nbclient/nbconvert run notebooks without one). Use it in "
            "JupyterLab, Notebook, VS Code or terminal IPython, or use --approve auto here."
        )
    # Views decide themselves what --quiet shows; the lab bridge is needed for real cells anyway.
    views = [v for v in (factory(settings, shell) for factory in view_factories) if v is not None]
    approval = None
    if settings.approve != "auto":
        bridge = next((v for v in views if hasattr(v, "approval_request")), None)
        approval = Approval(settings.approve,
                            notify=bridge.approval_request if bridge is not None else None)
    interpreter = CodeInterpreter(shell, store, timeout=settings.timeout,
                                  observation_chars=settings.observation_chars, secrets=secrets,
                                  approval=approval)
    toolbox = Toolbox(build_tools(settings, store, secrets, interpreter))
    if replay_plan:
        toolbox = replay_mode.toolbox_for(toolbox, replay_plan)
    run_id = new_run_id()
    transcript = Transcript(settings.transcript_dir, run_id)
    transcript.write({"type": "settings", "model": settings.model, "base_url": settings.base_url,
                      "backend": backend.name, "max_steps": settings.max_steps,
                      "max_tokens": settings.max_tokens, "temperature": settings.temperature,
                      "tools": toolbox.declarations(),
                      "replay_of": replay_plan.record.get("run_id") if replay_plan else None})
    agent = Agent(
        backend=backend,
        toolbox=toolbox,
        system_prompt=system_prompt(describe_namespace(shell.user_ns), settings.instructions),
        budgets=Budgets(settings.max_steps, settings.max_tokens, settings.temperature,
                        context_window=settings.context_window),
        subscribers=[transcript, *views, *(subscribers or []),
                     *([replay_check] if replay_check else []),
                     *([mode_notice] if mode_notice else [])],
    )
    if mode_notice:
        mode_notice.emit = agent.emit  # last subscriber, like replay_check
    if replay_check:
        replay_check.emit = agent.emit  # last subscriber: its notices follow what they check
    experts_before = len(getattr(backend, "expert_counts", None) or [])
    try:
        result = agent.run(prompt, run_id=run_id, transcript_path=str(transcript.path))
        # A local MoE records which experts its router chose, per step (for teaching).
        result.expert_counts = list(getattr(backend, "expert_counts", None) or [])[experts_before:]
        if replay_check:
            result.replay = replay_check.report  # type: ignore[attr-defined]
        return result
    finally:
        transcript.close()
        for view in views:  # after RunFinished a no-op; otherwise the view shows how it ended
            try:
                view.close()
            except Exception:
                pass


def make_backend(settings: Settings) -> Backend:
    """The backend the settings ask for."""
    return ApiBackend(settings.model, settings.base_url, settings.api_key,
                      reasoning_field=settings.reasoning_field, max_retries=settings.max_retries,
                      key_hint=settings.key_hint)


def _shell() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
    return shell
