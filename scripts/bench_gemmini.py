"""Benchmark the Gemmini simulator: where the time of a 512^3 evaluation goes, per phase and per isolation level
of the sandbox, on a fresh and a warm cache, then the env step as users see it, and the cycles of loop_ws,
the software library path and naive code on the same GEMM.

    python scripts/bench_gemmini.py [--size 512] [--repeat 5] [--steps 8]

Wall times on a shared machine are upper bounds: CPU seconds (this process and its children) are printed
next to them.
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

from simulators import sandbox  # noqa: E402
from simulators.gemmini import DEFAULT, GemminiSimulator, parse_kernel, vendor_code  # noqa: E402
from simulators.gemmini.build import build_runtime, harness_binary  # noqa: E402
from simulators.gemmini.simulator import (  # noqa: E402
    _expected,
    _inputs,
    compile_script,
    harness_exports,
    harness_main_source,
    input_seed,
    solution_source,
)

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


def cpu() -> float:
    """CPU seconds of this process and its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed(fn, repeat: int) -> tuple[float, float, float, float]:
    """(min, median, max) wall seconds and median CPU seconds of `fn()` over `repeat` calls."""
    walls, cpus = [], []
    for i in range(repeat):
        c0, t0 = cpu(), time.perf_counter()
        fn(i)
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu() - c0)
    return min(walls), statistics.median(walls), max(walls), statistics.median(cpus)


def fmt(t: tuple[float, float, float, float]) -> str:
    return f"{t[0] * 1e3:7.1f} {t[1] * 1e3:7.1f} {t[2] * 1e3:7.1f}   cpu {t[3] * 1e3:6.1f}"


def phases(kernel: str, code: str, repeat: int) -> None:
    """Each step of one evaluation, run as the simulator runs it but outside the sandbox."""
    spec = parse_kernel(kernel)
    root = build_runtime(DEFAULT)
    harness = harness_binary(root, harness_main_source(spec), harness_exports(spec))
    parts = [p for p in compile_script(root).split("; ") if p.strip()]
    names = ("compile (zig cc -S)", "gsim-count", "as", "ld")
    with tempfile.TemporaryDirectory() as d:

        def inputs(i):
            for s in (0, 1):
                inp = _inputs(spec, input_seed(kernel, code + f"//{i}", s))
                for a in spec.arrays:
                    Path(d, f"in{s}_{a.name}.bin").write_bytes(inp[a.name].tobytes())

        print(f"  {'inputs of 2 seeds, drawn and written':<40}{fmt(timed(inputs, repeat))}")
        refs = timed(lambda i: [_expected(spec, input_seed(kernel, code + f"//r{i}", s)) for s in (0, 1)], repeat)
        print(f"  {'references of 2 seeds':<40}{fmt(refs)}")
        Path(d, "solution.c").write_text(solution_source(spec, code))
        for name, part in zip(names, parts, strict=True):

            def step(i, part=part):
                shutil.rmtree(Path(d, ".zig"), ignore_errors=True)  # as in a fresh sandbox dir
                subprocess.run(["/bin/sh", "-c", part], cwd=d, check=True)

            print(f"  {name:<40}{fmt(timed(step, repeat))}")
        env = {"GSIM_CHANNEL": "1", "PATH": "/usr/bin:/bin"}
        for seeds in (1, 2):

            def run(i, seeds=seeds):
                for f in ("nonce.txt", "result.bin"):
                    Path(d, f).unlink(missing_ok=True)
                subprocess.run(["setarch", "-R", str(harness), str(seeds)], cwd=d, env=env, check=True)

            print(f"  {f'harness: load + simulate {seeds} seed(s)':<40}{fmt(timed(run, repeat))}")


def levels() -> list[tuple[str, dict[str, str], bool]]:
    out = []
    if shutil.which("bwrap"):
        out.append(("bubblewrap", {"AUTOCOMP_SANDBOX": "auto"}, True))
    out.append(("namespaces", {"AUTOCOMP_SANDBOX": "auto"}, False))
    out.append(("rlimits", {"AUTOCOMP_SANDBOX": "rlimits"}, False))
    return out


