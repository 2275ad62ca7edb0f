"""The code-model interface: one transition of the environment is one `implement` call.

`CodeModel.implement` turns (current code, plan, feedback) into candidate code. `propose_plans` is the
planning phase (Autocomp's first prompt): it serves LLM-policy agents and the beam search. A model whose
planning is menu dropout alone says so with `menu_planner = True` (the offline model); agents then draw
such plans themselves with `menu_plans`, at no cost (`agents.envapi.plans`).
Implementations: `OfflineCodeModel` (below, the default: schedule transformations, deterministic given
the rng) and `autocomp_env.llm.LLMCodeModel` (any OpenAI-compatible endpoint).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from autocomp_env.core import Feedback, Generation, Kernel, Plan
from autocomp_env.kernels import family_of
from autocomp_env.schedules.base import read_schedule


@runtime_checkable
class CodeModel(Protocol):
    name: str

    def implement(
        self, kernel: Kernel, code: str, plan: Plan, feedback: Feedback, rng: np.random.Generator
    ) -> Generation:
        """Candidate code implementing `plan` on `code`. Never raises for model failures: returns a
        Generation with `code=None` and `error` set instead."""
        ...

    def propose_plans(
        self,
        kernel: Kernel,
        code: str,
        feedback: Feedback,
        menu: tuple[str, ...],
        mask: np.ndarray,
        n: int,
        rng: np.random.Generator,
    ) -> list[Plan]:
        """Up to `n` plans for `code`. `menu` is the family's menu (already after dropout is up to the
        implementation: Autocomp drops each item with probability 1 - keep), `mask` the applicable items."""
        ...


# Autocomp keeps each menu item in a planning prompt with this probability (`dropout_menu_options`).
MENU_KEEP_PROBABILITY = 0.25


def menu_plans(
    menu: tuple[str, ...], mask: np.ndarray, n: int, keep: float, rng: np.random.Generator, *, distinct: bool = False
) -> list[Plan]:
    """Autocomp's planning by menu dropout, without a model: each applicable item survives with probability
    `keep`, and a plan picks one survivor (any applicable item if none survives: an LLM would still answer).
    `distinct=False` draws one dropout per plan, as Autocomp's planning prompts do (plans may repeat);
    `distinct=True` draws one dropout for all `n` plans and returns distinct items. [] if nothing applies."""
    items = np.flatnonzero(np.asarray(mask, dtype=bool)[: len(menu)])
    if n <= 0 or items.size == 0:
        return []
    if distinct:
        kept = items[rng.random(items.size) < keep]
        chosen = rng.permutation(kept if kept.size else items)[:n]
        return [Plan(text=menu[i], menu_index=int(i)) for i in chosen]
    plans = []
    for _ in range(n):
        kept = items[rng.random(items.size) < keep]
        i = int(rng.choice(kept if kept.size else items))
        plans.append(Plan(text=menu[i], menu_index=i))
    return plans


class OfflineCodeModel:
    """The default code model: no LLM, just the family's schedule transformations. Deterministic given the rng.

    It reads the schedule from the code's `autocomp-schedule:` marker, applies the plan (a menu item, or
    the menu items a free-form plan names, via `family.parse_plan`) and emits the new code. Code without
    a marker, or a plan it cannot interpret, comes back unchanged with a `note`. With `fault_rate > 0`,
    that share of generations gets a realistic bug from `family.inject_fault` (named in
    `Generation.fault`), to mimic an LLM's mistakes.
    """

    name = "offline"
    menu_planner = True  # plans by menu dropout alone: an agent may draw such plans itself (`menu_plans`)

    def __init__(self, fault_rate: float = 0.0, keep_probability: float = MENU_KEEP_PROBABILITY):
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be in [0, 1], got {fault_rate}")
        if not 0.0 < keep_probability <= 1.0:
            raise ValueError(f"keep_probability must be in (0, 1], got {keep_probability}")
        self.fault_rate = float(fault_rate)
        self.keep_probability = float(keep_probability)

    def config(self) -> dict:
        return {"name": self.name, "fault_rate": self.fault_rate, "keep_probability": self.keep_probability}

    def implement(
        self, kernel: Kernel, code: str, plan: Plan, feedback: Feedback, rng: np.random.Generator
    ) -> Generation:
        family = family_of(kernel)
        schedule = read_schedule(code)
        if schedule is None:
            return Generation(
                code=code, note="no autocomp-schedule marker: the offline model cannot transform this code"
            )
        if plan.menu_index is not None:
            steps = [(int(plan.menu_index), {})]
        else:
            steps = family.parse_plan(plan.text)
            if not steps:
                return Generation(code=code, note="plan not understood: code unchanged")
        applied, skipped = [], []
        for item, params in steps:
            if not 0 <= item < len(family.menu):
                skipped.append(f"menu item {item} does not exist")
                continue
            transform = family.apply(kernel, schedule, item, dict(params), rng)
            if transform is None:
                skipped.append(f"'{family.menu[item]}' does not apply")
                continue
            schedule = transform.schedule
            applied.append(transform.description)
        note = "; ".join(applied + skipped)
        if not applied:
            return Generation(code=code, note=f"{note}: code unchanged")
        new_code = family.emit(kernel, schedule)
        fault = None
        if self.fault_rate > 0.0 and rng.random() < self.fault_rate:
            new_code, fault = family.inject_fault(kernel, new_code, rng)
        return Generation(code=new_code, note=note, fault=fault)

    def propose_plans(
        self,
        kernel: Kernel,
        code: str,
        feedback: Feedback,
        menu: tuple[str, ...],
        mask: np.ndarray,
        n: int,
        rng: np.random.Generator,
    ) -> list[Plan]:
        """Up to `n` distinct applicable menu items, after Autocomp's menu dropout (each item kept with
        `keep_probability`; if dropout leaves nothing applicable, all applicable items are candidates).
        [] when no item applies."""
        return menu_plans(menu, mask, n, self.keep_probability, rng, distinct=True)
