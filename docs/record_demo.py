"""Record a demo notebook's runs into the notebook itself, so that it replays without a key.

    .venv/bin/python docs/record_demo.py 02-explore-data

The notebook runs from scratch in the "Python 3 (k2nb)" kernel against k2nb's scripted test
server playing tests/notebooks/notebook_scripts.py, under the model id ``k2nb-scripted-lesson``
(so nobody mistakes its thinking for Kimi's; its code and outputs are real), in a copy of
notebooks/. The executed notebook — each ``%%k2`` cell with its run record in its output
metadata — is written back to notebooks/.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "notebooks")]

from notebook_scripts import SCRIPTS  # noqa: E402

from k2nb.testing import ScriptedServer  # noqa: E402

MODEL = "k2nb-scripted-lesson"
KEY = "sk-recording-0123456789abcdef"


def record(name: str) -> Path:
    source = ROOT / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(str(source), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    script = SCRIPTS[name]()
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer(
            script, api_key=KEY, models=[MODEL]) as server:
        work = Path(tmp) / "notebooks"
        shutil.copytree(ROOT / "notebooks", work,
                        ignore=shutil.ignore_patterns(".k2nb", ".ipynb_checkpoints"))
        os.environ.update(K2NB_BASE_URL=server.base_url, K2NB_API_KEY=KEY,
                          K2NB_MODEL=MODEL)
        NotebookClient(nb, timeout=300, kernel_name="k2nb",
                       resources={"metadata": {"path": str(work)}}).execute()
        if server.errors or len(server.requests) != len(script):
            raise SystemExit(f"the recording did not play its script: {server.errors}")
    text = json.dumps(nb)
    if KEY in text or tmp in text or "127.0.0.1" in text:
        raise SystemExit("the recording leaked a key or a temporary path; not written")
    nbformat.validate(nb)
    nbformat.write(nb, str(source))
    return source


if __name__ == "__main__":
    for name in sys.argv[1:] or ["02-explore-data"]:
        print("recorded", record(name))
