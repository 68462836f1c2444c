"""Install the "Python 3 (k2nb)" kernel: an IPython kernel with k2nb preloaded.

``pip install k2nb`` already ships it (``share/jupyter/kernels/k2nb``). This command installs
it elsewhere, pointing at the Python that runs it::

    python -m k2nb.kernel.kernelspec install [--user | --sys-prefix | --prefix PREFIX] [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "k2nb"
DISPLAY_NAME = "Python 3 (k2nb)"
LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


def kernel_json(python: str = sys.executable, display_name: str = DISPLAY_NAME) -> dict:
    """The kernel.json of a kernel that runs ``python`` with k2nb loaded at start."""
    return {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--ext=k2nb"],
        "display_name": display_name,
        "language": "python",
        "metadata": {"debugger": True},
    }


def _logo_dir() -> Path | None:
    """Where the logos are: the source tree's kernelspec/, or the one a wheel installed."""
    candidates = [
        Path(__file__).resolve().parent.parent / "kernelspec",
        Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME,
    ]
    for folder in candidates:
        if (folder / LOGOS[0]).is_file():
            return folder
    return None


def install(
    user: bool = False,
    prefix: str | None = None,
    name: str = KERNEL_NAME,
    display_name: str = DISPLAY_NAME,
) -> str:
    """Install the kernelspec and return the folder it went to."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = Path(tmp) / name
        spec_dir.mkdir()
        spec = kernel_json(display_name=display_name)
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        logos = _logo_dir()
        if logos is not None:
            for logo in LOGOS:
                if (logos / logo).is_file():
                    shutil.copy(logos / logo, spec_dir / logo)
        return KernelSpecManager().install_kernel_spec(
            str(spec_dir), kernel_name=name, user=user, prefix=prefix
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m k2nb.kernel.kernelspec", description="Install the Python 3 (k2nb) kernel."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("install", help="install the kernelspec")
    where = cmd.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for the current user only")
    where.add_argument(
        "--sys-prefix", action="store_true", help=f"into this environment ({sys.prefix})"
    )
    where.add_argument("--prefix", help="under this prefix (share/jupyter/kernels)")
    cmd.add_argument("--name", default=KERNEL_NAME, help="kernel name (default: %(default)s)")
    cmd.add_argument(
        "--display-name", default=DISPLAY_NAME, help="name shown in menus (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        path = install(
            user=args.user, prefix=prefix, name=args.name, display_name=args.display_name
        )
    except PermissionError as exc:
        print(
            f"Could not write the kernelspec ({exc}). Try --user or --sys-prefix.",
            file=sys.stderr,
        )
        return 1
    print(f"Installed kernelspec {args.name} ({args.display_name}) in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
