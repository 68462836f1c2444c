"""MCP tools offered to the model like any other: ``SERVER__tool``, with the server's schema."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from ...core.tool import BaseTool, ToolOutcome
from ..observation import OutputStore, cap, clean_text, describe_image, redact
from ..schema import inline_refs
from .client import McpError, McpServer

SAFE_NAME = re.compile(r"[^a-zA-Z0-9_-]")


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


class McpTool(BaseTool):
    """One tool of an MCP server, offered to the model like any other.

    It acts (approval modes ask before it) unless its server marks it read-only through MCP's
    tool annotations (``readOnlyHint``). Under ``--approve risky`` it is asked about when it may
    destroy data or reach outside systems: MCP's ``destructiveHint`` and ``openWorldHint``,
    which the protocol takes as true when the server does not say. The annotations are the
    server's word: a server added with ``%k2 mcp add`` is trusted to run anyway.
    """

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
        hints = tool.annotations  # the SDK's ToolAnnotations, or None
        self.read_only = bool(hints and hints.read_only_hint)
        self.side_effects = not self.read_only
        self.destructive = None if hints is None else hints.destructive_hint
        self.open_world = None if hints is None else hints.open_world_hint

    def risks(self, values: dict[str, Any]) -> list[str]:
        if self.read_only:
            return []
        server = f"`{self.server.spec.name}`"
        reasons = []
        if self.destructive:
            reasons.append(f"may delete or overwrite data (server {server} marks it destructive)")
        elif self.destructive is None:
            reasons.append(f"may delete or overwrite data (server {server} does not mark it "
                           "read-only or non-destructive)")
        if self.open_world:
            reasons.append(f"reaches systems outside the kernel (server {server} marks it "
                           "open-world)")
        elif self.open_world is None and self.destructive is False:
            reasons.append(f"may reach systems outside the kernel (server {server} does not "
                           "mark it closed-world)")
        return reasons

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
