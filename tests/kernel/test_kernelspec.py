"""The "Python 3 (k2nb)" kernel: shipped with the package, installable elsewhere, k2nb preloaded."""

from __future__ import annotations

import json
import subprocess
import sys

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel


def test_the_installed_package_ships_the_k2nb_kernel():
    spec = KernelSpecManager().get_kernel_spec("k2nb")
    assert spec.display_name == "Python 3 (k2nb)"
    assert spec.argv[1:] == ["-m", "ipykernel_launcher", "-f", "{connection_file}", "--ext=k2nb"]
    assert spec.language == "python"


def test_the_k2nb_kernel_has_the_magic_without_load_ext():
    outputs: list[dict] = []
    manager, client = start_new_kernel(kernel_name="k2nb")
    try:
        reply = client.execute_interactive(
            "print(get_ipython().find_cell_magic('k2') is not None, "
            "get_ipython().find_line_magic('k2') is not None)",
            output_hook=outputs.append, timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert text == "True True\n"


def test_install_command_writes_a_kernelspec_for_this_python(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "k2nb.kernel.kernelspec", "install", "--prefix", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "share" / "jupyter" / "kernels" / "k2nb"
    assert f"Installed kernelspec k2nb (Python 3 (k2nb)) in {folder}" in result.stdout
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["argv"] == [sys.executable, "-m", "ipykernel_launcher", "-f",
                            "{connection_file}", "--ext=k2nb"]
    assert spec["display_name"] == "Python 3 (k2nb)"
    assert sorted(p.name for p in folder.iterdir()) == [
        "kernel.json", "logo-32x32.png", "logo-64x64.png", "logo-svg.svg"]

    # jupyter finds it there, under its name.
    found = KernelSpecManager(kernel_dirs=[str(folder.parent)]).find_kernel_specs()
    assert found["k2nb"] == str(folder)


def test_install_command_names_and_display_names(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "k2nb.kernel.kernelspec", "install", "--prefix", str(tmp_path),
         "--name", "k2nb-dev", "--display-name", "k2nb (dev)"],
        check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    spec = json.loads(
        (tmp_path / "share" / "jupyter" / "kernels" / "k2nb-dev" / "kernel.json").read_text())
    assert spec["display_name"] == "k2nb (dev)"


def test_install_command_refuses_two_destinations():
    result = subprocess.run(
        [sys.executable, "-m", "k2nb.kernel.kernelspec", "install", "--user", "--sys-prefix"],
        check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
