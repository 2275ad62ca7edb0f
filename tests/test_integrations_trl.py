"""TRL adapters: the environment_factory contract (as GRPOTrainer reads it) and the GRPO reward function."""

import inspect

import pytest

pytest.importorskip("trl", reason="TRL adapters need the 'train' extra: pip install -e '.[train]'")
transformers_utils = pytest.importorskip("transformers.utils")

from autocomp_env.integrations.trl import (  # noqa: E402
    CodeToolEnv,
    PlanToolEnv,
    TextEnvReward,
    prompt_dataset,
    trl_dataset,
)
from autocomp_env.textenv import ScriptedPolicy, TextEnv  # noqa: E402

KERNEL = "gemmini-exo-small:0"


def tools_as_trl_sees_them(instance):
    """GRPOTrainer's own reading (grpo_trainer.py): public functions of the class, minus reset and get_reward."""
    names = [n for n, _ in inspect.getmembers(type(instance), predicate=inspect.isfunction)]
    assert "reset" in names and "get_reward" in names
    return [getattr(instance, n) for n in names if n not in ("reset", "get_reward") and not n.startswith("_")]


@pytest.mark.parametrize("cls, tool, arg", [(PlanToolEnv, "submit_plan", "plan"), (CodeToolEnv, "submit_code", "code")])
def test_one_tool_with_a_schema_transformers_can_render(cls, tool, arg):
    tools = tools_as_trl_sees_them(cls())
    assert [t.__name__ for t in tools] == [tool]
    schema = transformers_utils.get_json_schema(tools[0])  # what the chat template renders; raises if malformed
    fn = schema["function"]
    assert fn["name"] == tool and fn["parameters"]["required"] == [arg]
    assert fn["parameters"]["properties"][arg]["type"] == "string"


def test_a_scripted_rollout_in_trls_order(tmp_path):
    env = PlanToolEnv(KERNEL, max_turns=2, cache_dir=str(tmp_path))
    row = trl_dataset([KERNEL], seeds=[3])[0]
    appended = env.reset(**row)
    assert "# Optimization menu" in appended and "submit_plan" in row["prompt"][0]["content"]
    # the scripted policy answers the same prompt the env shows (same kernel and seed)
    text = TextEnv(KERNEL, cache_dir=str(tmp_path))
    policy = ScriptedPolicy(seed=0)
    obs = text.reset(seed=3)
    assert obs.prompt in appended
    answer1 = env.submit_plan(policy(obs))
    assert "Reward" in answer1 and "# Optimization menu" in answer1  # result + next prompt
    env.submit_plan("Option 1: again")
    assert "episode is over" in env.submit_plan("Option 2: too late")
    reward = env.get_reward()
    assert reward == pytest.approx(sum(t.reward for t in env.turns)) and len(env.turns) == 2
    env.reset(**row)
    assert env.get_reward() == pytest.approx(-0.1)  # no tool call: one failure


def test_code_tool_evaluates_the_models_code(tmp_path):
    env = CodeToolEnv(KERNEL, max_turns=1, cache_dir=str(tmp_path))
    env.reset(kernel=KERNEL, seed=0)
    expert = env._env.env.family.baselines(env._env.kernel)["expert"]
    assert env.submit_code(expert).startswith("Correct.")
    assert env.get_reward() > 0


def test_reward_function_scores_a_group_per_prompt(tmp_path):
    ds = prompt_dataset([KERNEL], seeds=[0, 1], cache_dir=str(tmp_path))
    rows = [ds[0], ds[0], ds[1], ds[1]]
    shown0 = TextEnv(KERNEL, cache_dir=str(tmp_path)).reset(seed=0).shown
    completions = [
        [{"role": "assistant", "content": f"Option {shown0[0] + 1}: go"}],
        [{"role": "assistant", "content": ""}],
        "Option 1: tile",
        "nonsense",
    ]
    logged = {}
    reward = TextEnvReward(cache_dir=str(tmp_path))
    rewards = reward(
        [r["prompt"] for r in rows],
        completions,
        kernel=[r["kernel"] for r in rows],
        seed=[r["seed"] for r in rows],
        log_metric=logged.__setitem__,
    )
    assert len(rewards) == 4 and rewards[1] == pytest.approx(-0.1)
    assert set(logged) == {"autocomp/correct", "autocomp/speedup", "autocomp/roofline_fraction", "autocomp/format_ok"}
    assert reward(
        [r["prompt"] for r in rows], completions, kernel=[r["kernel"] for r in rows], seed=[r["seed"] for r in rows]
    ) == rewards  # deterministic
