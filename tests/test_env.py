"""The Gymnasium env on the toy family (tests/test_env_fakes.py): API, MDP semantics, state, vector envs."""

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import test_env_fakes as fakes
from gymnasium.utils.env_checker import check_env

import autocomp_env  # noqa: F401  (registers the ids)
from autocomp_env.core import Generation, Plan
from autocomp_env.env import CHARSET, AutocompEnv, InvalidActionError, Timing, feature_names
from autocomp_env.episode import EpisodeState, code_hash
from autocomp_env.evaluation import Evaluator

fakes.install()
KERNEL = "toy/axpy-1024"


def make(**kw):
    kw.setdefault("kernel", KERNEL)
    kw.setdefault("evaluator", Evaluator())
    return AutocompEnv(**kw)


def rollout(env, actions, seed=0):
    obs, info = env.reset(seed=seed)
    out = [(obs["features"].tolist(), info["latency"])]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs["code"], obs["features"].tolist(), r, term, trunc, info["latency"], info["note"]))
    return out


@pytest.mark.parametrize("mode", ["menu", "plan", "both"])
def test_check_env_passes_in_every_action_mode(mode):
    check_env(gym.make(fakes.TOY_ID, action_mode=mode, evaluator=Evaluator()).unwrapped)


def test_registered_ids_cover_every_family_and_make_works():
    ids = [i for i in gym.registry if i.startswith("autocomp/")]
    assert len(ids) == 11 and "autocomp/Gemmini-matmul-v0" in ids and "autocomp/Trainium-conv1d-v0" in ids
    env = gym.make(fakes.TOY_ID, evaluator=Evaluator())
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["kernel"] == KERNEL


def test_same_seed_gives_same_trajectory_and_numbers_twice():
    actions = [0, 1, 0, 2, 1, 0, 1]
    a = rollout(make(), actions, seed=7)
    b = rollout(make(), actions, seed=7)
    assert a == b
    # A tiling step draws its factor from the rng, so some seed gives a different trajectory.
    assert any(rollout(make(), [0], seed=s)[1][5] != a[1][5] for s in range(20))


def test_episode_return_is_the_log_speedup_and_failures_leave_state():
    env = make()
    env.reset(seed=3)
    total = 0.0
    for a in [0, 1, 2, 3, 0]:
        _, r, _, _, info = env.step(a)
        total += r
    assert math.isclose(total, math.log(info["speedup"]), rel_tol=1e-9)
    assert info["best_speedup"] >= info["speedup"] > 1.0
    env = make(fault_rate=1.0, failure_penalty=0.25)
    obs0, _ = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(0)
    assert r == -0.25 and not info["correct"] and info["error_type"] == "wrong_output"
    assert info["fault"] and obs["code"] == obs0["code"] and obs["features"][-1] == 0.0


def test_inapplicable_item_or_unreadable_plan_is_a_zero_reward_step_with_a_note():
    env = make(action_mode="plan")
    env.reset(seed=0)
    _, r, _, _, info = env.step("make it go brrr")
    assert r == 0.0 and "not understood" in info["note"] and info["step"] == 1
    _, r, _, _, info = env.step(3)  # ints work in plan mode; "fuse loops" never applies to the toy
    assert r == 0.0 and "does not apply" in info["note"]
    _, r, _, _, info = env.step("tile by 8 and unroll")
    assert r > 0 and info["correct"] and '"tile":8' in env.code and '"unroll":2' in env.code


def test_reaching_the_roofline_terminates():
    env = make(kernel="toy/axpy-64-roof15.6")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(Plan("tile 16, unroll, vectorize"))
    assert terminated and info["correct"] and info["latency"] <= 15.6 * 1.01


def test_a_latency_below_the_roofline_is_a_failure_not_a_reward():
    env = make(kernel="toy/axpy-64-roof40")  # the toy simulator's best latency here is ~15.7 < 40
    env.reset(seed=0)
    _, r, terminated, _, info = env.step(Plan("tile 16, unroll, vectorize"))
    assert r == -0.1 and not terminated and info["error_type"] == "beyond_roofline"


def test_budgets_and_max_steps_truncate():
    env = make(budget={"samples": 2})
    env.reset(seed=0)
    assert not env.step(0)[3]
    _, _, _, truncated, info = env.step(1)
    assert truncated and info["budget_left"]["samples"] == 0 and info["usage"]["samples"] == 2
    env.reset(seed=0)  # the budget is per episode
    assert env.usage.samples == 0 and env.total_usage.samples == 2
    env = make(max_steps=3)
    env.reset(seed=0)
    flags = [env.step(3)[3] for _ in range(3)]
    assert flags == [False, False, True]
    with pytest.raises(ValueError):
        make(budget={"samplez": 3})


