"""The text interface for LLM policies: prompts as observations, answers as actions, group rollouts."""

import math

import numpy as np
import pytest

from autocomp_env.textenv import TURN_METRICS, ScriptedPolicy, TextEnv, group_advantages, mean_metrics

KERNEL = "gemmini-exo-small:0"


@pytest.fixture
def env(tmp_path):
    e = TextEnv(KERNEL, max_turns=3, cache_dir=str(tmp_path))
    yield e
    e.close()


def test_observation_is_autocomps_planning_prompt_with_hardware_feedback(env):
    obs = env.reset(seed=0)
    text = obs.prompt
    assert obs.messages[0]["role"] == "system" and obs.messages[-1]["role"] == "user"
    for section in ("# Target: Gemmini", "# Current code", "# Optimization menu", "# Task", "# Rules"):
        assert section in text
    assert "The latency of this code is" in text and "utilization" in text
    assert "Hardware feedback from the simulator" in text
    assert "void solution" in text
    # the menu after dropout: only the shown items appear, numbered by their index in the full menu
    for i in obs.shown:
        assert f"{i + 1}. {env.env.menu[i]}" in text
    assert len(obs.shown) < len(env.env.menu)


def test_same_seed_same_prompt_other_seed_other_dropout(tmp_path):
    a, b = TextEnv(KERNEL, cache_dir=str(tmp_path)), TextEnv(KERNEL, cache_dir=str(tmp_path))
    assert a.reset(seed=3).messages == b.reset(seed=3).messages
    shown = {a.reset(seed=s).shown for s in range(6)}
    assert len(shown) > 1


def test_an_answer_naming_a_shown_option_acts_as_that_menu_item(env):
    obs = env.reset(seed=0)
    i = obs.shown[0]
    turn = env.step(f"Option {i + 1}: apply it to the main loop.")
    assert turn.metrics["menu_index"] == i and turn.info["menu_index"] == i
    assert set(turn.metrics) == set(TURN_METRICS)
    if turn.metrics["correct"]:
        assert turn.reward == pytest.approx(math.log(turn.info["start_latency"] / turn.info["candidate_latency"]))
        assert turn.metrics["roofline_fraction"] == pytest.approx(
            env.kernel.roofline / turn.info["candidate_latency"]
        )
    assert turn.observation.turn == 1 and env.observation is turn.observation


def test_an_answer_without_a_plan_is_a_failed_turn_and_changes_nothing(env):
    env.reset(seed=0)
    code, samples = env.env.code, env.env.usage.samples
    turn = env.step("   ")
    assert turn.reward == pytest.approx(-env.env.failure_penalty)
    assert turn.metrics["error_type"] == "format_error" and turn.metrics["format_ok"] == 0.0
    assert env.env.code == code and env.env.usage.samples == samples


def test_group_evaluates_n_answers_from_one_state_deterministically(tmp_path):
    def run():
        e = TextEnv(KERNEL, cache_dir=str(tmp_path))
        obs = e.reset(seed=1)
        code = e.env.code
        answers = [f"Option {i + 1}: go" for i in obs.shown] * 2
        turns = e.group(answers)
        assert e.env.code == code and e.turn == 0  # the state did not move
        return [t.reward for t in turns], e

    r1, e = run()
    r2, _ = run()
    assert r1 == r2 and len(r1) == 2 * len(e.observation.shown)
    adv = group_advantages(r1)
    assert abs(adv.mean()) < 1e-9
    assert np.allclose(group_advantages([0.3, 0.3]), 0.0)
    best = int(np.argmax(r1))
    turn = e.adopt(best)
    assert e.turn == 1 and turn.observation is e.observation
    if turn.metrics["correct"]:
        assert e.env.latency == pytest.approx(turn.info["candidate_latency"])
    with pytest.raises(IndexError):
        e.adopt(0)  # a group is used once


def test_episode_ends_after_max_turns(env):
    obs = env.reset(seed=0)
    policy = ScriptedPolicy(seed=0)
    turns = []
    while not env.done:
        turns.append(env.step(policy(obs)))
        obs = turns[-1].observation
    assert 1 <= len(turns) <= env.max_turns
    with pytest.raises(RuntimeError):
        env.step("Option 1: again")
    assert mean_metrics(turns)["reward"] == pytest.approx(np.mean([t.reward for t in turns]))


def test_code_mode_evaluates_the_policys_code(tmp_path):
    e = TextEnv(KERNEL, mode="code", cache_dir=str(tmp_path))
    obs = e.reset(seed=0)
    assert "Return the complete new code in one ```c fenced block." in obs.prompt
    expert = e.env.family.baselines(e.kernel)["expert"]
    good = e.group([f"Option 1: tile.\n```c\n{expert}\n```"])[0]
    assert good.metrics["correct"] == 1.0 and good.reward > 0
    assert good.reward == pytest.approx(math.log(e.env.start_latency / good.info["candidate_latency"]))
    bad = e.step("Option 1: oops.\n```c\nvoid solution(int x) { return; }\n```")
    assert bad.metrics["correct"] == 0.0 and bad.reward == pytest.approx(-0.1)
    assert bad.metrics["error_type"] not in (None, "format_error")
    none = e.step("I would tile the loops.")
    assert none.metrics["error_type"] == "format_error"


def test_trainium_plan_mode(tmp_path):
    e = TextEnv("trainium-tutorial-small:0", cache_dir=str(tmp_path))
    obs = e.reset(seed=0)
    assert "```python" in obs.prompt and "@nki.jit" in obs.prompt
    turn = e.step(ScriptedPolicy(0)(obs))
    assert turn.info["unit"] == "us" and set(turn.metrics) == set(TURN_METRICS)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="mode"):
        TextEnv(KERNEL, mode="chat")
    with pytest.raises(ValueError, match="code_model"):
        TextEnv(KERNEL, mode="code", code_model="offline")


def test_the_readme_text_interface_example_runs(tmp_path):
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "from autocomp_env.textenv import" in b]
    assert blocks, "the README's text-interface example is missing"
    r = subprocess.run([sys.executable, "-c", blocks[0]], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "roofline_fraction" in r.stdout


def test_prompt_without_the_isa_summary_for_small_models(tmp_path):
    import dataclasses

    from autocomp_env.textenv import TEXT_PROMPT_OPTIONS

    short = TextEnv(KERNEL, cache_dir=str(tmp_path), prompt_options=dataclasses.replace(TEXT_PROMPT_OPTIONS, include_isa=False))
    full = TextEnv(KERNEL, cache_dir=str(tmp_path))
    a, b = short.reset(seed=0).prompt, full.reset(seed=0).prompt
    assert "# Target:" in b and "# Target:" not in a and "# Kernel" in a and "# Optimization menu" in a
    assert len(a) < len(b)
