"""Agents for the autocomp environments: baselines, Autocomp's beam search, LLM and learned policies,
schedule reuse; rollouts (serial or Ray) into a crash-safe store; benchmarks and leaderboards."""

from agents.base import Agent, EpisodeResult
from agents.beam import BeamSearchAgent
from agents.llm_policy import LLMPolicyAgent
from agents.registry import AGENTS, make_agent
from agents.reuse import ScheduleReuseAgent
from agents.simple import GreedyAgent, RandomAgent


def __getattr__(name: str):
    if name in ("LearnedPolicyAgent", "MenuPolicy"):  # lazy: torch is slow to import
        from agents import learned

        return getattr(learned, name)
    raise AttributeError(name)


__all__ = [
    "AGENTS",
    "Agent",
    "BeamSearchAgent",
    "EpisodeResult",
    "GreedyAgent",
    "LLMPolicyAgent",
    "LearnedPolicyAgent",
    "MenuPolicy",
    "RandomAgent",
    "ScheduleReuseAgent",
    "make_agent",
]
