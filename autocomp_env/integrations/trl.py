"""TRL adapters: environments for `GRPOTrainer(environment_factory=...)` and a reward function for
single-turn GRPO on planning prompts. Optional extra: `pip install -e '.[train]'`.

TRL's contract (trl/trainer/grpo_trainer.py, v1.x): the factory returns an object whose public methods are
tools the model calls (typed arguments, Google-style docstrings); `reset(**row)` is called with the dataset
row before each rollout and its string is appended to the last user message; `get_reward()` scores the
finished rollout. Here the tool is `submit_plan(plan)` (or `submit_code(code)` in code mode): one turn of
the text env; its return value (the result and the next prompt) goes back to the model as the tool answer.
The reward is the episode's return: the sum of the turn rewards (log-speedup, minus the failure penalty
per failed turn; a rollout that never calls the tool gets one failure penalty).

    trainer = GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=trl_dataset(["gemmini-exo-small:0"]),
                          environment_factory=PlanToolEnv)

`TextEnvReward` is the other way in: a `reward_funcs` entry that treats each completion as one plan answer
to the row's prompt, evaluated from that prompt's state (GRPO's group = the completions of one prompt).
"""

from __future__ import annotations

from typing import Any

from autocomp_env.textenv import TextEnv, TextTurn

DEFAULT_KERNEL = "gemmini-exo-small:0"
INSTRUCTIONS = {
    "plan": "Optimize the kernel below. Call the submit_plan tool with your plan; it answers with the result "
    "and the next prompt. Submit one plan per call.",
    "code": "Optimize the kernel below. Call the submit_code tool with the complete new code; it answers with "
    "the result and the next prompt.",
}


def _text(completion: Any) -> str:
    """A completion as TRL passes it: a string, or a list of chat messages (the assistant's last content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    return str(completion)


def describe(turn: TextTurn) -> str:
    """The tool's answer: what happened, then the next prompt (or that the episode is over)."""
    m = turn.metrics
    if m["correct"]:
        head = (
            f"Correct. Latency {turn.info['candidate_latency']:g} {turn.info['unit']}, speedup {m['speedup']:.3f}x "
            f"over the start ({100 * m['roofline_fraction']:.1f}% of roofline). Reward {turn.reward:+.3f}."
        )
    else:
        head = f"Failed ({m['error_type']}: {turn.info.get('error_message') or ''}). Reward {turn.reward:+.3f}."
    if turn.done:
        return head + " The episode is over."
    return head + "\n\n" + turn.observation.prompt


class _ToolEnv:
    mode = "plan"

    def __init__(self, kernel: str = DEFAULT_KERNEL, max_turns: int = 2, **env_kwargs: Any):
        self._default_kernel = kernel
        self._max_turns = max_turns
        self._env_kwargs = env_kwargs
        self._envs: dict[str, TextEnv] = {}
        self._env: TextEnv | None = None
        self.turns: list[TextTurn] = []
        self.metrics: dict[str, float] = {}

    def reset(self, **row: Any) -> str:
        """Start an episode on the row's `kernel` (default: the constructor's) with the row's `seed`."""
        kernel = row.get("kernel") or self._default_kernel
        if kernel not in self._envs:
            self._envs[kernel] = TextEnv(kernel, mode=self.mode, max_turns=self._max_turns, **self._env_kwargs)
        self._env = self._envs[kernel]
        obs = self._env.reset(seed=int(row.get("seed") or 0))
        self.turns = []
        return "\n\n" + obs.prompt

    def get_reward(self) -> float:
        """The episode's return (one failure penalty if the tool was never called)."""
        if not self.turns:
            penalty = -float(self._env.env.failure_penalty) if self._env is not None else 0.0
            self.metrics = {"reward": penalty, "turns": 0.0, "best_speedup": 1.0}
            return penalty
        total = float(sum(t.reward for t in self.turns))
        self.metrics = {"reward": total, "turns": float(len(self.turns)), "best_speedup": self.turns[-1].metrics["best_speedup"]}
        return total

    def _submit(self, answer: str) -> str:
        if self._env is None:
            raise RuntimeError("reset() must be called before the tool")
        if self._env.done:
            return "The episode is over: no more submissions."
        turn = self._env.step(answer)
        self.turns.append(turn)
        return describe(turn)


