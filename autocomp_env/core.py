"""Core records that cross module, process and Ray boundaries. Frozen, JSON-friendly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Kernel:
    """One optimization problem: a target, a kernel family and a concrete shape.

    `roofline` is the ideal latency on the target (cycles on Gemmini, microseconds on Trainium), so
    `roofline / latency` is the fraction of peak. `small` names a variant with small shapes for fast training.
    """

    name: str  # e.g. "gemmini/matmul-512x512x512", "trainium/rmsnorm-512x4096"
    target: str  # "gemmini" | "trainium"
    family: str  # e.g. "matmul", "conv", "linalg", "gemm", "rmsnorm", ...
    spec: dict[str, Any]  # shapes, dtypes, tolerances: what the simulator's harness needs
    macs: int  # multiply-accumulates (or FLOPs/2 for non-GEMM work), for utilization
    roofline: float  # ideal latency in `unit`
    unit: str  # "cycles" | "us"
    small: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What one step asks the code model to do: a menu item (by index into the family's menu) or free text."""

    text: str
    menu_index: int | None = None


@dataclass(frozen=True)
class Feedback:
    """What the code model or planner may see about the parent candidate."""

    latency: float | None = None
    unit: str = ""
    utilization: float | None = None
    counters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the parent's (or failed child's) error text, for repair prompts
    history: tuple[tuple[str, float | None], ...] = ()  # (plan, latency) from the root to the parent


@dataclass(frozen=True)
class Generation:
    """The code model's answer to one plan. `code` is None when generation itself failed (e.g. LLM error)."""

    code: str | None
    note: str = ""  # e.g. "plan not understood: code unchanged"
    error: str | None = None  # generation error (never passed on as code)
    fault: str | None = None  # the bug the fault profile injected, if any (offline model only)
    model: str = "offline"
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    cache_hit: bool = False
    response_hash: str | None = None  # identifies the LLM response, for replay
