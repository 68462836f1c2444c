"""A small MCP server for k2nb's tests: ``python mcp_fixture_server.py [--http PORT]``.

Tools: ``quarterly_units`` (numbers the agent then computes with; an unknown region is a tool
error), ``add``, ``crash`` (the process dies mid-call), ``big`` (a long text), ``sleep`` (hangs),
``env`` and ``pid`` (to check how the process was started); for approval: ``write_note`` (writes
a file; no annotations, so it may be destructive and open-world), ``append_note`` (marked
additive and closed-world) and ``read_note`` (marked read-only).
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

server = MCPServer("k2nb-fixture", log_level="ERROR")


@server.tool()
def quarterly_units(region: str) -> str:
    """Units sold per quarter in a region, as text."""
    table = {"north": [120, 135, 150, 171], "south": [80, 82, 79, 90]}
    units = table.get(region.lower())
    if units is None:
        raise ToolError(f"unknown region {region!r}; known: north, south")
    return f"Units sold in {region}: " + ", ".join(f"Q{i} {n}" for i, n in enumerate(units, 1))


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@server.tool()
def crash() -> str:
    """Exit the server process in the middle of the call."""
    sys.stderr.write("fixture server: crashing on purpose\n")
    sys.stderr.flush()
    os._exit(3)


@server.tool()
def big(n: int = 50_000) -> str:
    """A text of n characters."""
    return ("0123456789" * (n // 10 + 1))[:n]


@server.tool()
def sleep(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "awake"


@server.tool()
def env(name: str) -> str:
    """An environment variable of the server process."""
    return os.environ.get(name, "(unset)")


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def write_note(path: str, text: str) -> str:
    """Write text to a file (replacing it)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return f"wrote {len(text)} characters to {path}"


@server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
def append_note(path: str, text: str) -> str:
    """Append a line to a file."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
    return f"appended to {path}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def read_note(path: str) -> str:
    """Read a file."""
    with open(path, encoding="utf-8") as f:
        return f.read()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
