"""Rewards: small objects the env calls once per step (`reward=` of `AutocompEnv`); a new reward is a new
class, not an edit of `step`.

A reward sees a `Step` (the kernel, the latency before and after, the candidate's simulator result) and
returns a float. `reset(env)` is called at every reset, before the first step, so a reward that needs a
reference latency (a baseline) can ask the env for it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autocomp_env.core import Kernel
from simulators.result import SimResult


@dataclass(frozen=True)
class Step:
    """What a reward sees about one step. `latency` is None when the candidate failed."""

    kernel: Kernel
    previous_latency: float  # the state's latency before the step
    latency: float | None  # the candidate's latency when it is correct
    start_latency: float
    result: SimResult  # the candidate's simulator result (counters, utilization, error)

    @property
    def correct(self) -> bool:
        return self.result.correct and self.latency is not None


class Reward:
    """The interface: `reset(env)` at every reset, `__call__(step) -> float` at every step."""

    name = "reward"

    def reset(self, env: Any) -> None:
        """Called at every reset; `env` is the AutocompEnv (e.g. for `env.baseline_latencies()`)."""

    def __call__(self, step: Step) -> float:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"name": self.name}


class LogSpeedup(Reward):
    """log(previous latency / new latency) for a correct candidate, so an episode's return is the
    log-speedup over the starting code; `-failure_penalty` for an incorrect one (finite)."""

    name = "log_speedup"

    def __init__(self, failure_penalty: float = 0.1):
        if not (math.isfinite(failure_penalty) and failure_penalty >= 0):
            raise ValueError(f"failure_penalty must be finite and >= 0, got {failure_penalty!r}")
        self.failure_penalty = float(failure_penalty)

    def __call__(self, step: Step) -> float:
        if not step.correct:
            return -self.failure_penalty
        return math.log(step.previous_latency / step.latency)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "failure_penalty": self.failure_penalty}


class BaselineNormalized(Reward):
    """(previous latency - new latency) / a baseline's latency (CompilerGym's baseline-normalized cost), so
    an episode's return is (start - final) / baseline: 1.0 means the search saved as much time as the whole
    baseline (e.g. the vendor library) takes. `-failure_penalty` for an incorrect candidate. The baseline is
    evaluated once per env (`env.baseline_latencies()`); without it (a family that has none) the starting
    latency is used."""

    name = "baseline_normalized"

    def __init__(self, baseline: str = "vendor", failure_penalty: float = 0.1):
        if not (math.isfinite(failure_penalty) and failure_penalty >= 0):
            raise ValueError(f"failure_penalty must be finite and >= 0, got {failure_penalty!r}")
        self.baseline = baseline
        self.failure_penalty = float(failure_penalty)
        self._scale: float | None = None

    def reset(self, env: Any) -> None:
        latencies = env.baseline_latencies()
        if self.baseline not in latencies:
            raise ValueError(f"unknown baseline {self.baseline!r}; known: {', '.join(latencies)}")
        self._scale = latencies[self.baseline] or latencies["start"]

    def __call__(self, step: Step) -> float:
        if not step.correct:
            return -self.failure_penalty
        scale = self._scale if self._scale else step.start_latency
        return (step.previous_latency - step.latency) / scale

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "baseline": self.baseline, "failure_penalty": self.failure_penalty}


REWARDS: dict[str, type[Reward]] = {"log_speedup": LogSpeedup, "baseline_normalized": BaselineNormalized}
