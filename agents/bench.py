"""Benchmarks: run agents over a kernel suite at a fixed sample budget and rank them.

`run_bench(...)` writes to `out_dir`: `results.jsonl` (every episode, crash-safe, resumable),
`leaderboard.json`, `leaderboard.csv` and `speedup_vs_samples.png`. `bench_main(args)` is what the
`autocomp-env bench` command calls.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import EpisodeResult
from agents.results import ResultStore
from agents.rollouts import _describe, jobs_for, run_jobs
from autocomp_env.kernels import suite_kernels

COLUMNS = (
    "agent",
    "episodes",
    "errors",
    "speedup_vs_start",
    "speedup_vs_vendor",
    "speedup_vs_expert",
    "roofline_pct",
    "fast_vendor",
    "samples",
    "failure_rate",
    "tokens",
    "dollars",
    "wall_seconds",
)


def geomean(xs: Iterable[float]) -> float | None:
    xs = [x for x in xs if x is not None and x > 0]
    return float(math.exp(np.mean(np.log(xs)))) if xs else None


def leaderboard(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per agent (in first-seen order) from result records."""
    rows = []
    for agent in dict.fromkeys(r["job"]["agent"] for r in records):
        mine = [r for r in records if r["job"]["agent"] == agent]
        res = [EpisodeResult.from_dict(r["result"]) for r in mine if r.get("status") == "ok"]
        row: dict[str, Any] = {"agent": agent, "episodes": len(res), "errors": len(mine) - len(res)}
        if res:
            vendor = [r for r in res if r.baselines.get("vendor")]
            row |= {
                "speedup_vs_start": geomean(r.best_speedup for r in res),
                "speedup_vs_vendor": geomean(r.speedup_over("vendor") for r in res),
                "speedup_vs_expert": geomean(r.speedup_over("expert") for r in res),
                "roofline_pct": 100 * float(np.mean([r.roofline_fraction for r in res if r.roofline_fraction])),
                "fast_vendor": float(np.mean([r.best_latency < r.baselines["vendor"] for r in vendor]))
                if vendor
                else None,
                "samples": float(np.mean([r.samples for r in res])),
                "failure_rate": sum(r.failures for r in res) / max(1, sum(r.samples for r in res)),
                "tokens": sum(r.tokens for r in res),
                "dollars": sum(r.dollars for r in res),
                "wall_seconds": sum(r.wall_seconds for r in res),
            }
        rows.append(row)
    return sorted(rows, key=lambda r: -(r.get("speedup_vs_start") or 0))


def speedup_curve(results: list[EpisodeResult], grid: np.ndarray) -> np.ndarray:
    """Geometric mean over episodes of the best speedup after s samples, for s in `grid`."""
    logs = []
    for r in results:
        spent = np.array([s for s, _ in r.trace] or [0])
        best = np.array([b for _, b in r.trace] or [r.start_latency])
        idx = np.searchsorted(spent, grid, side="right") - 1
        lat = np.where(idx >= 0, best[np.clip(idx, 0, None)], r.start_latency)
        logs.append(np.log(r.start_latency / lat))
    return np.exp(np.mean(logs, axis=0))


