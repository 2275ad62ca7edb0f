"""Agents for the autocomp environments, acting only through the env API (`agents.envapi`).

    import gymnasium as gym, autocomp_env
    from agents import BeamSearchAgent
    env = gym.make("autocomp/Gemmini-matmul-v0", kernel="gemmini/matmul-512x512x512")
    result = BeamSearchAgent().run(env, seed=0)  # an EpisodeResult: best latency, speedups, trace, plans, code

Agents: `random`, `greedy`, `beam` (Autocomp's beam search), `llm` (an LLM planner), `learned` (a torch
policy, `agents.learned`), `reuse` (schedule reuse); `make_agent(name, **kwargs)`, registry `AGENTS`.
Rollouts: `agents.rollouts.run_jobs(jobs_for(...), out_dir, backend="serial"|"ray")` into a crash-safe,
resumable `agents.results.ResultStore`. Benchmarks: `agents.bench.run_bench` / `bench_main` / `report_main`.
Target experiments: `python -m agents.experiments roofline|reuse|suite`.
"""

from agents.base import Agent, EpisodeResult
from agents.beam import BeamSearchAgent
from agents.llm_policy import LLMPolicyAgent
from agents.registry import AGENTS, make_agent
from agents.reuse import ScheduleReuseAgent
from agents.simple import GreedyAgent, RandomAgent


def __getattr__(name: str):
    if name in ("LearnedPolicyAgent", "MenuPolicy"):
        from agents import learned  # noqa: PLC0415  (imports torch: seconds, only for the learned agent)

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
