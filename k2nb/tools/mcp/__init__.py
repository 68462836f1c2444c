"""MCP servers as tool sources: ``%k2 mcp add NAME -- command args...`` (stdio) or
``%k2 mcp add NAME --url URL`` (streamable HTTP). Their tools are offered as ``NAME__tool``, so
names from different servers cannot collide with each other or with k2nb's own tools.

- :mod:`.loop`: the background asyncio loop the connections live on
- :mod:`.client`: one server's connection (start, call, restart, close)
- :mod:`.tools`: a server's tools as k2nb tools, and their results as text
- :mod:`.registry`: the servers of one kernel session
"""

from .client import McpError, McpServer, McpServerSpec
from .registry import McpServers
from .tools import McpTool, result_text, tool_name, tool_parameters

__all__ = ["McpError", "McpServer", "McpServerSpec", "McpServers", "McpTool", "result_text",
           "tool_name", "tool_parameters"]
