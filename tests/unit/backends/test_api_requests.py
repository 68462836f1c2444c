"""What the API backend sends and how it reads the stream: each message encoded once and reused
while it is the same object, the reasoning field it is sent under, and streams a server breaks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from k2nb.backends import api
from k2nb.backends.api import ApiBackend
from k2nb.core.backend import BackendError, ModelRequest, StepResult
from k2nb.core.events import ReasoningDelta, ToolCallDelta
from k2nb.core.messages import AssistantMessage, SystemMessage, ToolCall, ToolMessage, UserMessage
from k2nb.testing import Call, Reply, ScriptedServer

KEY = "sk-test-0123456789abcdef"


class CountingBackend(ApiBackend):
    """Counts how often a message is turned into its wire form."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.encoded: list[Any] = []

    def wire_message(self, message: Any) -> dict[str, Any]:
        self.encoded.append(message)
        return super().wire_message(message)


def tool_step(index: int, output: str) -> list[Any]:
    call = ToolCall(f"functions.code_interpreter:{index}", "code_interpreter",
                    json.dumps({"code": f"print({index})"}))
    return [AssistantMessage("", f"thinking {index}", [call]),
            ToolMessage(call.id, "code_interpreter", output)]


def request(messages: list[Any]) -> ModelRequest:
    return ModelRequest(messages=messages, tools=[], max_tokens=1000, temperature=1.0)


def sent(backend: ApiBackend, messages: list[Any]) -> dict[str, Any]:
    return json.loads(backend.request_body(request(messages)))


def test_each_message_is_encoded_once_while_it_is_in_the_request():
    backend = CountingBackend("kimi-k2-thinking", "http://127.0.0.1:9/v1", "k")
    messages = [SystemMessage("sys"), UserMessage("go"), *tool_step(0, "0")]
    first = sent(backend, messages)
    assert len(backend.encoded) == 4
    messages += tool_step(1, "1")
    second = sent(backend, messages)
    assert backend.encoded[4:] == messages[4:]  # only the new step's two messages
    assert second["messages"][:4] == first["messages"]
    assert second["messages"] == [ApiBackend.wire_message(backend, m) for m in messages]
    assert second["model"] == "kimi-k2-thinking" and second["stream"] is True
    assert second["stream_options"] == {"include_usage": True}


def test_a_replaced_message_is_encoded_anew():
    """Hiding an observation replaces its message object: the request carries the new text."""
    backend = CountingBackend("kimi-k2-thinking", "http://127.0.0.1:9/v1", "k")
    messages = [UserMessage("go"), *tool_step(0, "a long output"), *tool_step(1, "latest")]
    sent(backend, messages)
    messages[2] = replace(messages[2], content="[output hidden]")
    body = sent(backend, messages)
    assert backend.encoded[5:] == [messages[2]]
    assert [m["content"] for m in body["messages"] if m["role"] == "tool"] == [
        "[output hidden]", "latest"]


def test_encoded_messages_follow_the_detected_reasoning_field():
    backend = CountingBackend("kimi-k2-thinking", "http://127.0.0.1:9/v1", "k")
    messages = [UserMessage("go"), *tool_step(0, "0")]
    assert sent(backend, messages)["messages"][1]["reasoning_content"] == "thinking 0"
    backend.detected_reasoning_field = "reasoning"  # as a reply in the `reasoning` field sets it
    assistant = sent(backend, messages)["messages"][1]
    assert assistant["reasoning"] == "thinking 0" and "reasoning_content" not in assistant
    both = CountingBackend("kimi-k2-thinking", "http://127.0.0.1:9/v1", "k",
                           reasoning_field="both")
    assistant = sent(both, messages)["messages"][1]
    assert assistant["reasoning"] == assistant["reasoning_content"] == "thinking 0"


def test_a_message_sent_before_detection_is_sent_again_under_the_detected_field():
    """A vLLM-style server reads only ``reasoning``: an earlier tool-call message, first sent
    (and encoded) under ``reasoning_content``, must follow once a reply shows the field."""
    earlier = [UserMessage("first"), *tool_step(0, "0"), AssistantMessage("answer"),
               UserMessage("second")]
    with ScriptedServer(api_key=KEY, reasoning_field="reasoning") as server:
        server.add(Reply(reasoning="vllm thinks", tool_calls=[Call("code_interpreter",
                                                                     {"code": "1"})]),
                   Reply(reasoning="more", content="done"))
        backend = ApiBackend("kimi-k2-thinking", server.base_url, KEY)
        result = list(backend.stream(request(earlier)))[-1]
        assert isinstance(result, StepResult) and backend.detected_reasoning_field == "reasoning"
        step = [result.message, ToolMessage(result.message.tool_calls[0].id,
                                            "code_interpreter", "1")]
        assert list(backend.stream(request(earlier + step)))[-1].message.content == "done"
        first, second = (r["messages"] for r in server.requests)
        assert "reasoning_content" in first[1]
        assert second[1]["reasoning"] == "thinking 0" and "reasoning_content" not in second[1]
        assert second[-2]["reasoning"] == "vllm thinks"
        assert server.errors == []


