"""Dollar cost of one call: explicit per-model prices from the LLMConfig, else the project price table
(`autocomp_env.budget.price`; unknown, e.g. local, models cost 0)."""

from __future__ import annotations

from autocomp_env.budget import price as table_price


def price(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    price_in: float | None = None,
    price_out: float | None = None,
) -> float:
    """Dollars for one call; `price_in`/`price_out` are USD per million tokens and override the table."""
    if price_in is not None or price_out is not None:
        return (prompt_tokens * (price_in or 0.0) + completion_tokens * (price_out or 0.0)) / 1e6
    return float(table_price(model, prompt_tokens, completion_tokens))
