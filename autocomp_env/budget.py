"""Budgets (limits on samples, LLM calls, tokens, dollars, simulator seconds), usage counters and prices.

A sample is one generated implementation that was evaluated (Autocomp's paper compares methods "under a
fixed sample budget"). `price(model, prompt_tokens, completion_tokens)` turns token counts into dollars.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# USD per 1M (input, output) tokens, from OpenAI's public price list (standard tier). Local models cost 0.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.0),
    "gpt-4o-mini": (0.15, 0.60),
    "o1": (15.0, 60.0),
    "o3": (2.0, 8.0),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "offline": (0.0, 0.0),
    "fake": (0.0, 0.0),
    "local": (0.0, 0.0),
}


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Dollars for one call. Dated or provider-prefixed names ("openai::gpt-4o-2024-08-06") match their
    longest listed prefix; models not listed (local servers) cost 0."""
    name = model.split("::")[-1].split("/")[-1].lower()
    best = max((k for k in PRICES if name == k or name.startswith(k + "-")), key=len, default=None)
    if best is None:
        return 0.0
    p_in, p_out = PRICES[best]
    return (prompt_tokens * p_in + completion_tokens * p_out) / 1e6


@dataclass
class Usage:
    """What an env (or a search) has spent so far."""

    samples: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), tokens=self.tokens)

    def copy(self) -> Usage:
        return Usage(**asdict(self))


_LIMITS = ("samples", "llm_calls", "tokens", "dollars", "sim_seconds")


@dataclass(frozen=True)
class Budget:
    """Limits; None means unlimited. A budget runs out when usage reaches a limit."""

    samples: int | None = None
    llm_calls: int | None = None
    tokens: int | None = None
    dollars: float | None = None
    sim_seconds: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
                raise ValueError(f"budget {f.name} must be a non-negative number or None, got {v!r}")

    @staticmethod
    def of(value: Budget | dict[str, Any] | None) -> Budget:
        """Accepts a Budget, a dict of its fields, or None (unlimited)."""
        if value is None:
            return Budget()
        if isinstance(value, Budget):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(_LIMITS)
            if unknown:
                raise ValueError(f"unknown budget keys {sorted(unknown)}; known: {list(_LIMITS)}")
            return Budget(**value)
        raise ValueError(f"budget must be a Budget, a dict or None, got {type(value).__name__}")

    def left(self, usage: Usage) -> dict[str, float | None]:
        """Remaining amount per limit (None if unlimited; never below 0)."""
        return {
            k: None if getattr(self, k) is None else max(0.0, getattr(self, k) - getattr(usage, k)) for k in _LIMITS
        }

    def left_fraction(self, usage: Usage) -> dict[str, float]:
        """Remaining share in [0, 1] per limit (1 if unlimited), for observations."""
        out = {}
        for k in _LIMITS:
            limit = getattr(self, k)
            out[k] = (
                1.0 if limit is None else (0.0 if limit == 0 else min(1.0, max(0.0, 1.0 - getattr(usage, k) / limit)))
            )
        return out

    def exhausted(self, usage: Usage) -> list[str]:
        """Names of the limits usage has reached."""
        return [k for k in _LIMITS if getattr(self, k) is not None and getattr(usage, k) >= getattr(self, k)]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _LIMITS}