def test_stream_deltas_in_order_with_tool_call_fragments_by_index():
    with ScriptedServer(api_key=KEY, chunk_chars=4) as server:
        server.add(Reply(reasoning="think first", tool_calls=[
            Call("code_interpreter", {"code": "a = 1"}), Call("code_interpreter", {"code": "2"})]))
        backend = ApiBackend("kimi-k2-thinking", server.base_url, KEY)
        items = list(backend.stream(request([UserMessage("go")])))
    kinds = [type(i).__name__ for i in items]
    assert kinds.index("ToolCallDelta") > max(i for i, k in enumerate(kinds)
                                              if k == "ReasoningDelta")
    assert "".join(i.text for i in items if isinstance(i, ReasoningDelta)) == "think first"
    firsts = [i for i in items if isinstance(i, ToolCallDelta) and i.id]
    assert [(f.index, f.id, f.name) for f in firsts] == [
        (0, "functions.code_interpreter:0", "code_interpreter"),
        (1, "functions.code_interpreter:1", "code_interpreter")]
    result = items[-1]
    assert result.finish_reason == "tool_calls"
    assert [json.loads(c.arguments) for c in result.message.tool_calls] == [
        {"code": "a = 1"}, {"code": "2"}]
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # newer SDKs deprecate this form
def test_bytes_body_for_older_sdks(monkeypatch):
    """openai 1.99–2.15 take a ready body as bytes in ``body`` (later ones in ``content``)."""
    monkeypatch.setattr(api, "BODY_ARGUMENT", "body")
    with ScriptedServer(api_key=KEY) as server:
        server.add(Reply(reasoning="r", content="hello"))
        backend = ApiBackend("kimi-k2-thinking", server.base_url, KEY)
        result = list(backend.stream(request([UserMessage("go")])))[-1]
        assert result.message.content == "hello"
        assert server.requests[0]["messages"] == [{"role": "user", "content": "go"}]


class BrokenStream:
    """A server that answers every chat request with the given SSE ``data:`` lines."""

    def __init__(self, *data: str):
        lines = data

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for line in lines:
                    self.wfile.write(f"data: {line}\n\n".encode())
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def broken() -> Iterator[Any]:
    servers: list[BrokenStream] = []

    def start(*data: str) -> ApiBackend:
        servers.append(BrokenStream(*data))
        return ApiBackend("kimi-k2-thinking", servers[-1].base_url, KEY)

    yield start
    for server in servers:
        server.stop()


CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}


def test_data_that_is_not_json_is_explained(broken):
    backend = broken(json.dumps({**CHUNK, "choices": [{"index": 0, "delta": {"content": "a"}}]}),
                     "<html>proxy error</html>")
    with pytest.raises(BackendError, match="streamed data that is not JSON") as error:
        list(backend.stream(request([UserMessage("go")])))
    assert not error.value.retryable


def test_a_chunk_that_is_not_an_object_is_explained(broken):
    backend = broken(json.dumps(["not", "a", "chunk"]), "[DONE]")
    with pytest.raises(BackendError, match="not a chunk of a chat completion"):
        list(backend.stream(request([UserMessage("go")])))


def test_a_stream_without_finish_reason_is_retryable(broken):
    backend = broken(json.dumps({**CHUNK, "choices": [{"index": 0, "delta": {"content": "a"}}]}),
                     "[DONE]")
    with pytest.raises(BackendError, match="cut before the model finished") as error:
        list(backend.stream(request([UserMessage("go")])))
    assert error.value.retryable


def test_an_error_event_mid_stream_is_retryable(broken):
    backend = broken(json.dumps({**CHUNK, "choices": [{"index": 0, "delta": {"content": "a"}}]}),
                     json.dumps({"error": {"message": "engine overloaded", "type": "server"}}))
    with pytest.raises(BackendError, match="cut mid-answer.*engine overloaded") as error:
        list(backend.stream(request([UserMessage("go")])))
    assert error.value.retryable
