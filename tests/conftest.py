"""Shared fixtures: a strict scripted server, the environment a user would set, a real IPython
shell, ``code_interpreter`` on it, and a real kernel (jupyter_client)."""

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

    from k2nb.core.conversation import Conversation
    from k2nb.session import Session

    ip = InteractiveShell.instance()
    ip.reset(new_session=True)
    Session.of(ip).conversation = Conversation()  # each test is a fresh kernel's conversation
    ip.run_line_magic("load_ext", "k2nb")
    yield ip
    ip.run_line_magic("unload_ext", "k2nb")


@pytest.fixture
def interp(shell: Any) -> Any:
    """``code_interpreter`` on the test shell, as a run builds it: a 10 s limit per call, 2,000
    characters of each output read back, the test key redacted."""
    from k2nb.tools.interpreter.code_interpreter import CodeInterpreter
    from k2nb.tools.observation import OutputStore

    return CodeInterpreter(shell, OutputStore(), timeout=10, observation_chars=2000,
                           secrets=(KEY,))


@pytest.fixture(scope="module")
def kernel() -> Iterator[Any]:
    """A real IPython kernel (``python3`` kernelspec) and a blocking client, per test module;
    ``client.k2nb_execute_inputs`` collects execution counts by message id."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    client.k2nb_manager = manager
    client.k2nb_execute_inputs = {}
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _k2nb_kernel(cwd: Path) -> Iterator[tuple[Any, Any]]:
    """A real kernel started with this process's environment, working in ``cwd``, with k2nb
    loaded: ``(manager, client)``; shut down afterwards."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", cwd=str(cwd))
    try:
        client.execute_interactive("%load_ext k2nb", timeout=60)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.fixture
def k2_kernel(k2env: ScriptedServer, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A real kernel started with the test's environment (``k2env``: the key and the scripted
    server), working in ``tmp_path``, with k2nb loaded: ``(manager, client)``."""
    yield from _k2nb_kernel(tmp_path)


@pytest.fixture
def nokey_kernel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A real kernel on a machine where nothing is configured (no key, no K2NB_* variables),
    working in ``tmp_path``, with k2nb loaded: ``(manager, client)``."""
    for name in list(os.environ):
        if name.startswith(("K2NB_", "MOONSHOT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield from _k2nb_kernel(tmp_path)


os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
