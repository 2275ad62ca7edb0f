"""`MovesFamily`: the schedule engine of families that list, per menu item, the moves it allows."""

from __future__ import annotations

from typing import Any

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import Family, Transform


class MovesFamily(Family):
    """A family whose `_moves` lists, for a menu item, the (schedule, description) moves it allows;
    `applicable` and `apply` follow from that list (the Trainium gemm, attention and sdattention families)."""

    def _moves(self, kernel: Kernel, s: dict[str, Any], item: int, params: dict[str, Any]) -> list[tuple[dict, str]]:
        raise NotImplementedError

    def complete(self, kernel: Kernel, schedule: dict[str, Any]) -> dict[str, Any]:
        """`schedule` with knobs it does not name set as in the naive schedule (older or hand-edited markers)."""
        return {**self.naive_schedule(kernel), **schedule}

    def applicable(self, kernel: Kernel, schedule: dict[str, Any]) -> np.ndarray:
        return np.array([bool(self._moves(kernel, schedule, i, {})) for i in range(len(self.menu))])

    def apply(
        self, kernel: Kernel, schedule: dict[str, Any], item: int, params: dict[str, Any], rng: np.random.Generator
    ) -> Transform | None:
        moves = self._moves(kernel, schedule, item, params or {})
        if not moves:
            return None
        t, desc = moves[int(rng.integers(len(moves)))]
        return Transform(t, desc)