class PricedModel:
    """A code model that spends tokens (like an LLM) and answers with the code unchanged."""

    name = "priced"

    def implement(self, kernel, code, plan, feedback, rng):
        return Generation(
            code=code, llm_calls=1, prompt_tokens=600, completion_tokens=400, dollars=0.01, model="priced"
        )

    def propose_plans(self, kernel, code, feedback, menu, mask, n, rng):
        return []


def test_token_and_dollar_budgets_count_code_model_spend():
    env = make(code_model=PricedModel(), budget={"tokens": 2500})
    env.reset(seed=0)
    assert not env.step(0)[3]
    obs, _, _, truncated, info = env.step(0)
    assert not truncated and info["usage"]["tokens"] == 2000 and info["tokens"] == 1000
    assert obs["features"][feature_names("toy").index("tokens_left")] == pytest.approx(0.2)
    assert env.step(0)[3]
    env = make(code_model=PricedModel(), budget={"dollars": 0.02})
    env.reset(seed=0)
    assert [env.step(0)[3] for _ in range(2)] == [False, True]


@pytest.mark.parametrize(
    "action",
    [-1, 5, 10**9, "", "   ", "x" * 5000, "y" * (1 << 20), 1.5, None, True, [0], {"kind": 0}, Plan("", None)],
)
def test_bad_actions_raise_invalid_action_and_leave_the_env_usable(action):
    env = make(action_mode="both")
    env.reset(seed=0)
    before = env.get_state()
    with pytest.raises(InvalidActionError) as e:
        env.step(action)
    assert isinstance(e.value, ValueError) and isinstance(e.value, gym.error.InvalidAction) and str(e.value)
    assert env.get_state() == before
    assert env.step({"kind": 0, "menu": 0, "plan": "unused"})[4]["correct"]


def test_random_text_actions_and_unicode_plans_are_legal():
    env = make(action_mode="plan")
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(3):
        obs, r, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and math.isfinite(r)
    _, _, _, _, info = env.step("Tile the loops — use tile 4 → faster “please” 🚀")
    assert info["correct"] and "–" in CHARSET


def test_step_before_reset_raises():
    with pytest.raises(gym.error.ResetNeeded):
        make().step(0)


def test_info_carries_the_documented_keys_and_timing_compares_equal():
    env = make()
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    for key in (
        "latency",
        "cycles",
        "best_latency",
        "speedup",
        "best_speedup",
        "correct",
        "error_type",
        "error_message",
        "plan",
        "note",
        "fault",
        "tokens",
        "dollars",
        "llm_calls",
        "usage",
        "budget_left",
        "step",
        "timing",
    ):
        assert key in info, key
    assert isinstance(info["timing"], Timing) and info["timing"].wall_seconds >= 0
    assert Timing(True, 1.0, 2.0, 3.0, 4.0, None) == Timing(False, 9.0, 9.0, 9.0, 9.0, 1.0)


def test_repeated_candidates_hit_the_cache():
    env = make()
    env.reset(seed=0)
    env.step(2)
    env.reset(seed=0)
    _, _, _, _, info = env.step(2)
    assert info["timing"].cache_hit and info["timing"].sim_seconds == 0.0


def test_fork_is_independent():
    env = make(budget={"samples": 10})
    env.reset(seed=0)
    env.step(0)
    child = env.fork()
    assert child.code == env.code and child.usage.samples == 1
    a = child.step(1)
    b = env.step(1)
    assert a[4]["latency"] == b[4]["latency"]  # same rng state, same step
    child.step(2)
    assert env.usage.samples == 2 and child.usage.samples == 3 and env.code != child.code
    assert env.np_random is not child.np_random


def test_set_state_goes_back_without_rewinding_spend():
    env = make()
    env.reset(seed=0)
    env.step(0)
    state = env.get_state()
    after = [env.step(a)[4]["latency"] for a in (1, 0, 2)]
    env.set_state(state)
    assert env.code == state.code and env.latency == state.latency and env.usage.samples == 4
    assert [env.step(a)[4]["latency"] for a in (1, 0, 2)] == after  # rng restored too


def test_observation_after_set_state_is_the_one_step_returned_there():
    env = make()
    with pytest.raises(gym.error.ResetNeeded):
        env.observation()
    env.reset(seed=0)
    obs, *_ = env.step(0)
    state = env.get_state()
    env.step(1)
    env.set_state(state)
    again = env.observation()
    assert again["code"] == obs["code"] and np.array_equal(again["mask"], obs["mask"])
    assert env.observation_space.contains(again)


def test_propose_plans_are_distinct_applicable_menu_items():
    env = make()
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        plans = env.propose_plans(4)
        idx = [p.menu_index for p in plans]
        assert plans and len(set(idx)) == len(idx) and all(obs["mask"][i] for i in idx)
        assert all(p.text == env.menu[p.menu_index] for p in plans)


def test_baseline_latencies_are_evaluated_once():
    env = make()
    env.reset(seed=0)
    b = env.baseline_latencies()
    assert b["roofline"] == 16.0 and b["expert"] < b["vendor"] < b["start"]
    runs = fakes.ToySimulator.runs
    assert env.baseline_latencies() == b and fakes.ToySimulator.runs == runs


