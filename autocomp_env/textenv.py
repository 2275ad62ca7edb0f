"""The text interface for LLM policies: the observation is a prompt, the action is the model's answer.

`TextEnv` wraps one `AutocompEnv`. Each turn it shows the policy Autocomp's planning prompt for the
current code (target ISA summary, current code, latency, utilization and simulator counters, the menu after
dropout, the rules), built by `autocomp_env.llm.prompts.planning_messages`. The policy answers with text:

- `mode="plan"`: a plan ("Option 3: ..."); the env's code model implements it (offline by default, or an
  `LLMCodeModel`). An answer naming a shown option acts as that menu item.
- `mode="code"`: one line naming the choice, then the complete new code in a fenced block; the code is
  evaluated as it is (Autocomp's `skip_planning`).

The reward of a turn is the env's: log(previous latency / new latency) for a correct candidate, minus the
failure penalty otherwise (an answer with no plan or no code is a failed turn, `error_type="format_error"`).
Every turn also reports named metrics (`TURN_METRICS`). `group(answers)` evaluates N answers from the same
state (GRPO's group) without moving; `adopt(i)` then moves to sample i. `group_advantages` gives GRPO's
normalized advantages. Everything is deterministic given the reset seed.

    >>> from autocomp_env.textenv import TextEnv, ScriptedPolicy
    >>> env = TextEnv("gemmini-exo-small:0", cache_dir="")
    >>> obs = env.reset(seed=0)
    >>> obs.messages[0]["role"], "# Optimization menu" in obs.prompt
    ('system', True)
    >>> turn = env.step(ScriptedPolicy(seed=0)(obs))
    >>> sorted(turn.metrics) == sorted(TURN_METRICS)
    True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from autocomp_env import targets
from autocomp_env.core import Feedback, Generation, Kernel, Plan
from autocomp_env.env import MAX_PLAN_CHARS, env_id_for
from autocomp_env.episode import code_hash
from autocomp_env.llm.extract import extract_code
from autocomp_env.llm.prompts import Messages, PromptOptions, parse_plan, planning_messages

MODES = ("plan", "code")
# Autocomp's defaults (menu dropout 0.25, latency shown), but utilization and the simulator's counters are
# always shown: the policy should see the hardware feedback the simulator gives.
TEXT_PROMPT_OPTIONS = PromptOptions(menu_keep=0.25, score_feedback=1.0, util_feedback=1.0, hw_feedback=1.0)
# The named metrics of every turn (`TextTurn.metrics`).
TURN_METRICS = (
    "correct",  # 1.0 if the candidate was correct
    "speedup",  # start latency / candidate latency (0 if incorrect)
    "best_speedup",  # best speedup of the episode so far
    "roofline_fraction",  # roofline / candidate latency (0 if incorrect): "% of roofline" / 100
    "error_type",  # None, the simulator's error type, "generation_error" or "format_error"
    "menu_index",  # the menu item the answer named (None for a free plan or code)
    "format_ok",  # 1.0 if a plan (plan mode) or a code block (code mode) was found in the answer
)


@dataclass(frozen=True)
class TextObservation:
    """One turn's prompt. `shown` are the menu indices after dropout (the numbers the prompt uses are +1)."""

    messages: Messages
    shown: tuple[int, ...]
    variant: str
    turn: int
    mode: str

    @property
    def prompt(self) -> str:
        """The user message: what a completion-style (non-chat) policy reads."""
        return self.messages[-1]["content"]


@dataclass(frozen=True)
class TextTurn:
    """The outcome of one answer: the next observation, the reward, the named metrics and the env's info.
    `truncated` is also set when the episode used its `max_turns`."""

    observation: TextObservation
    reward: float
    terminated: bool
    truncated: bool
    metrics: dict[str, Any]
    info: dict[str, Any] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class PolicyCodeModel:
    """The code model of code mode: the policy wrote the code, so `implement` hands back the code submitted
    for this turn. Its response hash is the code's hash, so an episode replays from its recorded responses."""

    name = "policy"

    def __init__(self) -> None:
        self.pending: str | None = None

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def implement(self, kernel: Kernel, code: str, plan: Plan, feedback: Feedback, rng: np.random.Generator):
        if self.pending is None:
            return Generation(code=None, error="no code was submitted for this turn", model=self.name)
        return Generation(code=self.pending, model=self.name, response_hash=code_hash(self.pending))

    def propose_plans(self, kernel, code, feedback, menu, mask, n, rng) -> list[Plan]:
        return []  # the policy plans; nothing to propose


