"""Take docs/screenshot.png: a real JupyterLab (k2nb kernel + extension) running 02-explore-data.

The model is k2nb's scripted server playing tests/notebooks/notebook_scripts.py (no key needed); JupyterLab,
the kernel, the extension's inserted cells and the plot are real. Needs playwright and
/usr/bin/chromium (``bash .ci/setup test`` installs both)::

    .venv/bin/python docs/make_screenshot.py
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "notebooks"), str(ROOT / "tests" / "browser")]

from lab import open_notebook, run_cell, wait_for_run
from notebook_scripts import SCRIPTS

from k2nb.testing import ScriptedServer

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(out: Path = ROOT / "docs" / "screenshot.png") -> None:
    from playwright.sync_api import sync_playwright

    base = Path(tempfile.mkdtemp())
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    token = secrets.token_hex(8)
    with ScriptedServer(SCRIPTS["02-explore-data"](), api_key="sk-screenshot") as server:
        env = {**os.environ, "K2NB_BASE_URL": server.base_url, "K2NB_API_KEY": "sk-screenshot",
               "JUPYTER_CONFIG_DIR": str(base / "config"),
               "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
        env.pop("MOONSHOT_API_KEY", None)
        lab = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1",
             "--port=8917", "--allow-root", f"--ServerApp.token={token}",
             "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}",
             f"--LabApp.workspaces_dir={base / 'ws'}",
             f"--LabApp.user_settings_dir={base / 'settings'}"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:8917/api/status?token={token}")
                    break
                except OSError:
                    time.sleep(0.3)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1450})
                open_notebook(page, f"http://127.0.0.1:8917/lab/tree/02-explore-data.ipynb"
                              f"?reset&token={token}")
                page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
                run_cell(page, 1)
                wait_for_run(page, 1, 120_000)
                # The extension inserted the agent's cells below the first %%k2: find the second.
                index = page.evaluate("""() => {
                    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
                    for (let i = 0; i < cells.length; i++) {
                        if (cells.get(i).sharedModel.getSource().startsWith('%%k2\\nShow')) return i;
                    }
                    return -1; }""")
                run_cell(page, index)
                wait_for_run(page, index, 120_000)
                time.sleep(1.5)
                page.locator(".jp-NotebookPanel .jp-Cell").nth(index).scroll_into_view_if_needed()
                page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex = "
                              f"{index}; window.jupyterapp.shell.currentWidget.content"
                              f".scrollToItem({index}, 'start')")
                time.sleep(1)
                page.screenshot(path=str(out))
                # 256 colours: a third of the size, no visible loss for a UI screenshot.
                from PIL import Image

                Image.open(out).convert("RGB").quantize(256).save(out, optimize=True)
                browser.close()
        finally:
            lab.terminate()
            lab.wait(10)
    print(f"wrote {out} ({out.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
