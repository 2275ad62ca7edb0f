"""Rollout throughput: the same (agent x kernel x seed) jobs with 1 and with N Ray workers (and serially).

    python scripts/bench_rollouts.py --kernel gemmini-exo-small:0 --jobs 8 --budget 24 --workers 2

Prints samples/second per setting and the speedup of N workers over 1. The evaluation cache is off
(`cache_dir=""`) so every sample is really simulated. Ray start-up is excluded (a warm-up job runs first).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.rollouts import init_ray, jobs_for, run_jobs  # noqa: E402


def timed(jobs, backend: str, workers: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        recs = run_jobs(jobs, d, backend=backend, workers=workers, progress=False)
        wall = time.perf_counter() - t0
    bad = [r for r in recs if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"{len(bad)} jobs failed: {bad[0]['error']}")
    return wall, sum(r["result"]["samples"] for r in recs)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", default="gemmini-exo-small:0")
    ap.add_argument("--agent", default="random")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--budget", type=int, default=24, help="samples per job")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--serial", action="store_true", help="also time the in-process serial backend")
    args = ap.parse_args(argv)

    import ray  # noqa: PLC0415  (seconds to import: after the arguments parse)

    env_kw = {"cache_dir": "", "budget": {"samples": args.budget}}
    jobs = jobs_for({args.agent: {"samples": args.budget}}, [args.kernel], range(args.jobs), env_kw)
    warm = jobs_for({args.agent: {"samples": 2}}, [args.kernel], [10_000, 10_001], env_kw)
    out: dict = {"kernel": args.kernel, "agent": args.agent, "jobs": args.jobs, "budget": args.budget}
    if args.serial:
        wall, n = timed(jobs, "serial", 1)
        out["serial"] = {"seconds": wall, "samples": n, "samples_per_s": n / wall}
    for w in (1, args.workers):
        init_ray(w)
        timed(warm[:w], "ray", w)  # start the worker processes and import everything once
        wall, n = timed(jobs, "ray", w)
        out[f"ray_{w}"] = {"seconds": wall, "samples": n, "samples_per_s": n / wall}
        ray.shutdown()
    out["speedup"] = out[f"ray_{args.workers}"]["samples_per_s"] / out["ray_1"]["samples_per_s"]
    print(json.dumps(out, indent=1))
    print(f"{args.workers} Ray workers: {out['speedup']:.2f}x the throughput of 1")
    return out


if __name__ == "__main__":
    main()
