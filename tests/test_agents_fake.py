"""A small scripted stand-in for the autocomp env (same API contract), for agent and rollout tests.

It lives in tests on purpose: agents must work on anything honouring the contract. Latency is a
deterministic function of a 5-knob schedule; the "code model" changes one knob per menu item, drawing
open parameters from the env's rng, and fails with probability `fault_rate`.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from autocomp_env.core import Kernel, Plan

MENU = (
    "modify loop tiling",
    "loop reordering",
    "loop unrolling",
    "double buffering",
    "hoist redundant operations out of loops",
    "simplify arithmetic",
    "other methods not listed here",
)
KNOBS = {0: ("tile", 5), 1: ("order", 2), 2: ("unroll", 4), 3: ("dbuf", 2), 4: ("hoist", 2)}  # item -> knob
ENV_ID = "autocomp-test/Fake-v0"


def fake_kernel(name: str) -> Kernel:
    n = int(name.rsplit("-", 1)[1])
    return Kernel(
        name=name, target="fake", family="matmul", spec={"n": n}, macs=n**3, roofline=n**3 / 256, unit="cycles"
    )


def latency_of(kernel: Kernel, s: tuple[int, ...]) -> float:
    tile, order, unroll, dbuf, hoist = s
    n = kernel.spec["n"]
    # Best tile depends on the shape, so schedules transfer only between similar shapes.
    best_tile = min(4, int(math.log2(n)) - 4)
    factor = (
        (1 + abs(tile - best_tile))
        * (1.6 - 0.3 * order)
        * (1.5 - 0.12 * unroll)
        * (1.4 - 0.3 * dbuf)
        * (1.3 - 0.2 * hoist)
    )
    return float(round(kernel.roofline * 1.05 * factor, 3))


def best_latency(kernel: Kernel) -> float:
    """The optimum over the whole schedule space (brute force), to check searches against."""
    return min(latency_of(kernel, s) for s in itertools.product(range(5), range(2), range(4), range(2), range(2)))


@dataclass(frozen=True)
class FakeState:
    schedule: tuple[int, ...]
    latency: float
    steps: int
    rng: dict


class FakeEnv(gym.Env):
    def __init__(
        self,
        kernel: str = "fake/matmul-64",
        budget: dict | None = None,
        max_steps: int = 32,
        fault_rate: float = 0.1,
        action_mode: str = "menu",
    ):
        self.kernel = fake_kernel(kernel)
        self.menu = MENU
        self.max_steps, self.fault_rate = max_steps, fault_rate
        self.sample_budget = (budget or {}).get("samples")
        self.action_space = spaces.Discrete(len(MENU))
        self.observation_space = spaces.Dict(
            {
                "code": spaces.Text(10_000),
                "features": spaces.Box(-1e9, 1e9, (8,), np.float32),
                "mask": spaces.MultiBinary(len(MENU)),
            }
        )
        self.usage = {"samples": 0, "llm_calls": 0, "tokens": 0, "dollars": 0.0}

    def _mask(self) -> np.ndarray:
        s = self.schedule
        m = np.array([True, s[1] == 0, s[2] < 3, s[3] == 0, s[4] == 0, True, False])
        return m.astype(np.int8)

    def observation(self) -> dict:
        code = f"// autocomp-schedule: {list(self.schedule)}"
        feats = np.array(
            [*self.schedule, math.log(self.latency), math.log(self.kernel.spec["n"]), self.steps / self.max_steps],
            np.float32,
        )
        return {"code": code, "features": feats, "mask": self._mask()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.schedule = (0, 0, 0, 0, 0)
        self.latency = self.best = latency_of(self.kernel, self.schedule)
        self.steps = 0
        return self.observation(), {"latency": self.latency}

    def get_state(self) -> FakeState:
        return FakeState(self.schedule, self.latency, self.steps, copy.deepcopy(self.np_random.bit_generator.state))

    def set_state(self, state: FakeState) -> None:
        """Like the real env: the rng is restored too, so the same action from a state repeats itself."""
        self.schedule, self.latency, self.steps = state.schedule, state.latency, state.steps
        self.np_random.bit_generator.state = copy.deepcopy(state.rng)

    def propose_plans(self, n: int) -> list[Plan]:
        items = np.flatnonzero(self._mask())
        return [Plan(MENU[i], int(i)) for i in self.np_random.choice(items, n)]

    def baseline_latencies(self) -> dict:
        start = latency_of(self.kernel, (0, 0, 0, 0, 0))
        return {"start": start, "vendor": start / 3, "expert": start / 5, "roofline": self.kernel.roofline}

    def step(self, action):
        plan = (
            action
            if isinstance(action, Plan)
            else Plan(MENU[action], action)
            if isinstance(action, (int, np.integer))
            else Plan(str(action))
        )
        item = plan.menu_index if plan.menu_index is not None else (MENU.index(plan.text) if plan.text in MENU else 6)
        self.steps += 1
        self.usage["samples"] += 1
        s = list(self.schedule)
        if item in KNOBS and self._mask()[item]:
            name, size = KNOBS[item]
            s[item] = int(self.np_random.integers(size)) if name in ("tile", "unroll") else 1
        correct = self.np_random.random() >= self.fault_rate
        info = {"plan": plan, "correct": correct, "error_type": None if correct else "wrong_output"}
        if correct:
            new = latency_of(self.kernel, tuple(s))
            reward = math.log(self.latency / new)
            self.schedule, self.latency = tuple(s), new
            self.best = min(self.best, new)
            info["latency"] = new
        else:
            reward = -1.0
            info["latency"] = None
        left = None if self.sample_budget is None else self.sample_budget - self.usage["samples"]
        info |= {"best_latency": self.best, "budget_left": {"samples": left} if left is not None else {}}
        terminated = left is not None and left <= 0
        return self.observation(), reward, terminated, self.steps >= self.max_steps, info


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point="test_agents_fake:FakeEnv", disable_env_checker=True)


class KillOnceAgent:
    """Kills its own worker process the first time it runs (a marker file remembers), then acts randomly:
    the rollout must retry the job and still finish everything."""

    name = "kill-once"

    def __init__(self, marker: str, samples: int = 8):
        self.marker, self.samples = marker, samples

    def config(self) -> dict:
        return {"agent": self.name, "samples": self.samples}

    def run(self, env, seed):
        import os

        from agents.simple import RandomAgent

        if not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)
        return RandomAgent(samples=self.samples).run(env, seed)
