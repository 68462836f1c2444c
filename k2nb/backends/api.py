"""The API backend: Moonshot's Kimi K2 API or any OpenAI-compatible server, via the openai SDK.

K2 specifics handled here (K2_PROTOCOL.md §1-2): reasoning arrives in ``reasoning_content``
(``reasoning`` on newer vLLM) before content and must be sent back verbatim on assistant
messages; tool-call deltas are accumulated by index; usage may come in ``choices[0].usage`` or
top-level; ``tool_choice`` is never ``required``.

A long run (200–300 steps) re-sends the whole history on every step, so the request is built
without per-request work over the history beyond joining bytes: each message is encoded to JSON
once (cached by identity — k2nb replaces a message rather than changing it) and the body goes
through the SDK's low-level ``post`` (its auth, base URL, timeouts and SSE decoding), not
``chat.completions.create``, whose parameter transform re-walks every message on every request.
Streamed chunks are read as plain dicts, without a model object per chunk.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import openai

from ..core.backend import BackendError, ModelRequest, StepResult, StreamItem
from ..core.events import ContentDelta, ReasoningDelta, ToolCallDelta
from ..core.k2 import MOONSHOT_BASE_URL
from ..core.messages import AssistantMessage, Message, ToolCall, Usage

REASONING_FIELDS = ("reasoning_content", "reasoning")
NOT_RETRIED = ("exceeded_current_quota", "quota", "content_filter", "insufficient_balance")
#: How the SDK's ``post`` takes a ready-made body: ``content`` from openai 2.16; before that,
#: bytes passed as ``body`` (openai 1.99+, deprecated later).
BODY_ARGUMENT = "content" if "content" in inspect.signature(openai.OpenAI.post).parameters \
    else "body"


def encode_json(data: Any) -> bytes:
    """JSON as the SDK itself sends it (compact, UTF-8, no NaN)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class WireCache:
    """Each message's JSON, encoded once and reused while the message object is in the request.

    Keyed by identity: k2nb never changes a message it has sent; a changed message (an
    observation hidden, the prompt after a compaction) is a new object and is encoded anew.
    Only the messages of the latest request are kept. The encoding depends on the outgoing
    reasoning field(s), so a change of field (auto-detected from a reply) starts afresh.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Message, bytes]] = {}
        self._fields: tuple[str, ...] = ()

    def encode(self, messages: Iterable[Message], fields: tuple[str, ...],
               wire: Callable[[Message], dict[str, Any]]) -> bytes:
        """The JSON array of ``messages``; ``wire`` turns one message into its wire dict."""
        if fields != self._fields:
            self._entries, self._fields = {}, fields
        previous, kept, parts = self._entries, {}, []
        for message in messages:
            entry = previous.get(id(message))
            if entry is None or entry[0] is not message:
                entry = (message, encode_json(wire(message)))
            kept[id(message)] = entry
            parts.append(entry[1])
        self._entries = kept
        return b"[" + b",".join(parts) + b"]"


class ApiBackend:
    """Streams steps from an OpenAI-compatible ``/chat/completions`` endpoint."""

    name = "api"
    context_window = None  # not reported by the API: the context_window setting applies

    def __init__(
        self,
        model: str,
        base_url: str = MOONSHOT_BASE_URL,
        api_key: str | None = None,
        *,
        reasoning_field: str = "auto",
        max_retries: int = 4,
        request_timeout: float = 300.0,
        key_hint: str = "MOONSHOT_API_KEY",
        sleep: Any = time.sleep,
    ):
        if reasoning_field not in ("auto", "both", *REASONING_FIELDS):
            raise ValueError(
                "reasoning_field must be auto, both, reasoning_content or reasoning; "
                f"got {reasoning_field!r}"
            )
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.reasoning_field = reasoning_field
        self.detected_reasoning_field: str | None = None
        self.max_retries = max_retries
        self.key_hint = key_hint
        self._sleep = sleep
        self.client = openai.OpenAI(
            api_key=api_key or "missing-key",
            base_url=self.base_url,
            max_retries=0,  # retries are ours: quota and content-filter errors must not repeat
            timeout=httpx.Timeout(request_timeout, connect=15.0),
        )
        self._has_key = bool(api_key)
        self._wire = WireCache()

    # --- public ---------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Model ids the server offers (``GET /models``)."""
        try:
            return sorted(m.id for m in self.client.models.list())
        except openai.APIError as exc:
            raise self._error(exc) from None

    def stream(self, request: ModelRequest) -> Iterator[StreamItem]:
        if not self._has_key:
            raise BackendError(
                f"No API key for {self.base_url}. Set {self.key_hint} in the environment or a "
                ".env file (or K2NB_API_KEY for other servers), or run `%k2 key` to type it in."
            )
        stream = self._open(self.request_body(request))
        yield from self._consume(stream)

    def request_body(self, request: ModelRequest) -> bytes:
        """The ``/chat/completions`` body as sent: the messages' cached JSON and the options."""
        options: dict[str, Any] = {
            "model": self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.tools:
            options["tools"] = request.tools
            options["tool_choice"] = "auto"
        messages = self._wire.encode(request.messages, self._outgoing_reasoning_fields(),
                                     self.wire_message)
        return b'{"messages":' + messages + b"," + encode_json(options)[1:]

    def wire_message(self, message: Message) -> dict[str, Any]:
        """One message in the OpenAI JSON form this server expects."""
        if not isinstance(message, AssistantMessage):
            data = {"role": message.role, "content": message.content}
            if message.role == "tool":
                data["tool_call_id"] = message.tool_call_id
                data["name"] = message.name
            return data
        data: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            data["content"] = message.content or None
            data["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in message.tool_calls
            ]
        if message.reasoning or message.tool_calls:
            for name in self._outgoing_reasoning_fields():
                data[name] = message.reasoning
        return data

    # --- internals ------------------------------------------------------------------------

    def _outgoing_reasoning_fields(self) -> tuple[str, ...]:
        if self.reasoning_field == "both":
            return REASONING_FIELDS
        if self.reasoning_field == "auto":
            return (self.detected_reasoning_field or "reasoning_content",)
        return (self.reasoning_field,)

    def _open(self, body: bytes) -> openai.Stream[object]:
        """Open the stream, retrying transient failures with backoff, jitter and Retry-After.

        The SDK's stream class decodes the SSE events; ``object`` chunks are the parsed JSON.
        """
        attempt = 0
        while True:
            try:
                return self.client.post(
                    "/chat/completions", cast_to=object, stream=True,
                    stream_cls=openai.Stream[object], **{BODY_ARGUMENT: body},
                    options={"headers": {"Content-Type": "application/json"}},
                )
            except (openai.APIError, httpx.HTTPError) as exc:
                error = self._error(exc)
                if not error.retryable or attempt >= self.max_retries:
                    raise error from None
                self._sleep(self._backoff(attempt, exc))
                attempt += 1

    @staticmethod
    def _backoff(attempt: int, exc: Exception) -> float:
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        if header:
            try:
                return min(float(header), 120.0)
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(header)
                if parsed is not None:
                    return max(0.0, min(parsed.timestamp() - time.time(), 120.0))
        return min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())

    def _consume(self, stream: openai.Stream[object]) -> Iterator[StreamItem]:
        reply = _Reply()
        try:
            for chunk in stream:
                if not isinstance(chunk, dict):
                    raise BackendError(f"{self.base_url} streamed something that is not a chunk "
                                       f"of a chat completion: {str(chunk)[:200]}")
                yield from self._read_chunk(chunk, reply)
        except (openai.APIError, httpx.HTTPError) as exc:
            raise BackendError(
                f"The stream from {self.base_url} was cut mid-answer ({_short(exc)}).",
                retryable=True,
            ) from None
        except json.JSONDecodeError as exc:  # an SSE event whose data is not JSON
            raise BackendError(f"{self.base_url} streamed data that is not JSON ({exc}); is it "
                               "an OpenAI-compatible server?") from None
        finally:
            stream.close()
        if reply.finish_reason is None:
            raise BackendError(
                f"The stream from {self.base_url} was cut before the model finished.", retryable=True
            )
        yield StepResult(reply.message(), reply.finish_reason, reply.usage)

    def _read_chunk(self, chunk: dict[str, Any], reply: _Reply) -> Iterator[StreamItem]:
        """The deltas of one streamed chunk (a plain dict), noted in ``reply`` as they come:
        reasoning before content before tool-call fragments, as K2 streams them."""
        if chunk.get("usage"):
            reply.usage = Usage.from_dict(chunk["usage"])  # the top-level usage chunk
        for choice in chunk.get("choices") or ():
            if choice.get("usage"):
                reply.usage = Usage.from_dict(choice["usage"])  # Moonshot's place for it
            if choice.get("finish_reason"):
                reply.finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if not delta:
                continue
            text = self._reasoning_of(delta)
            if text:
                reply.reasoning.append(text)
                yield ReasoningDelta(text)
            content = delta.get("content")
            if content:
                reply.content.append(content)
                yield ContentDelta(content)
            for fragment in delta.get("tool_calls") or ():
                yield reply.add_fragment(fragment)

    def _reasoning_of(self, delta: dict[str, Any]) -> str:
        for name in REASONING_FIELDS:
            value = delta.get(name)
            if value:
                if self.detected_reasoning_field is None:
                    self.detected_reasoning_field = name
                return value
        return ""

    def _error(self, exc: Exception) -> BackendError:
        """A message the user can act on, and whether trying again may help."""
        where = self.base_url
        if isinstance(exc, openai.AuthenticationError):
            return BackendError(
                f"Invalid API key for {where} (HTTP 401). Set {self.key_hint} (or K2NB_API_KEY "
                "for other servers) to a valid key, or run `%k2 key`.",
                status=401,
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return BackendError(f"The key is not allowed to do this at {where}: {_short(exc)}",
                                status=403)
        if isinstance(exc, openai.NotFoundError) or _mentions_unknown_model(exc):
            return BackendError(self._unknown_model_message(exc), status=404)
        if isinstance(exc, openai.RateLimitError):
            text = _short(exc)
            if any(marker in text.lower() for marker in NOT_RETRIED):
                return BackendError(f"The server refused the request (not retried): {text}",
                                    status=429)
            return BackendError(f"Rate limited by {where}: {text}", retryable=True, status=429)
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(f"{where} did not answer in time.", retryable=True)
        if isinstance(exc, openai.APIConnectionError) or isinstance(exc, httpx.HTTPError):
            return BackendError(f"Could not reach {where}: {_short(exc)}", retryable=True)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            text = _short(exc)
            if status in (400, 413, 422) and _mentions_token_limit(text):
                return BackendError(f"The conversation is too long for {self.model}: {text}",
                                    status=400, context_overflow=True)
            if "content_filter" in text.lower():
                return BackendError(f"The server's content filter refused the request: {text}",
                                    status=status)
            return BackendError(f"{where} answered HTTP {status}: {text}",
                                retryable=status >= 500 or status in (408, 409), status=status)
        return BackendError(f"Request to {where} failed: {_short(exc)}")

    def _unknown_model_message(self, exc: Exception) -> str:
        try:
            offered = ", ".join(sorted(m.id for m in self.client.models.list())) or "none"
        except Exception:
            offered = "(the model list could not be fetched)"
        return (
            f"The model {self.model!r} is not available at {self.base_url} ({_short(exc)}). "
            f"Models offered there: {offered}. Choose one with --model or K2NB_MODEL."
        )


class _Reply:
    """The step being streamed: text so far, tool calls by index, usage and finish reason."""

    def __init__(self) -> None:
        self.reasoning: list[str] = []
        self.content: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage = Usage()
        self.finish_reason: str | None = None

    def add_fragment(self, fragment: dict[str, Any]) -> ToolCallDelta:
        """Accumulate one tool-call fragment by its index: the first carries the id and name,
        later ones pieces of the arguments."""
        index = fragment.get("index") or 0
        slot = self.calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
        fn = fragment.get("function") or {}
        name = fn.get("name") or None
        args = fn.get("arguments") or ""
        if fragment.get("id"):
            slot["id"] = fragment["id"]
        if name:
            slot["name"] += name if slot["name"] != name else ""
        slot["arguments"] += args
        return ToolCallDelta(index, fragment.get("id"), name, args)

    def message(self) -> AssistantMessage:
        tool_calls = [
            ToolCall(
                id=slot["id"] or f"functions.{slot['name']}:{index}",
                name=slot["name"],
                arguments=slot["arguments"],
            )
            for index, slot in sorted(self.calls.items())
        ]
        return AssistantMessage("".join(self.content), "".join(self.reasoning), tool_calls)


def _mentions_unknown_model(exc: Exception) -> bool:
    if not isinstance(exc, openai.BadRequestError):
        return False
    text = _short(exc).lower()
    return "model" in text and ("not found" in text or "not exist" in text or "unknown" in text)


def _mentions_token_limit(text: str) -> bool:
    text = text.lower()
    return any(m in text for m in ("token limit", "context length", "maximum context",
                                   "context_length_exceeded", "too many tokens",
                                   "context window", "prompt is too long",
                                   "input is too long", "maximum number of tokens"))


def _short(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            kind = error.get("type")
            return f"{error['message']}" + (f" [{kind}]" if kind else "")
    return str(exc) or type(exc).__name__
