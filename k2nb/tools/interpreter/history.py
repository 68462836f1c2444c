"""The kernel's own history, for the conversation: which cell is running now, and the cells the
user ran themselves since the previous turn.

IPython keeps every cell run with ``store_history=True`` in ``In`` (index = execution count),
the agent's own calls included; k2nb knows which counts were its cells and its agent's calls
(the turns record them), so the rest is the user's own work.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ...core.conversation import UserCell, head
from ..observation import redact

CELL_CHARS = 1_500  # of each of the user's cells
TOTAL_CHARS = 6_000  # of all of them together; the newest are kept
K2NB_LINES = ("%%k2", "%k2", "%config K2Magics")


def current_cell(shell: Any) -> tuple[int | None, str | None]:
    """``In[n]`` of the cell running now, and the id the frontend gave it (JupyterLab sends one
    with each execute request; nbclient and terminals do not)."""
    history = shell.user_ns.get("In")
    count = len(history) - 1 if isinstance(history, list) and history else None
    cell_id = None
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        try:
            parent = kernel.get_parent()
        except Exception:  # an old ipykernel without get_parent()
            parent = getattr(kernel, "_parent_header", {}) or {}
        metadata = (parent or {}).get("metadata") or {}
        cell_id = metadata.get("cellId") or None
    return count, cell_id


def history_session(shell: Any) -> int | None:
    """The number of the shell's history session (a new one starts with ``%reset``)."""
    manager = getattr(shell, "history_manager", None)
    return getattr(manager, "session_number", None)


def user_cells(shell: Any, after: int | None, before: int | None, skip: Collection[int],
               secrets: tuple[str, ...] = ()) -> tuple[list[UserCell], int]:
    """The user's own cells with counts in (``after``, ``before``), not in ``skip`` and not
    k2nb's own commands: each capped, secrets redacted, the newest kept within a total; returns
    them and how many were left out."""
    history = shell.user_ns.get("In")
    if not isinstance(history, list) or before is None:
        return [], 0
    cells = []
    for count in range((after or 0) + 1, min(before, len(history))):
        code = history[count] if isinstance(history[count], str) else ""
        first = code.lstrip().split("\n", 1)[0]
        if count in skip or not code.strip() or first.startswith(K2NB_LINES):
            continue
        cells.append(UserCell(count, redact(head(code.rstrip(), CELL_CHARS), secrets)))
    kept: list[UserCell] = []
    total = 0
    for cell in reversed(cells):
        total += len(cell.code)
        if kept and total > TOTAL_CHARS:
            break
        kept.append(cell)
    return kept[::-1], len(cells) - len(kept)
