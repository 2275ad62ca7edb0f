"""The agent interface and the record every episode produces.

An agent is configured once (its constructor arguments are its config) and run on any number of envs:
`agent.run(env, seed) -> EpisodeResult`. Agents act only through the env API (see `agents.envapi`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agents import envapi


@dataclass(frozen=True)
class EpisodeResult:
    """One (agent, kernel, seed) run. Latencies are in `unit`; speedups are start_latency / latency.

    `trace` holds (samples spent, best latency so far) after every sample, for speedup-vs-budget plots.
    `best_plans` is the plan chain from the starting code to the best candidate (what schedule reuse replays).
    """

    agent: str
    kernel: str
    seed: int
    unit: str
    start_latency: float
    best_latency: float
    baselines: dict[str, float]  # start, vendor, expert, roofline
    samples: int
    failures: int
    llm_calls: int
    tokens: int
    dollars: float
    wall_seconds: float
    trace: tuple[tuple[int, float], ...]
    best_plans: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)
    best_code: str = ""  # what `autocomp-env validate results.jsonl` re-simulates
    # one record per sample: plan, correct, candidate latency, best so far, reward, error type, note
    steps: tuple[dict[str, Any], ...] = ()
    # the EpisodeState (JSON) at the best candidate, or the final one if nothing beat the start:
    # `autocomp-env replay` re-runs it offline and gets the best code back (empty for other envs)
    episode: dict[str, Any] = field(default_factory=dict)

    @property
    def best_speedup(self) -> float:
        return self.start_latency / self.best_latency

    def speedup_over(self, baseline: str) -> float | None:
        ref = self.baselines.get(baseline)
        return ref / self.best_latency if ref else None

    @property
    def roofline_fraction(self) -> float | None:
        return self.speedup_over("roofline")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["trace"] = [list(t) for t in self.trace]
        d["best_plans"] = list(self.best_plans)
        d["steps"] = [dict(x) for x in self.steps]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> EpisodeResult:
        names = {f.name for f in dataclasses.fields(EpisodeResult)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["trace"] = tuple((int(s), float(b)) for s, b in kw["trace"])
        kw["best_plans"] = tuple(kw["best_plans"])
        kw["steps"] = tuple(kw.get("steps", ()))
        return EpisodeResult(**kw)


def _episode_state(env: gym.Env) -> dict[str, Any]:
    get_state = getattr(env.unwrapped, "get_state", None)
    state = get_state() if callable(get_state) else None
    return state.to_dict() if hasattr(state, "to_dict") else {}


class Tracker:
    """Counts samples against the agent's budget and keeps the best-so-far trace."""

    def __init__(self, env: gym.Env, seed: int, samples: int | None):
        self.env = env
        self.seed = seed
        self.limit = samples
        self.samples = 0
        self.failures = 0
        self.trace: list[tuple[int, float]] = []
        self.steps: list[dict[str, Any]] = []
        self.start_time = time.perf_counter()
        self.env_exhausted = False
        self.best_latency = math.inf
        self.best_plans: tuple[str, ...] = ()
        self.best_episode: dict[str, Any] = {}

    def start(self) -> tuple[dict[str, Any], float]:
        obs, latency = envapi.reset(self.env, self.seed)
        self.start_latency = self.best_latency = latency
        self.best_code = getattr(self.env.unwrapped, "code", None) or obs.get("code", "")
        return obs, latency

    @property
    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.samples

    @property
    def exhausted(self) -> bool:
        return self.env_exhausted or (self.limit is not None and self.samples >= self.limit)

    def step(self, action: Any, chain: tuple[str, ...] = ()) -> envapi.Outcome:
        """One sample. `chain` is the plan chain of the parent, so the best candidate's chain is known."""
        out = envapi.step(self.env, action)
        self.samples += 1
        self.failures += not out.correct
        if out.correct and out.latency is not None and out.latency < self.best_latency:
            self.best_latency = out.latency
            self.best_plans = (*chain, out.plan)
            self.best_code = getattr(self.env.unwrapped, "code", None) or out.obs.get("code", "")
            self.best_episode = _episode_state(self.env)
        self.trace.append((self.samples, self.best_latency))
        self.steps.append(
            {
                "sample": self.samples,
                "plan": out.plan,
                "correct": out.correct,
                "latency": out.latency,
                "best_latency": self.best_latency,
                "reward": float(out.reward),
                "error_type": out.error_type,
                "note": out.info.get("note") or "",
            }
        )
        # budget gone, or nothing left to gain (the env terminates at the roofline)
        self.env_exhausted = self.env_exhausted or out.budget_exhausted or out.terminated
        return out

    def result(self, agent: str, config: dict[str, Any]) -> EpisodeResult:
        u = envapi.usage(self.env)
        k = self.env.unwrapped.kernel
        base = envapi.baselines(self.env)
        base.setdefault("start", self.start_latency)
        return EpisodeResult(
            agent=agent,
            kernel=k.name,
            seed=self.seed,
            unit=k.unit,
            start_latency=self.start_latency,
            best_latency=self.best_latency,
            baselines=base,
            samples=self.samples,
            failures=self.failures,
            llm_calls=int(u["llm_calls"]),
            tokens=int(u["tokens"]),
            dollars=float(u["dollars"]),
            wall_seconds=time.perf_counter() - self.start_time,
            trace=tuple(self.trace),
            steps=tuple(self.steps),
            episode=self.best_episode or _episode_state(self.env),
            best_plans=self.best_plans,
            config=config,
            best_code=self.best_code,
        )


def jsonable(value: Any) -> Any:
    """`value` if JSON can hold it, else its name or repr (a config must always serialize)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return getattr(value, "name", None) or type(value).__name__


class Agent:
    """Base class: subclasses set `name` and implement `run`. `config()` is what the constructor was given."""

    name = "agent"

    def __init__(self, samples: int | None = None):
        self.samples = samples  # the agent's own sample budget; None: until the env's budget runs out

    def config(self) -> dict[str, Any]:
        return {"agent": self.name, **{k: jsonable(v) for k, v in vars(self).items() if not k.startswith("_")}}

    def run(self, env: gym.Env, seed: int) -> EpisodeResult:
        raise NotImplementedError
