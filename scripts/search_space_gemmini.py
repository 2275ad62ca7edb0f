"""Beam search over a Gemmini family's schedule space alone (no LLM, no env): how close to roofline can it get?

    python scripts/search_space_gemmini.py                       # gemmini/matmul-512x512x512
    python scripts/search_space_gemmini.py --no-hw-loop          # software schedules only (no gemmini_loop_ws)
    python scripts/search_space_gemmini.py --kernel gemmini/conv-1x14x14x64x64 --beam 2 --rounds 6

Each round expands every schedule in the beam by every transformation of every menu item (the full
neighbourhood, not one random draw per item), simulates the new ones and keeps the `--beam` fastest.
Prints the fraction of roofline (MACs/DIM^2 cycles) reached, next to the naive start and the vendor library.
"""

from __future__ import annotations

import argparse
import json
import time

from autocomp_env.kernels import family_of, get_kernel
from autocomp_env.targets import simulator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="gemmini/matmul-512x512x512")
    ap.add_argument("--beam", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--no-hw-loop", action="store_true", help="exclude schedules that use gemmini_loop_ws")
    args = ap.parse_args()

    kernel = get_kernel(args.kernel)
    family = family_of(kernel)
    sim = simulator("gemmini")
    seen: dict[str, float] = {}
    t0 = time.time()

    def latency(s: dict) -> float:
        key = json.dumps(s, sort_keys=True)
        if key not in seen:
            r = sim.run(family.emit(kernel, s), kernel.name, seeds=(0,))
            if not r.correct:
                raise SystemExit(f"schedule produced incorrect code ({r.error}): {s}")
            seen[key] = r.latency
        return seen[key]

    def frac(lat: float) -> str:
        return f"{lat:>12,.0f} cycles  {kernel.roofline / lat:6.1%} of roofline"

    start = family.naive_schedule(kernel)
    print(f"{kernel.name}: roofline {kernel.roofline:,.0f} cycles")
    print(f"  naive start      {frac(latency(start))}")
    for name, code in family.baselines(kernel).items():
        r = sim.run(code, kernel.name, seeds=(0,))
        print(f"  {name:<16} {frac(r.latency) if r.correct else 'FAILED: ' + str(r.error)}")

    beam = [start]
    best = (latency(start), start)
    for rnd in range(1, args.rounds + 1):
        pool = {json.dumps(s, sort_keys=True): s for s in beam}
        for s in beam:
            for item in range(len(family.menu)):
                for new, _ in family.candidates(kernel, s, item):
                    if args.no_hw_loop and new.get("hw_loop"):
                        continue
                    pool.setdefault(json.dumps(new, sort_keys=True), new)
        ranked = sorted(pool.values(), key=latency)
        beam = ranked[: args.beam]
        improved = latency(beam[0]) < best[0]
        best = min(best, (latency(beam[0]), beam[0]), key=lambda x: x[0])
        print(f"  round {rnd:>2}: best {frac(best[0])}  ({len(seen)} schedules simulated, {time.time() - t0:.0f} s)")
        if not improved:
            break
    print(f"best schedule: {json.dumps(best[1], sort_keys=True)}")
    print(f"BEST FRACTION OF ROOFLINE: {kernel.roofline / best[0]:.3f}")


if __name__ == "__main__":
    main()
