"""The learned policy: masking, save/load, and it beats random on kernels held out from training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import test_agents_fake as fake
import torch

from agents.learned import LearnedPolicyAgent, MenuPolicy, PolicyConfig, train
from agents.simple import RandomAgent


def make(kernel: str) -> gym.Env:
    return gym.make(fake.ENV_ID, kernel=kernel, max_steps=12)


@pytest.fixture(scope="module")
def policy():
    return train(make, ["fake/matmul-64", "fake/matmul-256"], episodes=96, steps=12, batch=8, seed=0)


def test_masked_items_get_zero_probability():
    p = MenuPolicy(PolicyConfig(obs_dim=4, n_actions=5))
    d = p.dist(np.ones(4, np.float32), np.array([1, 0, 1, 0, 0], bool))
    probs = d.probs.detach()
    assert probs[1] == 0 and probs[3] == 0 and float(probs.sum()) == pytest.approx(1.0)


def test_save_load_roundtrip_gives_the_same_distribution(policy, tmp_path):
    policy.save(tmp_path / "pol")
    back = MenuPolicy.load(tmp_path / "pol.pt")
    assert back.config == policy.config and back.config.trained_on == ("fake/matmul-64", "fake/matmul-256")
    x, m = np.arange(8, dtype=np.float32), np.ones(7, bool)
    assert torch.equal(back.dist(x, m).probs, policy.dist(x, m).probs)
    r = LearnedPolicyAgent(samples=5, policy=str(tmp_path / "pol")).run(make("fake/matmul-64"), 0)
    assert r.samples == 5 and r.config["trained_on"] == ["fake/matmul-64", "fake/matmul-256"]


def test_learned_policy_beats_random_on_held_out_kernels_at_equal_budget(policy):
    for kernel in ("fake/matmul-128", "fake/matmul-512"):  # not trained on
        learned = [LearnedPolicyAgent(samples=12, policy=policy).run(make(kernel), s).best_speedup for s in range(16)]
        rand = [RandomAgent(samples=12).run(make(kernel), s).best_speedup for s in range(16)]
        assert np.mean(np.log(learned)) > np.mean(np.log(rand))


def test_policy_for_another_menu_is_refused():
    p = MenuPolicy(PolicyConfig(obs_dim=8, n_actions=3, menu=("a", "b", "c")))
    with pytest.raises(ValueError, match="another menu"):
        LearnedPolicyAgent(samples=3, policy=p).run(make("fake/matmul-64"), 0)


def test_default_held_out_kernels_are_other_shapes_of_the_training_family():
    from agents.learned import held_out_for
    from autocomp_env.kernels import get_kernel

    train_k = ["gemmini/matmul-128x128x128", "gemmini/matmul-128x64x128"]
    held = held_out_for(train_k)
    assert held and not set(held) & set(train_k)
    assert all(get_kernel(k).family == "matmul" for k in held)
