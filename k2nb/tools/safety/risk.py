"""A static look at generated code: what might touch files, the shell, the network or secrets.

Used by ``--approve risky`` to decide which calls need the user's yes. It is a tripwire for
honest mistakes, not a sandbox: code can always hide what it does (``exec``, ``getattr``).
"""

from __future__ import annotations

import ast
import os
import re

NETWORK_MODULES = {"requests", "httpx", "urllib", "urllib3", "socket", "http", "aiohttp",
                   "ftplib", "smtplib", "paramiko", "websocket", "websockets"}
SHELL_MODULES = {"subprocess", "pty", "pexpect", "sh"}
DELETE_CALLS = {"remove", "unlink", "rmdir", "removedirs", "rmtree", "truncate"}
SHELL_CALLS = {"system", "popen", "spawnl", "spawnv", "execv", "execl", "execvp", "startfile"}
MAGIC = re.compile(r"^\s*(%%?)(\w+)", re.M)
BANG = re.compile(r"^\s*!", re.M)
INSTALL = re.compile(r"\b(pip|conda|mamba|apt(-get)?|npm)\s+(install|uninstall|remove)\b")
SECRET_WORDS = re.compile(r"os\.environ|getenv|dotenv|\.env\b|API_KEY|SECRET|PASSWORD|TOKEN", re.I)


def assess(code: str, workdir: str | None = None) -> list[str]:
    """Reasons this code deserves a look before it runs (empty when none are found)."""
    reasons: list[str] = []
    workdir = os.path.realpath(workdir or os.getcwd())

    def flag(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    for match in MAGIC.finditer(code):
        name = match.group(2)
        if name in ("reset", "xdel"):
            flag(f"%{name} erases variables")
        if name in ("sx", "system", "bash", "sh", "script", "!"):
            flag("runs shell commands")
        if name in ("pip", "conda", "mamba"):
            flag("installs or removes packages")
    if BANG.search(code):
        flag("runs shell commands")
    if INSTALL.search(code):
        flag("installs or removes packages")
    if SECRET_WORDS.search(code):
        flag("reads environment variables or secrets")

    python = "\n".join(line for line in code.splitlines()
                       if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return reasons
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            for name in names:
                root = name.split(".")[0]
                if root in NETWORK_MODULES:
                    flag(f"uses the network ({root})")
                if root in SHELL_MODULES:
                    flag(f"runs other programs ({root})")
        elif isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name in DELETE_CALLS:
                flag(f"deletes files ({name})")
            elif name in SHELL_CALLS:
                flag(f"runs shell commands ({name})")
            elif name in ("open", "write_text", "write_bytes", "to_csv", "savefig", "to_excel",
                          "to_parquet", "mkdir", "rename", "replace", "copy", "move"):
                target = _first_string(node)
                if name == "open" and not _opens_for_writing(node):
                    continue
                if target is not None and _outside(target, workdir):
                    flag(f"writes outside the working directory ({target})")
    return reasons


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _first_string(node: ast.Call) -> str | None:
    # Path("x").write_text(content): the path is the receiver's argument, not the call's.
    receiver = isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call)
    path_methods = ("write_text", "write_bytes", "mkdir")
    candidates = [] if receiver and _call_name(node.func) in path_methods else list(node.args[:1])
    if receiver:
        candidates += node.func.value.args[:1]
    for arg in candidates:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def _opens_for_writing(node: ast.Call) -> bool:
    mode = None
    if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
        mode = node.args[1].value
    for kw in node.keywords:
        if kw.arg == "mode" and isinstance(kw.value, ast.Constant):
            mode = kw.value.value
    return isinstance(mode, str) and any(c in mode for c in "wax+")


def _outside(path: str, workdir: str) -> bool:
    full = os.path.realpath(os.path.join(workdir, os.path.expanduser(path)))
    return not (full == workdir or full.startswith(workdir + os.sep))
