"""The Gymnasium environment: one accelerator kernel, optimized one code-generation step at a time."""

from __future__ import annotations

import copy
import math
import string
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from autocomp_env import targets
from autocomp_env.budget import Budget, Usage
from autocomp_env.cache import EvalCache
from autocomp_env.codemodel import CodeModel, OfflineCodeModel
from autocomp_env.core import Feedback, Generation, Kernel, Plan
from autocomp_env.episode import EpisodeState, code_hash
from autocomp_env.evaluation import Evaluator
from autocomp_env.kernels import UnknownKernel, family_of, get_kernel, load_family, resolve
from autocomp_env.rewards import REWARDS, LogSpeedup, Reward, Step
from autocomp_env.schedules.base import read_schedule
from simulators.result import SimResult

# Printable ASCII (with newline and tab) plus the unicode punctuation LLM plans commonly contain.
CHARSET = "".join(sorted(set(string.printable) - {"\x0b", "\x0c"} | set("–—‘’“”…•×÷≤≥≠≈→←↔±µ·°²³√∑∏∞§¶")))
MAX_PLAN_CHARS = 4096
MAX_CODE_CHARS = 200_000
ROOFLINE_TOLERANCE = 0.01  # "reached the roofline" = within 1% of it
ACTION_MODES = ("menu", "plan", "both")

def env_id_for(kernel: str) -> str:
    """The registered env id that serves `kernel` (name or alias), e.g. "autocomp/Gemmini-matmul-v0"."""
    k = get_kernel(kernel)
    return targets.target(k.target).env_id(k.family)


def feature_names(target: str) -> tuple[str, ...]:
    """Names of the observation's `features` entries for `target`, in order. The counters are the target's
    (`Target.counters`): a missing or non-numeric counter reads 0, so a simulator may add counters without
    changing the observation."""
    counters = tuple(f"counter:{name}" for name, _ in targets.target(target).counters)
    return (
        ("log_latency_ratio", "speedup", "best_speedup", "utilization", "roofline_fraction")
        + counters
        + ("samples_left", "tokens_left", "dollars_left", "steps_left", "last_correct")
    )


@dataclass(frozen=True)
class Timing:
    """Measurements of one step (wall clock, simulator time, cache use). They vary from run to run, so
    they take no part in equality: two Timings always compare equal, and determinism checks (check_env,
    replay) compare only the MDP."""

    cache_hit: bool = field(compare=False)
    wall_seconds: float = field(compare=False)
    sim_seconds: float = field(compare=False)
    used_sim_seconds: float = field(compare=False)
    used_wall_seconds: float = field(compare=False)
    sim_seconds_left: float | None = field(compare=False)


FEATURE_LIMIT = 1e6  # features are clipped to [-limit, limit] (log ratios to [-50, 50]): a finite Box


