"""Agents on the scripted fake env (tests/test_agents_fake.py): budgets, determinism, Autocomp's beam rules."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import test_agents_fake as fake

from agents import envapi
from agents.base import EpisodeResult
from agents.beam import BeamSearchAgent, Candidate, select, should_stop_early
from agents.llm_policy import LLMPolicyAgent
from agents.registry import AGENTS, make_agent
from agents.reuse import ScheduleReuseAgent
from agents.simple import GreedyAgent, RandomAgent
from autocomp_env.codemodel import menu_plans
from autocomp_env.core import Plan


def make(kernel: str = "fake/matmul-256", **kw) -> gym.Env:
    return gym.make(fake.ENV_ID, kernel=kernel, disable_env_checker=True, **kw)


def strip(r: EpisodeResult) -> EpisodeResult:
    return dataclasses.replace(r, wall_seconds=0.0)


@pytest.mark.parametrize(
    "agent", [RandomAgent(samples=40), GreedyAgent(samples=40), LLMPolicyAgent(samples=40), BeamSearchAgent(samples=40)]
)
def test_agent_respects_budget_is_deterministic_and_improves(agent):
    a, b = agent.run(make(), seed=3), agent.run(make(), seed=3)
    assert strip(a) == strip(b)
    assert 0 < a.samples <= 40 and len(a.trace) == a.samples
    assert a.best_speedup > 1.0
    bests = [lat for _, lat in a.trace]
    assert bests == sorted(bests, reverse=True)  # best-so-far never gets worse
    assert a.best_latency == bests[-1]
    assert a.best_plans and all(p in fake.MENU for p in a.best_plans)
    assert EpisodeResult.from_dict(a.to_dict()) == a


def test_different_seeds_explore_differently():
    runs = {RandomAgent(samples=30).run(make(), seed=s).best_plans for s in range(4)}
    assert len(runs) > 1


def _cand(id, parent, parent_lat, plan, lat):
    return Candidate(id, parent, parent_lat, plan, lat, (), None)


def test_gate_is_10_percent_in_iterations_1_and_2_then_strict():
    root = _cand(0, None, None, "", 100.0)
    slower = _cand(1, 0, 100.0, "a", 105.0)
    equal = _cand(2, 0, 100.0, "b", 100.0)
    faster = _cand(3, 0, 100.0, "c", 99.0)
    too_slow = _cand(4, 0, 100.0, "d", 111.0)  # not < 100 * 1.1
    for it in (1, 2):
        assert [c.id for c in select([root], [slower, equal, faster, too_slow], 8, it)] == [3, 0, 2, 1]
    assert [c.id for c in select([root], [slower, equal, faster, too_slow], 8, 3)] == [3, 0]


def test_incumbents_first_win_ties_are_exempt_and_best_is_never_lost():
    # Incumbent 5 is slower than its own parent (it entered at iteration 1 under the 1.1 gate): exempt now.
    best = _cand(5, 0, 100.0, "a", 90.0)
    regressed = _cand(6, 0, 100.0, "b", 104.0)
    tie = _cand(7, 5, 90.0, "c", 90.0)  # equal to its parent: fails the strict gate anyway
    tie_other = _cand(8, 6, 104.0, "c", 90.0)  # beats its parent, ties incumbent 5: incumbent first
    worse = [_cand(9, 5, 90.0, "d", 120.0), _cand(10, 6, 104.0, "e", 130.0)]
    beam = select([best, regressed], [tie, tie_other, *worse], 2, iteration=5)
    assert [c.id for c in beam] == [5, 8]
    beam = select([best, regressed], worse, 4, iteration=5)
    assert [c.id for c in beam] == [5, 6]  # nothing survives the gate: the incumbents stay, best kept


def test_dedup_keeps_best_implementation_per_parent_and_plan():
    root = _cand(0, None, None, "", 100.0)
    impl1 = _cand(1, 0, 100.0, "tile", 80.0)
    impl2 = _cand(2, 0, 100.0, "tile", 70.0)
    other = _cand(3, 0, 100.0, "unroll", 90.0)
    beam = select([root], [impl1, impl2, other], 4, 1)
    assert [c.id for c in beam] == [2, 3, 0]
    # the same plan text from different parents is not a duplicate
    p = _cand(4, 2, 70.0, "tile", 60.0)
    q = _cand(5, 3, 90.0, "tile", 65.0)
    assert [c.id for c in select([impl2, other], [p, q], 4, 3)] == [4, 5, 2, 3]


def test_beam_size_caps_and_early_stop_rule():
    root = _cand(0, None, None, "", 100.0)
    kids = [_cand(i, 0, 100.0, f"p{i}", 100.0 - i) for i in range(1, 9)]
    assert [c.id for c in select([root], kids, 4, 1)] == [8, 7, 6, 5]
    assert should_stop_early([10, 9, 9, 9], 2, 1.0)
    assert not should_stop_early([10, 9, 8, 7], 2, 1.0)
    assert not should_stop_early([10, 10, 10], 0, 1.0)  # 0 = off


def test_menu_dropout_only_picks_applicable_items():
    rng = np.random.default_rng(0)
    applicable = np.array([1, 0, 1, 0, 1, 0, 0], bool)
    picks = [p.menu_index for _ in range(200) for p in menu_plans(fake.MENU, applicable, 4, 0.25, rng)]
    assert set(picks) == {0, 2, 4}
    assert max(np.bincount(picks)) < 0.5 * len(picks)  # roughly uniform over the applicable items
    assert menu_plans(fake.MENU, np.zeros(7, bool), 4, 0.25, rng) == []


class _ModelPlanner:
    """A code model with a planner of its own (not menu dropout), as an LLM's."""

    name = "scripted"

    def __init__(self, inner):
        self.inner, self.asked = inner, 0

    def implement(self, *a):
        return self.inner.implement(*a)

    def propose_plans(self, kernel, code, feedback, menu, mask, n, rng):
        self.asked += 1
        return [Plan(menu[0], 0)][:n]


