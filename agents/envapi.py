"""The one place agents touch the environment's contract, so a change there touches one file.

Everything here goes through `env.reset`, `env.step` and `env.unwrapped` (get_state/set_state, propose_plans,
baseline_latencies, usage, kernel, menu); agents never reach into simulators or code models directly.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from autocomp_env.codemodel import MENU_KEEP_PROBABILITY, menu_plans
from autocomp_env.core import Plan
from autocomp_env.env import env_id_for


@dataclass(frozen=True)
class EnvSpec:
    """How a worker process builds an env: picklable, so it crosses Ray boundaries (a live env does not)."""

    kernel: str
    env_id: str | None = None  # None: the id registered for the kernel's family (autocomp_env.env.env_id_for)
    kwargs: tuple[tuple[str, Any], ...] = ()  # extra gymnasium.make kwargs (budget, action_mode, ...)
    imports: tuple[str, ...] = ("autocomp_env",)  # modules that register the env id in a fresh process

    def with_kwargs(self, **kw: Any) -> EnvSpec:
        merged = dict(self.kwargs) | kw
        return dataclasses.replace(self, kwargs=tuple(sorted(merged.items())))


def make_env(spec: EnvSpec) -> gym.Env:
    for mod in spec.imports:
        importlib.import_module(mod)
    if spec.env_id is None:
        return gym.make(env_id_for(spec.kernel), kernel=spec.kernel, **dict(spec.kwargs))
    return gym.make(spec.env_id, kernel=spec.kernel, **dict(spec.kwargs))


@dataclass(frozen=True)
class Outcome:
    """What one env step told the agent."""

    correct: bool
    latency: float | None  # the candidate's latency (None if it failed)
    best_latency: float
    reward: float
    done: bool  # terminated or truncated: budget or step limit reached
    terminated: bool  # the env has nothing left to gain (e.g. the roofline is reached)
    budget_exhausted: bool
    plan: str
    error_type: str | None
    info: dict[str, Any]
    obs: dict[str, Any]


def _budget_exhausted(info: dict[str, Any], terminated: bool) -> bool:
    left = info.get("budget_left", info.get("budget"))
    if isinstance(left, dict):
        return any(v is not None and v <= 0 for v in left.values())
    return bool(info.get("budget_exhausted", False)) or (terminated and left is not None and left <= 0)


def step(env: gym.Env, action: int | str | Plan) -> Outcome:
    obs, reward, terminated, truncated, info = env.step(action)
    latency = info.get("candidate_latency", info.get("latency"))
    correct = bool(info.get("correct", latency is not None))
    best = info.get("best_latency")
    plan = info.get("plan")
    plan_text = plan.text if isinstance(plan, Plan) else str(plan if plan is not None else action)
    return Outcome(
        correct=correct,
        latency=float(latency) if correct and latency is not None else None,
        best_latency=float(best) if best is not None else math.inf,
        reward=float(reward),
        done=bool(terminated or truncated),
        terminated=bool(terminated),
        budget_exhausted=_budget_exhausted(info, terminated),
        plan=plan_text,
        error_type=info.get("error_type"),
        info=info,
        obs=obs,
    )


def reset(env: gym.Env, seed: int) -> tuple[dict[str, Any], float]:
    """Reset and return (observation, starting latency)."""
    obs, info = env.reset(seed=seed)
    latency = info.get("latency", info.get("start_latency"))
    if latency is None:
        latency = baselines(env).get("start")
    return obs, float(latency)


def baselines(env: gym.Env) -> dict[str, float]:
    return {k: float(v) for k, v in env.unwrapped.baseline_latencies().items() if v is not None}


def mask(obs: dict[str, Any]) -> np.ndarray:
    return np.asarray(obs["mask"], dtype=bool)


def menu(env: gym.Env) -> tuple[str, ...]:
    return tuple(env.unwrapped.menu)


def menu_plan(env: gym.Env, index: int) -> Plan:
    return Plan(text=menu(env)[index], menu_index=int(index))


def usage(env: gym.Env) -> dict[str, float]:
    """Spend so far as a flat dict: samples, llm_calls, tokens, dollars, sim_seconds (missing keys are 0)."""
    u = env.unwrapped.usage
    d = dataclasses.asdict(u) if dataclasses.is_dataclass(u) else dict(u)
    out = {k: float(d.get(k, 0) or 0) for k in ("samples", "llm_calls", "tokens", "dollars", "sim_seconds")}
    if not out["tokens"]:
        out["tokens"] = float(d.get("prompt_tokens", 0) or 0) + float(d.get("completion_tokens", 0) or 0)
    return out


def get_state(env: gym.Env) -> Any:
    return env.unwrapped.get_state()


def restore(env: gym.Env, state: Any, sample: int = 0) -> dict[str, Any]:
    """Move the env back to `state` (spend is not rewound) and return that state's observation.

    `set_state` also restores the rng, so the same action from the same state gives the same candidate.
    `sample=k > 0` advances the rng k draws first, for the k-th independent implementation of a plan
    (Autocomp's code samples): with a menu-dropout planner (the offline code model) through recorded
    `propose_plans(1)` calls, so the children stay exactly replayable from the state's events; otherwise
    (a model's planning calls cost) by drawing from `np_random`.
    """
    u = env.unwrapped
    out = u.set_state(state)
    if sample > 0:
        if getattr(getattr(u, "code_model", None), "menu_planner", False):  # free, recorded, replayable
            for _ in range(sample):
                u.propose_plans(1)
        else:
            u.np_random.integers(0, 2**31, size=sample)
    if isinstance(out, tuple):
        out = out[0]
    if isinstance(out, dict) and "mask" in out:
        return out
    return u.observation()


def propose_plans(env: gym.Env, n: int) -> list[Plan]:
    return list(env.unwrapped.propose_plans(n))


def plans_from_menu(env: gym.Env) -> bool:
    """True when planning needs no model call: the env's code model plans by menu dropout alone
    (`menu_planner`, the offline model), or the env has no code model of ours."""
    model = getattr(env.unwrapped, "code_model", None)
    return model is None or bool(getattr(model, "menu_planner", False))


def plans(
    env: gym.Env,
    state: Any,
    mask: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    keep: float = MENU_KEEP_PROBABILITY,
    sample: int = 0,
    source: str = "auto",
) -> list[Plan]:
    """The planner agents call: up to `n` plans for the code at `state` (whose menu mask is `mask`).

    source "menu": Autocomp's menu dropout drawn here from the agent's `rng` (one dropout per plan, item
    kept with probability `keep`), no model call; "env": the env's own planner (`propose_plans`, recorded
    and charged to the budget) from `state` with draw offset `sample`; "auto": "menu" when
    `plans_from_menu(env)`, else "env"."""
    if source not in ("auto", "menu", "env"):
        raise ValueError(f"plan source must be 'auto', 'menu' or 'env', got {source!r}")
    if source == "env" or (source == "auto" and not plans_from_menu(env)):
        restore(env, state, sample=sample)
        return propose_plans(env, n)[:n]
    return menu_plans(menu(env), mask, n, keep, rng)
