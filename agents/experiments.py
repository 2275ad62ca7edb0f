"""The agent-level target experiments, each printing its figures (and writing JSON next to its results).

    python -m agents.experiments roofline --kernel gemmini/matmul-512x512x512 --seeds 3
    python -m agents.experiments reuse --source gemmini/matmul-512x512x512 --targets gemmini-exo --budget 32
    python -m agents.experiments suite --suite gemmini-exo --agents random,greedy,beam --budget 232

`roofline`: Autocomp's beam search (defaults 4/4/2/8, at most 232 samples) with the offline code model.
`reuse`: the winning plan chain of a beam search on `source`, reused on each target at a fixed budget,
against a beam search from scratch at the same budget (same seeds). `suite`: a leaderboard (run_bench).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from agents.beam import BeamSearchAgent
from agents.bench import format_table, geomean, run_bench, suite_kernels
from agents.envapi import EnvSpec, make_env
from agents.rollouts import jobs_for, run_jobs


def _x(v: float | None) -> str:
    return "failed" if v is None else f"{v:.3f}x"


def roofline(kernel: str, seeds: int, workers: int, backend: str, out: str, env_kwargs: dict) -> dict:
    jobs = jobs_for({"beam": {}}, [kernel], range(seeds), env_kwargs)
    recs = run_jobs(jobs, out, backend=backend, workers=workers)
    rows = []
    for r in recs:
        if r["status"] != "ok":
            raise SystemExit(f"job failed: {r['error']}")
        res = r["result"]
        b = res["baselines"]
        rows.append(
            {
                "seed": r["job"]["seed"],
                "samples": res["samples"],
                "roofline_pct": 100 * b["roofline"] / res["best_latency"],
                "speedup_vs_start": res["start_latency"] / res["best_latency"],
                "speedup_vs_vendor": b["vendor"] / res["best_latency"] if b.get("vendor") else None,
                "speedup_vs_expert": b["expert"] / res["best_latency"] if b.get("expert") else None,
                "best_plans": res["best_plans"],
            }
        )
        print(
            f"seed {rows[-1]['seed']}: {rows[-1]['roofline_pct']:.1f}% of roofline after {res['samples']} samples, "
            f"{rows[-1]['speedup_vs_start']:.2f}x over start, {rows[-1]['speedup_vs_vendor'] or float('nan'):.2f}x over vendor"
        )
    summary = {"kernel": kernel, "runs": rows, "min_roofline_pct": min(r["roofline_pct"] for r in rows)}
    print(
        f"{kernel}: roofline {min(r['roofline_pct'] for r in rows):.1f}% (worst seed) .. {max(r['roofline_pct'] for r in rows):.1f}% (best)"
    )
    return summary


def reuse(
    source: str, targets: list[str], budget: int, seeds: int, workers: int, backend: str, out: str, env_kwargs: dict
) -> dict:
    env = make_env(EnvSpec(source).with_kwargs(**env_kwargs))
    src = BeamSearchAgent().run(env, 0)
    schedule = list(src.best_plans)
    print(
        f"source {source}: {src.best_speedup:.2f}x after {src.samples} samples; schedule ({len(schedule)} plans): {schedule}"
    )
    targets = [t for t in targets if t != source]
    env_kw = {"budget": {"samples": budget}} | env_kwargs
    agents = {"beam": {"samples": budget}, "reuse": {"samples": budget, "schedule": schedule}}
    recs = run_jobs(jobs_for(agents, targets, range(seeds), env_kw), out, backend=backend, workers=workers)
    per = {}
    for t in targets:
        per[t] = {
            a: geomean(
                r["result"]["start_latency"] / r["result"]["best_latency"]
                for r in recs
                if r["status"] == "ok" and r["job"]["agent"] == a and r["job"]["env"]["kernel"] == t
            )
            for a in agents
        }
        print(f"{t:40s} " + "   ".join(f"{a} {_x(per[t][a])}" for a in agents))
    errors = [r for r in recs if r["status"] != "ok"]
    if errors:
        print(f"{len(errors)} job(s) failed (rerun the same command to retry them): {errors[0]['error'][:200]}")
    done = [t for t in targets if all(per[t][a] for a in agents)]  # compare on kernels both agents finished
    g = {a: geomean(per[t][a] for t in done) for a in agents}
    gain = 100 * (g["reuse"] / g["beam"] - 1) if done else float("nan")
    print(
        f"geomean speedup @ {budget} samples over {len(done)} kernels x {seeds} seeds: "
        f"beam {_x(g['beam'])}, reuse {_x(g['reuse'])} ({gain:+.1f}%)"
    )
    return {"source": source, "schedule": schedule, "budget": budget, "per_kernel": per, "geomean": g, "gain_pct": gain}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m agents.experiments", description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("roofline", "reuse", "suite"))
    ap.add_argument("--kernel", default="gemmini/matmul-512x512x512")
    ap.add_argument("--source", default="gemmini/matmul-512x512x512")
    ap.add_argument("--targets", default="gemmini-exo")
    ap.add_argument("--suite", default="gemmini-exo")
    ap.add_argument("--agents", default="random,greedy,beam")
    ap.add_argument("--budget", type=int, default=232)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", default="ray")
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    env_kwargs = {"fault_rate": args.fault_rate} if args.fault_rate else {}
    out = args.out or f"experiments/{args.what}"
    Path(out).mkdir(parents=True, exist_ok=True)
    if args.what == "roofline":
        res = roofline(args.kernel, args.seeds, args.workers, args.backend, out, env_kwargs)
    elif args.what == "reuse":
        res = reuse(
            args.source,
            suite_kernels(args.targets),
            args.budget,
            args.seeds,
            args.workers,
            args.backend,
            out,
            env_kwargs,
        )
    else:
        res = run_bench(
            args.agents, args.suite, args.budget, args.seeds, args.workers, out, args.backend, env_kwargs=env_kwargs
        )
        print(format_table(res["rows"]))
    (Path(out) / f"{args.what}.json").write_text(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
