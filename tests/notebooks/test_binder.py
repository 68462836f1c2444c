"""binder/: what mybinder.org builds. Checked without Docker: the repo2docker Dockerfile, and a
fresh virtual environment installed from binder/requirements.txt then set up by binder/postBuild."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"


def test_binder_files_follow_repo2docker_rules():
    requirements = (BINDER / "requirements.txt").read_text().splitlines()
    assert "." in [line.strip() for line in requirements]  # k2nb itself, from this repository
    assert os.access(BINDER / "postBuild", os.X_OK)
    assert not (BINDER / "environment.yml").exists()  # it would win over requirements.txt
    start = BINDER / "start"
    if start.exists():
        assert start.read_text().rstrip().endswith('exec "$@"')


def test_fresh_venv_from_binder_requirements(tmp_path: Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q"]
    started = time.monotonic()
    # repo2docker runs pip from the repository root, where "." is this repository.
    subprocess.run([*pip, "-r", "binder/requirements.txt"], cwd=ROOT, check=True, timeout=900)
    print(f"\ninstall from binder/requirements.txt: {time.monotonic() - started:.0f} s")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("JUPYTER_PATH", None)
    subprocess.run([str(BINDER / "postBuild")], cwd=ROOT, env=env, check=True, timeout=120)

    specs = json.loads(subprocess.run([str(bin_dir / "jupyter"), "kernelspec", "list", "--json"],
                                      env=env, capture_output=True, text=True,
                                      check=True).stdout)["kernelspecs"]
    argv = specs["k2nb"]["spec"]["argv"]
    assert Path(argv[0]).parent == bin_dir and "--ext=k2nb" in argv
    extensions = subprocess.run([str(bin_dir / "jupyter"), "labextension", "list"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                check=True).stdout  # it lists on stderr
    assert "k2nb" in extensions and "enabled" in extensions
    # The environment runs %%k2 with no key: it says how to set one instead of failing obscurely.
    check = subprocess.run(
        [str(bin_dir / "python"), "-c",
         "from k2nb.backends.choice import mode; from k2nb.options import resolve; "
         "print('mode: ' + mode(resolve()))"],
        env={k: v for k, v in env.items() if "API_KEY" not in k}, cwd=tmp_path,
        capture_output=True, text=True, check=True)
    assert check.stdout.startswith("mode: no API key") and "%k2 login" in check.stdout

    # repo2docker itself (from PyPI) turns binder/ into a Dockerfile; no Docker needed to read it.
    subprocess.run([*pip, "jupyter-repo2docker"], check=True, timeout=600)
    built = subprocess.run([str(bin_dir / "repo2docker"), "--no-build", "--debug", "."],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                           check=False)
    dockerfile = built.stdout + built.stderr
    assert built.returncode == 0, dockerfile[-3000:]
    assert "binder/requirements.txt" in dockerfile
    assert "binder/postBuild" in dockerfile
