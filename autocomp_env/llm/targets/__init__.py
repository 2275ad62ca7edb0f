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


# target -> (module with isa_text, signature_text and RULES; code language; the role the model plays)
_TARGETS = {
    "gemmini": (gemmini, "c", "an optimizing compiler for the Gemmini accelerator"),
    "trainium": (trainium, "python", "an expert NKI kernel engineer optimizing for AWS Trainium"),
}


def target_for(kernel: Kernel) -> Target:
    """Texts for `kernel.target`; ValueError for an unknown target."""
    if kernel.target not in _TARGETS:
        raise ValueError(f"no prompt texts for target {kernel.target!r}; known: {', '.join(_TARGETS)}")
    texts, lang, role = _TARGETS[kernel.target]
    return Target(texts.isa_text(kernel), texts.signature_text(kernel), texts.RULES, lang, role)
