"""The MCP servers of one kernel session (``%k2 mcp add``, ``K2Magics.mcp_servers``)."""

from __future__ import annotations

import re
import shlex
from typing import Any

from ..observation import OutputStore
from .client import McpError, McpServer, McpServerSpec
from .loop import BackgroundLoop
from .tools import McpTool, tool_name

NAME = re.compile(r"[a-zA-Z0-9_-]{1,30}")


class McpServers:
    """Registered servers by name, sharing one background loop; held by the kernel's Session."""

    def __init__(self) -> None:
        self.loop = BackgroundLoop()
        self._servers: dict[str, McpServer] = {}

    def add(self, name: str, command: list[str] | None = None, url: str | None = None,
            env: dict[str, str] | None = None, cwd: str | None = None) -> McpServer:
        """Register and start a server for this kernel's runs; raises :class:`McpError`."""
        if not NAME.fullmatch(name or ""):
            raise McpError(f"MCP server name {name!r} is not allowed: use up to 30 letters, "
                           "digits, '_' or '-'.")
        if bool(command) == bool(url):
            raise McpError("Give either a command (`%k2 mcp add NAME -- command args...`) or a "
                           "URL (`%k2 mcp add NAME --url URL`).")
        self.remove(name)
        server = McpServer(McpServerSpec(name, list(command or []), url, env, cwd), self.loop)
        server.start()
        self._servers[name] = server
        return server

    def remove(self, name: str) -> bool:
        """Stop and forget a server; False if there was none of that name."""
        server = self._servers.pop(name, None)
        if server is None:
            return False
        server.close()
        return True

    def servers(self) -> dict[str, McpServer]:
        """The registered servers, by name."""
        return dict(self._servers)

    def close(self) -> None:
        """Stop every server (the kernel is shutting down)."""
        for server in list(self._servers.values()):
            server.close()

    def listing(self) -> str:
        """The registered servers, their transport, state and tools."""
        if not self._servers:
            return ("No MCP servers registered. Add one with "
                    "`%k2 mcp add NAME -- command args...`.")
        lines = []
        for name, server in self._servers.items():
            state = "running" if server.alive else "stopped (restarts on use)"
            lines.append(f"{name}: {server.spec.describe()}, {state}")
            for tool in server.tools:
                summary = (tool.description or "").strip().splitlines()[:1]
                lines.append(f"  {tool_name(name, tool.name)}"
                             + (f" — {summary[0]}" if summary else ""))
        return "\n".join(lines)

    def register_configured(self, configured: dict[str, Any]) -> list[str]:
        """Start the servers named in ``%config K2Magics.mcp_servers`` that are not registered
        yet; returns warnings for those that could not be started."""
        warnings = []
        for name, spec in configured.items():
            if name in self._servers:
                continue
            spec = spec if isinstance(spec, dict) else {"command": spec}
            command = spec.get("command")
            if isinstance(command, str):
                command = shlex.split(command)
            try:
                self.add(name, command=command, url=spec.get("url"), env=spec.get("env"),
                         cwd=spec.get("cwd"))
            except McpError as exc:
                warnings.append(f"{exc} (from K2Magics.mcp_servers)")
        return warnings

    def tools(self, store: OutputStore, timeout: float | None, observation_chars: int = 8_000,
              secrets: tuple[str, ...] = (), only: set[str] | None = None
              ) -> tuple[list[McpTool], list[str]]:
        """Tools of the registered servers (all, or those named in ``only``) and warnings for
        servers that could not be reached (their tools are left out of the run)."""
        tools: list[McpTool] = []
        warnings: list[str] = []
        for name, server in self.servers().items():
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
