"""A real JupyterLab on loopback, Debian's chromium driven by Playwright, and a scripted model.

JupyterLab runs with the environment a user would set (K2NB_BASE_URL, K2NB_API_KEY,
K2NB_MODEL) pointing at one :class:`ScriptedServer` for the whole module; each test adds the
replies it needs. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest

from k2nb.testing import ScriptedServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MODEL = "kimi-k2-thinking"
KEY = "sk-browser-test-key"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _missing(reason: str) -> None:
    # On CI the setup installs everything: a missing piece is a failure, not a skip.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A running JupyterLab: its root folder, URL and token."""

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen):
        self.root, self.port, self.token, self.process = root, port, token, process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"

    def write_notebook(self, name: str, sources: list[str], kernel: str = "k2nb") -> Path:
        """A notebook of code cells using the "Python 3 (k2nb)" kernel (``kernel="python3"``:
        the plain one, where k2nb is loaded from a cell)."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": kernel, "language": "python",
            "display_name": "Python 3 (k2nb)" if kernel == "k2nb" else "Python 3 (ipykernel)"}
        nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        path = self.root / name
        nbformat.write(nb, path)
        return path


@pytest.fixture(scope="session")
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer(api_key=KEY, models=(MODEL,)) as server:
        yield server


@pytest.fixture(scope="session")
def lab(scripted: ScriptedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        _missing("jupyterlab is not installed in this environment")
    labext = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "k2nb" / "package.json"
    if not labext.is_file():
        _missing(f"the k2nb lab extension is not installed ({labext}): run `pip install .`")
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    ipython_dir = base / "ipython"  # a clean IPython profile: no user startup files
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "K2NB_BASE_URL": scripted.base_url,
        "K2NB_API_KEY": KEY,
        "K2NB_MODEL": MODEL,
        "IPYTHONDIR": str(ipython_dir),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    env.pop("MOONSHOT_API_KEY", None)
    log = open(base / "lab.log", "wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter-lab"),
            "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
            f"--ServerApp.token={token}", "--LabApp.expose_app_in_browser=True",
            f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={base / 'workspaces'}",
            f"--LabApp.user_settings_dir={_quiet_settings(base / 'settings')}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    server = Lab(root, port, token, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (base / "lab.log").read_text()[-3000:])
                time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _quiet_settings(folder: Path) -> Path:
    """User settings with JupyterLab's news prompt off (it would cover the screenshots)."""
    notification = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        _missing(f"{CHROMIUM} is missing: `apt-get install chromium` (bash .ci/setup test does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install playwright")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.k2nb_errors = errors
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.k2nb_console = console
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"{request.node.name}-console.log").write_text("\n".join(console) + "\n")
        try:
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"))
        except Exception:
            pass
        context.close()
