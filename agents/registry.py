"""The agent registry the CLI and the rollouts use: `AGENTS[name](**kwargs) -> Agent`."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from agents.base import Agent
from agents.beam import BeamSearchAgent
from agents.llm_policy import LLMPolicyAgent
from agents.reuse import ScheduleReuseAgent
from agents.simple import GreedyAgent, RandomAgent


def _learned(**kwargs) -> Agent:
    from agents.learned import LearnedPolicyAgent  # noqa: PLC0415  (torch: seconds, only for this agent)

    return LearnedPolicyAgent(**kwargs)


AGENTS: dict[str, Callable[..., Agent]] = {
    "random": RandomAgent,
    "greedy": GreedyAgent,
    "beam": BeamSearchAgent,
    "llm": LLMPolicyAgent,
    "learned": _learned,
    "reuse": ScheduleReuseAgent,
}


def make_agent(name: str, **kwargs) -> Agent:
    """A registered agent by name, or any Agent class given as "module:Class"."""
    if name in AGENTS:
        return AGENTS[name](**kwargs)
    if ":" in name:
        mod, cls = name.split(":", 1)
        return getattr(importlib.import_module(mod), cls)(**kwargs)
    raise KeyError(f"unknown agent {name!r}; known: {', '.join(sorted(AGENTS))} (or 'module:Class')")