def plot(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    import matplotlib  # noqa: PLC0415  (a second or more to import: only plotting needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  (after choosing the Agg backend)

    ok = [r for r in records if r.get("status") == "ok"]
    top = max((s for r in ok for s, _ in r["result"]["trace"]), default=1)
    grid = np.arange(0, top + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for agent in dict.fromkeys(r["job"]["agent"] for r in ok):
        res = [EpisodeResult.from_dict(r["result"]) for r in ok if r["job"]["agent"] == agent]
        ax.plot(grid, speedup_curve(res, grid), label=agent)
    ax.set_xlabel("samples spent")
    ax.set_ylabel("best speedup over starting code (geomean)")
    ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def format_table(rows: list[dict[str, Any]]) -> str:
    def cell(v: Any) -> str:
        return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)

    table = [COLUMNS, *[tuple(cell(r.get(c)) for c in COLUMNS) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in table)


def run_bench(
    agents: str | list[str] | dict[str, dict[str, Any]],
    suite: str | list[str],
    budget: int,
    seeds: int | list[int] = 1,
    workers: int = 1,
    out_dir: str | Path = "bench-out",
    backend: str = "serial",
    address: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    imports: tuple[str, ...] = ("autocomp_env",),
    env_id: str | None = None,
    pythonpath: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run every agent on every kernel of `suite` for every seed with `budget` samples per episode.

    `agents`: "random,greedy,beam", a list of names, or {name: constructor kwargs}. `seeds`: a count
    (0..n-1) or a list. Returns {"rows": leaderboard rows, "config": ..., "files": {...}}.
    """
    if isinstance(agents, str):
        agents = [a.strip() for a in agents.split(",") if a.strip()]
    if not isinstance(agents, dict):
        agents = {a: {} for a in agents}
    agents = {name: {"samples": budget} | kw for name, kw in agents.items()}
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    kernels = suite_kernels(suite)
    env_kw = {"budget": {"samples": budget}} | dict(env_kwargs or {})
    jobs = jobs_for(agents, kernels, seeds, env_kw, imports=imports, env_id=env_id)
    t0 = time.perf_counter()
    records = run_jobs(
        jobs, out_dir, backend=backend, workers=workers, address=address, progress=progress, pythonpath=pythonpath
    )
    wall = time.perf_counter() - t0
    rows = leaderboard(records)
    store = ResultStore(out_dir)
    config = {
        "agents": agents,
        "suite": suite if isinstance(suite, str) else list(suite),
        "kernels": kernels,
        "budget": budget,
        "seeds": seeds,
        "workers": workers,
        "backend": backend,
        "env_kwargs": json.loads(json.dumps(env_kw, default=_describe)),  # live objects (an LLM model) as config
        "bench_wall_seconds": wall,
    }
    files = {
        "results": str(store.path),
        "json": str(store.write_summary("leaderboard.json", {"rows": rows, "config": config})),
        "csv": str(store.write_summary("leaderboard.csv", to_csv(rows))),
    }
    png = Path(out_dir) / "speedup_vs_samples.png"
    tmp = png.with_name(".tmp_" + png.name)
    name = config["suite"] if isinstance(config["suite"], str) else ", ".join(config["suite"])
    plot(records, tmp, f"{name} @ {budget} samples")
    tmp.replace(png)
    files["png"] = str(png)
    return {"rows": rows, "config": config, "files": files}


def bench_main(args: Any) -> int:
    """Entry for `autocomp-env bench`: reads args.agents ("random,greedy,beam"), .suite, .budget, .seeds,
    .workers and optionally .out, .backend ("ray" when workers > 1 unless given), .address and
    .agent_kwargs ({name: kwargs} or its JSON, e.g. the learned agent's policy path). Prints the leaderboard
    and returns the exit code (1 if any episode failed)."""
    workers = int(getattr(args, "workers", 1) or 1)
    agents = [a.strip() for a in str(args.agents).split(",") if a.strip()]
    extra = getattr(args, "agent_kwargs", None) or {}
    if isinstance(extra, str):  # JSON, e.g. '{"learned": {"policy": "policy.pt"}}'
        extra = json.loads(extra)
    agents = {a: dict(extra.get(a, {})) for a in agents}
    backend = getattr(args, "backend", None) or ("ray" if workers > 1 else "serial")
    out = run_bench(
        agents=agents,
        suite=args.suite,
        budget=int(args.budget),
        seeds=int(args.seeds),
        workers=workers,
        out_dir=getattr(args, "out", None) or f"bench-{args.suite}-{args.budget}",
        backend=backend,
        address=getattr(args, "address", None),
    )
    print(format_table(out["rows"]))
    for kind, path in out["files"].items():
        print(f"{kind}: {path}")
    return 0 if all(r["errors"] == 0 for r in out["rows"]) else 1


def report(dirs: list[str | Path], out: str | Path | None = None) -> dict[str, Any]:
    """One leaderboard (JSON, CSV, PNG) from the results of several folders. An agent name found in more than
    one folder is labelled "<folder>/<agent>" so different configurations stay apart."""
    per_dir = [(Path(d), ResultStore(d).records()) for d in dirs]
    missing = [str(d) for d, recs in per_dir if not recs]
    if missing:
        raise ValueError(f"no results in {', '.join(missing)}")
    seen: dict[str, set[str]] = {}
    for d, recs in per_dir:
        for r in recs:
            seen.setdefault(r["job"]["agent"], set()).add(str(d))
    records = []
    for d, recs in per_dir:
        for r in recs:
            name = r["job"]["agent"]
            label = f"{d.name}/{name}" if len(seen[name]) > 1 else name
            records.append({**r, "job": {**r["job"], "agent": label}})
    rows = leaderboard(records)
    store = ResultStore(out or dirs[0], name="report-results.jsonl")
    files = {
        "json": str(store.write_summary("report.json", {"rows": rows, "dirs": [str(d) for d in dirs]})),
        "csv": str(store.write_summary("report.csv", to_csv(rows))),
        "png": str(plot(records, store.dir / "report.png", " + ".join(Path(d).name for d in dirs))),
    }
    return {"rows": rows, "files": files}


def report_main(cfg: dict[str, Any]) -> int:
    """`autocomp-env report DIR [DIR...] [--out D]`: prints the combined leaderboard and the files written."""
    res = report(list(cfg["dirs"]), cfg.get("out"))
    print(format_table(res["rows"]))
    for kind, path in res["files"].items():
        print(f"{kind}: {path}")
    return 0
