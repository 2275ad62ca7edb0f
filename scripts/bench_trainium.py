"""Wall time per evaluation of the Trainium simulator: per tutorial kernel, and per env step with its phases.

    python scripts/bench_trainium.py [--small] [--only NAME,...] [--functional-timeout S]
    python scripts/bench_trainium.py --step [--kernel trainium/rmsnorm-128x512] [--repeat 12]
    python scripts/bench_trainium.py --traces DIR

--traces: timing-only evaluation (through the sandbox) of every intact step of Autocomp's trace files in DIR, at
the measured shapes, with the wall seconds and the CPU seconds of the replay that runs the timeline.

Per kernel: timing-only mode (TrainiumSimulator.run(mode="timing"), through the sandbox), and a functional check
of one seed (mode="functional", seeds=(0,)), at the default (published) shapes, or small ones with --small. Prints
the simulated latency, the wall seconds of each evaluation and the CPU seconds of the replay.

--step: env steps (`gym.make`, random applicable menu items, no evaluation cache) and direct evaluations of new
code (the example kernel with a changing comment, the env's two seeds), with min/median/max over the runs of each
phase: the warm process's one-time start (interpreter, numpy, our modules), then per evaluation the candidate's
sandbox start (fork, namespaces, rlimits, Landlock), guard, exec + trace, the replay per seed (the trn1 timeline
runs inside it), the correctness check, the timeline alone (a replay without data) and what the rest costs.
"""

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gymnasium as gym  # noqa: E402

import autocomp_env  # noqa: E402, F401  (registers the envs)
from autocomp_env import targets  # noqa: E402
from simulators.trainium import TrainiumSimulator  # noqa: E402
from simulators.trainium import simulator as trn_sim  # noqa: E402
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


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return f"{model or platform.processor()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def spread(xs: list[float]) -> str:
    if not xs:
        return "-"
    ms = [x * 1000 for x in xs]
    return f"{min(ms):7.1f} {statistics.median(ms):7.1f} {max(ms):7.1f}"


def phases_of(p: dict) -> dict[str, float]:
    """The phases of one evaluation (TrainiumSimulator.last_phases), in the order they happen."""
    seeds = [k for k in p if k.startswith("replay_") and k[7:-2].isdigit()]
    out = {
        "candidate sandbox start": p.get("sandbox_start_s", 0.0),
        "guard": p.get("guard_s", 0.0),
        "exec + trace + encode": p.get("exec_s", 0.0) + p.get("trace_s", 0.0) + p.get("encode_s", 0.0),
        "candidate process, rest": p.get("record_wall_s", 0.0),
        "replay (all seeds)": sum(p[k] for k in seeds),
        "check (all seeds)": sum(p.get(f"check_{k[7:-2]}_s", 0.0) for k in seeds),
        "replay process, rest": p.get("replay_wall_s", 0.0),
        "total": p.get("total_s", 0.0),
    }
    inner = out["candidate sandbox start"] + out["guard"] + out["exec + trace + encode"]
    out["candidate process, rest"] -= inner
    out["replay process, rest"] -= out["replay (all seeds)"] + out["check (all seeds)"] + p.get("load_s", 0.0)
    out["host, rest"] = out["total"] - p.get("record_wall_s", 0.0) - p.get("replay_wall_s", 0.0)
    out["candidate CPU"] = p.get("record_cpu_s", 0.0)
    out["replay CPU"] = p.get("replay_cpu_s", 0.0)
    return out


