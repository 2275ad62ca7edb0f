"""The code-model interface: one transition of the environment is one `implement` call.

`CodeModel.implement` turns (current code, plan, feedback) into candidate code. `propose_plans` is the
planning phase (Autocomp's first prompt): it serves LLM-policy agents and the beam search.
Implementations: `OfflineCodeModel` (below, the default: schedule transformations, deterministic given
the rng) and `autocomp_env.llm.LLMCodeModel` (any OpenAI-compatible endpoint).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from autocomp_env.core import Feedback, Generation, Kernel, Plan


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
