"""The registered envs on the real families and simulators (small kernels). Skipped for a family that is
not importable yet, with the reason."""

import doctest

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import autocomp_env
from autocomp_env import env as env_module
from autocomp_env import targets, wrappers
from autocomp_env.cache import EvalCache
from autocomp_env.episode import validate
from autocomp_env.evaluation import Evaluator
from autocomp_env.kernels import UnknownKernel, get_kernel
from autocomp_env.replay import replay

IDS = sorted(autocomp_env.ENV_IDS)


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    return Evaluator(EvalCache(tmp_path_factory.mktemp("evalcache")))


def make(env_id, evaluator, **kw):
    try:
        return gym.make(env_id, kernel="small", evaluator=evaluator, **kw)
    except (UnknownKernel, ValueError, ImportError) as e:
        pytest.skip(f"{env_id} not available: {e}")


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes_for_every_registered_id_and_action_mode(env_id, evaluator):
    for mode in ("menu", "plan", "both"):
        env = make(env_id, evaluator, action_mode=mode)
        check_env(env.unwrapped)
        env.close()


FAST_IDS = ("autocomp/Gemmini-matmul-v0", "autocomp/Trainium-rmsnorm-v0")


@pytest.mark.parametrize("env_id", [i if i in FAST_IDS else pytest.param(i, marks=pytest.mark.slow) for i in IDS])
def test_menu_steps_move_the_real_kernel_and_replay_exactly(env_id, evaluator):
    env = make(env_id, evaluator)
    obs, info = env.reset(seed=1)
    base = env.unwrapped
    assert info["correct"] and info["latency"] > base.kernel.roofline * 0.999
    improved = False
    for _ in range(6):
        plans = base.propose_plans(1)
        if not plans:
            break
        obs, r, term, trunc, info = env.step(plans[0])
        assert env.observation_space.contains(obs)
        improved |= info["correct"] and r > 0
        if term or trunc:
            break
    assert improved, f"six applicable menu steps never sped up {base.kernel.name}"
    again = replay(base.get_state(), evaluator=evaluator)
    assert again.latency == base.latency and again.code == base.code


def test_validate_a_real_episode_in_a_fresh_process(evaluator):
    env = make("autocomp/Gemmini-matmul-v0", evaluator)
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.unwrapped.propose_plans(1)[0])
    v = validate(env.unwrapped.get_state())
    assert v.ok, v.message


def test_docstring_examples_run():
    try:
        get_kernel("gemmini-exo-small:0")
    except UnknownKernel as e:
        pytest.skip(f"the examples need the Gemmini matmul family: {e}")
    for module in (env_module, wrappers, autocomp_env):
        result = doctest.testmod(module, raise_on_error=False, report=True)
        assert result.failed == 0 and (result.attempted > 0 or module is wrappers)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_on_a_real_family(mode, tmp_path):
    try:
        get_kernel("gemmini-exo-small:0")
    except UnknownKernel as e:
        pytest.skip(f"needs the Gemmini matmul family: {e}")
    envs = gym.make_vec(
        "autocomp/Gemmini-matmul-v0", num_envs=2, vectorization_mode=mode, kernel="small", cache_dir=str(tmp_path)
    )
    try:
        obs, info = envs.reset(seed=[0, 1])
        assert obs["mask"].shape[0] == 2 and list(info["correct"]) == [True, True]
        obs, r, term, trunc, info = envs.step(obs["mask"].argmax(axis=1))
        assert r.shape == (2,) and all(float(x) == float(x) for x in r)
    finally:
        envs.close()


@pytest.mark.parametrize("alias", ["gemmini-exo-small:0", "trainium-tutorial-small:0"])
def test_real_trajectories_are_deterministic_without_any_cache(alias):
    def run():
        try:
            env = gym.make("autocomp_env:" + autocomp_env.env.env_id_for(alias), kernel=alias, cache_dir="")
        except UnknownKernel as e:
            pytest.skip(str(e))
        env.reset(seed=3)
        return [env.step(env.unwrapped.propose_plans(1)[0])[1:] for _ in range(2)]

    a, b = run(), run()
    assert [x[:3] for x in a] == [x[:3] for x in b]
    assert [x[3]["candidate_latency"] for x in a] == [x[3]["candidate_latency"] for x in b]


@pytest.mark.parametrize("env_id", ["autocomp/Gemmini-matmul-v0", "autocomp/Trainium-rmsnorm-v0"])
def test_counter_features_name_counters_the_simulators_report(env_id, evaluator):
    env = make(env_id, evaluator)
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    wanted = [name for name, _ in targets.target(base.kernel.target).counters]
    assert wanted and set(wanted) <= set(base._result.counters), set(wanted) - set(base._result.counters)
    counters = obs["features"][5 : 5 + len(wanted)]
    assert (counters > 0).sum() >= len(wanted) // 2  # most queues/engines do some work on the naive code
