"""The API backend: Moonshot's Kimi K2 API or any OpenAI-compatible server, via the openai SDK.

K2 specifics handled here (K2_PROTOCOL.md §1-2): reasoning arrives in ``reasoning_content``
(``reasoning`` on newer vLLM) before content and must be sent back verbatim on assistant
messages; tool-call deltas are accumulated by index; usage may come in ``choices[0].usage`` or
top-level; ``tool_choice`` is never ``required``.
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any, Iterator

import httpx
import openai

from ..core.backend import BackendError, ModelRequest, StepResult, StreamItem
from ..core.events import ContentDelta, ReasoningDelta, ToolCallDelta
from ..core.k2 import MOONSHOT_BASE_URL
from ..core.messages import AssistantMessage, Message, ToolCall, Usage

REASONING_FIELDS = ("reasoning_content", "reasoning")
NOT_RETRIED = ("exceeded_current_quota", "quota", "content_filter", "insufficient_balance")


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
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [self.wire_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.tools:
            kwargs["tools"] = request.tools
            kwargs["tool_choice"] = "auto"
        stream = self._open(kwargs)
        yield from self._consume(stream)

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

    def _open(self, kwargs: dict[str, Any]) -> Any:
        """Open the stream, retrying transient failures with backoff, jitter and Retry-After."""
        attempt = 0
        while True:
            try:
                return self.client.chat.completions.create(**kwargs)
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

    def _consume(self, stream: Any) -> Iterator[StreamItem]:
        reasoning: list[str] = []
        content: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage = Usage()
        finish_reason: str | None = None
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = Usage.from_dict(chunk.usage.model_dump())
                for choice in chunk.choices or []:
                    extra = choice.model_extra or {}
                    if extra.get("usage"):
                        usage = Usage.from_dict(extra["usage"])
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                    delta = choice.delta
                    if delta is None:
                        continue
                    text = self._reasoning_of(delta)
                    if text:
                        reasoning.append(text)
                        yield ReasoningDelta(text)
                    if delta.content:
                        content.append(delta.content)
                        yield ContentDelta(delta.content)
                    for fragment in delta.tool_calls or []:
                        slot = calls.setdefault(
                            fragment.index, {"id": None, "name": "", "arguments": ""}
                        )
                        fn = fragment.function
                        name = fn.name if fn is not None and fn.name else None
                        args = fn.arguments if fn is not None and fn.arguments else ""
                        if fragment.id:
                            slot["id"] = fragment.id
                        if name:
                            slot["name"] += name if slot["name"] != name else ""
                        slot["arguments"] += args
                        yield ToolCallDelta(fragment.index, fragment.id, name, args)
        except (openai.APIError, httpx.HTTPError) as exc:
            raise BackendError(
                f"The stream from {self.base_url} was cut mid-answer ({_short(exc)}).",
                retryable=True,
            ) from None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if finish_reason is None:
            raise BackendError(
                f"The stream from {self.base_url} was cut before the model finished.", retryable=True
            )
        tool_calls = [
            ToolCall(
                id=slot["id"] or f"functions.{slot['name']}:{index}",
                name=slot["name"],
                arguments=slot["arguments"],
            )
            for index, slot in sorted(calls.items())
        ]
        message = AssistantMessage("".join(content), "".join(reasoning), tool_calls)
        yield StepResult(message, finish_reason, usage)

    def _reasoning_of(self, delta: Any) -> str:
        extra = delta.model_extra or {}
        for name in REASONING_FIELDS:
            value = extra.get(name)
            if value is None:
                value = getattr(delta, name, None)
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
            if status == 400 and _mentions_token_limit(text):
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


def _mentions_unknown_model(exc: Exception) -> bool:
    if not isinstance(exc, openai.BadRequestError):
        return False
    text = _short(exc).lower()
    return "model" in text and ("not found" in text or "not exist" in text or "unknown" in text)


def _mentions_token_limit(text: str) -> bool:
    text = text.lower()
    return any(m in text for m in ("token limit", "context length", "maximum context",
                                   "context_length_exceeded", "too many tokens"))


def _short(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            kind = error.get("type")
            return f"{error['message']}" + (f" [{kind}]" if kind else "")
    return str(exc) or type(exc).__name__