def _feature_bounds(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    low = np.zeros(len(names), np.float32)
    high = np.full(len(names), FEATURE_LIMIT, np.float32)
    for i, name in enumerate(names):
        if name == "log_latency_ratio":
            low[i], high[i] = -50.0, 50.0
        elif name.endswith("_left") or name in ("roofline_fraction", "last_correct"):
            high[i] = 1.0
    return low, high


class InvalidActionError(gym.error.InvalidAction, ValueError):
    """An action the env cannot take (wrong type, out-of-range item, empty or over-long plan). The env
    state is unchanged, so the caller can retry with a valid action."""


class AutocompEnv(gym.Env):
    """
    ## Description

    Optimize one tensor-accelerator kernel the way Autocomp (arXiv 2505.18574) does: each step names an
    optimization (an item of the family's optimization menu, or a free-form plan), a code model rewrites
    the current code to implement it, and a simulator (Gemmini: C with Gemmini intrinsics; Trainium: NKI
    Python kernels) checks the candidate's correctness on several input seeds and measures its latency.
    A correct candidate becomes the new state; an incorrect one is discarded.

    The default code model is offline (`OfflineCodeModel`): it transforms the schedule recorded in the
    code's `autocomp-schedule:` marker, deterministically given the env's seed. Pass any `CodeModel`
    (e.g. `autocomp_env.llm.LLMCodeModel`) to use an LLM instead.

    >>> import gymnasium as gym, autocomp_env
    >>> env = gym.make("autocomp/Gemmini-matmul-v0", kernel="gemmini-exo-small:0")
    >>> obs, info = env.reset(seed=0)
    >>> sorted(obs)
    ['code', 'features', 'mask']
    >>> info["speedup"]
    1.0
    >>> obs, reward, terminated, truncated, info = env.step(0)  # menu item 0: "modify loop tiling"
    >>> import math
    >>> reward == (math.log(info["speedup"]) if info["correct"] else -0.1)
    True
    >>> env.unwrapped.propose_plans(2)[0].text in env.unwrapped.menu
    True

    ## Action Space

    Set by `action_mode`:

    | mode | space | meaning |
    |---|---|---|
    | "menu" (default) | `Discrete(len(menu))` | index of an item of `env.unwrapped.menu` |
    | "plan" | `Text(max_length=4096, charset=CHARSET)` | a free-form optimization plan |
    | "both" | `Dict(kind=Discrete(2), menu=Discrete(n), plan=Text(...))` | kind 0: use `menu`; 1: use `plan` |

    `CHARSET` is printable ASCII with newline and tab plus common unicode punctuation (dashes, quotes,
    arrows, math signs); plans passed directly to `step` may hold any characters. In every mode `step` also
    accepts a `Plan`, a plain `int` (menu item) or `str` (plan). A bad action
    (out-of-range index, empty or whitespace plan, a plan over 4096 characters, a wrong type) raises
    `InvalidActionError` (both a `gymnasium.error.InvalidAction` and a `ValueError`) and changes nothing.
    A menu item that does not apply, or a plan the code model cannot interpret, is a legal action: the
    code comes back unchanged (see `info["note"]`), the reward is 0, and the step counts.

    ## Observation Space

    `Dict(code=Text(max_length=200000, charset=CHARSET), features=Box(float32, (F,)), mask=MultiBinary(n))`.
    `code` is the current code (characters outside `CHARSET` shown as "?", cut at 200000). `mask[i]` is 1
    when menu item i can change the code (all 1 for code the offline model cannot read). `features`
    (`feature_names(target)` names them; C is the number of counters of the target):

    | index | feature | min | max |
    |---|---|---|---|
    | 0 | log(latency / start latency) | -50 | 50 |
    | 1 | speedup over the start: start latency / latency | 0 | 1e6 |
    | 2 | best speedup in the episode | 0 | 1e6 |
    | 3 | utilization reported by the simulator (0 if none) | 0 | 1e6 |
    | 4 | fraction of the roofline: roofline / latency | 0 | 1 |
    | 5 .. 4+C | simulator counters (the target's `counters`), normalized | 0 | 1e6 |
    | 5+C | samples budget left (fraction, 1 if unlimited) | 0 | 1 |
    | 6+C | tokens budget left | 0 | 1 |
    | 7+C | dollars budget left | 0 | 1 |
    | 8+C | steps left: 1 - step / max_steps | 0 | 1 |
    | 9+C | last candidate was correct (1 after reset) | 0 | 1 |

    ## Rewards

    A reward object (`reward=`, see `autocomp_env.rewards`) turns each step into a float. The default,
    `LogSpeedup`: a correct candidate gives `log(previous latency / new latency)` and becomes the state, so
    the return of an episode is `log(start latency / final latency)`, the log-speedup (a slower correct
    candidate is accepted too, with a negative reward, as in an RL walk; a search keeps its best via
    `get_state`). An incorrect candidate, or a generation error, gives `-failure_penalty` and leaves the
    state unchanged. `reward="baseline_normalized"` gives (previous - new latency) / the vendor library's
    latency instead.
    `info` reports, per step: `step`, `latency` (also as `cycles` or `latency_us`), `candidate_latency`,
    `best_latency`, `start_latency`, `roofline`, `speedup`, `best_speedup`, `correct`, `error_type` and
    `error_message` (the simulator's, or "generation_error"), `plan`, `menu_index`, `note` and `fault` (from
    the code model), `tokens`, `dollars`, `llm_calls`, `usage` and `budget_left` (samples, llm_calls,
    tokens, dollars), and `timing`: a `Timing` with `cache_hit`, `wall_seconds`, `sim_seconds` and the
    simulator-seconds budget. Timings vary between runs, so they compare equal by design and the rest of
    `info` is deterministic given the seed.

    ## Starting State

    The family's naive code for the kernel (Autocomp's starting point), simulated at reset; it must be
    correct. The rng is seeded by `reset(seed=...)`; every random choice (menu dropout, transformation
    parameters, fault injection) comes from `self.np_random`.

    ## Episode End

    1. Termination: the latency is within 1% of the kernel's roofline (nothing left to gain).
    2. Truncation: `max_steps` steps taken, or any budget limit reached (samples, LLM calls, tokens,
       dollars, simulator seconds). The budget is per episode: `reset` starts a new `usage`;
       `total_usage` counts across episodes. Cache hits cost no simulator seconds, and simulator seconds
       depend on the machine, so only a `sim_seconds` limit makes truncation machine-dependent.

    Stepping on after the end is allowed (the episode simply continues); `TimeLimit` or a vector env's
    autoreset handle it as usual.

    ## Arguments

    | parameter | type | default | description |
    |---|---|---|---|
    | `kernel` | str | the family's flagship | name (`gemmini/matmul-512x512x512`), alias (`gemmini-exo:0`), small alias (`gemmini-exo-small:0`), or "small" for the flagship's small variant |
    | `action_mode` | str | "menu" | "menu", "plan" or "both" |
    | `code_model` | str or CodeModel | "offline" | "offline" or any object with the `CodeModel` protocol |
    | `fault_rate` | float | 0.0 | share of offline generations given an injected bug |
    | `budget` | Budget or dict | None | limits per episode: samples, llm_calls, tokens, dollars, sim_seconds |
    | `max_steps` | int | 32 | steps per episode |
    | `failure_penalty` | float | 0.1 | reward magnitude for an incorrect candidate (finite) |
    | `reward` | str or Reward | "log_speedup" | a name in `autocomp_env.rewards.REWARDS` (built with `failure_penalty`) or a `Reward` object |
    | `evaluator` | Evaluator | None | shared evaluator; by default one with a disk cache in `cache_dir` |
    | `cache_dir` | str | None | evaluation cache dir (default `$AUTOCOMP_CACHE/eval` or ~/.cache/autocomp-env/eval); "" disables |
    | `render_mode` | str | None | None or "ansi" (the code and its profile) |
    | `family` | str | set by the id | "target/family" of a registered id (e.g. "gemmini/matmul"); checks `kernel` |

    Extra methods for agents: `propose_plans(n)`, `feedback()`, `get_state()`, `set_state(state)`, `fork()`,
    `baseline_latencies()`; attributes `kernel`, `menu`, `feature_names`, `usage`, `total_usage`, `code`,
    `latency`, `start_latency`, `best_latency`, `best_code`. Module helpers: `env_id_for(kernel)`,
    `feature_names(target)`.

    ## Vectorized environment

    `gym.make_vec(id, num_envs, vectorization_mode="sync" | "async", **kwargs)` works; async workers each
    create their own simulators and share the disk cache safely.

    ## Version History

    * v0: Initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        kernel: str | None = None,
        action_mode: str = "menu",
        code_model: str | CodeModel = "offline",
        fault_rate: float = 0.0,
        budget: Budget | dict | None = None,
        max_steps: int = 32,
        failure_penalty: float = 0.1,
        evaluator: Evaluator | None = None,
        cache_dir: str | None = None,
        render_mode: str | None = None,
        family: str | None = None,
        reward: str | Reward | None = None,
    ):
        self.kernel: Kernel = _choose_kernel(kernel, family)
        self.family = family_of(self.kernel)
        self.menu: tuple[str, ...] = tuple(self.family.menu)
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if not (isinstance(max_steps, int) and max_steps >= 1):
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        if not (math.isfinite(failure_penalty) and failure_penalty >= 0):
            raise ValueError(f"failure_penalty must be finite and >= 0, got {failure_penalty!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}")
        self.action_mode = action_mode
        self.code_model = _choose_code_model(code_model, fault_rate)
        self.budget = Budget.of(budget)
        self.max_steps = max_steps
        self.failure_penalty = float(failure_penalty)
        self.reward = _choose_reward(reward, self.failure_penalty)
        self.render_mode = render_mode
        if evaluator is None:
            evaluator = Evaluator(cache=_default_cache(cache_dir))
        self.evaluator = evaluator

        n = len(self.menu)
        text = spaces.Text(max_length=MAX_PLAN_CHARS, min_length=1, charset=CHARSET)
        if action_mode == "menu":
            self.action_space = spaces.Discrete(n)
        elif action_mode == "plan":
            self.action_space = text
        else:
            self.action_space = spaces.Dict({"kind": spaces.Discrete(2), "menu": spaces.Discrete(n), "plan": text})
        self.feature_names = feature_names(self.kernel.target)
        self.observation_space = spaces.Dict(
            {
                "code": spaces.Text(max_length=MAX_CODE_CHARS, min_length=0, charset=CHARSET),
                "features": spaces.Box(*_feature_bounds(self.feature_names), dtype=np.float32),
                "mask": spaces.MultiBinary(n),
            }
        )
        self._baselines: dict[str, float | None] | None = None
        self.total_usage = Usage()
        self._clear()

    # --- episode state -----------------------------------------------------------------------------
    def _clear(self) -> None:
        self.usage = Usage()
        self.code: str | None = None
        self.latency: float | None = None
        self.start_latency: float | None = None
        self.best_latency: float | None = None
        self.best_code: str | None = None
        self._result: SimResult | None = None
        self._steps = 0
        self._last_correct = True
        self._last_error: str | None = None
        self._history: list[tuple[str, float | None]] = []
        self._events: list[dict[str, Any]] = []
        self._responses: dict[str, str] = {}
        self._seed: int | None = None
        self._reset_rng: dict[str, Any] | None = None

    @property
    def code_hash(self) -> str | None:
        return None if self.code is None else code_hash(self.code)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start from the kernel's naive code. `options={"rng_state": ...}` restores a recorded rng (replay)."""
        super().reset(seed=seed)
        if options and options.get("rng_state") is not None:
            self.np_random.bit_generator.state = options["rng_state"]
        self._clear()
        self._seed = seed
        self._reset_rng = copy.deepcopy(self.np_random.bit_generator.state)
        code = self.family.starting_code(self.kernel)
        result, hit = self.evaluator.evaluate_with_hit(self.kernel, code)
        if not result.correct and hit:  # never trust a cached failure of the starting code: re-simulate
            result, _ = self.evaluator.evaluate_with_hit(self.kernel, code, use_cache=False)
        if not result.correct:
            err = result.error
            raise RuntimeError(
                f"the starting code of {self.kernel.name} is not correct ({err.type if err else '?'}: "
                f"{err.message if err else ''}): a family or simulator bug"
            )
        self.code = self.best_code = code
        self.latency = self.start_latency = self.best_latency = float(result.latency)
        self._result = result
        self.reward.reset(self)
        info = self._info(plan=None, generation=None, candidate=result, cache_hit=False, wall=0.0)
        return self.observation(), info

    def step(self, action: Any):
        if self.code is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        plan = self._to_plan(action)
        t0 = time.perf_counter()
        feedback = self._feedback()
        try:
            gen = self.code_model.implement(self.kernel, self.code, plan, feedback, self.np_random)
        except Exception as e:  # the protocol says "never raise"; a model that does must not kill the rollout
            gen = Generation(code=None, error=f"code model raised {type(e).__name__}: {e}")
        self._spend(
            llm_calls=gen.llm_calls,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            dollars=gen.dollars,
        )
        if gen.code is None:
            result = SimResult.failure(
                self.kernel.unit, "generation_error", gen.error or "the code model returned no code"
            )
            cache_hit = False
        else:
            result, cache_hit = self.evaluator.evaluate_with_hit(self.kernel, gen.code)
            self._spend(samples=1, sim_seconds=0.0 if cache_hit else result.sim_seconds)
        if gen.response_hash is not None and gen.code is not None:
            self._responses[gen.response_hash] = gen.code

        step = Step(
            kernel=self.kernel,
            previous_latency=self.latency,
            latency=float(result.latency) if result.correct and result.latency is not None else None,
            start_latency=self.start_latency,
            result=result,
        )
        reward = float(self.reward(step))
        if step.correct:
            new = step.latency
            self.code, self.latency, self._result = gen.code, new, result
            if new < self.best_latency:
                self.best_latency, self.best_code = new, gen.code
            self._history.append((plan.text, new))
            self._last_error = None
        else:
            self._last_error = f"{result.error.type}: {result.error.message}" if result.error else "incorrect"
        self._last_correct = bool(result.correct)
        self._steps += 1
        self._events.append(
            {
                "kind": "step",
                "plan": plan.text,
                "menu_index": plan.menu_index,
                "response_hash": gen.response_hash,
                "latency": result.latency,
                "correct": bool(result.correct),
            }
        )
        wall = time.perf_counter() - t0
        self._spend(wall_seconds=wall)

        terminated = self.latency <= self.kernel.roofline * (1.0 + ROOFLINE_TOLERANCE)
        truncated = not terminated and (self._steps >= self.max_steps or bool(self.budget.exhausted(self.usage)))
        info = self._info(plan=plan, generation=gen, candidate=result, cache_hit=cache_hit, wall=wall)
        return self.observation(), float(reward), bool(terminated), bool(truncated), info

    def _spend(self, **amounts: float) -> None:
        for usage in (self.usage, self.total_usage):
            for k, v in amounts.items():
                setattr(usage, k, getattr(usage, k) + v)

    # --- actions -----------------------------------------------------------------------------------
    def _to_plan(self, action: Any) -> Plan:
        n = len(self.menu)
        if isinstance(action, dict):
            if set(action) != {"kind", "menu", "plan"}:
                raise InvalidActionError(f"a dict action needs exactly the keys kind, menu, plan; got {sorted(action)}")
            kind = _as_index(action["kind"], 2, "kind")
            return self._to_plan(action["menu"] if kind == 0 else action["plan"])
        if isinstance(action, Plan):
            if action.menu_index is not None:
                _as_index(action.menu_index, n, "menu item")
                return Plan(action.text or self.menu[action.menu_index], int(action.menu_index))
            return Plan(_check_text(action.text))
        if isinstance(action, str):
            return Plan(_check_text(action))
        i = _as_index(action, n, "menu item")
        return Plan(self.menu[i], i)

    def _feedback(self) -> Feedback:
        r = self._result
        return Feedback(
            latency=self.latency,
            unit=self.kernel.unit,
            utilization=r.utilization if r else None,
            counters=dict(r.counters) if r else {},
            error=self._last_error,
            history=tuple(self._history),
        )

    def feedback(self) -> Feedback:
        """What a code model or planner sees about the current code: latency, utilization, simulator counters,
        the last error and the (plan, latency) history from the start (text policies build prompts from it)."""
        if self.code is None:
            raise gym.error.ResetNeeded("call reset() before feedback()")
        return self._feedback()

    def _mask(self) -> np.ndarray:
        schedule = read_schedule(self.code) if self.code is not None else None
        if schedule is None:
            return np.ones(len(self.menu), dtype=np.int8)
        return np.asarray(self.family.applicable(self.kernel, schedule), dtype=np.int8)

    # --- observations and info ---------------------------------------------------------------------
    def _features(self) -> np.ndarray:
        r = self._result
        lat, start, best = self.latency, self.start_latency, self.best_latency
        counters = r.counters if r else {}
        values = [
            math.log(lat / start),
            start / lat,
            start / best,
            float(r.utilization or 0.0) if r else 0.0,
            min(1.0, self.kernel.roofline / lat),
        ]
        for name, scale in targets.target(self.kernel.target).counters:
            v = counters.get(name, 0.0)
            v = float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0
            values.append(v / lat if scale == "latency" else v / float(scale))
        left = self.budget.left_fraction(self.usage)
        values += [left["samples"], left["tokens"], left["dollars"], max(0.0, 1.0 - self._steps / self.max_steps)]
        values.append(1.0 if self._last_correct else 0.0)
        low, high = self.observation_space["features"].low, self.observation_space["features"].high
        return np.clip(np.asarray(values, dtype=np.float32), low, high)

    def observation(self) -> dict[str, Any]:
        """The observation of the current position (what `reset`/`step` return), e.g. after `set_state`."""
        if self.code is None:
            raise gym.error.ResetNeeded("call reset() before observation()")
        return {"code": _displayable(self.code), "features": self._features(), "mask": self._mask()}

    def _info(self, *, plan: Plan | None, generation, candidate: SimResult, cache_hit: bool, wall: float) -> dict:
        err = candidate.error
        usage = self.usage.to_dict()
        left = self.budget.left(self.usage)
        info = {
            "step": self._steps,
            "kernel": self.kernel.name,
            "unit": self.kernel.unit,
            "latency": self.latency,
            "candidate_latency": candidate.latency,
            "best_latency": self.best_latency,
            "start_latency": self.start_latency,
            "roofline": self.kernel.roofline,
            "speedup": self.start_latency / self.latency,
            "best_speedup": self.start_latency / self.best_latency,
            "correct": bool(candidate.correct),
            "error_type": err.type if err else None,
            "error_message": err.message if err else None,
            "plan": plan.text if plan else None,
            "menu_index": plan.menu_index if plan else None,
            "note": generation.note if generation else "",
            "fault": generation.fault if generation else None,
            "tokens": (generation.prompt_tokens + generation.completion_tokens) if generation else 0,
            "dollars": generation.dollars if generation else 0.0,
            "llm_calls": generation.llm_calls if generation else 0,
            "usage": {k: usage[k] for k in ("samples", "llm_calls", "tokens", "dollars")},
            "budget_left": {k: left[k] for k in ("samples", "llm_calls", "tokens", "dollars")},
            "timing": Timing(
                cache_hit=bool(cache_hit),
                wall_seconds=wall,
                sim_seconds=0.0 if cache_hit else candidate.sim_seconds,
                used_sim_seconds=self.usage.sim_seconds,
                used_wall_seconds=self.usage.wall_seconds,
                sim_seconds_left=left["sim_seconds"],
            ),
        }
        info["cycles" if self.kernel.unit == "cycles" else "latency_us"] = self.latency
        return info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self.code is None:
            return "(not reset)"
        r = self._result
        lines = [
            f"# {self.kernel.name}  step {self._steps}/{self.max_steps}",
            f"# latency {self.latency:g} {self.kernel.unit}  speedup {self.start_latency / self.latency:.3f}x  "
            f"best {self.start_latency / self.best_latency:.3f}x  roofline {self.kernel.roofline:g}",
        ]
        if r is not None and r.utilization is not None:
            lines.append(f"# utilization {r.utilization:.3f}")
        if r is not None:
            lines += [f"#   {k}: {v}" for k, v in sorted(r.counters.items())]
        return "\n".join(lines) + "\n" + self.code

    # --- agent API ---------------------------------------------------------------------------------
    def propose_plans(self, n: int) -> list[Plan]:
        """Up to `n` plans for the current code from the code model's planner (offline: applicable menu
        items after Autocomp's menu dropout). Draws from `self.np_random`, so it is recorded for replay.
        A model with a `usage` record (calls, prompt_tokens, completion_tokens, dollars), like
        `LLMCodeModel`, has its planning spend added to `usage` (a model shared by several envs in threads
        may attribute another env's concurrent calls here)."""
        if self.code is None:
            raise gym.error.ResetNeeded("call reset() before propose_plans()")
        before = _planning_spend(self.code_model)
        plans = self.code_model.propose_plans(
            self.kernel, self.code, self._feedback(), self.menu, self._mask().astype(bool), int(n), self.np_random
        )
        after = _planning_spend(self.code_model)
        if before is not None and after is not None:  # planning calls count against the budget too
            calls, prompt, completion, dollars = (a - b for a, b in zip(after, before, strict=True))
            self._spend(llm_calls=calls, prompt_tokens=prompt, completion_tokens=completion, dollars=dollars)
        self._events.append(
            {"kind": "propose", "n": int(n), "plans": [{"text": p.text, "menu_index": p.menu_index} for p in plans]}
        )
        return plans

    def get_state(self) -> EpisodeState:
        """The current search position, replayable and JSON-serializable."""
        if self.code is None:
            raise gym.error.ResetNeeded("call reset() before get_state()")
        return EpisodeState(
            env_id=self.spec.id if self.spec is not None else None,
            kernel=self.kernel.name,
            action_mode=self.action_mode,
            code_model=_model_config(self.code_model),
            seed=self._seed,
            reset_rng=copy.deepcopy(self._reset_rng),
            rng=copy.deepcopy(self.np_random.bit_generator.state),
            events=tuple(copy.deepcopy(self._events)),
            responses=dict(self._responses),
            code=self.code,
            code_hash=code_hash(self.code),
            latency=self.latency,
            start_latency=self.start_latency,
            best_latency=self.best_latency,
            best_code_hash=code_hash(self.best_code),
            history=tuple(self._history),
            steps=self._steps,
            extra={"last_correct": self._last_correct, "last_error": self._last_error, "best_code": self.best_code},
        )

    def set_state(self, state: EpisodeState) -> None:
        """Go back (or forward) to a position from `get_state()` of an env on the same kernel. The code,
        history, events and rng are restored; budget usage is not (it is what was spent). Latencies are
        re-simulated, never read from the state: a state whose code is not correct is a ValueError."""
        if state.kernel != self.kernel.name:
            raise ValueError(f"state is for {state.kernel}, this env optimizes {self.kernel.name}")
        if code_hash(state.code) != state.code_hash:
            raise ValueError("state is corrupt: its code does not match code_hash")
        # The latencies stored in a state are never trusted (a forged state would earn unearned reward on
        # the next step): the code, the best code and the starting code are re-simulated (usually cached).
        result, _ = self.evaluator.evaluate_with_hit(self.kernel, state.code)
        if not result.correct:
            err = result.error
            raise ValueError(
                f"state is not a reachable position: its code is not correct "
                f"({err.type if err else '?'}: {err.message if err else ''})"
            )
        start = self.evaluator.evaluate_with_hit(self.kernel, self.family.starting_code(self.kernel))[0]
        best_code = state.extra.get("best_code") or state.code
        best = self.evaluator.evaluate_with_hit(self.kernel, best_code)[0] if best_code != state.code else result
        if not (best.correct and best.latency <= result.latency):
            best_code, best = state.code, result
        self.np_random.bit_generator.state = copy.deepcopy(state.rng)
        self.code, self.best_code = state.code, best_code
        self.latency, self.best_latency = float(result.latency), float(best.latency)
        self.start_latency = float(start.latency)
        self._steps = state.steps
        self._history = list(state.history)
        self._events = list(copy.deepcopy(state.events))
        self._responses = dict(state.responses)
        self._seed = state.seed
        self._reset_rng = copy.deepcopy(state.reset_rng)
        self._last_correct = bool(state.extra.get("last_correct", True))
        self._last_error = state.extra.get("last_error")
        self._result = result  # the restored code's profile (counters, utilization)

    def fork(self) -> AutocompEnv:
        """An independent copy at the same position, with its own rng, usage and budget counters. The
        evaluator (and its cache) and the code model are shared: they hold no episode state."""
        shared = {
            "evaluator": self.evaluator,
            "code_model": self.code_model,
            "family": self.family,
            "kernel": self.kernel,
        }
        memo = {id(v): v for v in shared.values()}
        return copy.deepcopy(self, memo)

    def baseline_latencies(self) -> dict[str, float | None]:
        """{"start", "vendor", "expert", "roofline"} latencies in `kernel.unit` (None if a baseline is
        missing or incorrect). Evaluated once per env."""
        if self._baselines is None:
            out: dict[str, float | None] = {}
            codes = {"start": self.family.starting_code(self.kernel)}
            try:
                codes.update(self.family.baselines(self.kernel))
            except NotImplementedError:
                pass
            for name in ("start", "vendor", "expert"):
                code = codes.get(name)
                r = self.evaluator.evaluate(self.kernel, code) if code else None
                out[name] = float(r.latency) if r is not None and r.correct else None
            out["roofline"] = float(self.kernel.roofline)
            self._baselines = out
        return dict(self._baselines)


def _default_cache(cache_dir: str | None) -> EvalCache | None:
    if cache_dir == "":
        return None
    try:
        return EvalCache(cache_dir)
    except OSError as e:
        if cache_dir is not None:
            raise
        # The default location is a convenience: without it the env still works, just without a disk cache.
        warnings.warn(f"no evaluation cache ({e}); pass cache_dir=... to choose one", RuntimeWarning, stacklevel=3)
        return None


def _choose_kernel(kernel: str | None, family: str | None) -> Kernel:
    if kernel is None or kernel == "small":
        if family is None:
            raise ValueError(
                "pass kernel=... (a name or alias), or make a registered id like autocomp/Gemmini-matmul-v0"
            )
        target, _, name = family.partition("/")
        try:
            k = get_kernel(load_family(target, name).flagship)
        except (UnknownKernel, ValueError) as e:
            raise ValueError(f"unknown family {family!r}: {e}") from e
        return get_kernel(k.small) if kernel == "small" and k.small else k
    try:
        k = get_kernel(resolve(kernel))
    except UnknownKernel as e:
        raise ValueError(str(e)) from e
    if family is not None and f"{k.target}/{k.family}" != family:
        raise ValueError(f"kernel {k.name} is not a {family} kernel; use the env id of its family")
    return k


def _choose_reward(reward: str | Reward | None, failure_penalty: float) -> Reward:
    if reward is None:
        return LogSpeedup(failure_penalty)
    if isinstance(reward, str):
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; known: {', '.join(REWARDS)} (or a Reward object)")
        return REWARDS[reward](failure_penalty=failure_penalty)
    if not (callable(reward) and callable(getattr(reward, "reset", None))):
        raise ValueError(f"reward must be a name or a Reward (reset(env) and __call__(step)), got {reward!r:.80}")
    return reward


def _choose_code_model(code_model: str | CodeModel, fault_rate: float) -> CodeModel:
    if isinstance(code_model, str):
        if code_model != "offline":
            raise ValueError(f"code_model must be 'offline' or a CodeModel instance, got {code_model!r}")
        return OfflineCodeModel(fault_rate=fault_rate)
    if not isinstance(code_model, CodeModel):
        raise ValueError(f"code_model must implement the CodeModel protocol, got {type(code_model).__name__}")
    if fault_rate:
        raise ValueError("fault_rate applies to the offline code model only")
    return code_model


def _planning_spend(model: Any) -> tuple[float, float, float, float] | None:
    u = getattr(model, "usage", None)
    try:
        return (u.calls, u.prompt_tokens, u.completion_tokens, u.dollars)
    except AttributeError:
        return None


def _model_config(model: CodeModel) -> dict[str, Any]:
    config = getattr(model, "config", None)
    return dict(config()) if callable(config) else {"name": getattr(model, "name", type(model).__name__)}


def _as_index(value: Any, n: int, what: str) -> int:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidActionError(f"{what} must be an int in [0, {n}), got {type(value).__name__} {value!r:.80}")
    if not 0 <= int(value) < n:
        raise InvalidActionError(f"{what} {int(value)} is out of range [0, {n})")
    return int(value)


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidActionError(f"a plan must be a str, got {type(text).__name__}")
    if len(text) > MAX_PLAN_CHARS:
        raise InvalidActionError(f"a plan must be at most {MAX_PLAN_CHARS} characters, got {len(text)}")
    if not text.strip():
        raise InvalidActionError("a plan must not be empty")
    return text


_CHARSET = frozenset(CHARSET)


def _displayable(code: str) -> str:
    code = code[:MAX_CODE_CHARS]
    if all(c in _CHARSET for c in code):
        return code
    return "".join(c if c in _CHARSET else "?" for c in code)
