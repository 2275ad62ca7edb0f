"""Per-target texts for the prompts: ISA/architecture description, kernel signature, rules, code language."""

from __future__ import annotations

from dataclasses import dataclass

from autocomp_env.core import Kernel
from autocomp_env.llm.targets import gemmini, trainium


@dataclass(frozen=True)
class Target:
    isa: str  # architecture + ISA description
    signature: str  # what `solution` computes for this kernel
    rules: tuple[str, ...]
    lang: str  # fence language: "c" | "python"
    role: str  # who the model plays


def target_for(kernel: Kernel) -> Target:
    """Texts for `kernel.target`; ValueError for an unknown target."""
    if kernel.target == "gemmini":
        return Target(
            gemmini.isa_text(kernel),
            gemmini.signature_text(kernel),
            gemmini.RULES,
            "c",
            "an optimizing compiler for the Gemmini accelerator",
        )
    if kernel.target == "trainium":
        return Target(
            trainium.isa_text(kernel),
            trainium.signature_text(kernel),
            trainium.RULES,
            "python",
            "an expert NKI kernel engineer optimizing for AWS Trainium",
        )
    raise ValueError(f"no prompt texts for target {kernel.target!r}; known: gemmini, trainium")
