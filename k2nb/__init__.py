"""k2nb: a Kimi-K2-Thinking-style agent in your notebook.

``%load_ext k2nb`` (or the "Python 3 (k2nb)" kernel) gives ``%%k2``; ``k2nb.run(prompt)`` is the
same from Python; ``@k2nb.tool`` offers your own functions to the model.
"""

from __future__ import annotations

from typing import Any

from .agent.run import Run, Step, ToolCallRecord
from .runner import run
from .tools.registry import tool, user_tools
from .tools.web import SearchResult, set_search_provider

__version__ = "0.1.0"
__all__ = ["Run", "SearchResult", "Step", "ToolCallRecord", "load_ipython_extension", "run",
           "set_search_provider", "tool", "user_tools"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%k2``/``%k2`` and their configuration in this IPython session."""
    from . import runner
    from .magics import K2Magics
    from .ui import frontend, view_factory

    magics = K2Magics(shell=ipython, config=ipython.config)
    ipython.register_magics(magics)
    ipython.configurables.append(magics)
    runner.configured_values = magics.configured
    # The run view first: it displays each call's block before the lab extension starts moving
    # that call's outputs into their own cell.
    runner.view_factories[:] = [view_factory, frontend.view_factory]


def unload_ipython_extension(ipython: Any) -> None:
    from . import runner

    runner.configured_values = dict
    runner.view_factories.clear()