def test_agents_plan_through_one_planner_that_asks_a_model_only_when_it_has_one():
    import test_env_fakes as toy

    from autocomp_env.env import AutocompEnv
    from autocomp_env.evaluation import Evaluator

    toy.install()
    env = AutocompEnv(kernel="toy/axpy-1024", evaluator=Evaluator())
    obs, _ = env.reset(seed=0)
    state, rng = env.get_state(), np.random.default_rng(1)
    assert envapi.plans_from_menu(env)  # the offline model plans by menu dropout alone: drawn here
    plans = envapi.plans(env, state, obs["mask"], 3, rng, keep=0.5)
    assert plans == menu_plans(env.menu, obs["mask"], 3, 0.5, np.random.default_rng(1))
    assert not [e for e in env.get_state().events if e["kind"] == "propose"]  # the env was not asked
    model = _ModelPlanner(env.code_model)
    env = AutocompEnv(kernel="toy/axpy-1024", evaluator=Evaluator(), code_model=model)
    obs, _ = env.reset(seed=0)
    assert not envapi.plans_from_menu(env)
    assert envapi.plans(env, env.get_state(), obs["mask"], 3, rng) == [Plan(env.menu[0], 0)]
    assert model.asked == 1 and env.get_state().events[-1]["kind"] == "propose"  # recorded for replay
    with pytest.raises(ValueError, match="plan source"):
        envapi.plans(env, env.get_state(), obs["mask"], 3, rng, source="llm")


def test_beam_default_budget_is_at_most_232_samples_and_iteration_one_spends_8():
    r = BeamSearchAgent().run(make(fault_rate=0.0), seed=0)
    assert r.samples <= 232
    assert BeamSearchAgent(iterations=1).run(make(), seed=0).samples == 8
    # a full beam of 4 parents x 4 plans x 2 samples
    r2 = BeamSearchAgent(iterations=2).run(make(fault_rate=0.0), seed=1)
    assert r2.samples in range(8 + 8, 8 + 32 + 1, 8)


def test_beam_respects_env_budget():
    r = BeamSearchAgent().run(make(budget={"samples": 50}), seed=0)
    assert r.samples == 50


