"""Autocomp's beam search (arXiv 2505.18574; research/autocomp.md §1.3-1.6), acting through the env API.

Per iteration, every beam member (parent) gets `plans` plans, every plan `code_samples` implementations
(env steps from the parent's state). Selection over the pool (incumbents first, then children) follows
Autocomp's `filter_code_candidates`:
- failed candidates are dropped; the pool is sorted by latency with a stable sort, so incumbents win ties;
- parent gate: a child survives only if latency < parent latency x keep, keep = 1.1 in iterations 1-2 and
  1.0 afterwards; incumbents (and the root) are exempt, so the best-so-far is never lost;
- dedup: one candidate per (parent, plan text), i.e. only the best implementation of a plan is kept;
- early stop when the beam's best has not improved by `early_stop_threshold` over `early_stop_iters` iterations.
The defaults 4/4/2/8 spend at most 8 + 7 x 32 = 232 samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agents import envapi
from agents.base import Agent, EpisodeResult, Tracker
from autocomp_env.core import Plan


@dataclass(frozen=True)
class Candidate:
    id: int
    parent: int | None  # None for the root (the starting code)
    parent_latency: float | None
    plan: str
    latency: float
    chain: tuple[str, ...]  # plan texts from the root to this candidate
    state: Any = field(compare=False, repr=False)
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)


def select(
    incumbents: list[Candidate],
    children: list[Candidate],
    beam_size: int,
    iteration: int,
    gate: tuple[float, float] = (1.1, 1.0),
    gate_iters: int = 2,
) -> list[Candidate]:
    """The next beam. `children` must be the correct ones, in evaluation order. Iterations count from 1."""
    keep = gate[0] if iteration <= gate_iters else gate[1]
    incumbent_ids = {c.id for c in incumbents}
    selected: list[Candidate] = []
    seen: set[tuple[int, str]] = set()
    for c in sorted([*incumbents, *children], key=lambda c: c.latency):  # stable: incumbents first on ties
        if c.parent is not None:
            if c.id not in incumbent_ids and not c.latency < c.parent_latency * keep:
                continue
            if (c.parent, c.plan) in seen:
                continue
            seen.add((c.parent, c.plan))
        selected.append(c)
        if len(selected) == beam_size:
            break
    return selected


def should_stop_early(losses: list[float], iters: int, threshold: float) -> bool:
    """Autocomp's rule: stop when losses[-1] / losses[-1 - iters] >= threshold (no improvement)."""
    return iters > 0 and len(losses) > iters and losses[-1] / losses[-1 - iters] >= threshold


class BeamSearchAgent(Agent):
    """Autocomp's beam search. Plans come from `agents.envapi.plans` with `planner` as the source: "menu"
    (each plan picks one applicable item after menu dropout, `dropout` = keep probability, drawn per plan as
    in Autocomp), "env" (the env code model's planner via `propose_plans`, e.g. an LLM's planning prompt),
    or "auto": "menu" when the env's code model plans by menu dropout alone (the offline one), else "env"."""

    name = "beam"

    def __init__(
        self,
        samples: int | None = None,
        beam_size: int = 4,
        plans: int = 4,
        code_samples: int = 2,
        iterations: int = 8,
        dropout: float = 0.25,
        early_stop_iters: int = 0,
        early_stop_threshold: float = 1.0,
        planner: str = "auto",
        prior: tuple[str, ...] = (),
    ):
        super().__init__(samples)
        self.beam_size, self.plans, self.code_samples, self.iterations = beam_size, plans, code_samples, iterations
        if planner not in ("auto", "menu", "env"):
            raise ValueError(f"planner must be 'auto', 'menu' or 'env', got {planner!r}")
        self.dropout, self.planner = dropout, planner
        self.early_stop_iters, self.early_stop_threshold = early_stop_iters, early_stop_threshold
        self.prior = tuple(prior)  # plan texts tried first at each depth (schedule reuse)

    def run(self, env: gym.Env, seed: int) -> EpisodeResult:
        t = Tracker(env, seed, self.samples)
        obs, latency = t.start()
        root = Candidate(0, None, None, "", latency, (), envapi.get_state(env), envapi.mask(obs))
        self.search(env, t, [root], np.random.default_rng(seed))
        return t.result(self.name, self.config())

    def _plans(self, env: gym.Env, parent: Candidate, rng: np.random.Generator, offset: int = 0) -> list[Plan]:
        menu = envapi.menu(env)
        n = self.plans
        plans: list[Plan] = []
        depth = len(parent.chain)
        if depth < len(self.prior):
            text = self.prior[depth]
            plans.append(Plan(text=text, menu_index=menu.index(text) if text in menu else None))
            n -= 1
        if n > 0:
            plans += envapi.plans(
                env, parent.state, parent.mask, n, rng, keep=self.dropout, sample=offset, source=self.planner
            )
        return plans

    def search(
        self,
        env: gym.Env,
        t: Tracker,
        beam: list[Candidate],
        rng: np.random.Generator,
        expanded: dict[int, int] | None = None,
    ) -> list[Candidate]:
        """Run the iterations from `beam` (already evaluated candidates); returns the final beam.
        `expanded`: how many times each candidate id was already expanded (its used rng offsets)."""
        next_id = max(c.id for c in beam) + 1
        losses: list[float] = []
        expansions: dict[int, int] = dict(expanded or {})
        for iteration in range(1, self.iterations + 1):
            losses.append(min(c.latency for c in beam))
            if should_stop_early(losses, self.early_stop_iters, self.early_stop_threshold) or t.exhausted:
                break
            children: list[Candidate] = []
            for parent in beam:
                # An incumbent expanded again must get new draws (set_state restores the rng), so each
                # expansion of a parent starts at its own rng offset: planning first, then the children.
                offset = expansions.get(parent.id, 0) * (self.plans * self.code_samples + 1)
                expansions[parent.id] = expansions.get(parent.id, 0) + 1
                for i, plan in enumerate(self._plans(env, parent, rng, offset)):
                    for k in range(self.code_samples):
                        if t.exhausted:
                            break
                        # a distinct rng position per child, so children of one parent are independent draws
                        envapi.restore(env, parent.state, sample=offset + 1 + i * self.code_samples + k)
                        out = t.step(plan, parent.chain)
                        if out.correct:
                            chain = (*parent.chain, out.plan)
                            state = envapi.get_state(env)
                            children.append(
                                Candidate(
                                    next_id,
                                    parent.id,
                                    parent.latency,
                                    out.plan,
                                    out.latency,
                                    chain,
                                    state,
                                    envapi.mask(out.obs),
                                )
                            )
                        next_id += 1
            beam = select(beam, children, self.beam_size, iteration)
        return beam
