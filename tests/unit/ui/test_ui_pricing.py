"""The header's cost estimate comes from a per-model price table users can extend."""

from __future__ import annotations

import pytest

from k2nb.core.messages import Usage
from k2nb.ui import pricing
from k2nb.ui.pricing import estimate_cost, price_for, register_price


def test_kimi_k2_thinking_cost_counts_cache_hits_at_their_price():
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, cached_tokens=400_000)
    # 600k misses at $0.60/M, 400k hits at $0.15/M, 1M out at $2.50/M
    assert estimate_cost("kimi-k2-thinking", usage) == pytest.approx(0.36 + 0.06 + 2.50)


def test_unknown_or_self_hosted_models_have_no_cost():
    assert estimate_cost("llama3:8b", Usage(10, 10, 20)) is None
    assert price_for("moonshotai/Kimi-K2-Thinking") is None  # your own vLLM is not billed


def test_users_can_add_a_model(monkeypatch):
    monkeypatch.setattr(pricing, "PRICES", dict(pricing.PRICES))
    register_price("My-Model", input_per_m=1.0, output_per_m=4.0)
    assert estimate_cost("my-model", Usage(500_000, 250_000, 750_000)) == pytest.approx(1.5)
