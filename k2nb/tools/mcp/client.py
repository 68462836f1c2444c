"""A connection to one MCP server (stdio or streamable HTTP) through the official ``mcp`` SDK.

A server that crashes or hangs mid-call becomes an :class:`McpError` the caller turns into an
error observation, and the next call restarts it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from .loop import BackgroundLoop

CONNECT_TIMEOUT = 30.0


class McpError(Exception):
    """An MCP server that could not be started, reached or used; the message says why."""


@dataclass
class McpServerSpec:
    """How to reach an MCP server: a command (stdio) or a URL (streamable HTTP)."""

    name: str
    command: list[str] = field(default_factory=list)
    url: str | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None

    def describe(self) -> str:
        if self.url:
            return f"{self.url} (streamable HTTP)"
        import shlex

        return f"{shlex.join(self.command)} (stdio)"


class McpServer:
    """A live connection to one MCP server; restarted on demand after a failure."""

    def __init__(self, spec: McpServerSpec, loop: BackgroundLoop):
        if not spec.command and not spec.url:
            raise McpError(f"MCP server `{spec.name}` needs a command or a URL.")
        self.spec = spec
        self.loop = loop
        self.tools: list[Any] = []  # mcp Tool objects, as the server listed them
        self._session: Any = None
        self._closing: asyncio.Event | None = None
        self._task: concurrent.futures.Future | None = None
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")

    @property
    def alive(self) -> bool:
        if self.loop.forked:  # the connection is the parent's: start afresh, as our own
            self.forget_connection()
        return self._session is not None and self._task is not None and not self._task.done()

    def start(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect (starting the process for stdio) and list the tools; raises :class:`McpError`."""
        if self.alive:
            return
        self.close()
        ready: concurrent.futures.Future = concurrent.futures.Future()
        self._task = self.loop.submit(self._hold(ready))
        try:
            ready.result(timeout)
        except concurrent.futures.TimeoutError:
            self.close()
            raise McpError(f"MCP server `{self.spec.name}` did not answer within {timeout:g} s "
                           f"({self.spec.describe()}).{self._stderr_tail()}") from None
        except KeyboardInterrupt:
            self.close()
            raise
        except Exception as exc:
            self.close()
            from mcp_types import CONNECTION_CLOSED

            if _error_code(exc) == CONNECTION_CLOSED:
                raise McpError(f"MCP server `{self.spec.name}` exited while starting "
                               f"({self.spec.describe()}).{self._stderr_tail()}") from None
            raise McpError(f"MCP server `{self.spec.name}` could not be started: "
                           f"{_describe_exception(exc)} ({self.spec.describe()})."
                           f"{self._stderr_tail()}") from None

    async def _hold(self, ready: concurrent.futures.Future) -> None:
        # The SDK's transports are context managers bound to the task that enters them: this
        # task owns the connection for its whole life and waits until it is asked to close.
        from mcp import ClientSession

        closing = self._closing = asyncio.Event()
        session = None
        try:
            async with AsyncExitStack() as stack:
                if self.spec.url:
                    from mcp.client.streamable_http import streamable_http_client

                    read, write = await stack.enter_async_context(
                        streamable_http_client(self.spec.url))
                else:
                    from mcp import StdioServerParameters, stdio_client

                    params = StdioServerParameters(command=self.spec.command[0],
                                                   args=self.spec.command[1:], env=self.spec.env,
                                                   cwd=self.spec.cwd)
                    read, write = await stack.enter_async_context(
                        stdio_client(params, errlog=self._stderr))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                tools: list[Any] = []
                cursor = None
                while True:
                    from mcp_types import PaginatedRequestParams

                    listing = await session.list_tools(
                        params=PaginatedRequestParams(cursor=cursor) if cursor else None)
                    tools.extend(listing.tools)
                    cursor = listing.next_cursor
                    if not cursor:
                        break
                self.tools = tools
                self._session = session
                import jsonschema  # noqa: F401  (the SDK's first call imports it: ~1.5 s, now)
                ready.set_result(None)
                await closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else McpError(repr(exc)))
            if not isinstance(exc, (Exception, asyncio.CancelledError)):
                raise
        finally:
            if session is not None and self._session is session:  # not a newer connection's
                self._session = None

    def ensure_running(self, timeout: float = 5.0) -> None:
        """Start the server, or restart it if it stopped answering (e.g. it died between runs),
        so a run does not begin with a dead connection; raises :class:`McpError`."""
        if self.alive:
            session = self._session
            try:
                self.loop.run(session.send_ping(), timeout)
                return
            except KeyboardInterrupt:
                raise
            except Exception:  # closed or unresponsive: start afresh
                self.close(wait=False)
        self.start()

    def call(self, tool: str, arguments: dict[str, Any], timeout: float | None) -> Any:
        """Call ``tool``; returns the SDK's CallToolResult or raises :class:`McpError`."""
        if not self.alive:
            self.start()
        session = self._session
        stderr_mark = self._stderr_position()

        async def call() -> Any:
            return await session.call_tool(tool, arguments, read_timeout_seconds=timeout)

        try:
            # The SDK's own read timeout answers first; ours only guards against a stuck loop.
            return self.loop.run(call(), (timeout + 5) if timeout else None)
        except TimeoutError:
            self.close(wait=False)
            raise McpError(f"MCP server `{self.spec.name}` did not answer `{tool}` within "
                           f"{timeout:g} s; the server was stopped and restarts on the next "
                           "call.") from None
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

            code = _error_code(exc)
            if code == CONNECTION_CLOSED or self._task is None or self._task.done():
                self.close()
                raise McpError(f"MCP server `{self.spec.name}` exited or closed the connection "
                               f"during the call to `{tool}`; it restarts on the next call."
                               f"{self._stderr_tail(stderr_mark)}") from None
            if code == REQUEST_TIMEOUT:
                self.close(wait=False)
                raise McpError(f"MCP server `{self.spec.name}` did not answer `{tool}` within "
                               f"{timeout:g} s; the server was stopped and restarts on the next "
                               "call.") from None
            raise McpError(f"MCP server `{self.spec.name}` failed on `{tool}`: "
                           f"{_describe_exception(exc)}") from None

    def close(self, wait: bool = True) -> None:
        """Stop the connection (and the process, for stdio); ``wait=False`` lets it wind down
        in the background (a hung server can take seconds to terminate)."""
        task, closing = self._task, self._closing
        self._task = self._closing = self._session = None
        if task is None or task.done():
            return
        if closing is not None:
            self.loop.loop.call_soon_threadsafe(closing.set)
        if not wait:
            return
        try:
            task.result(5)
        except Exception:
            task.cancel()

    def forget_connection(self) -> None:
        """Drop a connection this process does not own (made before a fork); the next call
        starts the server afresh."""
        self._task = self._closing = self._session = None

    def _stderr_position(self) -> int:
        try:
            self._stderr.flush()
            return self._stderr.seek(0, 2)
        except (OSError, ValueError):
            return 0

    def _stderr_tail(self, since: int = 0, chars: int = 600) -> str:
        """What the server wrote to stderr since ``since`` (its last ``chars``)."""
        try:
            end = self._stderr_position()
            self._stderr.seek(max(since, end - chars))
            tail = self._stderr.read().strip()
            self._stderr.seek(end)
        except (OSError, ValueError):
            return ""
        return f"\nServer stderr:\n{tail}" if tail else ""


def _error_code(exc: BaseException) -> int | None:
    """The MCP error code of ``exc``, looking inside the SDK's exception groups."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    for inner in getattr(exc, "exceptions", None) or ():
        found = _error_code(inner)
        if found is not None:
            return found
    return None


def _describe_exception(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)  # an ExceptionGroup from the SDK's task groups
    if inner:
        return "; ".join(_describe_exception(e) for e in inner)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
