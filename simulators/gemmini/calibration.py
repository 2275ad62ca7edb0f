"""The calibration table: simulated vs FireSim speed relative to the hardware loop FSM, on Autocomp's Exo GEMM
problems 0, 2 and 3 (../shared/third_party/autocomp/gemmini-exo, FireSim figures from its README, read from
the Autocomp paper's GEMM chart, about +-0.05).

For each problem the FSM is our `tiled_matmul_auto` on loop_ws, the SW library the same call on the software
path (`vendor_code(..., fsm=False)`), Exo-unopt and Exo-opt Autocomp's files. Targets: every ratio to the FSM
within `RATIO_TOL` of FireSim's, and the expert's gain over the starting code (unopt/opt cycles) within
`GAIN_TOL`. Nothing here is keyed on a file: the files run through the ordinary simulator.
"""

from __future__ import annotations

import os
from pathlib import Path

from .simulator import GemminiSimulator
from .vendor import vendor_code

RATIO_TOL = 0.10
GAIN_TOL = 0.15
SHAPES = {0: (512, 512, 512), 2: (12544, 256, 64), 3: (3136, 128, 512)}
# FireSim speed / hardware-FSM speed (third_party/README.md)
FIRESIM = {
    0: {"sw": 0.17, "unopt": 0.43, "opt": 0.87},
    2: {"sw": 0.17, "unopt": 0.29, "opt": 0.42},
    3: {"sw": 0.16, "unopt": 0.30, "opt": 0.71},
}


def exo_dir() -> Path | None:
    """Autocomp's Exo files: $AUTOCOMP_THIRD_PARTY/autocomp/gemmini-exo or ../shared/third_party next to the
    checkout; None when absent (users installing from a clone do not have them)."""
    roots = [os.environ.get("AUTOCOMP_THIRD_PARTY", "")]
    roots.append(str(Path(__file__).resolve().parents[3] / "shared" / "third_party"))
    for root in roots:
        d = Path(root) / "autocomp" / "gemmini-exo" if root else None
        if d is not None and d.is_dir():
            return d
    return None


def kernel_of(problem: int) -> str:
    i, k, j = SHAPES[problem]
    return f"gemmini/matmul-{i}x{k}x{j}"


def codes(problem: int, d: Path) -> dict[str, str]:
    kernel = kernel_of(problem)
    return {
        "fsm": vendor_code(kernel, fsm=True),
        "sw": vendor_code(kernel, fsm=False),
        "unopt": (d / f"sol{problem}_exo_baseline.c").read_text(),
        "opt": (d / f"sol{problem}_exo_opt.c").read_text(),
    }


def table(sim: GemminiSimulator | None = None, problems=(0, 2, 3)) -> list[dict]:
    """One row per problem: cycles of each variant, simulated and FireSim ratios to the FSM, the expert's gain,
    and whether each target holds. Raises if the third-party files are absent or a variant is not correct."""
    d = exo_dir()
    if d is None:
        raise FileNotFoundError("../shared/third_party/autocomp/gemmini-exo is absent")
    sim = sim or GemminiSimulator()
    rows = []
    for p in problems:
        kernel = kernel_of(p)
        cycles = {}
        for name, code in codes(p, d).items():
            r = sim.run(code, kernel, seeds=(0,), timeout=600)
            if not r.correct:
                raise RuntimeError(f"problem {p} {name}: {r.error}")
            cycles[name] = r.latency
        ratio = {k: cycles["fsm"] / cycles[k] for k in FIRESIM[p]}
        err = {k: ratio[k] / FIRESIM[p][k] - 1 for k in FIRESIM[p]}
        gain = cycles["unopt"] / cycles["opt"]
        gain_fs = FIRESIM[p]["opt"] / FIRESIM[p]["unopt"]
        rows.append(
            {
                "problem": p,
                "kernel": kernel,
                "cycles": cycles,
                "fsm_utilization": sim.roofline(kernel) / cycles["fsm"],
                "ratio": ratio,
                "firesim": dict(FIRESIM[p]),
                "ratio_error": err,
                "ratio_ok": {k: abs(e) <= RATIO_TOL for k, e in err.items()},
                "gain": gain,
                "gain_firesim": gain_fs,
                "gain_error": gain / gain_fs - 1,
                "gain_ok": abs(gain / gain_fs - 1) <= GAIN_TOL,
            }
        )
    return rows