class PlanToolEnv(_ToolEnv):
    """One tool, `submit_plan`: the env's code model implements the plan."""

    mode = "plan"

    def submit_plan(self, plan: str) -> str:
        """Submit one optimization plan for the current code. The environment implements it, simulates it and
        answers with the result and the next prompt.

        Args:
            plan: The plan. Start it with 'Option N:' to apply menu option N, then say how it applies to the code.

        Returns:
            The result of the plan (correct or not, latency, speedup) and the next prompt.
        """
        return self._submit(plan)


class CodeToolEnv(_ToolEnv):
    """One tool, `submit_code`: the model's code is evaluated as it is."""

    mode = "code"

    def submit_code(self, code: str) -> str:
        """Submit the complete new code of the kernel. The environment simulates it and answers with the result
        and the next prompt.

        Args:
            code: The complete new code, the whole `solution` function.

        Returns:
            The result of the code (correct or not, latency, speedup) and the next prompt.
        """
        lang = self._env.lang if self._env is not None else ""
        return self._submit(code if "```" in code else f"```{lang}\n{code}\n```")


def trl_dataset(kernels: list[str], seeds: range | list[int] = range(8), mode: str = "plan"):
    """A `datasets.Dataset` of rows {prompt, kernel, seed} for `environment_factory` training: the prompt is the
    instruction; `reset` appends the kernel's planning prompt."""
    from datasets import Dataset

    rows = [
        {"prompt": [{"role": "user", "content": INSTRUCTIONS[mode]}], "kernel": k, "seed": int(s)}
        for k in kernels
        for s in seeds
    ]
    return Dataset.from_list(rows)


def prompt_dataset(kernels: list[str], seeds: range | list[int] = range(8), **env_kwargs: Any):
    """A `datasets.Dataset` of planning prompts {prompt (chat messages), kernel, seed} for `TextEnvReward`."""
    from datasets import Dataset

    rows = []
    for k in kernels:
        env = TextEnv(k, **env_kwargs)
        for s in seeds:
            rows.append({"prompt": env.reset(seed=int(s)).messages, "kernel": k, "seed": int(s)})
        env.close()
    return Dataset.from_list(rows)


class TextEnvReward:
    """A GRPO reward function: each completion is a plan answer to its row's planning prompt, evaluated from
    that prompt's state (the TextEnv reset with the row's kernel and seed) without moving it. The reward is
    the turn's: log-speedup, or minus the failure penalty. Logs the named metrics through TRL's `log_metric`."""

    def __init__(self, mode: str = "plan", **env_kwargs: Any):
        self.__name__ = "autocomp_reward"  # TRL names reward columns after it
        self.mode = mode
        self.env_kwargs = env_kwargs
        self._envs: dict[str, TextEnv] = {}
        self.history: list[dict[str, float]] = []  # per call: mean reward and metrics

    def _env(self, kernel: str, seed: int) -> TextEnv:
        env = self._envs.get(kernel)
        if env is None:
            env = self._envs[kernel] = TextEnv(kernel, mode=self.mode, **self.env_kwargs)
        if env.observation is None or env.seed != seed or env.turn != 0:
            env.reset(seed=seed)
        return env

    def __call__(self, prompts: list, completions: list, kernel: list[str], seed: list[int], **kwargs: Any) -> list[float]:
        from autocomp_env.textenv import mean_metrics

        rewards: list[float] = [0.0] * len(completions)
        turns: list[TextTurn] = []
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (k, s) in enumerate(zip(kernel, seed, strict=True)):
            groups.setdefault((k, int(s)), []).append(i)
        for (k, s), idx in groups.items():
            env = self._env(k, s)
            for i, turn in zip(idx, env.group([_text(completions[i]) for i in idx]), strict=True):
                rewards[i] = turn.reward
                turns.append(turn)
        stats = mean_metrics(turns)
        self.history.append(stats)
        log = kwargs.get("log_metric")
        if callable(log):
            for name in ("correct", "speedup", "roofline_fraction", "format_ok"):
                log(f"autocomp/{name}", stats[name])
        return rewards
