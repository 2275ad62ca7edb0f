"""Evaluation-service throughput and fault tolerance on this machine (or a Ray cluster with --address).

    python scripts/bench_evalservice.py --evals 200 --drain 1000

1. Evaluations per second with 1 and with 2 workers: `--evals` distinct candidates (the starting code
   with a distinct comment, so every one is compiled and simulated; no cache).
2. Drain: `--drain` queued evaluations, one worker killed after a third of them finished. Prints how many
   came back, how many were retried, lost (never answered) or duplicated (answered twice).

Wall-clock figures are upper bounds when other jobs share the machine; the script prints the load average
and the CPU seconds the workers used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autocomp_env.evalservice import EvalService  # noqa: E402
from autocomp_env.kernels import family_of, get_kernel  # noqa: E402


def candidates(kernel, n: int, tag: str) -> list[str]:
    start = family_of(kernel).starting_code(kernel)
    return [f"{start}\n// {tag} {i}\n" for i in range(n)]


def throughput(kernel, workers: int, n: int, address: str | None) -> dict:
    import ray  # noqa: PLC0415  (seconds to import: after the arguments parse)

    with EvalService(workers=workers, address=address, cache_dir="") as svc:
        svc.evaluate_many([(kernel, c) for c in candidates(kernel, 2 * workers, f"warm{workers}")])  # start-up
        codes = candidates(kernel, n, f"tp{workers}")
        cpu0, t0 = svc.worker_cpu_seconds(), time.perf_counter()
        results = svc.evaluate_many([(kernel, c) for c in codes])
        wall, cpu = time.perf_counter() - t0, svc.worker_cpu_seconds() - cpu0
    ray.shutdown()
    bad = sum(not r.correct for r in results)
    return {
        "workers": workers,
        "evals": n,
        "seconds": wall,
        "evals_per_s": n / wall,
        "incorrect": bad,
        # Load-independent: CPU per evaluation, and the cores the workers kept busy (a worker starved by other
        # jobs on the machine shows as busy_cores < workers).
        "worker_cpu_ms_per_eval": 1000 * cpu / n,
        "busy_cores": cpu / wall,
    }


def drain(kernel, n: int, address: str | None) -> dict:
    import ray  # noqa: PLC0415  (as in throughput)

    with EvalService(workers=2, address=address, cache_dir="", max_queued=n) as svc:
        svc.evaluate_many([(kernel, c) for c in candidates(kernel, 4, "warm-drain")])
        futures = [svc.submit(kernel, c) for c in candidates(kernel, n, "drain")]
        answered: dict[int, int] = {}
        for i, f in enumerate(futures):
            f.add_done_callback(lambda _f, i=i: answered.__setitem__(i, answered.get(i, 0) + 1))
        t0 = time.perf_counter()
        while sum(f.done() for f in futures) < n // 3:
            time.sleep(0.01)
        svc.kill_worker(0)
        killed_at = sum(f.done() for f in futures)
        results = [f.result(timeout=600) for f in futures]
        wall = time.perf_counter() - t0
        stats = svc.stats
    ray.shutdown()
    return {
        "queued": n,
        "killed_after": killed_at,
        "answered": len(answered),
        "lost": n - len(answered),
        "duplicated": sum(c > 1 for c in answered.values()),
        "correct": sum(r.correct for r in results),
        "retried": stats.retried,
        "workers_replaced": stats.workers_replaced,
        "seconds": wall,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", default="gemmini-exo-small:0")
    ap.add_argument("--evals", type=int, default=200)
    ap.add_argument("--drain", type=int, default=1000)
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: start one here)")
    args = ap.parse_args(argv)
    kernel = get_kernel(args.kernel)
    out: dict = {"kernel": kernel.name, "load_before": os.getloadavg()}
    out["throughput"] = [throughput(kernel, w, args.evals, args.address) for w in (1, 2)]
    one, two = out["throughput"]
    out["speedup"] = two["evals_per_s"] / one["evals_per_s"]
    if args.drain:
        out["drain"] = drain(kernel, args.drain, args.address)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    print(f"2 workers: {out['speedup']:.2f}x the evaluations/s of 1 ({one['evals_per_s']:.1f} -> {two['evals_per_s']:.1f})")
    print(
        f"worker CPU per evaluation: {one['worker_cpu_ms_per_eval']:.0f} ms (1 worker), "
        f"{two['worker_cpu_ms_per_eval']:.0f} ms (2 workers); busy cores {one['busy_cores']:.2f} / {two['busy_cores']:.2f}"
    )
    if args.drain:
        d = out["drain"]
        print(f"drain: {d['answered']}/{d['queued']} answered, {d['lost']} lost, {d['duplicated']} duplicated, {d['retried']} retried")
    return out


if __name__ == "__main__":
    main()