def env_steps(kernel: str, steps: int) -> tuple[float, float, float, float]:
    import gymnasium as gym

    import autocomp_env  # noqa: F401  (registers the envs)

    env = gym.make("autocomp/Gemmini-matmul-v0", kernel=kernel, cache_dir="")
    env.reset(seed=0)
    rng = __import__("random").Random(0)
    n = env.action_space.n
    t = timed(lambda i: env.step(rng.randrange(n)), steps)
    env.close()
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    n = args.size
    kernel = f"gemmini/matmul-{n}x{n}x{n}"
    sim = GemminiSimulator()
    with tempfile.TemporaryDirectory() as cache:  # a fresh cache: the runtime and the harness are built once
        os.environ["AUTOCOMP_CACHE"] = cache
        t0 = time.perf_counter()
        build_runtime(DEFAULT)
        print(f"fresh cache: runtime build {time.perf_counter() - t0:.2f} s", end="")
        t0 = time.perf_counter()
        spec = parse_kernel(kernel)
        harness_binary(build_runtime(DEFAULT), harness_main_source(spec), harness_exports(spec))
        print(f", harness build for the shape {time.perf_counter() - t0:.2f} s (both once, then cached)")
        os.environ.pop("AUTOCOMP_CACHE")
    la = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {la:.1f}; figures: min median max (ms), median CPU ms\n")
    loop_ws = vendor_code(kernel, True)
    print(f"{kernel}, tiled_matmul_auto (loop_ws), phases outside the sandbox:")
    phases(kernel, loop_ws, args.repeat)
    print("\nper isolation level (a new code each run, so nothing comes from a cache):")
    saved = sandbox._BWRAP
    for name, env, bwrap in levels():
        os.environ.update(env)
        sandbox._BWRAP = saved if bwrap else None
        try:
            setup = timed(lambda i: sandbox.run(["true"]), args.repeat)
        except sandbox.SandboxUnavailable as e:
            print(f"  {name}: not available here ({e})")
            continue
        print(f"  {name}: sandbox set-up (run `true`)          {fmt(setup)}")
        for label, code in (("loop_ws", loop_ws), ("naive", NAIVE)):
            for seeds in ((0,), (0, 1)):
                t = timed(lambda i, c=code, s=seeds: sim.run(c + f"\n// {i}\n", kernel, seeds=s), args.repeat)
                print(f"  {name}: evaluation, {label}, {len(seeds)} seed(s){'':<11}{fmt(t)}")
    sandbox._BWRAP = saved
    os.environ["AUTOCOMP_SANDBOX"] = "auto"
    from autocomp_env.evaluation import Evaluator
    from autocomp_env.kernels import get_kernel

    ev, k = Evaluator(), get_kernel(kernel)
    ev.evaluate(k, loop_ws)
    print(
        f"  warm cache: a repeated code from the evaluation cache  {fmt(timed(lambda i: ev.evaluate(k, loop_ws), 20))}"
    )
    print(f"\nenv step, {kernel}, default seeds and isolation, random menu actions ({args.steps} steps):")
    print(f"  {'gym env.step':<40}{fmt(env_steps(kernel, args.steps))}")
    print(f"\n{kernel}: roofline {sim.roofline(kernel):.0f} cycles")
    codes = {
        "tiled_matmul_auto, loop_ws (FSM)": loop_ws,
        "tiled_matmul_auto, software path": vendor_code(kernel, False),
    }
    codes["naive: one tile + fence"] = NAIVE
    for name, code in codes.items():
        r = sim.run(code, kernel, seeds=(0,))
        assert r.correct, r.error
        print(f"  {name:<34}{r.latency:>12.0f} cycles, utilization {r.utilization:.3f}")


if __name__ == "__main__":
    main()
