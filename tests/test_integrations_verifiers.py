"""The verifiers environment: loaded by verifiers' own loader, its tasks, and an episode played by a scripted
policy through the `run(task, agents)` protocol (the agent stand-in answers like verifiers' interaction:
`turn(text) -> segment` with `last_reply`/`terminated`, and a trace that records rewards and metrics)."""

import asyncio
import contextlib

import pytest

vf = pytest.importorskip(
    "verifiers.v1",
    reason="the verifiers adapter needs verifiers>=0.4 (pip install -e '.[verifiers]', in its own venv: it pins "
    "mcp==2.0.0, which openenv-core's fastmcp does not accept, so CI does not install it)",
)

from autocomp_env.integrations.verifiers_env import RUBRIC, AutocompEnv, load_environment  # noqa: E402
from autocomp_env.textenv import ScriptedPolicy, TextEnv, TextObservation  # noqa: E402

KERNEL = "gemmini-exo-small:0"


class ScriptedTrace:
    def __init__(self):
        self.rewards, self.metrics = {}, {}

    def record_reward(self, name, value, weight=1.0):
        self.rewards[name] = (value, weight)

    def record_metrics(self, values):
        self.metrics.update(values)


class ScriptedInteraction:
    """Plays the model: answers each user turn with the scripted policy's plan for the prompt it got."""

    def __init__(self, task, cache_dir):
        self.trace = ScriptedTrace()
        self.policy = ScriptedPolicy(seed=0)
        self.prompts = [task.data.prompt]
        self.local = TextEnv(KERNEL, cache_dir=cache_dir)
        self.local.reset(seed=task.data.info["seed"])

    async def turn(self, text=None):
        if text is not None:
            self.prompts.append(text)
        obs = self.local.observation
        reply = self.policy(TextObservation(obs.messages, obs.shown, obs.variant, obs.turn, obs.mode))
        self.local.step(reply)  # keep the stand-in's view in step with the env's
        return type("Segment", (), {"terminated": False, "last_reply": reply})()


class ScriptedAgents:
    def __init__(self, cache_dir):
        self.cache_dir = cache_dir
        self.player = self
        self.interactions = []

    @contextlib.asynccontextmanager
    async def interaction(self, task):
        it = ScriptedInteraction(task, self.cache_dir)
        self.interactions.append(it)
        yield it


def test_load_environment_uses_verifiers_loader_and_builds_tasks(tmp_path):
    env = load_environment(kernels=[KERNEL], seeds=2, max_turns=2, cache_dir=str(tmp_path))
    assert isinstance(env, AutocompEnv) and isinstance(env, vf.Env)
    tasks = list(env.taskset.load())
    assert [t.data.info["seed"] for t in tasks] == [0, 1]
    expect = TextEnv(KERNEL, cache_dir=str(tmp_path)).reset(seed=1)
    assert tasks[1].data.prompt == expect.prompt and tasks[1].data.system_prompt == expect.messages[0]["content"]


def test_an_episode_is_scored_by_the_rubric(tmp_path):
    env = load_environment(kernels=[KERNEL], seeds=1, max_turns=2, cache_dir=str(tmp_path))
    task = next(iter(env.taskset.load()))
    agents = ScriptedAgents(str(tmp_path))
    asyncio.run(env.run(task, agents))
    it = agents.interactions[0]
    assert len(it.prompts) == 2 and "# Optimization menu" in it.prompts[1]  # result + next prompt as the user turn
    assert set(it.trace.rewards) == {name for name, _ in RUBRIC}
    assert it.trace.rewards["log_speedup"][1] == 1.0 and it.trace.rewards["correct"][1] == 0.0
    assert it.trace.metrics["turns"] == 2.0
