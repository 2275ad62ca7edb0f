"""Beam search over the schedule spaces of the Trainium rmsnorm, layernorm, softmax, mamba and conv1d families.

For each flagship kernel it prints the latency of the naive start, the vendor-style and expert baselines, the
best schedule the search finds (every one-knob move of every beam member, beam width 3), and the fraction of
the simulator's roofline reached. Latency comes from the simulator's timing-only mode; the best schedule is
then checked for correctness on the family's small variant.

    python scripts/search_space_trainium_other.py [--family rmsnorm ...] [--beam 3] [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

from autocomp_env.kernels import get_kernel
from autocomp_env.targets import family, simulator

FLAGSHIPS = {
    "rmsnorm": "512x4096",
    "layernorm": "4096x8192",
    "softmax": "4096x2048",
    "mamba": "1x256x2048x16",
    "conv1d": "8x512x2048x3",
}


def neighbours(fam, k, s):
    out = {}
    for item in range(len(fam.menu)):
        for knob, vals in fam._moves(k, s, item):
            for v in vals:
                new = fam.implied(k, s, knob.name, v)
                out[json.dumps(new, sort_keys=True)] = new
    return list(out.values())


def search(name: str, beam: int, rounds: int, mode: str) -> dict:
    fam = family("trainium", name)
    k = get_kernel(f"trainium/{name}-{FLAGSHIPS[name]}")
    sim = simulator("trainium")
    cache: dict[str, float] = {}

    def latency(s) -> float:
        key = json.dumps(s, sort_keys=True)
        if key not in cache:
            r = sim.run(fam.emit(k, s), k.name, mode=mode)
            cache[key] = r.latency if r.latency is not None else float("inf")
        return cache[key]

    t0 = time.time()
    start = fam.naive_schedule(k)
    frontier = [(latency(start), start)]
    best = frontier[0]
    for _ in range(rounds):
        pool = {json.dumps(s, sort_keys=True): (lat, s) for lat, s in frontier}
        todo = {json.dumps(n, sort_keys=True): n for _, s in frontier for n in neighbours(fam, k, s)}
        with ThreadPoolExecutor(3) as ex:  # each simulation is its own sandboxed process
            lats = list(ex.map(latency, todo.values()))
        for (key, n), lat in zip(todo.items(), lats, strict=True):
            pool[key] = (lat, n)
        frontier = sorted(pool.values(), key=lambda t: t[0])[:beam]
        if frontier[0][0] >= best[0]:
            break
        best = frontier[0]
    base = {key: sim.run(code, k.name, mode=mode).latency for key, code in fam.baselines(k).items()}
    small = get_kernel(k.small)
    ok = sim.run(fam.emit(small, fam.fit(small, best[1])), small.name).correct
    return {
        "kernel": k.name,
        "naive_us": latency(start),
        "vendor_us": base["vendor"],
        "expert_us": base["expert"],
        "best_us": best[0],
        "roofline_us": k.roofline,
        "best_fraction_of_roofline": k.roofline / best[0],
        "best_correct_on_small": ok,
        "evaluated": len(cache),
        "seconds": round(time.time() - t0, 1),
        "best_schedule": best[1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", nargs="*", default=list(FLAGSHIPS))
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--mode", default="timing")
    args = ap.parse_args()
    for name in args.family:
        r = search(name, args.beam, args.rounds, args.mode)
        us = {key: "failed" if r[key] is None else f"{r[key]:.1f}" for key in ("naive_us", "vendor_us", "expert_us")}
        print(
            f"{r['kernel']:34s} naive {us['naive_us']:>9} us  vendor {us['vendor_us']:>9}  expert {us['expert_us']:>9}"
            f"  best {r['best_us']:9.1f}  roofline {r['roofline_us']:8.1f}  -> {100 * r['best_fraction_of_roofline']:.1f}%"
            f" of roofline, correct on small: {r['best_correct_on_small']}  ({r['evaluated']} schedules, {r['seconds']} s)"
        )
        print("    best schedule:", json.dumps(r["best_schedule"], sort_keys=True))


if __name__ == "__main__":
    main()
