"""The Trainium target: an NKI v1 kernel `@nki.jit def solution(...)`, run by `simulators/trainium` (µs).

Families: gemm, attention, sdattention, rmsnorm, layernorm, softmax, mamba and conv1d, in `families/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autocomp_env.targets import PromptTexts, Target, family_modules
from autocomp_env.targets.trainium import prompts


def simulator(config: Any = None) -> Any:
    from simulators.trainium import TrainiumSimulator  # noqa: PLC0415  (ml_dtypes: ~1 s, only Trainium needs it)

    # The evaluator caches results (memory and disk): the simulator keeps none of its own.
    return TrainiumSimulator(config, cache_results=False)


def parse(name: str) -> tuple[str, Any]:
    """The simulator's own parse of `name` (a `simulators.trainium.KernelSpec`) and its family."""
    from simulators.trainium.kernels import parse_kernel  # noqa: PLC0415  (ml_dtypes, as above)

    spec = parse_kernel(name)
    return spec.family, spec


SUITES: dict[str, tuple[str, ...]] = {
    "trainium-tutorial": (
        "trainium/rmsnorm-512x4096",
        "trainium/layernorm-4096x8192",
        "trainium/gemm-4096x8192x8192-bf16",
        "trainium/mamba-1x256x2048x16",
        "trainium/attention-128x4096-bf16",
        "trainium/sdattention-4096x64",
    ),
    "trainium-extra": ("trainium/softmax-4096x2048", "trainium/conv1d-8x512x2048x3"),
}

# Simulator counters in the observation: (counter, scale); each is divided by its scale.
COUNTERS: tuple[tuple[str, str | float], ...] = (
    ("tensor_busy_pct", 100.0),
    ("vector_busy_pct", 100.0),
    ("scalar_busy_pct", 100.0),
    ("gpsimd_busy_pct", 100.0),
    ("dma_busy_pct", 100.0),
    ("mfu", 1.0),
    ("mbu", 1.0),
)

TARGET = Target(
    name="trainium",
    title="Trainium",
    description="NKI Python kernels, microseconds",
    unit="us",
    lang="python",
    simulator=simulator,
    parse=parse,
    families=family_modules(__name__, Path(__file__).parent / "families"),
    suites=SUITES,
    counters=COUNTERS,
    prompts=PromptTexts(
        role="an expert NKI kernel engineer optimizing for AWS Trainium",
        rules=prompts.RULES,
        isa=prompts.isa_text,
        signature=prompts.signature_text,
    ),
    # The functional check runs every tile in numpy: the 4096x8192x8192 GEMM takes minutes on 2 cores.
    timeout=60.0,
    seconds_per_gmac=1.0,
)