def test_render_ansi_shows_code_and_profile():
    env = make(render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    text = env.render()
    assert "autocomp-schedule" in text and "speedup" in text and "busy" in text
    assert make().render() is None


def test_kernel_argument_forms():
    assert make(kernel="toy/axpy-64").kernel.name == "toy/axpy-64"
    with pytest.raises(ValueError, match="unknown"):
        make(kernel="toy/nosuch-64")
    with pytest.raises(ValueError):
        AutocompEnv()
    with pytest.raises(ValueError):
        make(action_mode="menus")
    with pytest.raises(ValueError):
        make(failure_penalty=float("inf"))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_step_in_parallel(mode):
    kw = {"vector_kwargs": {"context": "fork"}} if mode == "async" else {}
    envs = gym.make_vec(fakes.TOY_ID, num_envs=2, vectorization_mode=mode, cache_dir="", **kw)
    try:
        obs, info = envs.reset(seed=[0, 1])
        assert obs["features"].shape == (2, len(feature_names("toy")))
        obs, r, term, trunc, info = envs.step(np.array([0, 2]))
        assert r.shape == (2,) and np.all(r > 0) and list(info["correct"]) == [True, True]
    finally:
        envs.close()


def test_reset_does_not_trust_a_cached_failure_of_the_starting_code(tmp_path):
    from autocomp_env.cache import EvalCache
    from autocomp_env.kernels import get_kernel, starting_code
    from simulators.result import SimResult

    ev = Evaluator(EvalCache(tmp_path))
    k = get_kernel(KERNEL)
    ev.cache.put(ev.key(k, starting_code(k)), SimResult.failure("cycles", "compile_error", "stale entry"))
    _, info = make(evaluator=ev).reset(seed=0)
    assert info["correct"] and info["latency"] == 4106.0


class RaisingModel(PricedModel):
    name = "raising"

    def implement(self, kernel, code, plan, feedback, rng):
        raise ConnectionError("endpoint down")


def test_a_code_model_that_raises_is_a_failed_step_not_a_crash():
    env = make(code_model=RaisingModel())
    env.reset(seed=0)
    _, r, _, _, info = env.step(0)
    assert r == -0.1 and info["error_type"] == "generation_error" and "endpoint down" in info["error_message"]
    assert info["usage"]["samples"] == 0


def test_set_state_on_a_fresh_env_continues_like_the_original():
    env = make()
    env.reset(seed=4)
    env.step(0)
    state = EpisodeState.from_dict(json.loads(env.get_state().to_json()))
    other = make()
    other.set_state(state)  # no reset needed: the state is complete
    assert other.code == env.code and other.get_state() == env.get_state()
    assert other.step(0)[1:4] == env.step(0)[1:4]
    with pytest.raises(ValueError, match="this env optimizes"):
        make(kernel="toy/axpy-64").set_state(state)


def test_set_state_re_simulates_latencies_instead_of_trusting_the_state():
    env = make()
    env.reset(seed=0)
    env.step(0)
    honest = env.get_state()
    forged = dataclasses.replace(honest, latency=honest.latency * 1e6, start_latency=1e-9, best_latency=1e-9)
    other = make()
    other.set_state(forged)
    assert (other.latency, other.start_latency, other.best_latency) == (
        honest.latency, honest.start_latency, honest.best_latency
    )
    assert other.step(1)[1] == env.step(1)[1]  # the next reward is the honest one
    wrong = dataclasses.replace(honest, code="not code", code_hash=code_hash("not code"))
    with pytest.raises(ValueError, match="not correct"):
        make().set_state(wrong)


class PlanningModel(PricedModel):
    """Like LLMCodeModel: planning calls are only visible in the model's `usage` record."""

    name = "planning"

    def __init__(self):
        from types import SimpleNamespace

        self.usage = SimpleNamespace(calls=0, prompt_tokens=0, completion_tokens=0, dollars=0.0)

    def propose_plans(self, kernel, code, feedback, menu, mask, n, rng):
        self.usage.calls += 1
        self.usage.prompt_tokens += 300
        self.usage.completion_tokens += 50
        self.usage.dollars += 0.002
        return [Plan("loop unrolling")]


def test_planning_spend_of_a_model_counts_against_the_budget():
    env = make(code_model=PlanningModel(), budget={"llm_calls": 3})
    env.reset(seed=0)
    assert env.propose_plans(1) == [Plan("loop unrolling")]
    assert (env.usage.llm_calls, env.usage.tokens, env.usage.dollars) == (1, 350, pytest.approx(0.002))
    _, _, _, truncated, info = env.step(0)  # +1 call for the implementation
    assert info["usage"]["llm_calls"] == 2 and not truncated
    env.propose_plans(1)
    assert env.step(0)[3]  # 4 calls >= 3
