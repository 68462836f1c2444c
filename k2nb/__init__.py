"""k2nb: a Kimi-K2-Thinking-style agent in your notebook.

``%load_ext k2nb`` (or the "Python 3 (k2nb)" kernel) gives ``%%k2``; ``k2nb.run(prompt)`` is the
same from Python; ``@k2nb.tool`` offers your own functions to the model.
"""

from __future__ import annotations

from typing import Any

from .core.conversation import Conversation, Turn
from .core.run import Run, Step, ToolCallRecord, ToolCallResult
from .runner import run
from .session import Session
from .tools.registry import FunctionTool
from .tools.web import SearchProvider, SearchResult, check_provider

__version__ = "0.1.0"
__all__ = ["Conversation", "FunctionTool", "Run", "SearchResult", "Session", "Step",
           "ToolCallRecord", "ToolCallResult", "Turn", "load_ipython_extension", "run",
           "set_search_provider", "tool", "user_tools"]


def tool(func: Any = None, *, name: str | None = None, side_effects: bool = False) -> Any:
    """Offer a function to the model in every ``%%k2`` run of this kernel.

    Use as ``@k2nb.tool`` or ``@k2nb.tool(name="lookup", side_effects=True)``. The schema comes
    from the type hints, the description and parameter docs from the docstring; the function
    stays callable. ``side_effects=True`` marks a function that changes something (writes,
    sends, deletes): ``--approve ask`` then asks before each call.
    """
    return Session.current().user_tools.decorator(func, name=name, side_effects=side_effects)


def user_tools() -> list[FunctionTool]:
    """The tools registered with ``@k2nb.tool`` in this kernel so far."""
    return Session.current().user_tools.list()


def set_search_provider(provider: SearchProvider | None) -> None:
    """Use ``provider`` for ``web_search`` in this kernel's runs (None restores the default)."""
    check_provider(provider)
    Session.current().search_provider = provider


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%k2``/``%k2`` and their configuration in this IPython session, and the comm
    target the lab extension says hello on."""
    from functools import partial

    from .kernel.magics import K2Magics
    from .ui import frontend, view_factory

    magics = K2Magics(shell=ipython, config=ipython.config)
    ipython.register_magics(magics)
    ipython.configurables.append(magics)
    session = Session.of(ipython)
    session.configured = magics.configured
    hellos = frontend.Hellos(session.frontends)
    if hellos.listen():
        hellos.ask()  # loaded from a cell: the extension's connect-time hello found no target
    # The run view first: it displays each call's block before the lab extension starts moving
    # that call's outputs into their own cell.
    session.views[:] = [partial(view_factory, hellos=hellos),
                        partial(frontend.view_factory, hellos=hellos)]


def unload_ipython_extension(ipython: Any) -> None:
    from .ui import frontend

    session = Session.of(ipython)
    session.configured = dict
    session.views.clear()
    frontend.stop_listening()
