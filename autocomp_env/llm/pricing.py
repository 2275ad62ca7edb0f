"""Dollar cost of a call. Uses `autocomp_env.budget.price` when it exists; this table is the fallback.

Prices: USD per million (input, output) tokens, public list prices. Unknown (e.g. local) models cost 0.
"""

from __future__ import annotations

PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "o4-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o1": (15.00, 60.00),
}


def table_price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Cost from PRICES by the longest matching model-name prefix (provider prefixes like "openai/" ignored)."""
    name = model.split("/")[-1].split("::")[-1]
    key = max((k for k in PRICES if name.startswith(k)), key=len, default=None)
    if key is None:
        return 0.0
    p_in, p_out = PRICES[key]
    return (prompt_tokens * p_in + completion_tokens * p_out) / 1e6


def price(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    price_in: float | None = None,
    price_out: float | None = None,
) -> float:
    """Dollars for one call: explicit per-1M prices if given, else the project table."""
    if price_in is not None or price_out is not None:
        return (prompt_tokens * (price_in or 0.0) + completion_tokens * (price_out or 0.0)) / 1e6
    try:
        from autocomp_env.budget import price as budget_price
    except ImportError:
        return table_price(model, prompt_tokens, completion_tokens)
    return float(budget_price(model, prompt_tokens, completion_tokens))
