"""Rewards are objects the env calls per step: the default log-speedup, a baseline-normalized one, and a
user's own class, all without editing `step` (toy target, tests/test_env_fakes.py)."""

import math

import pytest
import test_env_fakes as fakes

from autocomp_env.core import Plan
from autocomp_env.env import AutocompEnv
from autocomp_env.evaluation import Evaluator
from autocomp_env.rewards import REWARDS, BaselineNormalized, LogSpeedup, Reward, Step

fakes.install()
PLANS = [Plan("tile by 4"), Plan("tile 16, unroll"), Plan("vectorize")]


def make(**kw):
    return AutocompEnv(kernel="toy/axpy-1024", evaluator=Evaluator(), **kw)


def walk(env, plans=PLANS):
    env.reset(seed=0)
    return [env.step(p)[1:] for p in plans]


def test_default_reward_is_the_log_speedup_and_its_sum_the_log_of_the_speedup():
    env = make()
    assert isinstance(env.reward, LogSpeedup) and env.reward.failure_penalty == 0.1
    steps = walk(env)
    assert sum(r for r, *_ in steps) == pytest.approx(math.log(steps[-1][-1]["speedup"]))
    assert [r for r, *_ in walk(make(reward="log_speedup"))] == [r for r, *_ in steps]


def test_failures_cost_the_failure_penalty_of_the_reward():
    env = make(fault_rate=1.0, failure_penalty=0.3)
    env.reset(seed=0)
    _, r, *_, info = env.step(0)
    assert not info["correct"] and r == -0.3


def test_baseline_normalized_reward_divides_the_saved_time_by_the_vendor_latency():
    env = make(reward="baseline_normalized")
    vendor = env.unwrapped.baseline_latencies()["vendor"]
    env.reset(seed=0)
    before = env.latency
    _, r, *_, info = env.step(PLANS[1])
    assert info["correct"] and r == pytest.approx((before - info["latency"]) / vendor)
    with pytest.raises(ValueError, match="unknown baseline"):
        make(reward=BaselineNormalized(baseline="nope")).reset(seed=0)


class SpeedupSquared(Reward):
    """A user's reward: no edit of the env, just a class."""

    name = "speedup_squared"

    def reset(self, env):
        self.resets = getattr(self, "resets", 0) + 1

    def __call__(self, step: Step) -> float:
        return (step.previous_latency / step.latency) ** 2 if step.correct else -1.0


def test_a_new_reward_is_a_new_class_and_sees_each_step():
    reward = SpeedupSquared()
    env = make(reward=reward)
    steps = walk(env)
    assert reward.resets == 1
    latencies = [env.start_latency] + [info["latency"] for *_, info in steps]
    assert [r for r, *_ in steps] == pytest.approx([(a / b) ** 2 for a, b in zip(latencies[:-1], latencies[1:], strict=True)])


def test_bad_rewards_are_value_errors():
    with pytest.raises(ValueError, match="unknown reward"):
        make(reward="nope")
    with pytest.raises(ValueError, match="must be a name or a Reward"):
        make(reward=3)
    with pytest.raises(ValueError, match="failure_penalty"):
        LogSpeedup(float("nan"))
    assert set(REWARDS) == {"log_speedup", "baseline_normalized"}
