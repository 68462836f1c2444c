"""Views of a run: live widgets in a notebook, plain text in a terminal.

The magic makes one view per run and subscribes it to the loop's events::

    view = make_view(max_steps=30, quiet=False)
    try:
        run(..., subscribers=[view])   # RunFinished leaves the static rendering in place
    finally:
        view.close()                   # no-op after RunFinished; otherwise shows how it ended
"""

from __future__ import annotations

from typing import Any, Protocol

from ..core.events import Event
from .frontend import REAL_CELLS, Hellos, in_kernel
from .live import LiveView
from .plain import PlainView
from .pricing import estimate_cost, register_price

__all__ = [
    "LiveView",
    "PlainView",
    "View",
    "estimate_cost",
    "make_view",
    "register_price",
    "view_factory",
]


class View(Protocol):
    """A subscriber to one run's events that can be closed when the run is over."""

    def __call__(self, event: Event) -> None: ...

    def close(self, stop_reason: str = "error", note: str = "") -> None: ...


def make_view(
    max_steps: int, quiet: bool = False, mode: str = "auto", calls_in_cells: bool = False
) -> View:
    """The view for this environment.

    ``mode``: "auto" (widgets in a kernel, text elsewhere), "widgets", "html" (static HTML
    blocks updated in place, for frontends without widgets) or "plain". ``calls_in_cells``:
    the frontend gives each code call a cell of its own, so the view shows it as a line.
    """
    if mode == "auto":
        mode = "widgets" if in_kernel() else "plain"
    if mode == "widgets":
        return LiveView(max_steps, quiet, calls_in_cells=calls_in_cells)
    if mode == "html":
        return LiveView(max_steps, quiet, widgets=False, calls_in_cells=calls_in_cells)
    if mode == "plain":
        return PlainView(max_steps, quiet)
    raise ValueError(f"unknown view mode {mode!r}: use auto, widgets, html or plain")


def view_factory(settings: Any, shell: Any = None, hellos: Hellos | None = None) -> View:
    """For ``Session.views``: the view for one run with these settings.

    Put it before the lab-extension bridge, so that each call's block is displayed before the
    extension starts moving that call's outputs into their own cell. With ``hellos``, a run
    whose frontend said it makes real cells (the lab extension's hello) shows each code call
    as a line pointing to its cell.
    """
    calls_in_cells = hellos is not None and REAL_CELLS in hellos.current()
    return make_view(settings.max_steps, settings.quiet, calls_in_cells=calls_in_cells)
