"""The Gemmini target: a C function `solution` with Gemmini intrinsics, run by `simulators/gemmini` (cycles).

Families: matmul (int8 GEMM), conv (int8 3x3 conv) and tinympc (FP32 4x4 linear algebra), in `families/`.
"""

from __future__ import annotations

from pathlib import Path

from autocomp_env.targets import PromptTexts, Target, family_modules
from autocomp_env.targets.gemmini import prompts
from simulators.gemmini import GemminiSimulator
from simulators.gemmini.kernels import KernelSpec, parse_kernel


def parse(name: str) -> tuple[str, KernelSpec]:
    """The simulator's own parse of `name`; its family is the kind up to the first dash ("tinympc-matvec")."""
    spec = parse_kernel(name)
    return spec.kind.partition("-")[0], spec


def _mm(i: int, k: int, j: int) -> str:
    return f"gemmini/matmul-{i}x{k}x{j}"


def _conv(p: int, c: int) -> str:
    return f"gemmini/conv-4x{p}x{p}x{c}x{c}"


# Autocomp's problem sets (research/autocomp.md §3.3, §4.2). Matmul shapes are IxKxJ.
SUITES: dict[str, tuple[str, ...]] = {
    "gemmini-gemm": (
        _mm(32, 2048, 2048),
        _mm(1024, 1024, 1024),
        _mm(256, 256, 256),
        _mm(6272, 64, 256),
        _mm(12544, 64, 128),
        _mm(12544, 128, 256),
        _mm(128, 1024, 1024),
        _mm(64, 1024, 1024),
        _mm(32, 1024, 1024),
    ),
    "gemmini-exo": (
        _mm(512, 512, 512),
        _mm(12544, 64, 256),
        _mm(12544, 256, 64),
        _mm(3136, 128, 512),
        _mm(3136, 512, 128),
        _mm(784, 256, 1024),
    ),
    "gemmini-conv": (_conv(56, 64), _conv(28, 128), _conv(14, 256), _conv(14, 128)),
    "gemmini-tinympc": (
        "gemmini/tinympc-matvec-12x4",
        "gemmini/tinympc-forward-12x4x5",
        "gemmini/tinympc-backward-12x4x10",
    ),
}

# Simulator counters in the observation: (counter, scale). "latency" divides by the latency (busy or stall
# time becomes a fraction of the run); a number divides by that number.
COUNTERS: tuple[tuple[str, str | float], ...] = (
    ("busy_ld", "latency"),
    ("busy_ex", "latency"),
    ("busy_st", "latency"),
    ("stall_dep_ex", "latency"),
    ("stall_fence", "latency"),
    ("stall_rs_full", "latency"),
    ("stall_dma_window", "latency"),
    ("bank_conflict_cycles", "latency"),
    ("instructions", "latency"),  # instructions per cycle
    ("spad_rows_touched", 16384.0),  # share of the 256 KiB scratchpad
    ("acc_rows_touched", 1024.0),  # share of the 64 KiB accumulator
)

TARGET = Target(
    name="gemmini",
    title="Gemmini",
    description="C with Gemmini intrinsics, cycles",
    unit="cycles",
    lang="c",
    simulator=GemminiSimulator,
    parse=parse,
    families=family_modules(__name__, Path(__file__).parent / "families"),
    suites=SUITES,
    counters=COUNTERS,
    prompts=PromptTexts(
        role="an optimizing compiler for the Gemmini accelerator",
        rules=prompts.RULES,
        isa=prompts.isa_text,
        signature=prompts.signature_text,
    ),
    # The functional check runs every MAC in C: 0.05 s per 10^9 MACs and seed on top of 30 s is generous.
    timeout=30.0,
    seconds_per_gmac=0.05,
)
