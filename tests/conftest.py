"""Shared fixtures: a strict scripted server, a real IPython shell, and nbclient notebooks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from k2nb.testing import ScriptedServer

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A strict Moonshot-like server; add replies with ``server.add(...)``."""
    with ScriptedServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def k2env(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ScriptedServer:
    """Environment configured the way a user would: only environment variables."""
    for name in ("K2NB_API_KEY", "MOONSHOT_API_KEY", "K2NB_BASE_URL", "K2NB_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOONSHOT_API_KEY", KEY)
    monkeypatch.setenv("K2NB_BASE_URL", server.base_url)
    monkeypatch.chdir(tmp_path)
    return server


@pytest.fixture
def shell(k2env: ScriptedServer) -> Iterator[Any]:
    """A real (terminal-less) IPython shell with k2nb loaded, reset for each test."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.reset(new_session=True)
    ip.run_line_magic("load_ext", "k2nb")
    yield ip
    ip.run_line_magic("unload_ext", "k2nb")


os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
