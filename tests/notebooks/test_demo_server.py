"""The README's demo command, JupyterLab part: `.venv/bin/jupyter lab notebooks/` with no key.

Checked over HTTP, as a browser would see it: the server serves notebooks/, offers the
"Python 3 (k2nb)" kernel, ships the k2nb lab extension, and that kernel starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "k2nb-demo-check"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": f"token {TOKEN}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


@pytest.fixture
def demo_server(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("MOONSHOT_API_KEY", "K2NB_API_KEY", "K2NB_BASE_URL", "K2NB_MODEL")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    jupyter = Path(sys.executable).parent / "jupyter"
    # As in README: `.venv/bin/jupyter lab notebooks/` from the repository root, plus what a test
    # needs (no browser, a known port and token).
    process = subprocess.Popen(
        [str(jupyter), "lab", "notebooks/", "--no-browser", "--ip", "127.0.0.1",
         f"--port={port}", f"--ServerApp.token={TOKEN}", "--allow-root"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            get(f"{base}/api/status")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError("JupyterLab did not start:\n"
                                     + process.stdout.read().decode()[-3000:])
            time.sleep(0.3)
    try:
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_demo_command_serves_notebooks_with_the_k2nb_kernel(demo_server):
    status, body = get(f"{demo_server}/api/kernelspecs")
    specs = json.loads(body)["kernelspecs"]
    assert specs["k2nb"]["spec"]["display_name"] == "Python 3 (k2nb)"
    assert "--ext=k2nb" in specs["k2nb"]["spec"]["argv"]

    status, body = get(f"{demo_server}/api/contents")
    names = {item["name"] for item in json.loads(body)["content"]}
    assert {"01-quickstart.ipynb", "03-teaching-visible-reasoning.ipynb", "data"} <= names
    status, body = get(f"{demo_server}/api/contents/01-quickstart.ipynb")
    notebook = json.loads(body)["content"]
    assert notebook["metadata"]["kernelspec"]["name"] == "k2nb"

    # The prebuilt extension is served to the browser.
    status, page = get(f"{demo_server}/lab")
    assert status == 200
    assert '"name": "k2nb"' in page or '"name":"k2nb"' in page

    # The k2nb kernel starts with no key set, runs k2nb, and says which mode %%k2 will use.
    status, body = get(f"{demo_server}/api/kernels", "POST", {"name": "k2nb"})
    assert status == 201
    kernel = json.loads(body)
    try:
        # In its own thread: the session's browser tests (Playwright) keep a loop on this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            output = pool.submit(asyncio.run, execute(demo_server, kernel["id"], "%k2")).result()
    finally:
        get(f"{demo_server}/api/kernels/{kernel['id']}", "DELETE")
    assert "k2nb configuration" in output
    assert "mode: no API key" in output and "%k2 login" in output


async def execute(base: str, kernel_id: str, code: str, timeout: float = 60) -> str:
    """Run ``code`` in a kernel through the server's websocket, as JupyterLab does; its stdout."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}))
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False}}))
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(ws.read_message(), timeout)
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    ws.close()
    return "".join(out)