def test_beam_with_default_budget_reaches_the_optimum_of_the_fake_space():
    for seed in range(3):
        env = make(fault_rate=0.0)
        r = BeamSearchAgent().run(env, seed)
        assert r.best_latency <= 1.05 * fake.best_latency(env.unwrapped.kernel)


class ScriptedPlanner:
    """Proposes only loop unrolling and tiling; records what it was shown."""

    name = "scripted"

    def __init__(self):
        self.seen = []

    def propose_plans(self, kernel, code, feedback, menu, mask, n, rng):
        self.seen.append((feedback.latency, code))
        return [Plan("loop unrolling", 2), Plan("modify loop tiling", 0)][:n]


def test_llm_policy_uses_its_planner_and_feeds_back_latency():
    planner = ScriptedPlanner()
    r = LLMPolicyAgent(samples=20, plans=2, planner=planner).run(make(), seed=0)
    assert set(r.best_plans) <= {"loop unrolling", "modify loop tiling"}
    assert planner.seen[0][0] == r.start_latency
    assert "autocomp-schedule" in planner.seen[0][1]
    assert r.config["planner"] == "scripted"


def test_schedule_reuse_replays_a_good_schedule_and_beats_scratch_at_small_budget():
    src = BeamSearchAgent().run(make("fake/matmul-256"), seed=0)
    target = "fake/matmul-512"
    reuse = [ScheduleReuseAgent(samples=24, schedule=src.best_plans).run(make(target), seed=s) for s in range(4)]
    scratch = [BeamSearchAgent(samples=24).run(make(target), seed=s) for s in range(4)]
    assert all(r.samples <= 24 for r in reuse)
    assert reuse[0].config["reused_schedule"] == list(src.best_plans)
    assert np.mean([np.log(r.best_speedup) for r in reuse]) > np.mean([np.log(r.best_speedup) for r in scratch])


def test_registry_builds_every_agent_and_rejects_unknown():
    assert {"random", "greedy", "beam", "llm", "learned", "reuse"} <= set(AGENTS)
    assert isinstance(make_agent("beam", beam_size=2), BeamSearchAgent)
    assert isinstance(make_agent("agents.simple:RandomAgent", samples=3), RandomAgent)
    with pytest.raises(KeyError, match="unknown agent"):
        make_agent("nope")
    with pytest.raises(ValueError):
        make_agent("reuse")


def test_envapi_restore_returns_observation_of_that_state():
    env = make()
    obs, _ = env.reset(seed=0)
    state = envapi.get_state(env)
    env.step(0)
    back = envapi.restore(env, state)
    assert back["code"] == obs["code"]


def test_restore_with_sample_k_gives_independent_implementations():
    env = make(fault_rate=0.0)
    env.reset(seed=0)
    state = envapi.get_state(env)
    again = []
    for k in (0, 0, 1, 2, 3):
        envapi.restore(env, state, sample=k)
        again.append(envapi.step(env, 0).latency)  # "modify loop tiling" draws a random tile size
    assert again[0] == again[1]  # set_state restores the rng: same action, same candidate
    assert len(set(again[1:])) > 1


def test_best_code_is_the_code_of_the_best_candidate():
    r = BeamSearchAgent(samples=40).run(make(fault_rate=0.0), seed=0)
    schedule = tuple(int(v) for v in r.best_code.split("[")[1].rstrip("]").split(","))
    assert fake.latency_of(fake.fake_kernel("fake/matmul-256"), schedule) == r.best_latency


def test_an_incumbent_expanded_again_gets_new_draws():
    # every candidate fails, so the root stays the whole beam and is expanded in every iteration
    env = make(fault_rate=1.0)
    inner = env.unwrapped
    seen = []
    step = inner.step

    def spy(action):
        seen.append((inner.schedule, str(action), str(inner.np_random.bit_generator.state)))
        return step(action)

    inner.step = spy
    BeamSearchAgent(iterations=4).run(env, seed=0)
    assert len(seen) == 4 * 8 and len(set(seen)) == len(seen)
