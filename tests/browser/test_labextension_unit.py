"""The lab extension's own checks: prettier + eslint (``jlpm lint:check``) and its jest unit
tests (``jlpm test``), run in ``labextension/`` with the jlpm that comes with JupyterLab."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"


def _jlpm() -> str:
    beside_python = Path(sys.executable).parent / "jlpm"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("jlpm")
    if found is None:
        pytest.fail("jlpm not found beside this Python nor on PATH: install jupyterlab")
    return found


@pytest.mark.parametrize("script", ["lint:check", "test"])
def test_labextension_script_passes(script: str) -> None:
    if not (LABEXTENSION / "node_modules").is_dir():
        pytest.skip("labextension/node_modules is missing: run `jlpm install` in labextension/")
    jlpm = _jlpm()
    # The package.json scripts call `jlpm` themselves.
    path = os.pathsep.join([str(Path(jlpm).parent), os.environ.get("PATH", "")])
    result = subprocess.run(
        [jlpm, script],
        cwd=LABEXTENSION,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"`jlpm {script}` exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
