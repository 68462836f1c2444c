"""The scripted server counts a request's tokens from the bytes it received (a long run's
request is hundreds of kilobytes: counting must not encode it again) and explains bodies it
cannot read."""

from __future__ import annotations

import json

import httpx

from k2nb.testing import Reply, ScriptedServer
from k2nb.testing.server import prompt_tokens

KEY = "sk-test-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def post(server: ScriptedServer, content: bytes) -> httpx.Response:
    return httpx.post(server.base_url + "/chat/completions", content=content, headers=HEADERS)


def body(text: str) -> dict:
    return {"model": "kimi-k2-thinking", "max_tokens": 100,
            "messages": [{"role": "user", "content": text}]}


def test_prompt_tokens_are_the_raw_body_over_four():
    raw = json.dumps(body("é" * 50 + "x" * 400), ensure_ascii=False).encode()
    with ScriptedServer(api_key=KEY) as server:
        server.add(Reply(content="ok"))
        response = post(server, raw)
        last = [json.loads(line[6:]) for line in response.text.splitlines()
                if line.startswith("data: {")][-1]
        usage = last["choices"][0]["usage"]  # Moonshot's place, without include_usage
        assert usage["prompt_tokens"] == len(raw) // 4
        assert prompt_tokens(server.requests[0]) == len(raw) // 4
        # A body built in a test counts as a client sends it: compact JSON, UTF-8.
        compact = json.dumps(body("é" * 50 + "x" * 400), ensure_ascii=False,
                             separators=(",", ":")).encode()
        assert prompt_tokens(dict(server.requests[0])) == len(compact) // 4


def test_the_window_is_enforced_on_the_raw_count():
    raw = json.dumps(body("x" * 2000)).encode()
    fits = len(raw) // 4 + 100  # the prompt and max_tokens
    with ScriptedServer(api_key=KEY, context_window=fits) as server:
        server.add(Reply(content="ok"))
        assert post(server, raw).status_code == 200
        server.context_window = fits - 1
        refused = post(server, raw)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == (
            f"Invalid request: Your request exceeded model token limit: {fits - 1}")


def test_bodies_it_cannot_read_are_explained():
    with ScriptedServer(api_key=KEY) as server:
        assert post(server, b"{not json").json()["error"]["message"] == "request body is not JSON"
        assert post(server, b"[1, 2]").json()["error"]["message"] == (
            "request body is not a JSON object")
        assert server.errors == ["400 request body is not JSON",
                                 "400 request body is not a JSON object"]
