"""Soak test: run episodes on several Ray workers for N minutes and watch memory, file descriptors and processes.

    python scripts/soak.py --minutes 10 --workers 2

Every `--interval` seconds it samples, over the driver and all its descendants (Ray's GCS, raylet and
workers, and any sandboxed simulator child alive at that moment): resident memory (driver and workers
separately), open file descriptors, the process count, and the sandbox temp dirs present. At the end it
prints the samples and a verdict per figure: stable when, after a warm-up, the last third's mean is within
`--tolerance` of the first third's (plus a small absolute slack). Evaluations are not cached on disk, so
each episode really runs the simulators; the offline code model injects faults (`--fault-rate`), so
failing candidates are part of the load. Exit status: 0 if everything was stable and no episode errored.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.results import ResultStore  # noqa: E402
from agents.rollouts import jobs_for, run_job  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
DEFAULT_KERNELS = "gemmini/matmul-32x32x32,trainium/rmsnorm-128x512"


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])  # the command name may contain spaces
        table[int(name)] = (ppid, cmd)
    return table


def _descendants(root: int, table: dict[int, tuple[int, str]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sample(t0: float) -> dict[str, float]:
    """One measurement of the driver and everything it started."""
    me = os.getpid()
    table = _proc_table()
    tree = _descendants(me, table)
    workers = [p for p in tree if table[p][1].startswith("ray::")]
    sandboxed = [p for p in tree if "autocomp-sbx" in table[p][1] or "runner.py" in table[p][1]]
    return {
        "t": time.monotonic() - t0,
        "driver_mb": _rss(me) / 2**20,
        "workers_mb": sum(_rss(p) for p in workers) / 2**20,
        "tree_mb": (_rss(me) + sum(_rss(p) for p in tree)) / 2**20,
        "fds": _fds(me) + sum(_fds(p) for p in tree),
        "procs": 1 + len(tree),
        "workers": len(workers),
        "sandboxed": len(sandboxed),
        "sbx_dirs": len(glob.glob(os.path.join(tempfile.gettempdir(), "autocomp-sbx-*"))),
    }


# figure -> (relative tolerance multiplier, absolute slack): growth beyond both means "not stable"
CHECKS = {"driver_mb": (1.0, 20.0), "workers_mb": (1.0, 50.0), "fds": (1.0, 16.0), "procs": (1.0, 4.0)}


def verdict(samples: list[dict[str, float]], tolerance: float) -> dict[str, tuple[float, float, bool]]:
    """figure -> (early mean, late mean, stable), comparing the first and last thirds after the warm-up third."""
    body = samples[len(samples) // 4 :] if len(samples) >= 8 else samples
    k = max(1, len(body) // 3)
    out = {}
    for name, (mult, slack) in CHECKS.items():
        early = sum(s[name] for s in body[:k]) / k
        late = sum(s[name] for s in body[-k:]) / k
        out[name] = (early, late, late <= early * (1 + tolerance * mult) + slack)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kernels", default=DEFAULT_KERNELS, help="comma-separated kernel names or aliases")
    ap.add_argument("--agent", default="random")
    ap.add_argument("--samples", type=int, default=6, help="samples per episode")
    ap.add_argument("--fault-rate", type=float, default=0.2, help="share of offline generations given a bug")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--tolerance", type=float, default=0.2, help="allowed relative growth, first to last third")
    ap.add_argument("--out", default=None, help="results dir (default: a temp dir)")
    a = ap.parse_args(argv)

    import ray  # noqa: PLC0415  (seconds to import: after the arguments parse)

    out = a.out or tempfile.mkdtemp(prefix="autocomp-soak-")
    store = ResultStore(out)
    # The workers' sandbox dirs go to a private temp root, so the count is ours alone.
    sbx_root = tempfile.mkdtemp(prefix="autocomp-soak-tmp-")
    tempfile.tempdir = sbx_root
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    env_vars = {"PYTHONPATH": str(ROOT), "TMPDIR": sbx_root}
    ray.init(num_cpus=a.workers, include_dashboard=False, runtime_env={"env_vars": env_vars}, log_to_driver=False)
    task = ray.remote(num_cpus=1, max_retries=2)(run_job)
    kernels = [k.strip() for k in a.kernels.split(",") if k.strip()]
    env_kwargs = {"cache_dir": "", "fault_rate": a.fault_rate}
    seeds = itertools.count()

    def submit() -> object:
        s = next(seeds)
        job = jobs_for({a.agent: {"samples": a.samples}}, [kernels[s % len(kernels)]], [s], env_kwargs)[0]
        return task.remote(job)

    t0 = time.monotonic()
    end = t0 + 60 * a.minutes
    pending = {submit() for _ in range(2 * a.workers)}
    samples = [sample(t0)]
    episodes = errors = steps = 0
    next_sample = t0 + a.interval
    print(f"soak: {a.minutes:g} min, {a.workers} workers, kernels {kernels}, results in {out}", flush=True)
    header = f"{'t_s':>6} {'driver_MB':>9} {'workers_MB':>10} {'tree_MB':>8} {'fds':>5} {'procs':>5} {'sbx':>4} {'episodes':>8}"
    print(header, flush=True)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            pending.discard(ref)
            try:
                rec = ray.get(ref)
            except Exception as e:  # a worker died beyond its retries
                rec = {"key": f"lost-{episodes}", "status": "error", "error": f"{type(e).__name__}: {e}"}
            store.append(rec)
            episodes += 1
            if rec.get("status") == "ok":
                steps += int(rec["result"].get("samples", 0))
            else:
                errors += 1
                print(f"episode error: {rec.get('error')}", flush=True)
            if time.monotonic() < end:
                pending.add(submit())
        now = time.monotonic()
        if now >= next_sample:
            s = sample(t0)
            samples.append(s)
            next_sample = now + a.interval
            print(
                f"{s['t']:6.0f} {s['driver_mb']:9.1f} {s['workers_mb']:10.1f} {s['tree_mb']:8.1f} "
                f"{s['fds']:5.0f} {s['procs']:5.0f} {s['sbx_dirs']:4.0f} {episodes:8d}",
                flush=True,
            )
    wall = time.monotonic() - t0
    ray.shutdown()
    v = verdict(samples, a.tolerance)
    print(f"\n{episodes} episodes ({errors} errors), {steps} samples in {wall:.0f} s: {steps / wall:.2f} samples/s")
    for name, (early, late, ok) in v.items():
        print(f"  {name:11s} {early:9.1f} -> {late:9.1f}  {'stable' if ok else 'GROWING'}")
    left = sample(t0)
    try:
        os.rmdir(sbx_root)  # empty unless a sandbox dir leaked (then it stays, for inspection)
    except OSError:
        pass
    print(f"  after shutdown: {left['procs']:.0f} processes in the tree, {left['sbx_dirs']:.0f} sandbox dirs")
    stable = all(ok for _, _, ok in v.values())
    print("verdict:", "stable" if stable and not errors else "NOT stable" if not stable else "episode errors")
    return 0 if stable and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
