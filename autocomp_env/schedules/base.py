"""The `Family` interface: what every kernel family of every target provides.

A family owns a parametric schedule space. Code it emits carries its schedule in one marker comment
(`// autocomp-schedule: {...}` in C, `# autocomp-schedule: {...}` in Python), so the offline code model
can read back the schedule of any code it wrote, transform it with a menu item, and emit new code.
Code without the marker (hand-written or LLM-written) is still simulated; the offline model just
cannot transform it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from autocomp_env.core import Kernel

_MARKER = re.compile(r"^\s*(?://|#)\s*autocomp-schedule:\s*(\{.*\})\s*$", re.M)


def schedule_comment(schedule: dict[str, Any], lang: str) -> str:
    prefix = "//" if lang == "c" else "#"
    return f"{prefix} autocomp-schedule: {json.dumps(schedule, sort_keys=True, separators=(',', ':'))}"


def read_schedule(code: str) -> dict[str, Any] | None:
    """The schedule recorded in `code`, or None. It is data: parsed as JSON, never executed."""
    m = _MARKER.search(code)
    if not m:
        return None
    try:
        value = json.loads(m.group(1))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Transform:
    """The result of applying one menu item: the new schedule and a one-line description of the change."""

    schedule: dict[str, Any]
    description: str


class Family:
    """Base class of kernel families. Subclasses set the class attributes and override the methods.

    Schedules are plain JSON dicts (so they embed in code and serialize into episodes).
    """

    target: ClassVar[str]  # "gemmini" | "trainium"
    name: ClassVar[str]  # "matmul", "gemm", ...
    menu: ClassVar[tuple[str, ...]]  # the target's optimization menu (its index is the env's action)
    lang: ClassVar[str]  # "c" | "python"
    flagship: ClassVar[str]  # the kernel (name or alias) its env id optimizes when no kernel is given

    # --- kernels -----------------------------------------------------------------------------
    def spec(self, parsed: Any) -> dict[str, Any]:
        """The `Kernel.spec` of a kernel name the target's simulator parsed (`parsed` is the simulator's own
        spec record, see the target's `parse`); ValueError when this family's code cannot handle the shape."""
        raise NotImplementedError

    def small_name(self, spec: dict[str, Any]) -> str:
        """The kernel name of the small training variant of the kernel with this spec."""
        raise NotImplementedError

    def starting_code(self, kernel: Kernel) -> str:
        """The naive code a search starts from (emitted from the naive schedule, so it carries a marker)."""
        return self.emit(kernel, self.naive_schedule(kernel))

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        """{"vendor": code, "expert": code}: the vendor-library call and our hand-tuned version."""
        raise NotImplementedError

    # --- the offline code model's schedule space ---------------------------------------------
    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        raise NotImplementedError

    def emit(self, kernel: Kernel, schedule: dict[str, Any]) -> str:
        """Readable code for `schedule`, including `schedule_comment(schedule, self.lang)`."""
        raise NotImplementedError

    def applicable(self, kernel: Kernel, schedule: dict[str, Any]) -> np.ndarray:
        """Boolean mask over `self.menu`: which items can change this schedule."""
        raise NotImplementedError

    def apply(
        self, kernel: Kernel, schedule: dict[str, Any], item: int, params: dict[str, Any], rng: np.random.Generator
    ) -> Transform | None:
        """Apply menu item `item`. `params` holds values a plan named (e.g. {"tile_j": 64}); what it leaves
        open is drawn from `rng`. Returns None when the item does not apply."""
        raise NotImplementedError

    def parse_plan(self, text: str) -> list[tuple[int, dict[str, Any]]]:
        """Menu items (with parameters) that a free-form plan names, in order. [] if none understood."""
        raise NotImplementedError

    def inject_fault(self, kernel: Kernel, code: str, rng: np.random.Generator) -> tuple[str, str]:
        """A realistic bug (off-by-one address, missing fence, wrong stride...): (buggy code, description)."""
        raise NotImplementedError
