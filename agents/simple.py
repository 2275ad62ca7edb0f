"""Baseline agents: a random walk over applicable menu items, and greedy hill climbing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from agents import envapi
from agents.base import Agent, EpisodeResult, Tracker


class RandomAgent(Agent):
    """Picks a uniformly random applicable menu item each step. A correct candidate becomes the new state
    (the env's rule); when the episode hits its step limit the walk restarts from the starting code."""

    name = "random"

    def run(self, env: gym.Env, seed: int) -> EpisodeResult:
        rng = np.random.default_rng(seed)
        t = Tracker(env, seed, self.samples)
        obs, _ = t.start()
        root = envapi.get_state(env)
        chain: tuple[str, ...] = ()
        restarts = 0
        while not t.exhausted:
            items = np.flatnonzero(envapi.mask(obs))
            if items.size == 0:
                break
            out = t.step(int(rng.choice(items)), chain)
            obs = out.obs
            if out.correct:
                chain = (*chain, out.plan)
            if out.done and not t.exhausted:
                if out.budget_exhausted or not chain:
                    break  # restarting would not help
                restarts += 1
                obs, chain = envapi.restore(env, root, sample=restarts), ()
        return t.result(self.name, self.config())


class GreedyAgent(Agent):
    """Hill climbing: from the current code try every applicable menu item (random order), move to the best
    correct child if it is faster, repeat. Stops after `patience` rounds without improvement."""

    name = "greedy"

    def __init__(self, samples: int | None = None, patience: int = 1):
        super().__init__(samples)
        self.patience = patience

    def run(self, env: gym.Env, seed: int) -> EpisodeResult:
        rng = np.random.default_rng(seed)
        t = Tracker(env, seed, self.samples)
        obs, latency = t.start()
        state, chain, stalls = envapi.get_state(env), (), 0
        while not t.exhausted and stalls <= self.patience:
            items = rng.permutation(np.flatnonzero(envapi.mask(obs)))
            if items.size == 0:
                break
            best: tuple[float, object, tuple[str, ...]] | None = None
            for j, item in enumerate(items):
                if t.exhausted:
                    break
                envapi.restore(env, state, sample=stalls * items.size + j)  # independent draws, new ones per round
                out = t.step(int(item), chain)
                if out.correct and (best is None or out.latency < best[0]):
                    best = (out.latency, envapi.get_state(env), (*chain, out.plan))
            if best is not None and best[0] < latency:
                latency, state, chain = best
                stalls = 0
            else:
                stalls += 1
            obs = envapi.restore(env, state)
        return t.result(self.name, self.config())
