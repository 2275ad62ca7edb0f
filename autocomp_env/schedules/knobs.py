"""`KnobFamily`: the schedule engine of families whose space is a table of knobs (`Knob`): each knob says
which menu items may change it and in which direction, so `applicable`, `apply`, "try new parameter values"
and "other methods" follow from the table (the Trainium norm, softmax, mamba and conv1d families)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import Family, Transform


# ------------------------------------------------------------------------------------------------------
# Knob tables
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Knob:
    """One schedule dimension. `items` maps a menu item to the values it moves the knob toward: "any"
    (every other legal value), "up"/"down" (larger/smaller numbers), or one value / a tuple of values.
    Numeric knobs also answer "try new parameter values"; every knob answers "other methods"."""

    name: str
    label: str
    values: Callable[[Kernel], tuple]
    items: dict[int, Any]
    numeric: bool = False
    span: tuple[int, int] = (1, 1 << 30)  # numbers in a plan that can mean this knob


def _candidates(knob: Knob, kernel: Kernel, current: Any, selector: Any) -> list:
    legal = [v for v in knob.values(kernel) if v != current]
    if selector == "any":
        return legal
    if selector == "up":
        return [v for v in legal if v > current]
    if selector == "down":
        return [v for v in legal if v < current]
    wanted = selector if isinstance(selector, tuple) else (selector,)
    return [v for v in legal if v in wanted]


class KnobFamily(Family):
    """A family whose schedule space is a table of `Knob`s. Subclasses implement `knobs`, `naive_schedule`,
    `write` (code for a legal schedule), `vendor_schedule`/`expert_schedule`/`baselines` and `faults`; `valid`
    and `implied` when knobs interact. A target's subclass sets `plan_patterns` (menu item, regex: the first
    that matches a clause of a free-form plan names the item), `common_faults`, and the indices of the
    "try new parameter values" and "other methods" items of its menu.

    Schedules read back from code are made legal by `fit`, so a hand-edited or stale marker never crashes
    `emit`, `applicable` or `apply`."""

    plan_patterns: ClassVar[tuple[tuple[int, re.Pattern], ...]] = ()
    common_faults: ClassVar[list[tuple[str, str, str]]] = []
    try_params_item: ClassVar[int]  # "try new parameter values": moves any numeric knob
    other_item: ClassVar[int]  # "other methods not listed here": moves any knob

    # --- schedule space ------------------------------------------------------------------------------
    def knobs(self, kernel: Kernel | None) -> tuple[Knob, ...]:
        """The knob table. `kernel` is only read inside `Knob.values`, so `knobs(None)` lists the knobs."""
        raise NotImplementedError

    def valid(self, kernel: Kernel, schedule: dict[str, Any]) -> bool:
        """Cross-knob constraints; single-knob legality is in `Knob.values`."""
        return True

    def fit(self, kernel: Kernel, schedule: dict[str, Any]) -> dict[str, Any]:
        """`schedule` made legal for `kernel`: missing knobs take their naive value, numeric values that are
        not legal here (e.g. a flagship schedule carried to the small variant) the largest legal value below
        them, other unknown values the naive one; unknown keys are dropped."""
        naive = self.naive_schedule(kernel)
        out = {}
        for knob in self.knobs(kernel):
            legal = knob.values(kernel)
            v = schedule.get(knob.name, naive[knob.name])
            if v not in legal:
                num = knob.numeric and isinstance(v, (int, float)) and not isinstance(v, bool)
                below = [x for x in legal if num and x <= v]
                v = max(below) if below else (min(legal) if num else naive[knob.name])
            out[knob.name] = v
        return out if self.valid(kernel, out) else naive

    def emit(self, kernel: Kernel, schedule: dict[str, Any]) -> str:
        return self.write(kernel, self.fit(kernel, schedule))

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        """Readable NKI code for a legal schedule `s` (carrying it in a marker comment)."""
        raise NotImplementedError

    def selectors(self, knob: Knob) -> dict[int, Any]:
        sel = dict(knob.items)
        if knob.numeric:
            sel.setdefault(self.try_params_item, "any")
        sel.setdefault(self.other_item, "any")
        return sel

    def _moves(self, kernel: Kernel, schedule: dict[str, Any], item: int) -> list[tuple[Knob, list]]:
        moves = []
        for knob in self.knobs(kernel):
            sel = self.selectors(knob).get(item)
            if sel is None or knob.name not in schedule:
                continue
            vals = [
                v
                for v in _candidates(knob, kernel, schedule[knob.name], sel)
                if self.valid(kernel, self.implied(kernel, schedule, knob.name, v))
            ]
            if vals:
                moves.append((knob, vals))
        return moves

    def applicable(self, kernel: Kernel, schedule: dict[str, Any]) -> np.ndarray:
        schedule = self.fit(kernel, schedule)
        return np.array([bool(self._moves(kernel, schedule, i)) for i in range(len(self.menu))], dtype=bool)

    def apply(
        self, kernel: Kernel, schedule: dict[str, Any], item: int, params: dict[str, Any], rng: np.random.Generator
    ) -> Transform | None:
        schedule = self.fit(kernel, schedule)
        moves = self._moves(kernel, schedule, item)
        if not moves:
            return None
        named = [(k, v) for k, v in moves if k.name in params and params[k.name] in v]
        if named:
            knob, vals = named[0]
            value = params[knob.name]
        else:
            knob, vals = moves[int(rng.integers(len(moves)))]
            value = vals[int(rng.integers(len(vals)))]
        new = self.implied(kernel, schedule, knob.name, value)
        also = [f"{n} {schedule[n]} -> {new[n]}" for n in new if n != knob.name and new[n] != schedule[n]]
        extra = f" (which needs {', '.join(also)})" if also else ""
        return Transform(new, f"{knob.label}: {schedule[knob.name]} -> {value}{extra}")

    def implied(self, kernel: Kernel, schedule: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
        """The schedule after setting knob `name` to `value`, with the other knobs that this change needs
        adjusted too (e.g. TensorE taps need the input loaded once), so a move never strands the search."""
        return {**schedule, name: value}

    def parse_plan(self, text: str) -> list[tuple[int, dict[str, Any]]]:
        # Per clause, the first matching item that can change something in this family wins; if none can,
        # the first matching item (the code model then reports that it does not apply).
        relevant = {self.other_item, self.try_params_item} | {i for knob in self.knobs(None) for i in knob.items}
        out: list[tuple[int, dict[str, Any]]] = []
        for clause in re.split(r"[.;,\n]|\band\b|\bthen\b", text):
            hits = [item for item, pat in self.plan_patterns if pat.search(clause)]
            if not hits:
                continue
            item = next((i for i in hits if i in relevant), hits[0])
            nums = [int(n) for n in re.findall(r"\b(\d+)\b", clause)]
            params = {}
            for kn in self.knobs(None):
                if item in self.selectors(kn) and kn.name in self.number_params:
                    fits = [n for n in nums if kn.span[0] <= n <= kn.span[1]]
                    if fits:
                        params[kn.name] = fits[0]
            out.append((item, params))
        return out

    # Names of numeric knobs that a number in a plan clause may set (apply keeps it only if legal).
    number_params: tuple[str, ...] = ()

    # --- baselines: each family names its vendor and expert schedules -------------------------------
    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        raise NotImplementedError

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        raise NotImplementedError

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        return {
            "vendor": self.emit(kernel, self.vendor_schedule(kernel)),
            "expert": self.emit(kernel, self.expert_schedule(kernel)),
        }

    # --- faults --------------------------------------------------------------------------------------
    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        """(regex, replacement, description) bugs that break this family's code."""
        return []

    def inject_fault(self, kernel: Kernel, code: str, rng: np.random.Generator) -> tuple[str, str]:
        options = []
        for pat, repl, desc in self.faults(kernel) + self.common_faults:
            hits = list(re.finditer(pat, code, re.M))
            options += [(m, repl, desc) for m in hits]
        if not options:
            return code.replace("return ", "return None  # ", 1), "returned nothing instead of the output tensor"
        m, repl, desc = options[int(rng.integers(len(options)))]
        return code[: m.start()] + m.expand(repl) + code[m.end() :], desc
