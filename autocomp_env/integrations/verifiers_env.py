"""A verifiers environment (verifiers >= 0.4, the `verifiers.v1` stack). Optional extra:
`pip install -e '.[verifiers]'` (in its own venv: verifiers 0.4 pins mcp==2.0.0, which openenv-core's
fastmcp does not accept).

It follows v1's conventions (the layout of verifiers' own TextArena taskset): a `Taskset` of tasks
(kernel x seed; the prompt is the kernel's planning prompt for that seed), an `Env` whose `run()` plays the
environment host-side as the user (each assistant reply is one turn of the text env; the result and the
next prompt come back as the next user turn; the episode ends after `max_turns` or at the roofline), and
a rubric of named, weighted rewards on the trace:

| reward | weight | what |
|---|---|---|
| `log_speedup` | 1.0 | the episode's return: sum of the turns' log-speedups, minus the failure penalty per failed turn |
| `correct` | 0.0 | share of turns whose candidate was correct (weight 0: a metric the rubric reports) |
| `roofline_fraction` | 0.0 | best candidate's fraction of the kernel's roofline |

    import verifiers.v1 as vf
    from autocomp_env.integrations.verifiers_env import load_environment
    env = load_environment(kernels=["gemmini-exo-small:0"], seeds=8, max_turns=4)
    # or from verifiers' CLI: vf eval --env.taskset.id autocomp-verifiers ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import verifiers.v1 as vf

from autocomp_env.integrations.trl import describe
from autocomp_env.textenv import TextEnv, TextTurn

DEFAULT_KERNELS = ["gemmini-exo-small:0", "trainium-tutorial-small:0"]
# verifiers imports an id's top-level module (`autocomp_verifiers.py`, which re-exports this module's classes).
VERIFIERS_ID = "autocomp-verifiers"
# The rubric: (name, weight). Weight-0 entries are reported, not summed into the reward.
RUBRIC = (("log_speedup", 1.0), ("correct", 0.0), ("roofline_fraction", 0.0))


class AutocompTasksetConfig(vf.TasksetConfig):
    kernels: list[str] = DEFAULT_KERNELS
    """Kernel names or aliases, e.g. gemmini-exo-small:0."""
    seeds: int = 8
    """Tasks per kernel: seeds 0 .. seeds-1 (each seed draws its own menu dropout)."""
    mode: str = "plan"
    """'plan' (the env's offline code model implements the plan) or 'code' (the reply is the code)."""
    max_turns: int = 4
    """Turns per episode."""
    cache_dir: str | None = None
    """Evaluation cache directory (None: the default; '' for none)."""


class AutocompData(vf.TaskData):
    info: dict
    """The kernel, seed and mode the env reproduces the episode from."""


class AutocompTask(vf.Task[AutocompData, vf.State, vf.TaskConfig]):
    pass


class AutocompEnvConfig(vf.EnvConfig):
    player: vf.AgentConfig = vf.AgentConfig()


def _text_env(info: dict) -> TextEnv:
    kwargs = {} if info.get("cache_dir") is None else {"cache_dir": info["cache_dir"]}
    return TextEnv(info["kernel"], mode=info["mode"], max_turns=int(info["max_turns"]), **kwargs)


def rubric(turns: list[TextTurn]) -> dict[str, float]:
    """The rubric's scores for an episode's turns."""
    if not turns:
        return {"log_speedup": 0.0, "correct": 0.0, "roofline_fraction": 0.0}
    return {
        "log_speedup": float(sum(t.reward for t in turns)),
        "correct": float(sum(t.metrics["correct"] for t in turns) / len(turns)),
        "roofline_fraction": float(max(t.metrics["roofline_fraction"] for t in turns)),
    }


class AutocompEnv(vf.Env[AutocompEnvConfig]):
    async def run(self, task, agents):
        info = task.data.info
        env = _text_env(info)
        env.reset(seed=int(info["seed"]))  # the task prompt is this observation's prompt
        turns: list[TextTurn] = []
        async with agents.player.interaction(task) as interaction:
            segment = await interaction.turn()
            while not segment.terminated:
                turn = env.step(segment.last_reply or "")
                turns.append(turn)
                if turn.done:
                    break
                segment = await interaction.turn(describe(turn))
        env.close()
        trace = interaction.trace
        scores = rubric(turns)
        for name, weight in RUBRIC:
            trace.record_reward(name, scores[name], weight)
        trace.record_metrics({"turns": float(len(turns)), "best_speedup": turns[-1].metrics["best_speedup"] if turns else 1.0})


class AutocompTaskset(vf.Taskset[AutocompTask, AutocompTasksetConfig]):
    def load(self) -> Iterator[AutocompTask]:
        c = self.config
        for kernel in c.kernels:
            info = {"kernel": kernel, "mode": c.mode, "max_turns": c.max_turns, "cache_dir": c.cache_dir}
            env = _text_env(info)
            for seed in range(c.seeds):
                obs = env.reset(seed=seed)
                yield AutocompTask(
                    AutocompData(
                        name=f"{env.kernel.name}#{seed}",
                        prompt=obs.prompt,
                        system_prompt=obs.messages[0]["content"],
                        info={**info, "seed": seed},
                    ),
                    c.task,
                )
            env.close()


def load_environment(**taskset: Any) -> AutocompEnv:
    """The env through verifiers' own loader (`vf.load_environment`); keyword arguments are the taskset's
    settings (`kernels`, `seeds`, `mode`, `max_turns`, `cache_dir`)."""
    config = AutocompEnvConfig(taskset={"id": VERIFIERS_ID, **taskset})
    return vf.load_environment(config)


__all__ = ["AutocompEnv", "AutocompTaskset", "load_environment"]
