"""MCP servers as tool sources, through the official ``mcp`` SDK (stdio and streamable HTTP).

``%k2 mcp add NAME -- command args...`` or ``%k2 mcp add NAME --url URL`` registers a server for
this kernel's runs. Its tools are offered as ``NAME__tool`` (names from different servers cannot
collide with each other or with k2nb's own tools).

The SDK is async; the kernel's main thread must stay the one that runs the agent loop (signals,
``run_cell``). So every connection lives on one background thread running an asyncio loop, and
the main thread waits on futures — an interrupt cancels the call. A server that crashes or
hangs mid-call becomes an error observation, and the next call restarts it. A forked child
(heavy mode) starts its own connections instead of sharing the parent's.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import os
import re
import tempfile
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from .observation import OutputStore, cap, clean_text, describe_image, redact
from .registry import ToolOutcome
from .schema import inline_refs

SAFE_NAME = re.compile(r"[^a-zA-Z0-9_-]")
CONNECT_TIMEOUT = 30.0


class McpError(Exception):
    """An MCP server that could not be started, reached or used; the message says why."""


# --- the background loop ----------------------------------------------------------------------


class _BackgroundLoop:
    """One asyncio loop on a daemon thread, shared by every MCP connection of the kernel."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="k2nb-mcp", daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def submit(self, coro: Any) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Any, timeout: float | None) -> Any:
        """Run ``coro`` on the loop and wait; a timeout or an interrupt cancels it."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None
        except KeyboardInterrupt:
            future.cancel()
            raise


    def forget(self) -> None:
        """In a forked child: the loop's thread did not survive the fork; start a new one."""
        self._loop = None
        self._lock = threading.Lock()


_background = _BackgroundLoop()


