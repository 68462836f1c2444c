"""Facts about Kimi K2 Thinking and its API that defaults are made of (K2_PROTOCOL.md)."""

from __future__ import annotations

MOONSHOT_BASE_URL = "https://api.moonshot.ai/v1"
DEFAULT_MODEL = "kimi-k2-thinking"
#: Tokens of context of kimi-k2-thinking(-turbo).
CONTEXT_WINDOW = 262_144
#: Tokens per step, thinking included: Moonshot's documentation uses 32k (≥ 16k recommended;
#: the API's default of about 1k starves the answer).
STEP_TOKENS = 32_000
#: K2 Thinking is tuned for sampling at 1.0.
TEMPERATURE = 1.0
#: Moonshot accepts at most this many tools in one request.
MAX_TOOLS = 128