def bench_step(kernel: str, repeat: int) -> int:
    family = kernel.split("/")[1].split("-")[0]
    code = example_source(family)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} (wall times scale with it)")
    sim = TrainiumSimulator()
    t0 = time.perf_counter()
    w = trn_sim.warm_process()
    w.landlock(start=True)
    first = time.perf_counter() - t0
    print(f"warm process start (once per host process: interpreter, numpy, our modules, warm-up run): {first:.2f} s")
    runs: list[dict] = []
    for i in range(repeat):  # new code each time: a comment that changes
        c0 = time.process_time()
        r = sim.run(code + f"\n# run {i}\n", kernel, seeds=(0, 1))
        host_cpu = time.process_time() - c0
        assert r.correct, r.error
        runs.append(phases_of(sim.last_phases))
        runs[-1]["host CPU"] = host_cpu
        runs[-1]["CPU, all processes"] = host_cpu + runs[-1]["candidate CPU"] + runs[-1]["replay CPU"]
    iso = ", ".join(sim.last_phases.get("isolation", []))
    print(f"isolation of the candidate's process: {iso}")
    timing = []
    for i in range(repeat):
        sim.run(code + f"\n# timing {i}\n", kernel, mode="timing")
        timing.append(sim.last_phases.get("timing_s", 0.0))
    print(f"\n{repeat} evaluations of new code on {kernel} (seeds 0 and 1), ms: min median max")
    for name in runs[0]:
        print(f"  {name:28} {spread([r[name] for r in runs])}")
    print(f"  {'timeline alone (no data)':28} {spread(timing)}")

    env = gym.make(f"autocomp/Trainium-{family}-v0", kernel=kernel, cache_dir="", max_steps=repeat + 1)
    obs, _ = env.reset(seed=0)
    steps, evals = [], []
    tsim = targets.simulator("trainium")
    for _ in range(repeat):
        before = getattr(tsim, "last_phases", None)
        action = env.action_space.sample(mask=obs["mask"].astype("int8"))
        t0 = time.perf_counter()
        obs, _, terminated, truncated, info = env.step(action)
        steps.append(time.perf_counter() - t0)
        if getattr(tsim, "last_phases", None) is not before:
            evals.append(steps[-1])
        if terminated or truncated:
            obs, _ = env.reset(seed=len(steps))
    env.close()
    print(f"\n{repeat} env steps (random menu items, no evaluation cache), ms: min median max")
    print(f"  {'every step':28} {spread(steps)}")
    print(f"  {'steps that simulated':28} {spread(evals)}  ({len(evals)} of {len(steps)})")
    return 0


def bench_traces(directory: str) -> int:
    from simulators.trainium.traces import kernel_for, parse_trace, trace_files

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times scale with it)")
    print(f"{'trace':22} {'step':>4} {'latency us':>11} {'wall s':>7} {'replay cpu-s':>13}")
    worst = 0.0
    for path in trace_files(directory):
        kernel = kernel_for(path)
        for st in parse_trace(path):
            if st.damage:
                continue
            t0 = time.perf_counter()
            r = TrainiumSimulator().run(st.code, kernel, mode="timing", timeout=600)
            wall = time.perf_counter() - t0
            cpu = r.counters.get("timing_cpu_seconds", float("nan"))
            worst = max(worst, cpu)
            lat = f"{r.latency:11.1f}" if r.latency is not None else f"{'-':>11}"
            print(f"{os.path.basename(path):22} {st.index:4} {lat} {wall:7.2f} {cpu:13.2f}", flush=True)
    print(f"slowest timeline: {worst:.2f} CPU-s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--no-functional", action="store_true")
    ap.add_argument("--functional-timeout", type=float, default=900.0)
    ap.add_argument("--step", action="store_true", help="env-step speed with per-phase figures")
    ap.add_argument("--kernel", default="trainium/rmsnorm-128x512")
    ap.add_argument("--repeat", type=int, default=12)
    ap.add_argument("--traces", metavar="DIR", help="time every intact step of the *_trace.py files in DIR")
    a = ap.parse_args()
    if a.step:
        return bench_step(a.kernel, max(5, a.repeat))
    if a.traces:
        return bench_traces(a.traces)
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
        cpu = r.counters.get("timing_cpu_seconds", float("nan"))  # of the replay without data
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