# --- one server -------------------------------------------------------------------------------


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

    def __init__(self, spec: McpServerSpec):
        if not spec.command and not spec.url:
            raise McpError(f"MCP server `{spec.name}` needs a command or a URL.")
        self.spec = spec
        self.tools: list[Any] = []  # mcp Tool objects, as the server listed them
        self._session: Any = None
        self._closing: asyncio.Event | None = None
        self._task: concurrent.futures.Future | None = None
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")

    @property
    def alive(self) -> bool:
        return self._session is not None and self._task is not None and not self._task.done()

    def start(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect (starting the process for stdio) and list the tools; raises :class:`McpError`."""
        if self.alive:
            return
        self.close()
        ready: concurrent.futures.Future = concurrent.futures.Future()
        self._task = _background.submit(self._hold(ready))
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
                _background.run(session.send_ping(), timeout)
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
            return _background.run(call(), (timeout + 5) if timeout else None)
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
            _background.loop.call_soon_threadsafe(closing.set)
        if not wait:
            return
        try:
            task.result(5)
        except Exception:
            task.cancel()

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


# --- the kernel's registry --------------------------------------------------------------------

_SERVERS: dict[str, McpServer] = {}


def add_server(name: str, command: list[str] | None = None, url: str | None = None,
               env: dict[str, str] | None = None, cwd: str | None = None) -> McpServer:
    """Register and start an MCP server for this kernel's runs; raises :class:`McpError`."""
    if not re.fullmatch(r"[a-zA-Z0-9_-]{1,30}", name or ""):
        raise McpError(f"MCP server name {name!r} is not allowed: use up to 30 letters, digits, "
                       "'_' or '-'.")
    if bool(command) == bool(url):
        raise McpError("Give either a command (`%k2 mcp add NAME -- command args...`) or a URL "
                       "(`%k2 mcp add NAME --url URL`).")
    remove_server(name)
    server = McpServer(McpServerSpec(name, list(command or []), url, env, cwd))
    server.start()
    _SERVERS[name] = server
    return server


def remove_server(name: str) -> bool:
    """Stop and forget a server; False if there was none of that name."""
    server = _SERVERS.pop(name, None)
    if server is None:
        return False
    server.close()
    return True


def servers() -> dict[str, McpServer]:
    """The registered servers, by name."""
    return dict(_SERVERS)


@atexit.register
def _close_all() -> None:
    for server in list(_SERVERS.values()):
        server.close()


def _after_fork_in_child() -> None:
    # Heavy mode forks the kernel. The child has no loop thread and must not talk over the
    # parent's connections: its servers start afresh (their own processes) on first use.
    _background.forget()
    for server in _SERVERS.values():
        server._task = server._closing = server._session = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- tools ------------------------------------------------------------------------------------


def tool_name(server: str, tool: str) -> str:
    """The name under which the model sees ``tool`` of ``server`` (Moonshot's name rules)."""
    return SAFE_NAME.sub("_", f"{server}__{tool}")[:64]


def tool_parameters(schema: dict[str, Any] | None) -> dict[str, Any]:
    """An MCP input schema as tool ``parameters``: refs inlined, always an object."""
    schema = dict(schema or {})
    try:
        schema = inline_refs(schema)
    except (ValueError, KeyError):
        schema.pop("$defs", None)  # recursive or dangling refs: send what can be sent
    schema.pop("$schema", None)
    if schema.get("type") != "object":
        schema = {"type": "object", "properties": schema.get("properties", {})}
    schema.setdefault("properties", {})
    return schema


class McpTool:
    """One tool of an MCP server, offered to the model like any other."""

    arguments = None  # the server validates its own arguments

    def __init__(self, server: McpServer, tool: Any, store: OutputStore, timeout: float | None,
                 observation_chars: int = 8_000, secrets: tuple[str, ...] = ()):
        self.server = server
        self.remote_name = tool.name
        self.name = tool_name(server.spec.name, tool.name)
        self.description = (f"[MCP server `{server.spec.name}`] "
                            f"{(tool.description or tool.name).strip()}")
        self.parameters = tool_parameters(tool.input_schema)
        self.store = store
        self.timeout = timeout or None
        self.observation_chars = observation_chars
        self.secrets = secrets

    def invoke(self, call_id: str, values: dict[str, Any]) -> ToolOutcome:
        start = time.monotonic()
        try:
            result = self.server.call(self.remote_name, values, self.timeout)
        except McpError as exc:
            return ToolOutcome(redact(str(exc), self.secrets), is_error=True, status="error",
                               duration_s=time.monotonic() - start)
        text = redact(clean_text(result_text(result)), self.secrets)
        self.store.put(call_id, text)
        is_error = bool(getattr(result, "is_error", False))
        if is_error:
            text = f"The MCP tool `{self.remote_name}` reported an error: {text}"
        elif len(text) > self.observation_chars:
            text = (cap(text, self.observation_chars) +
                    f"\n[read the omitted part with read_output(call_id=\"{call_id}\", offset=N)]")
        return ToolOutcome(text, is_error=is_error, status="error" if is_error else "ok",
                           duration_s=time.monotonic() - start)


def result_text(result: Any) -> str:
    """A CallToolResult as text: text blocks, described images, resources, structured data."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "image":
            parts.append(describe_image(block.mime_type, block.data))
        elif kind == "audio":
            parts.append(f"[{block.mime_type} audio returned]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(f"[resource {resource.uri}]\n{text}" if text is not None
                         else f"[binary resource {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource link {block.uri}: {block.name}]")
        else:
            parts.append(f"[{kind or 'unknown'} content]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    return "\n".join(parts) if parts else "(no result)"


def mcp_tools(store: OutputStore, timeout: float | None, observation_chars: int = 8_000,
              secrets: tuple[str, ...] = (), only: set[str] | None = None
              ) -> tuple[list[McpTool], list[str]]:
    """Tools of the registered servers (all, or those named in ``only``) and warnings for
    servers that could not be reached (their tools are left out of the run)."""
    tools: list[McpTool] = []
    warnings: list[str] = []
    for name, server in servers().items():
        if only is not None and name not in only:
            continue
        try:
            server.ensure_running()
        except McpError as exc:
            warnings.append(str(exc))
            continue
        tools.extend(McpTool(server, t, store, timeout, observation_chars, secrets)
                     for t in server.tools)
    return tools, warnings


# --- %k2 mcp ----------------------------------------------------------------------------------

USAGE = """\
%k2 mcp add NAME -- command args...     start an MCP server over stdio
%k2 mcp add NAME --env KEY[=VALUE] -- ...  the same with an environment variable (KEY alone:
                                        the kernel's value, so secrets stay out of the notebook)
%k2 mcp add NAME --url URL              connect to an MCP server over streamable HTTP
%k2 mcp list                            registered servers and their tools
%k2 mcp remove NAME                     stop and forget a server"""


def command(words: list[str]) -> str:
    """Carry out ``%k2 mcp WORDS...`` and return what to print; raises :class:`McpError`."""
    if not words or words[0] in ("help", "-h", "--help"):
        return USAGE
    verb, rest = words[0], words[1:]
    if verb == "add":
        return _add(rest)
    if verb in ("list", "ls"):
        return listing()
    if verb in ("remove", "rm"):
        if len(rest) != 1:
            raise McpError("Usage: %k2 mcp remove NAME")
        if not remove_server(rest[0]):
            raise McpError(f"No MCP server named `{rest[0]}` is registered (see `%k2 mcp list`).")
        return f"MCP server `{rest[0]}` stopped and removed."
    raise McpError(f"Unknown %k2 mcp command {verb!r}.\n{USAGE}")


def _add(rest: list[str]) -> str:
    if not rest or rest[0].startswith("-"):
        raise McpError(f"Name the server first.\n{USAGE}")
    name, rest = rest[0], rest[1:]
    env: dict[str, str] = {}
    url = None
    while rest and rest[0] != "--":
        option = rest.pop(0)
        if option == "--url" and rest:
            url = rest.pop(0)
        elif option == "--env" and rest:
            key, sep, value = rest.pop(0).partition("=")
            if not sep:  # pass the kernel's own value, so a secret never has to be typed
                if key not in os.environ:
                    raise McpError(f"--env {key}: the kernel has no environment variable {key}.")
                value = os.environ[key]
            env[key] = value
        else:
            rest.insert(0, option)  # `add NAME command args` without `--`
            break
    if rest and rest[0] == "--":
        rest = rest[1:]
    if url and rest:
        raise McpError("Give either --url URL or `-- command args...`, not both.")
    if not url and not rest:
        raise McpError(f"Say how to reach the server.\n{USAGE}")
    server = add_server(name, command=rest or None, url=url, env=env or None)
    names = ", ".join(tool_name(name, t.name) for t in server.tools) or "no tools"
    return (f"MCP server `{name}` connected ({server.spec.describe()}): {len(server.tools)} "
            f"tool(s) for this kernel's %%k2 runs: {names}")


def listing() -> str:
    """The registered servers, their transport, state and tools."""
    if not _SERVERS:
        return "No MCP servers registered. Add one with `%k2 mcp add NAME -- command args...`."
    lines = []
    for name, server in _SERVERS.items():
        state = "running" if server.alive else "stopped (restarts on use)"
        lines.append(f"{name}: {server.spec.describe()}, {state}")
        for tool in server.tools:
            summary = (tool.description or "").strip().splitlines()[:1]
            lines.append(f"  {tool_name(name, tool.name)}" + (f" — {summary[0]}" if summary else ""))
    return "\n".join(lines)


def register_configured(configured: dict[str, Any]) -> list[str]:
    """Start the servers named in ``%config K2Magics.mcp_servers`` that are not registered yet;
    returns warnings for those that could not be started."""
    import shlex

    warnings = []
    for name, spec in configured.items():
        if name in _SERVERS:
            continue
        spec = spec if isinstance(spec, dict) else {"command": spec}
        command = spec.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        try:
            add_server(name, command=command, url=spec.get("url"), env=spec.get("env"),
                       cwd=spec.get("cwd"))
        except McpError as exc:
            warnings.append(f"{exc} (from K2Magics.mcp_servers)")
    return warnings
