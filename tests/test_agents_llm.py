"""LLM-driven agents end to end: the LLM layer's local fake server (offline mode) plans and writes code,
the Gemmini simulator measures it."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import autocomp_env  # noqa: F401  (registers the env ids)
from agents.beam import BeamSearchAgent
from agents.llm_policy import LLMPolicyAgent
from autocomp_env.llm import LLMCodeModel, LLMConfig
from autocomp_env.llm.server import FakeLLMServer


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer(mode="offline") as srv:
        yield srv


def make(server):
    model = LLMCodeModel(LLMConfig(model="fake", base_url=server.base_url, cache=False))
    return gym.make("autocomp/Gemmini-matmul-v0", kernel="gemmini-exo-small:0", code_model=model, cache_dir="")


def test_llm_policy_plans_with_the_llm_and_accounts_tokens(server):
    before = len(server.requests)
    # seed 1: its four draws include plans that speed this kernel up (seed 0 draws four that do not, since
    # loading the bank a compute reads costs cycles: pipelining into the same bank gains nothing)
    r = LLMPolicyAgent(samples=4, plans=2).run(make(server), seed=1)
    assert r.samples == 4 and r.llm_calls >= 4 and r.tokens > 0
    assert len(server.requests) - before == r.llm_calls  # every call went to the server, none cached
    assert r.best_speedup > 1 and r.best_plans  # plans are the LLM's own text
    assert all("Option" in p or len(p) > 20 for p in r.best_plans)


def test_beam_uses_the_llm_planner_and_draws_distinct_code_samples(server):
    before = len(server.requests)
    r = BeamSearchAgent(samples=8, plans=2, code_samples=2).run(make(server), seed=0)
    assert r.config["planner"] == "auto" and r.samples == 8
    # the root's planning call(s), then one implementation call per sample
    assert r.llm_calls >= 1 + 8
    # no two requests are identical: the second code sample of a plan is a new draw (another seed), not a
    # repeat of the first (set_state restores the rng, so the agent must advance it)
    bodies = [json.dumps(q["body"], sort_keys=True) for q in server.requests[before:]]
    assert len(set(bodies)) == len(bodies) == r.llm_calls
