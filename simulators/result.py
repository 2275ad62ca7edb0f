"""The records every simulator returns: a `SimResult`, with a `SimError` when the candidate failed.

They are frozen and JSON-serializable, because they cross process, cache and Ray boundaries.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Error types shared by all targets. A simulator may add its own, but these names mean the same thing everywhere.
ERROR_TYPES = (
    "compile_error",  # the candidate does not compile / parse (message carries the compiler's text)
    "forbidden_import",  # NKI code imported something outside the allow-list
    "constraint_error",  # an ISA/compiler constraint was violated (tile limits, partition dim, ...)
    "address_error",  # scratchpad/accumulator/DRAM/SBUF address out of range
    "hazard_error",  # e.g. DRAM read-after-write without a fence
    "runtime_error",  # the candidate raised / aborted / crashed (signal)
    "wrong_output",  # ran, but the output does not match the reference
    "timeout",  # wall-clock or CPU-time limit
    "memory_limit",  # address-space limit hit
    "output_limit",  # printed or wrote too much
    "sandbox_violation",  # tried to use the network, spawn processes, escape the temp dir
    "beyond_roofline",  # claimed latency below the physical lower bound: a simulator or reward-hacking bug
    "invalid_kernel",  # the kernel name/spec is not understood
)


@dataclass(frozen=True)
class SimError:
    type: str
    message: str
    line: int | None = None  # source line in the candidate, when known
    instruction: int | None = None  # index of the accelerator instruction that failed, when known


@dataclass(frozen=True)
class SimResult:
    """The outcome of simulating one candidate on one kernel.

    `latency` is in `unit`: "cycles" on Gemmini, "us" (microseconds) on Trainium. It is None when the
    candidate failed. `counters` holds the hardware feedback (per-queue busy cycles, DMA bytes, ...).
    """

    correct: bool
    latency: float | None
    unit: str
    utilization: float | None = None
    error: SimError | None = None
    counters: dict[str, Any] = field(default_factory=dict)
    sim_seconds: float = 0.0
    stdout: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # Target-specific aliases people look for in the JSON.
        if self.unit == "cycles":
            d["cycles"] = self.latency
        elif self.unit == "us":
            d["latency_us"] = self.latency
            d["profile"] = self.counters
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SimResult:
        err = d.get("error")
        return SimResult(
            correct=bool(d["correct"]),
            latency=d.get("latency"),
            unit=d["unit"],
            utilization=d.get("utilization"),
            error=SimError(**err) if err else None,
            counters=dict(d.get("counters") or {}),
            sim_seconds=float(d.get("sim_seconds", 0.0)),
            stdout=d.get("stdout", ""),
        )

    @staticmethod
    def failure(unit: str, type: str, message: str, **kw: Any) -> SimResult:
        return SimResult(correct=False, latency=None, unit=unit, error=SimError(type, message, **kw))


# Relative slack of the roofline check: rooflines and latencies are floats computed different ways.
ROOFLINE_SLACK = 1e-6


def within_roofline(result: SimResult, roofline: float, kernel: str = "") -> SimResult:
    """`result`, or a "beyond_roofline" failure when it claims a correct latency that is not finite, not
    positive or below `roofline`, the kernel's ideal latency: physically impossible, so a simulator bug or a
    gamed measurement, and never a reward. The one roofline check: every simulator's `run` ends with it."""
    lat = result.latency
    if not result.correct or lat is None:
        return result
    if math.isfinite(lat) and lat > 0 and lat >= roofline * (1.0 - ROOFLINE_SLACK):
        return result
    where = f" for {kernel}" if kernel else ""
    msg = (
        f"claimed latency {lat:g} {result.unit} is below the roofline {roofline:g} {result.unit}{where}: "
        "a simulator bug or a gamed measurement"
    )
    return SimResult(
        correct=False,
        latency=None,
        unit=result.unit,
        error=SimError("beyond_roofline", msg),
        counters=dict(result.counters, claimed_latency=lat),
        sim_seconds=result.sim_seconds,
        stdout=result.stdout,
    )
