"""NumericObservation and stock Gymnasium wrappers on top of it."""

import gymnasium as gym
import numpy as np
import pytest
import test_env_fakes as fakes
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import FlattenObservation, NormalizeObservation, RecordEpisodeStatistics, TimeLimit

from autocomp_env.env import AutocompEnv, feature_names
from autocomp_env.evaluation import Evaluator
from autocomp_env.wrappers import NumericObservation

fakes.install()


@pytest.mark.parametrize("mode", ["menu", "both", "plan"])
def test_numeric_observation_is_a_flat_box_with_menu_actions(mode):
    env = NumericObservation(AutocompEnv(kernel="toy/axpy-1024", action_mode=mode, evaluator=Evaluator()))
    n = len(fakes.MENU)
    assert env.action_space == gym.spaces.Discrete(n)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (len(feature_names("toy")) + n,)
    assert env.observation_space.contains(obs) and list(obs[-n:]) == [1, 1, 1, 0, 0]
    assert env.feature_names[0] == "log_latency_ratio" and env.feature_names[-1] == "mask:" + fakes.MENU[-1]
    obs, r, *_ = env.step(np.int64(2))
    assert r > 0 and obs[-3] == 0  # vectorized: item 2 no longer applies
    check_env(env, skip_render_check=True)


def test_stock_wrappers_run_episodes_on_the_numeric_env():
    env = gym.make(fakes.TOY_ID, evaluator=Evaluator(), max_steps=50)
    env = RecordEpisodeStatistics(NormalizeObservation(FlattenObservation(TimeLimit(NumericObservation(env), 6))))
    env.action_space.seed(0)
    for seed in range(2):
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
        assert info["episode"]["l"] == 6 and np.isfinite(info["episode"]["r"])


def test_numeric_observation_refuses_other_envs():
    with pytest.raises(ValueError):
        NumericObservation(gym.make("CartPole-v1"))
