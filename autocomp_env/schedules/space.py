"""`ScheduleFamily`: the schedule engine of families whose space is given as functions (naive, valid,
normalize, moves, emit, expert) and explored by named moves. A menu item allows some kinds of moves; the
item applies when one of its moves reaches a different valid schedule (used by the Gemmini families).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import Family, Transform


def candidates(
    kernel: Kernel, s: dict[str, Any], kinds: tuple[str, ...], moves, valid_fn, normalize_fn
) -> list[tuple[dict[str, Any], str]]:
    """Distinct valid schedules one move of `kinds` can reach from `s` (generic over families)."""
    cur = normalize_fn(kernel, s)
    seen: set[str] = set()
    out = []
    for kind in kinds:
        for new, desc in moves(kernel, cur, kind):
            if not valid_fn(kernel, new):
                continue
            new = normalize_fn(kernel, new)
            key = repr(sorted(new.items()))
            if new != cur and key not in seen:
                seen.add(key)
                out.append((new, desc))
    return out


def pick(cands: list[tuple[dict[str, Any], str]], params: dict[str, Any], rng: np.random.Generator) -> Transform | None:
    """One of `cands`: those matching most of the values a plan named, else any, drawn from `rng`."""
    if not cands:
        return None
    wanted = {k: v for k, v in params.items() if k in cands[0][0]}
    if wanted:
        score = [sum(new.get(k) == v for k, v in wanted.items()) for new, _ in cands]
        best = max(score)
        if best > 0:
            cands = [c for c, sc in zip(cands, score, strict=True) if sc == best]
    new, desc = cands[int(rng.integers(len(cands)))]
    return Transform(new, desc)


def parse_plan(
    text: str, patterns: tuple[tuple[int, str], ...], params_fn: Callable[[str], dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """Menu items a plan names (ordered by where they appear), each with the parameters the plan names."""
    t = text.lower()
    hits: list[tuple[int, int]] = []
    for item, pat in patterns:
        m = re.search(pat, t)
        if m:
            hits.append((m.start(), item))
    params = params_fn(text)
    return [(item, dict(params)) for _, item in sorted(hits)]


class ScheduleFamily(Family):
    """A family whose code is emitted from a schedule dict. Its schedule space is the functions of the module
    `space`: naive_schedule, valid, normalize, moves, emit (the code writer) and expert_schedule. `item_moves`
    maps a menu item to the move kinds it may make, `item_patterns` maps phrases of free-form plans to menu
    items, `choices` lists the allowed values of enumerated keys."""

    space: ClassVar[ModuleType]
    item_moves: dict[int, tuple[str, ...]] = {}
    item_patterns: tuple[tuple[int, str], ...] = ()
    choices: dict[str, tuple[Any, ...]] = {}  # the allowed values of enumerated keys

    # Hooks: the module functions of the family.
    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return self.space.naive_schedule(kernel)

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        return self.space.valid(kernel, s)

    def normalize(self, kernel: Kernel, s: dict[str, Any]) -> dict[str, Any]:
        return self.space.normalize(kernel, s)

    def moves(self, kernel: Kernel, s: dict[str, Any], kind: str) -> list[tuple[dict[str, Any], str]]:
        return self.space.moves(kernel, s, kind)

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        """The code of a normalized, valid schedule."""
        return self.space.emit(kernel, s)

    def plan_params(self, text: str) -> dict[str, Any]:
        """Values a free-form plan names, as schedule keys (none by default)."""
        return {}

    # Generic machinery.
    def full(self, kernel: Kernel, schedule: dict[str, Any]) -> dict[str, Any] | None:
        """`schedule` completed with the naive values, or None if it is not a legal schedule of this family
        (unknown keys, wrong value types, or values `valid` rejects: e.g. a marker an LLM edited by hand)."""
        naive = self.naive_schedule(kernel)
        if not isinstance(schedule, dict) or not set(schedule) <= set(naive):
            return None
        s = {**naive, **schedule}
        for key, value in s.items():
            ref = naive[key]
            if isinstance(ref, bool) or isinstance(value, bool):
                ok = isinstance(value, bool) and isinstance(ref, bool)
            elif isinstance(ref, int):
                ok = isinstance(value, int) and value >= 0
            else:  # strings and optional strings
                ok = value is None or isinstance(value, str)
            if not ok or (key in self.choices and value not in self.choices[key]):
                return None
        try:
            return s if self.valid(kernel, s) and self.normalize(kernel, s) is not None else None
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None

    def candidates(self, kernel: Kernel, schedule: dict[str, Any], item: int) -> list[tuple[dict[str, Any], str]]:
        s = self.full(kernel, schedule)
        if s is None:
            return []
        kinds = self.item_moves.get(item, ())
        return candidates(kernel, s, kinds, self.moves, self.valid, self.normalize)

    def emit(self, kernel: Kernel, schedule: dict[str, Any]) -> str:
        s = self.full(kernel, schedule)
        if s is None:
            raise ValueError(f"not a valid {self.target}/{self.name} schedule for {kernel.name}: {schedule}")
        return self.write(kernel, self.normalize(kernel, s))

    def applicable(self, kernel: Kernel, schedule: dict[str, Any]) -> np.ndarray:
        return np.array([bool(self.candidates(kernel, schedule, i)) for i in range(len(self.menu))])

    def apply(
        self, kernel: Kernel, schedule: dict[str, Any], item: int, params: dict[str, Any], rng: np.random.Generator
    ) -> Transform | None:
        cands = self.candidates(kernel, schedule, item)
        if not cands:
            return None
        cur = self.normalize(kernel, self.full(kernel, schedule))
        # A plan that names several values this item can change (both tile sizes, say) gets all of them at once.
        movable = {k for new, _ in cands for k in new if new[k] != cur[k]}
        wanted = {k: v for k, v in params.items() if k in movable}
        if len(wanted) > 1:
            direct = self.full(kernel, {**cur, **wanted})
            if direct is not None and self.normalize(kernel, direct) != cur:
                text = ", ".join(f"{k} = {v}" for k, v in sorted(wanted.items()))
                return Transform(self.normalize(kernel, direct), f"set {text}")
        return pick(cands, params, rng)

    def parse_plan(self, text: str) -> list[tuple[int, dict[str, Any]]]:
        return parse_plan(text, self.item_patterns, self.plan_params)
