"""Benchmark the Gemmini simulator: wall time per 512^3 evaluation and simulated instructions per second,
plus the utilization of loop_ws, the software library path, and naive code on the same GEMM.

    python scripts/bench_gemmini.py [--size 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.gemmini import DEFAULT, GemminiSimulator, parse_kernel, vendor_code  # noqa: E402
from simulators.gemmini.build import build_runtime, harness_binary  # noqa: E402
from simulators.gemmini.kernels import make_inputs  # noqa: E402
from simulators.gemmini.simulator import compile_script, harness_exports, harness_main_source, solution_source  # noqa: E402

SIG = "void solution(int8_t A[MAT_DIM_I][MAT_DIM_K], int8_t B[MAT_DIM_K][MAT_DIM_J], int8_t C[MAT_DIM_I][MAT_DIM_J])"
SETUP = """
  config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);
  config_st(MAT_DIM_J);
  config_ld(MAT_DIM_K, MVIN_SCALE_IDENTITY, DIM, 0);
  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 1);
"""
NAIVE = (
    SIG
    + " {"
    + SETUP
    + """
  for (int i = 0; i < MAT_DIM_I; i += DIM)
    for (int j = 0; j < MAT_DIM_J; j += DIM) {
      for (int k = 0; k < MAT_DIM_K; k += DIM) {
        mvin(&A[i][k], 0, DIM, DIM);
        mvin2(&B[k][j], DIM, DIM, DIM);
        preload(DIM, (1u << 31) | (k ? (1u << 30) : 0), DIM, DIM, DIM, DIM);
        compute_preloaded(0, GARBAGE_ADDR, DIM, DIM, DIM, DIM);
      }
      mvout(&C[i][j], 1u << 31, DIM, DIM);
      fence();
    }
}
"""
)


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_eval(sim: GemminiSimulator, code: str, kernel: str, seeds: tuple[int, ...], repeat: int):
    sim.run(code, kernel, seeds=seeds)  # warm: builds the runtime, caches inputs and references
    walls, res = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = sim.run(code, kernel, seeds=seeds)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls), res


def instructions_per_second(kernel: str, code: str, repeat: int) -> tuple[int, float, float, float]:
    """Compile and run the candidate as the simulator does, but outside the sandbox: instructions, instructions
    per second of run wall time, and the CPU seconds of one compile and of one single-seed run."""
    spec = parse_kernel(kernel)
    root = build_runtime(DEFAULT)
    harness = harness_binary(root, harness_main_source(spec), harness_exports(spec))
    with tempfile.TemporaryDirectory() as d:
        Path(d, "solution.c").write_text(solution_source(spec, code))
        inp = make_inputs(spec, 0)
        for a in spec.arrays:
            Path(d, f"in0_{a.name}.bin").write_bytes(inp[a.name].tobytes())
        c0 = child_cpu()
        subprocess.run(["/bin/sh", "-c", compile_script(root)], cwd=d, check=True)
        cc_cpu = child_cpu() - c0
        times, cpus = [], []
        for _ in range(repeat):
            c0, t0 = child_cpu(), time.perf_counter()
            subprocess.run([str(harness), "1"], cwd=d, check=True)
            times.append(time.perf_counter() - t0)
            cpus.append(child_cpu() - c0)
        stats = dict(line.split() for line in Path(d, "stats0.txt").read_text().splitlines())
    n = int(stats["instructions"])
    return n, n / statistics.median(times), cc_cpu, statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.size
    kernel = f"gemmini/matmul-{n}x{n}x{n}"
    sim = GemminiSimulator()
    t0 = time.perf_counter()
    runtime = build_runtime(DEFAULT)
    print(f"runtime build (cached after the first time): {time.perf_counter() - t0:.2f} s")
    with tempfile.TemporaryDirectory() as d:  # a new shape: its harness program is built on first use
        root = Path(d) / "gemmini"
        shutil.copytree(runtime, root, ignore=shutil.ignore_patterns("harness"))
        t0 = time.perf_counter()
        harness_binary(root, harness_main_source(parse_kernel(kernel)), harness_exports(parse_kernel(kernel)))
        print(f"harness build for a new kernel shape (once, cached): {time.perf_counter() - t0:.3f} s")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"\n{kernel}: roofline {sim.roofline(kernel):.0f} cycles")
    print(f"{'code':<34}{'cycles':>12}{'util':>8}{'wall s (1 seed)':>17}{'wall s (2 seeds)':>18}")
    codes = {
        "tiled_matmul_auto, loop_ws (FSM)": vendor_code(kernel, True),
        "tiled_matmul_auto, software path": vendor_code(kernel, False),
        "naive: one tile + fence": NAIVE,
    }
    for name, code in codes.items():
        w1, r = time_eval(sim, code, kernel, (0,), args.repeat)
        w2, _ = time_eval(sim, code, kernel, (0, 1), args.repeat)
        assert r.correct, r.error
        print(f"{name:<34}{r.latency:>12.0f}{r.utilization:>8.3f}{w1:>17.3f}{w2:>18.3f}")
    fsm = sim.run(codes["tiled_matmul_auto, loop_ws (FSM)"], kernel, seeds=(0,)).latency
    sw = sim.run(codes["tiled_matmul_auto, software path"], kernel, seeds=(0,)).latency
    print(f"\nsoftware path / loop_ws: {sw / fsm:.2f}x")
    for name in ("tiled_matmul_auto, loop_ws (FSM)", "naive: one tile + fence"):
        count, rate, cc_cpu, run_cpu = instructions_per_second(kernel, codes[name], args.repeat)
        print(f"{name}: {count} instructions (FSM-expanded), {rate:,.0f} simulated instructions/s;")
        print(
            f"    CPU seconds: compile + objdump + link {cc_cpu:.3f}, one seed {run_cpu:.3f} (sandbox, Python excluded)"
        )


if __name__ == "__main__":
    main()
