"""An LLM as the policy: a planner writes plans for the current code, the env's code model implements them."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents import envapi
from agents.base import Agent, EpisodeResult, Tracker
from autocomp_env.core import Feedback, Plan
from autocomp_env.llm import LLMCodeModel, LLMConfig


class LLMPolicyAgent(Agent):
    """Each step the planner proposes `plans` plans for the current code; each is implemented once (one
    sample) from the current state and the agent moves to the fastest correct child if it beats the current
    code. `planner` is any object with the CodeModel `propose_plans` signature (e.g. the LLM layer's planner);
    None uses the env's own `propose_plans` (its code model's planner). Stops after `patience` idle rounds."""

    name = "llm"

    def __init__(self, samples: int | None = None, plans: int = 4, patience: int = 2, planner: Any = None):
        super().__init__(samples)
        if isinstance(planner, dict):  # an LLM config, e.g. {"model": ..., "base_url": ...}: picklable for Ray jobs
            planner = LLMCodeModel(LLMConfig(**planner))
        self.plans, self.patience, self._planner = plans, patience, planner
        self.planner = getattr(planner, "name", None) or ("env" if planner is None else type(planner).__name__)

    def _propose(
        self, env: gym.Env, obs: dict[str, Any], latency: float, history: tuple, rng: np.random.Generator
    ) -> list[Plan]:
        if self._planner is None:
            return envapi.propose_plans(env, self.plans)
        kernel = env.unwrapped.kernel
        feedback = Feedback(latency=latency, unit=kernel.unit, history=history)
        return list(
            self._planner.propose_plans(
                kernel, obs["code"], feedback, envapi.menu(env), envapi.mask(obs), self.plans, rng
            )
        )

    def run(self, env: gym.Env, seed: int) -> EpisodeResult:
        rng = np.random.default_rng(seed)
        t = Tracker(env, seed, self.samples)
        obs, latency = t.start()
        state, chain, history, stalls = envapi.get_state(env), (), (), 0
        while not t.exhausted and stalls <= self.patience:
            obs = envapi.restore(env, state, sample=stalls)  # after an idle round, ask for new plans
            plans = self._propose(env, obs, latency, history, rng)
            best = None
            for j, plan in enumerate(plans):
                if t.exhausted:
                    break
                envapi.restore(env, state, sample=stalls * len(plans) + j)
                out = t.step(plan, chain)
                if out.correct and (best is None or out.latency < best[0]):
                    best = (out.latency, envapi.get_state(env), (*chain, out.plan), out.obs)
            if best is not None and best[0] < latency:
                latency, state, chain, _ = best
                history = (*history, (chain[-1], latency))
                stalls = 0
            else:
                stalls += 1
            if not plans:
                break
        return t.result(self.name, self.config())
