"""Agents on the real AutocompEnv over the env's toy family (tests/test_env_fakes.py): the env contract as
written, replayable search positions, and the rollout path through `gymnasium.make`."""

from __future__ import annotations

import gymnasium as gym
import pytest
import test_env_fakes as fakes

from agents import envapi
from agents.beam import BeamSearchAgent
from agents.llm_policy import LLMPolicyAgent
from agents.reuse import ScheduleReuseAgent
from agents.simple import GreedyAgent, RandomAgent
from autocomp_env.evaluation import Evaluator
from autocomp_env.replay import replay

fakes.install()


def make(**kw) -> gym.Env:
    return gym.make(fakes.TOY_ID, evaluator=Evaluator(), **kw)


@pytest.mark.parametrize(
    "agent", [RandomAgent(samples=12), GreedyAgent(samples=12), LLMPolicyAgent(samples=12), BeamSearchAgent(samples=12)]
)
def test_agents_run_on_the_real_env(agent):
    r = agent.run(make(fault_rate=0.2), seed=1)
    assert 0 < r.samples <= 12 and r.best_speedup > 1
    assert set(r.baselines) == {"start", "vendor", "expert", "roofline"}
    assert r.best_latency == pytest.approx(fakes.ToySimulator().run(r.best_code, "toy/axpy-1024").latency)


@pytest.mark.parametrize("agent", [RandomAgent(samples=16), BeamSearchAgent(samples=16)])
def test_the_saved_episode_replays_to_the_best_candidate(agent):
    # Beam and random search move the env around; the episode kept is the position of the best candidate.
    from autocomp_env.episode import EpisodeState, code_hash

    r = agent.run(make(), seed=2)
    state = EpisodeState.from_dict(r.episode)
    assert state.latency == r.best_latency and state.code_hash == code_hash(r.best_code)
    env = replay(state, evaluator=Evaluator())
    assert env.latency == r.best_latency and env.code == r.best_code


def test_independent_code_samples_stay_exactly_replayable():
    env = make()
    env.reset(seed=0)
    root = envapi.get_state(env)
    lats = set()
    for k in range(4):
        envapi.restore(env, root, sample=k)
        out = envapi.step(env, 0)  # tiling draws its factor from the rng
        lats.add(out.latency)
        state = envapi.get_state(env)
        assert replay(state, evaluator=Evaluator()).unwrapped.latency == state.latency
    assert len(lats) > 1


def test_env_budget_stops_the_beam():
    r = BeamSearchAgent().run(make(budget={"samples": 10}), seed=0)
    assert r.samples == 10


def test_reuse_replays_a_schedule_on_the_real_env():
    r = ScheduleReuseAgent(samples=6, schedule=("loop unrolling", "vectorize")).run(make(), seed=0)
    assert r.best_plans[:2] == ("loop unrolling", "vectorize")
