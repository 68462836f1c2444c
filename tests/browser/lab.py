"""What a test does to JupyterLab through the page: open, run, read cells, save."""

from __future__ import annotations

import time
from typing import Any

PANEL = "window.jupyterapp.shell.currentWidget"


def open_notebook(page: Any, url: str, timeout_ms: int = 90_000) -> None:
    """Open a notebook and wait until its kernel is idle."""
    page.goto(url)
    page.wait_for_function(
        f"""() => {{
            const w = window.jupyterapp && {PANEL};
            const kernel = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return !!(kernel && kernel.status === 'idle' && w.context.isReady
                && w.content.widgets.length > 0);
        }}""",
        timeout=timeout_ms,
    )


def open_another(page: Any, path: str, timeout_ms: int = 60_000) -> None:
    """Open a second notebook in the same JupyterLab page (it becomes the current widget)."""
    page.evaluate(
        "path => window.jupyterapp.commands.execute('docmanager:open', {path})", path)
    page.wait_for_function(
        f"""path => {{
            const w = {PANEL};
            const kernel = w && w.context && w.context.path === path
                && w.sessionContext.session && w.sessionContext.session.kernel;
            return !!(kernel && kernel.status === 'idle' && w.context.isReady);
        }}""",
        arg=path,
        timeout=timeout_ms,
    )


def cell_locator(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def run_cell(page: Any, index: int) -> None:
    """Click into a cell's editor and press Ctrl+Enter, as a user would.

    Pair with :func:`wait_for_run`, which waits for this execution's reply.
    """
    page.evaluate(
        f"""index => {{
            const model = {PANEL}.content.model.cells.get(index);
            window.k2nbReplied = false;
            const onState = (_, args) => {{
                if (args.name === 'executionCount' && args.newValue !== null) {{
                    window.k2nbReplied = true;
                    model.stateChanged.disconnect(onState);
                }}
            }};
            model.stateChanged.connect(onState);
        }}""",
        index,
    )
    cell = cell_locator(page, index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")


def wait_for_run(page: Any, index: int, timeout_ms: int = 60_000) -> int:
    """Wait until the execution :func:`run_cell` started has replied; its execution count."""
    page.wait_for_function(
        f"""index => {{
            const model = {PANEL}.content.model.cells.get(index);
            return window.k2nbReplied && model.executionState === 'idle';
        }}""",
        arg=index,
        timeout=timeout_ms,
    )
    return execution_count(page, index)


def execution_count(page: Any, index: int) -> Any:
    return page.evaluate(
        f"i => {PANEL}.content.model.cells.get(i).executionCount", index)


def cells(page: Any) -> list[dict]:
    """The current notebook's cells as nbformat dicts (from JupyterLab's model)."""
    return page.evaluate(f"() => {PANEL}.content.model.sharedModel.cells.map(c => c.toJSON())")


def kernel_status(page: Any) -> str:
    return page.evaluate(f"() => {PANEL}.sessionContext.session.kernel.status")


def save(page: Any, path: Any, expect_cells: int, timeout_s: float = 30) -> Any:
    """Save with Ctrl+S; return the notebook read from disk (nbformat) once it holds
    ``expect_cells`` cells."""
    import nbformat

    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").click(
        position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            saved = nbformat.reads(path.read_text(), as_version=4)
            if len(saved["cells"]) == expect_cells and not page.evaluate(
                    f"() => {PANEL}.context.model.dirty"):
                return saved
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not saved with {expect_cells} cells")
        time.sleep(0.2)


def output_text(cell: dict) -> str:
    """All the text a cell's outputs show (stream text, text/plain, text/html, tracebacks)."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
        elif out["output_type"] == "error":
            parts.append(out["ename"] + ": " + out["evalue"])
        else:
            for mime in ("text/plain", "text/html"):
                value = out.get("data", {}).get(mime)
                if value:
                    parts.append("".join(value) if isinstance(value, list) else value)
    return "\n".join(parts)
