"""Which tools a run offers: a selection like ``code,web,files,mcp`` turned into tool objects.

``code``: ``code_interpreter``. ``web``: ``web_search`` (Moonshot's builtin ``$web_search`` on
Moonshot's API) and ``fetch_url``. ``files``: ``read_file`` and ``list_files``. ``mcp``: every
server registered with ``%k2 mcp add``; ``mcp:NAME`` one of them. ``read_output`` (the pager)
and the user's ``@k2nb.tool`` functions are always included.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from ..core.tool import Tool
from .files import ListFiles, ReadFile
from .mcp import McpServers
from .observation import OutputStore
from .read_output import ReadOutput
from .web import FetchPolicy, FetchUrl, SearchProvider, search_tool

GROUPS = ("code", "web", "files", "mcp")
DEFAULT_TOOLS = "code,web,files,mcp"


def parse_selection(value: str | Iterable[str] | None) -> tuple[set[str], set[str] | None]:
    """``"code,web,mcp:calc"`` → ({"code", "web"}, {"calc"}); the second item is None when
    all MCP servers are selected. Raises ``ValueError`` naming the valid choices."""
    if value is None:
        value = DEFAULT_TOOLS
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    groups: set[str] = set()
    servers: set[str] = set()
    for raw in items:
        item = raw.strip().lower()
        if item in ("all", "*"):
            groups.update(GROUPS)
        elif item in ("none", ""):
            continue
        elif item.startswith("mcp:"):
            servers.add(raw.strip().split(":", 1)[1])  # server names keep their case
        elif item in GROUPS:
            groups.add(item)
        else:
            raise ValueError(f"unknown tool group {item!r} in tools: choose from "
                             f"{', '.join(GROUPS)}, mcp:NAME, all or none (e.g. --tools code,web)")
    if "mcp" in groups:
        return groups, None
    return groups, servers


def build_tools(settings: Any, store: OutputStore, secrets: tuple[str, ...] = (),
                interpreter: Tool | None = None, *, user_tools: Iterable[Tool] = (),
                mcp: McpServers | None = None,
                search_provider: SearchProvider | None = None) -> list[Tool]:
    """The tools of one run, in the order they are declared to the model.

    ``interpreter`` is the run's ``code_interpreter`` (built by the runner, which owns the
    shell); it is offered when the selection includes ``code``. ``user_tools``, ``mcp`` and
    ``search_provider`` come from the kernel's session.
    """
    groups, servers = parse_selection(settings.tools)
    chars = settings.observation_chars
    tools: list[Any] = []
    if "code" in groups and interpreter is not None:
        tools.append(interpreter)
    tools.append(ReadOutput(store))
    if "web" in groups:
        tools.append(search_tool(settings.search, secrets, search_provider))
        policy = FetchPolicy(timeout=settings.fetch_timeout,
                             allow_private=settings.private_urls)
        tools.append(FetchUrl(store, policy, chars, secrets, gated=settings.approve_fetch))
    if "files" in groups:
        root = settings.files_root or os.getcwd()
        tools.extend([ReadFile(root, store, chars, secrets), ListFiles(root)])
    if ("mcp" in groups or servers) and mcp is not None:
        warnings = mcp.register_configured(settings.mcp_servers or {})
        found, failed = mcp.tools(store, settings.timeout, chars, secrets, servers)
        warnings += failed
        for name in sorted((servers or set()) - set(mcp.servers())):
            warnings.append(f"No MCP server named `{name}` is registered (see `%k2 mcp list`).")
        tools.extend(found)
        for warning in warnings:
            print(f"k2nb: {warning} Left out of this run.", file=sys.stderr)
    tools.extend(user_tools)
    return tools
