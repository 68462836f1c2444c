"""Per-model token prices, for the cost estimate the run header shows.

The table holds list prices in US dollars per million tokens. Users add or override models with
:func:`register_price`::

    from k2nb.ui.pricing import register_price
    register_price("my-vllm-model", input_per_m=0.0, output_per_m=0.0)

A model with no price shows no cost (rather than a wrong one).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.messages import Usage


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens. ``cached_input_per_m`` applies to prompt-cache hits."""

    input_per_m: float
    output_per_m: float
    cached_input_per_m: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = (
            self.input_per_m if self.cached_input_per_m is None else self.cached_input_per_m
        )
        return (
            (usage.prompt_tokens - cached) * self.input_per_m
            + cached * cached_rate
            + usage.completion_tokens * self.output_per_m
        ) / 1e6


# Moonshot platform list prices (platform.moonshot.ai, USD, 2025-11). Check them before
# relying on the estimate; override with register_price().
PRICES: dict[str, Price] = {
    "kimi-k2-thinking": Price(0.60, 2.50, 0.15),
    "kimi-k2-thinking-turbo": Price(1.15, 8.00, 0.15),
    "kimi-k2-0905-preview": Price(0.60, 2.50, 0.15),
    "kimi-k2-0711-preview": Price(0.60, 2.50, 0.15),
    "kimi-k2-turbo-preview": Price(1.15, 8.00, 0.15),
}


def register_price(
    model: str,
    input_per_m: float,
    output_per_m: float,
    cached_input_per_m: float | None = None,
) -> None:
    """Add or replace the price of ``model`` (matched case-insensitively)."""
    PRICES[model.lower()] = Price(input_per_m, output_per_m, cached_input_per_m)


def price_for(model: str) -> Price | None:
    """The price of ``model``, matched case-insensitively.

    Names are matched exactly: ``moonshotai/Kimi-K2-Thinking`` served by your own vLLM is not
    billed at Moonshot's price.
    """
    return PRICES.get(model.lower().strip())


def estimate_cost(model: str, usage: Usage) -> float | None:
    """Estimated dollars for ``usage`` on ``model``, or None when its price is unknown."""
    price = price_for(model)
    return None if price is None else price.cost(usage)
