"""Beam search over the Trainium gemm / attention / sdattention schedule spaces alone (no LLM, no env).

Every step expands each beam member by every move of every applicable menu item, times the children with the
simulator's timing-only mode on the full-size kernel, keeps the best `--beam`, and stops when a step brings
no gain. The best schedule is then checked for correctness on the kernel's small variant (same knobs, block
sizes clamped to the small shape). Prints the best fraction of the roofline reached.

    python scripts/search_space_trainium.py                     # gemm-4096x8192x8192-bf16
    python scripts/search_space_trainium.py --family attention --shape 128x4096-bf16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocomp_env.families import (  # noqa: E402, F401
    family_for,  # noqa: E402
    trainium_attention,
    trainium_gemm,
)
from autocomp_env.menus import TRAINIUM  # noqa: E402
from simulators.trainium import TrainiumSimulator  # noqa: E402

FLAGSHIP = {"gemm": "4096x8192x8192-bf16", "attention": "128x4096-bf16", "sdattention": "4096x64"}


def neighbours(fam, kernel, schedule):
    for item in range(len(TRAINIUM)):
        for t, desc in fam._moves(kernel, schedule, item, {}):
            yield item, t, desc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="gemm", choices=sorted(FLAGSHIP))
    ap.add_argument("--shape", default=None)
    ap.add_argument("--beam", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--mode", default="timing", help="simulator mode for the full-size kernel")
    args = ap.parse_args(argv)

    fam = family_for("trainium", args.family)
    kernel = fam.kernel(args.shape or FLAGSHIP[args.family])
    sim = TrainiumSimulator()
    seen: dict[str, float] = {}
    t0 = time.time()

    def latency(s: dict) -> float:
        key = json.dumps(s, sort_keys=True)
        if key not in seen:
            r = sim.run(fam.emit(kernel, s), kernel.name, mode=args.mode)
            seen[key] = r.latency if r.latency is not None else float("inf")
            if r.latency is None:
                print(f"  failed: {s} {r.error}", flush=True)
        return seen[key]

    naive = fam.naive_schedule(kernel)
    beam = [(latency(naive), naive, "naive")]
    print(f"{kernel.name}: roofline {kernel.roofline:.1f} us; naive {beam[0][0]:.1f} us", flush=True)
    for step in range(args.steps):
        cands = list(beam)
        for _, s, _ in beam:
            for item, t, desc in neighbours(fam, kernel, s):
                cands.append((latency(t), t, f"{TRAINIUM[item]}: {desc}"))
        cands.sort(key=lambda c: c[0])
        new = []
        for c in cands:
            if all(c[1] != b[1] for b in new):
                new.append(c)
            if len(new) == args.beam:
                break
        gain = new[0][0] < beam[0][0]
        beam = new
        print(
            f"step {step + 1}: best {beam[0][0]:.1f} us ({kernel.roofline / beam[0][0]:.1%} of roofline) "
            f"after '{beam[0][2]}'  [{len(seen)} schedules, {time.time() - t0:.0f} s]",
            flush=True,
        )
        if not gain:
            break

    best_lat, best, _ = beam[0]
    small = fam.kernel(fam.small_shape(kernel))
    fitted = fam.fit(small, best) if hasattr(fam, "fit") else best
    r = sim.run(fam.emit(small, fitted), small.name)
    print(f"best schedule: {json.dumps(best, sort_keys=True)}")
    print(f"small-variant check {small.name}: correct={r.correct} error={r.error}")
    print(
        f"RESULT {kernel.name}: naive {seen[json.dumps(naive, sort_keys=True)]:.1f} us -> best {best_lat:.1f} us; "
        f"roofline {kernel.roofline:.1f} us; fraction of roofline {kernel.roofline / best_lat:.1%}"
    )
    return 0 if r.correct else 1


if __name__ == "__main__":
    raise SystemExit(main())
