"""Wall time per evaluation of the Trainium simulator, for each tutorial kernel (our example kernels).

    python scripts/bench_trainium.py [--small] [--only NAME,...] [--functional-timeout S]

For each kernel: timing-only mode (TrainiumSimulator.run(mode="timing"), through the sandbox), and a functional
check of one seed (mode="functional", seeds=(0,)), at the default (published) shapes, or small ones with --small.
Prints the simulated latency, the wall seconds of each evaluation and the CPU seconds the runner reported.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from simulators.trainium import TrainiumSimulator  # noqa: E402
from simulators.trainium.calibration import example_source  # noqa: E402
from simulators.trainium.kernels import default_name  # noqa: E402

CASES = [  # example kernel, family, small shape
    ("rmsnorm", "rmsnorm", "trainium/rmsnorm-256x512"),
    ("layernorm_v1", "layernorm", "trainium/layernorm-256x1024"),
    ("layernorm_v2", "layernorm", "trainium/layernorm-256x1024"),
    ("softmax", "softmax", "trainium/softmax-256x1024"),
    ("gemm_naive", "gemm", "trainium/gemm-512x1024x1024-bf16"),
    ("gemm_opt", "gemm", "trainium/gemm-512x1024x1024-bf16"),
    ("mamba_v1", "mamba", "trainium/mamba-1x128x512x16"),
    ("attention_naive", "attention", "trainium/attention-128x1024-bf16"),
    ("sdattention", "sdattention", "trainium/sdattention-1024x64"),
    ("conv1d", "conv1d", "trainium/conv1d-2x256x512x3"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--no-functional", action="store_true")
    ap.add_argument("--functional-timeout", type=float, default=900.0)
    a = ap.parse_args()
    only = {x for x in a.only.split(",") if x}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times scale with it)")
    print(f"{'kernel':16} {'shape':36} {'latency us':>11} {'timing s':>9} {'functional s':>13}  result")
    for example, family, small in CASES:
        if only and example not in only:
            continue
        kernel = small if a.small else default_name(family)
        code = example_source(example)
        sim = TrainiumSimulator()
        t0 = time.perf_counter()
        r = sim.run(code, kernel, mode="timing", timeout=600)
        tt = time.perf_counter() - t0
        cpu = r.counters.get("timing_cpu_seconds", float("nan"))
        fs, verdict = float("nan"), "-"
        if not a.no_functional:
            t0 = time.perf_counter()
            f = TrainiumSimulator().run(code, kernel, seeds=(0,), mode="functional", timeout=a.functional_timeout)
            fs = time.perf_counter() - t0
            verdict = "correct" if f.correct else f"{f.error.type}: {f.error.message[:80]}"
        lat = f"{r.latency:11.1f}" if r.latency is not None else f"{'-':>11}"
        print(f"{example:16} {kernel:36} {lat} {tt:9.2f} {fs:13.2f}  {verdict} (trace {cpu:.2f} cpu-s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
