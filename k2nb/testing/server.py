"""A strict, scripted, OpenAI-compatible HTTP server on loopback that behaves like Moonshot's.

For k2nb's tests and for anyone testing notebooks offline: it streams SSE the way Kimi K2
Thinking does (reasoning first, then content, then tool-call fragments, usage in the last chunk),
enforces the API's rules (key, model, ``tool_choice``, tool names, ``$ref``, interleaved
reasoning, tool-result pairing), and plays a script of replies and errors.

    with ScriptedServer([Reply(reasoning="...", tool_calls=[Call("code_interpreter",
                               {"code": "x = 1"})]),
                         Reply(content="Done.")]) as server:
        os.environ["K2NB_BASE_URL"] = server.base_url
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Union

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Declared as {"type": "builtin_function", "function": {"name": "$web_search"}}, no parameters;
# the client answers a call by echoing its arguments unchanged as the tool message.
BUILTIN_FUNCTIONS = {"$web_search"}


@dataclass
class Call:
    """A tool call the scripted model makes; ``arguments`` is a dict or raw (maybe broken) text."""

    name: str
    arguments: Union[dict[str, Any], str] = field(default_factory=dict)
    id: str | None = None

    def raw_arguments(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass
class Reply:
    """One scripted assistant turn."""

    reasoning: str = ""
    content: str = ""
    tool_calls: list[Call] = field(default_factory=list)
    delay: float = 0.0  # seconds between chunks (for interrupt and throttling tests)
    cut_after: int | None = None  # close the connection after this many chunks


@dataclass
class Fail:
    """A scripted HTTP error, e.g. ``Fail(429, "rate_limit_reached_error", retry_after=1)``."""

    status: int
    type: str = "server_error"
    message: str = "scripted failure"
    retry_after: float | None = None


ScriptItem = Union[Reply, Fail, Callable[[dict[str, Any]], Union[Reply, Fail]]]


class RequestBody(dict):
    """A parsed ``/chat/completions`` body (a plain dict to every reader) that remembers its
    size in the server's tokens, counted once from the raw bytes: a long run's request is
    hundreds of kilobytes, and encoding it again to count it would cost more than the rest of
    the server's work together."""

    def __init__(self, data: dict[str, Any], raw: bytes):
        super().__init__(data)
        self.prompt_tokens = _tokens(raw)


class ScriptedServer:
    """Serve ``script`` (one item per ``/chat/completions`` request) on 127.0.0.1."""

    def __init__(
        self,
        script: Iterable[ScriptItem] = (),
        *,
        api_key: str = "test-key",
        models: Iterable[str] = ("kimi-k2-thinking", "kimi-k2-thinking-turbo"),
        reasoning_field: str = "reasoning_content",
        chunk_chars: int = 16,
        port: int = 0,
        context_window: int | None = None,
        top_level_usage: bool = True,
    ):
        self.script: list[ScriptItem] = list(script)
        self.api_key = api_key
        self.models = list(models)
        self.reasoning_field = reasoning_field
        self.chunk_chars = chunk_chars
        self.context_window = context_window  # tokens (len/4); None = unlimited
        # Moonshot puts usage in choices[0].usage; OpenAI-style servers add a top-level chunk.
        self.top_level_usage = top_level_usage
        self.requests: list[dict[str, Any]] = []  # every chat request body, in order
        self.errors: list[str] = []  # every 4xx this server answered, for assertions
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def add(self, *items: ScriptItem) -> None:
        with self._lock:
            self.script.extend(items)

    # --- rules ----------------------------------------------------------------------------

    def check(self, body: dict[str, Any]) -> tuple[int, str, str] | None:
        """The error Moonshot would answer for this body, or None."""
        if body.get("model") not in self.models:
            return (404, "resource_not_found_error",
                    f"Not found the model {body.get('model')} or Permission denied")
        if body.get("tool_choice") not in (None, "none", "auto"):
            return (400, "invalid_request_error",
                    f"tool_choice {body.get('tool_choice')!r} is not supported; use none or auto")
        tools = body.get("tools") or []
        if len(tools) > 128:
            return (400, "invalid_request_error", "too many tools: at most 128")
        for tool in tools:
            fn = tool.get("function") or {}
            if tool.get("type") == "builtin_function":  # Moonshot's server-side tools
                if fn.get("name") not in BUILTIN_FUNCTIONS:
                    return (400, "invalid_request_error",
                            f"unknown builtin_function {fn.get('name')!r}")
                continue
            if tool.get("type") != "function" or not TOOL_NAME.match(fn.get("name", "")):
                return (400, "invalid_request_error", f"invalid tool declaration {fn.get('name')!r}")
            params = fn.get("parameters", {})
            if params.get("type") != "object":
                return (400, "invalid_request_error", "tool parameters must be a JSON-schema object")
            if "$ref" in json.dumps(params):
                return (400, "invalid_request_error", "$ref is not supported in tool parameters")
        messages = body.get("messages") or []
        if not messages:
            return (400, "invalid_request_error", "messages must not be empty")
        last_plain = max(
            (i for i, m in enumerate(messages)
             if m.get("role") == "assistant" and not m.get("tool_calls")),
            default=-1,
        )
        pending: set[str] = set()
        for i, m in enumerate(messages):
            role = m.get("role")
            if role not in ("system", "user", "assistant", "tool"):
                return (400, "invalid_request_error", f"invalid role at index {i}")
            if role == "tool":
                if m.get("tool_call_id") not in pending:
                    return (400, "invalid_request_error",
                            f"tool_call_id {m.get('tool_call_id')!r} at index {i} not found")
                pending.discard(m["tool_call_id"])
                continue
            if pending:
                return (400, "invalid_request_error",
                        f"tool calls {sorted(pending)} have no tool message before index {i}")
            if role == "assistant" and m.get("tool_calls"):
                if i > last_plain and m.get(self.reasoning_field) is None:
                    return (400, "invalid_request_error",
                            "thinking is enabled but reasoning_content is missing in assistant "
                            f"tool call message at index {i}")
                pending = {c["id"] for c in m["tool_calls"]}
        if pending:
            return (400, "invalid_request_error", f"tool calls {sorted(pending)} have no tool message")
        if self.context_window is not None:
            used = prompt_tokens(body) + (body.get("max_tokens") or 0)
            if used > self.context_window:
                return (400, "invalid_request_error",
                        f"Invalid request: Your request exceeded model token limit: "
                        f"{self.context_window}")
        return None

    def next_item(self, body: dict[str, Any]) -> Reply | Fail:
        with self._lock:
            if not self.script:
                return Fail(500, "server_error", "the test script has no more replies")
            item = self.script.pop(0)
        return item(body) if callable(item) else item