class TextEnv:
    """A multi-turn text environment over one kernel (see the module docstring).

    `kernel`: a kernel name or alias; `mode`: "plan" or "code"; `max_turns`: turns per episode (the episode
    also ends when the env terminates or truncates); `prompt_options`: the planning prompt's knobs;
    `env_kwargs` go to the gym env (`code_model`, `budget`, `failure_penalty`, `evaluator`, `cache_dir`, ...).
    """

    def __init__(
        self,
        kernel: str,
        mode: str = "plan",
        max_turns: int = 4,
        prompt_options: PromptOptions = TEXT_PROMPT_OPTIONS,
        **env_kwargs: Any,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not (isinstance(max_turns, int) and max_turns >= 1):
            raise ValueError(f"max_turns must be a positive int, got {max_turns!r}")
        if mode == "code":
            if "code_model" in env_kwargs:
                raise ValueError("code mode evaluates the policy's own code: do not pass a code_model")
            env_kwargs["code_model"] = PolicyCodeModel()
        self.mode = mode
        self.max_turns = max_turns
        self.prompt_options = prompt_options
        env_kwargs.setdefault("max_steps", max(max_turns, 1))
        self.env = gym.make(env_id_for(kernel), kernel=kernel, **env_kwargs).unwrapped
        self.kernel: Kernel = self.env.kernel
        self.lang = targets.target(self.kernel.target).lang
        self.seed = 0
        self.turn = 0
        self.done = False
        self.observation: TextObservation | None = None
        self._group: list[tuple[Any, TextTurn]] = []

    # --- episode -------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TextObservation:
        """Start an episode from the kernel's naive code. No seed draws one (recorded in `self.seed`)."""
        self.seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self.env.reset(seed=self.seed)
        self.turn, self.done, self._group = 0, False, []
        self.observation = self._observe()
        return self.observation

    def step(self, answer: str) -> TextTurn:
        """Apply the policy's answer to the current state and move on (accepted candidates become the state)."""
        self._check_running()
        return self._advance(self._apply(self.env, answer))

    def group(self, answers: list[str]) -> list[TextTurn]:
        """Evaluate several answers from the current state (GRPO's group); the state does not move, and each
        turn carries the prompt it answered. Sample i runs on a fork with its own rng seeded by (seed, turn, i),
        so a group is deterministic."""
        self._check_running()
        self._group = []
        for i, answer in enumerate(answers):
            fork = self.env.fork()
            fork.np_random = np.random.Generator(np.random.PCG64([self.seed, self.turn, i]))
            turn = self._apply(fork, answer)
            self._group.append((fork.get_state(), turn))
        return [t for _, t in self._group]

    def adopt(self, index: int) -> TextTurn:
        """Move to sample `index` of the last `group` call (e.g. the best one) and return its turn, with the
        observation of the new state."""
        if not 0 <= index < len(self._group):
            raise IndexError(f"no group sample {index}: the last group had {len(self._group)}")
        state, turn = self._group[index]
        self.env.set_state(state)
        return self._advance(turn)

    def _advance(self, turn: TextTurn) -> TextTurn:
        """Count the turn, build the next prompt and return the turn carrying it."""
        self.turn += 1
        truncated = turn.truncated or (self.turn >= self.max_turns and not turn.terminated)  # a time limit
        self.done = turn.terminated or truncated
        self._group = []
        self.observation = self._observe()
        return dataclasses.replace(turn, observation=self.observation, truncated=truncated)

    def _check_running(self) -> None:
        if self.observation is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.done:
            raise RuntimeError("the episode is over: call reset()")

    # --- one answer ----------------------------------------------------------------------------------
    def _apply(self, env: Any, answer: str) -> TextTurn:
        if not isinstance(answer, str):
            raise TypeError(f"an answer is a str, got {type(answer).__name__}")
        obs = self.observation
        plan, code = self._parse(answer, obs)
        if plan is None:
            return self._format_failure(env, "the answer holds no plan" if self.mode == "plan" else code)
        model = env.code_model
        if self.mode == "code":
            model.pending = code
        try:
            _, reward, terminated, truncated, info = env.step(plan)
        finally:
            if self.mode == "code":
                model.pending = None
        lat = info["candidate_latency"] if info["correct"] else None
        metrics = {
            "correct": 1.0 if info["correct"] else 0.0,
            "speedup": info["start_latency"] / lat if lat else 0.0,
            "best_speedup": info["best_speedup"],
            "roofline_fraction": min(1.0, self.kernel.roofline / lat) if lat else 0.0,
            "error_type": info["error_type"],
            "menu_index": plan.menu_index,
            "format_ok": 1.0,
        }
        return TextTurn(obs, float(reward), bool(terminated), bool(truncated), metrics, info)

    def _parse(self, answer: str, obs: TextObservation) -> tuple[Plan | None, str | None]:
        if self.mode == "plan":
            return parse_plan(answer, list(obs.shown), max_chars=MAX_PLAN_CHARS), None
        code = extract_code(answer, self.lang)
        if code is None:
            return None, "the answer holds no code block"
        head = answer.split("```", 1)[0].strip()
        named = parse_plan(head, list(obs.shown), max_chars=MAX_PLAN_CHARS) if head else None
        # The menu index is only a label here: the policy's code is what gets evaluated.
        text = named.text if named else "code written by the policy"
        return Plan(text), code

    def _format_failure(self, env: Any, why: str) -> TextTurn:
        """An answer the env cannot act on: a failed turn with the failure penalty (no sample is spent)."""
        penalty = -float(env.failure_penalty)
        metrics = dict.fromkeys(TURN_METRICS, 0.0)
        metrics.update(best_speedup=env.start_latency / env.best_latency, error_type="format_error", menu_index=None)
        info = {"error_type": "format_error", "error_message": why, "correct": False}
        return TextTurn(self.observation, penalty, False, False, metrics, info)

    # --- observations ---------------------------------------------------------------------------------
    def _observe(self) -> TextObservation:
        env = self.env
        rng = np.random.Generator(np.random.PCG64([self.seed, self.turn, 2**20]))  # prompt draws only
        messages, shown, variant = planning_messages(
            self.kernel,
            env.code,
            env.feedback(),
            env.menu,
            env.observation()["mask"].astype(bool),
            rng,
            self.prompt_options,
            answer=self.mode,
        )
        return TextObservation(messages, tuple(shown), variant, self.turn, self.mode)

    def close(self) -> None:
        self.env.close()


def group_advantages(rewards: list[float] | np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """GRPO's advantages: (r - mean) / std over the group (all zeros when every reward is the same)."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.size == 0:
        return r
    std = r.std()
    return np.zeros_like(r) if std < eps else (r - r.mean()) / std


class ScriptedPolicy:
    """A deterministic stand-in for an LLM in tests and examples: answers "Option N: <menu item>" for a
    shown menu item drawn from its rng (plan mode). In code mode it needs `code=`, a function from the
    observation to code, and wraps the result in a fenced block."""

    def __init__(self, seed: int = 0, code: Any = None):
        self.rng = np.random.default_rng(seed)
        self.code = code

    def __call__(self, obs: TextObservation) -> str:
        if obs.mode == "code":
            if self.code is None:
                raise ValueError("a code-mode ScriptedPolicy needs code=...")
            return f"Option new: rewrite.\n```\n{self.code(obs)}\n```"
        i = int(self.rng.choice(obs.shown)) if obs.shown else 0
        return f"Option {i + 1}: apply this to the current code."


def mean_metrics(turns: list[TextTurn]) -> dict[str, float]:
    """Mean of each numeric metric over turns (for logging a group or a batch)."""
    out: dict[str, float] = {"reward": float(np.mean([t.reward for t in turns])) if turns else math.nan}
    for name in ("correct", "speedup", "best_speedup", "roofline_fraction", "format_ok"):
        out[name] = float(np.mean([t.metrics[name] for t in turns])) if turns else math.nan
    return out
