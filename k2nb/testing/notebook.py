"""Running notebooks in a real kernel for tests (nbclient), and reading their outputs."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any


def run_notebook(cells: list[str], cwd: Path, timeout: int = 120, allow_errors: bool = False,
                 kernel_name: str = "python3") -> Any:
    """Execute code cells in a real kernel with nbclient; returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def cell_text(cell: Any) -> str:
    """All text of a cell's outputs (streams, text/plain, text/html, errors)."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("display_data", "execute_result"):
            data = out.get("data", {})
            parts.append(str(data.get("text/plain", "")))
            parts.append(str(data.get("text/markdown", "")))
            parts.append(str(data.get("text/html", "")))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}\n" + "\n".join(out["traceback"]))
    return "\n".join(parts)


def iopub_until_idle(client: Any, msg_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The iopub messages a kernel sent for request ``msg_id`` (a jupyter_client blocking
    client's), up to that request's idle status; status messages left out."""
    messages = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no idle status after {timeout} s; got {messages}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status":
            if msg["content"]["execution_state"] == "idle":
                return messages
            continue
        messages.append(msg)
