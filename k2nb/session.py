"""The state k2nb keeps for one kernel: a :class:`Session` per IPython shell.

Everything that outlives a single run lives here — the ``%config`` values, a key typed into
``%k2 login``, loaded local models, MCP servers, notebooks named with ``%k2 replay --from``,
step-through replays, the views to attach to each run, ``@k2nb.tool`` functions, the web search
provider and the conversation of the kernel's ``%%k2`` cells — rather than in module globals, so
two shells (a kernel and a test's headless shell, or two kernels of a test run) never see each
other's state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backends.choice import LocalBackends
from .core.conversation import Conversation
from .core.events import Subscriber
from .options import resolve
from .runs.replay import StepThrough
from .runs.store import Recordings
from .tools.mcp import McpServers
from .tools.registry import UserTools
from .tools.web import SearchProvider

#: Makes the views of one run: called with (settings, shell), returns a subscriber (with a
#: ``close()``) or None when it has nothing to show in this frontend.
ViewFactory = Callable[[Any, Any], Any]

_ATTRIBUTE = "_k2nb_session"


class Session:
    """Per-kernel state; get the one of a shell with :meth:`of` (made on first use)."""

    def __init__(self, shell: Any):
        self.shell = shell
        #: Returns the ``%config K2Magics`` values the user set (the magics install it).
        self.configured: Callable[[], dict[str, Any]] = dict
        #: A key typed into ``%k2 login``: kept in memory only, never written anywhere.
        self.typed_key: str | None = None
        #: Make the views of each run, in order (the run view first, then the lab bridge).
        self.views: list[ViewFactory] = []
        self.user_tools = UserTools()
        self.search_provider: SearchProvider | None = None
        self.local_backends = LocalBackends()
        self.mcp = McpServers()
        self.recordings = Recordings()
        #: ``%k2 replay RUN --step`` positions, by run id.
        self.step_throughs: dict[str, StepThrough] = {}
        #: The kernel's ``%%k2`` cells as one conversation, in execution order.
        self.conversation = Conversation()
        #: What each frontend said it can do in its hello (the lab extension: "real_cells",
        #: "approval_dialog"), by the client session id in its messages' headers.
        self.frontends: dict[str, set[str]] = {}

    @classmethod
    def of(cls, shell: Any) -> Session:
        """The session of ``shell`` (one per kernel), created on first use."""
        session = getattr(shell, _ATTRIBUTE, None)
        if session is None:
            session = cls(shell)
            setattr(shell, _ATTRIBUTE, session)
        return session

    @classmethod
    def current(cls) -> Session:
        """The session of the running IPython (a headless shell outside one)."""
        return cls.of(default_shell())

    def settings(self, options: dict[str, Any] | None = None) -> Any:
        """A run's :class:`~k2nb.options.Settings`: ``options`` over ``%config`` over the
        environment over defaults (``ValueError`` for a bad value)."""
        return resolve(options, self.configured(), typed_key=self.typed_key)

    def make_views(self, settings: Any) -> list[Subscriber]:
        """One view per factory that has something to show for this run."""
        return [v for v in (factory(settings, self.shell) for factory in self.views)
                if v is not None]

    def close(self) -> None:
        """Stop MCP servers and local generation (the kernel is shutting down)."""
        self.mcp.close()
        self.local_backends.close()


def default_shell() -> Any:
    """The running IPython shell, or a headless one (scripts, tests)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
    return shell