def _prior_calls(messages: list[dict[str, Any]]) -> int:
    return sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")


def prompt_tokens(body: dict[str, Any]) -> int:
    """The server's count of a request's tokens: the length of its JSON body / 4 (compact, as
    clients send it); counted from the raw bytes for a body this server received."""
    if isinstance(body, RequestBody):
        return body.prompt_tokens
    return _tokens(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


_prompt_tokens = prompt_tokens  # the name tests used first


def _tokens(text: str | bytes) -> int:
    return max(1, len(text) // 4) if text else 0


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
            if 400 <= status < 500:
                server.errors.append(f"{status} {message}")
            self._json(status, {"error": {"message": message, "type": kind}}, headers)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            self._error(401, "invalid_authentication_error", "Invalid Authentication")
            return False

        def do_GET(self) -> None:
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/models":
                data = [{"id": m, "object": "model", "owned_by": "k2nb-test"} for m in server.models]
                self._json(200, {"object": "list", "data": data})
            else:
                self._error(404, "not_found", f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self._authorized():
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, "not_found", f"no route {self.path}")
                return
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                self._error(400, "invalid_request_error", "request body is not JSON")
                return
            if not isinstance(data, dict):
                self._error(400, "invalid_request_error", "request body is not a JSON object")
                return
            body = RequestBody(data, raw)
            server.requests.append(body)
            problem = server.check(body)
            if problem:
                self._error(*problem)
                return
            item = server.next_item(body)
            if isinstance(item, Fail):
                headers = {"Retry-After": f"{item.retry_after:g}"} if item.retry_after else None
                self._error(item.status, item.type, item.message, headers)
                return
            self._stream(body, item)

        def _stream(self, body: dict[str, Any], reply: Reply) -> None:
            created = int(time.time())
            ident = f"chatcmpl-{len(server.requests)}"
            model = body["model"]
            budget = body.get("max_tokens") or 1024
            base = _prior_calls(body["messages"])
            chunks: list[dict[str, Any]] = []

            def delta(d: dict[str, Any]) -> None:
                chunks.append(d)

            used = 0
            finish = None
            for fieldname, text in ((server.reasoning_field, reply.reasoning), ("content", reply.content)):
                for i in range(0, len(text), server.chunk_chars):
                    piece = text[i : i + server.chunk_chars]
                    used += _tokens(piece)
                    if used > budget:
                        finish = "length"
                        break
                    delta({fieldname: piece})
                if finish:
                    break
            if not finish:
                for index, call in enumerate(reply.tool_calls):
                    call_id = call.id or f"functions.{call.name}:{base + index}"
                    delta({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                           "function": {"name": call.name, "arguments": ""}}]})
                    args = call.raw_arguments()
                    for i in range(0, len(args), server.chunk_chars):
                        delta({"tool_calls": [{"index": index,
                                               "function": {"arguments": args[i : i + server.chunk_chars]}}]})
                finish = "tool_calls" if reply.tool_calls else "stop"
            completion = _tokens(reply.reasoning) + _tokens(reply.content) + sum(
                _tokens(c.raw_arguments()) for c in reply.tool_calls)
            prompt = prompt_tokens(body)
            usage = {"prompt_tokens": prompt, "completion_tokens": min(completion, budget),
                     "total_tokens": prompt + min(completion, budget), "cached_tokens": 0}

            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()

            def send(payload: dict[str, Any] | str) -> None:
                text = payload if isinstance(payload, str) else json.dumps(payload)
                self.wfile.write(f"data: {text}\n\n".encode())
                self.wfile.flush()

            def frame(d: dict[str, Any], finish_reason: str | None = None, extra=None) -> dict:
                choice = {"index": 0, "delta": d, "finish_reason": finish_reason}
                if extra:
                    choice.update(extra)
                return {"id": ident, "object": "chat.completion.chunk", "created": created,
                        "model": model, "choices": [choice]}

            try:
                send(frame({"role": "assistant", "content": ""}))
                for n, d in enumerate(chunks):
                    if reply.cut_after is not None and n >= reply.cut_after:
                        self.close_connection = True
                        return  # drop the connection mid-stream
                    if reply.delay:
                        time.sleep(reply.delay)
                    send(frame(d))
                send(frame({}, finish, {"usage": usage}))
                if server.top_level_usage and (body.get("stream_options") or {}).get("include_usage"):
                    send({"id": ident, "object": "chat.completion.chunk", "created": created,
                          "model": model, "choices": [], "usage": usage})
                send("[DONE]")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (an interrupt): nothing to do
            self.close_connection = True

    return Handler
