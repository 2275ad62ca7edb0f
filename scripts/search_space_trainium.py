"""Beam search over the Trainium gemm / attention / sdattention schedule spaces alone (no LLM, no env).

Each step expands every beam member by every move of every applicable menu item, times the children with the
simulator's timing-only mode, keeps the best `--beam`, and stops when a step brings no gain. With `--proxy`
the search runs on a smaller shape of the same family (much faster to trace) and its best `--top` distinct
schedules are then adapted to the full-size kernel and timed there; the figure reported is always the
full-size one. The best schedule is finally checked for correctness on the kernel's small variant (same knobs,
block sizes clamped to the small shape). Prints the best fraction of the roofline reached.

    python scripts/search_space_trainium.py --proxy 2048x4096x4096-bf16     # gemm-4096x8192x8192-bf16
    python scripts/search_space_trainium.py --family attention              # attention-128x4096-bf16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autocomp_env.kernels import get_kernel  # noqa: E402
from autocomp_env.targets import family, simulator  # noqa: E402
from autocomp_env.targets.trainium.menu import MENU as TRAINIUM  # noqa: E402

FLAGSHIP = {"gemm": "4096x8192x8192-bf16", "attention": "128x4096-bf16", "sdattention": "4096x64"}


def key(s: dict) -> str:
    return json.dumps(s, sort_keys=True)


def timed(sim, code: str, kernel: str, log) -> float:
    """Timing-only latency, or inf (logged) when the simulator reports or raises an error."""
    try:
        r = sim.run(code, kernel, mode="timing")
    except Exception as e:  # a simulator bug must not end a long search
        log(f"  simulator raised {type(e).__name__}: {e}")
        return float("inf")
    if r.latency is None:
        log(f"  failed: {r.error}")
        return float("inf")
    return r.latency


def beam_search(fam, kernel, sim, beam_width: int, steps: int, log) -> tuple[dict, dict[str, float]]:
    """Returns (naive schedule, {schedule json: latency}) of everything timed."""
    seen: dict[str, float] = {}

    def latency(s: dict) -> float:
        k = key(s)
        if k not in seen:
            seen[k] = timed(sim, fam.emit(kernel, s), kernel.name, log)
        return seen[k]

    t0 = time.time()
    naive = fam.naive_schedule(kernel)
    beam = [(latency(naive), naive, "naive")]
    log(f"{kernel.name}: roofline {kernel.roofline:.1f} us; naive {beam[0][0]:.1f} us")
    for step in range(steps):
        cands = list(beam)
        for _, s, _ in beam:
            for item in range(len(TRAINIUM)):
                for t, desc in fam._moves(kernel, s, item, {}):
                    cands.append((latency(t), t, f"{TRAINIUM[item]}: {desc}"))
        cands.sort(key=lambda c: c[0])
        new: list = []
        for c in cands:
            if all(c[1] != b[1] for b in new):
                new.append(c)
            if len(new) == beam_width:
                break
        gain = new[0][0] < beam[0][0]
        beam = new
        log(
            f"step {step + 1}: best {beam[0][0]:.1f} us ({kernel.roofline / beam[0][0]:.1%} of roofline) after "
            f"'{beam[0][2]}'  [{len(seen)} schedules, {time.time() - t0:.0f} s]"
        )
        if not gain:
            break
    return naive, seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="gemm", choices=sorted(FLAGSHIP))
    ap.add_argument("--shape", default=None, help="full-size shape (default: the family's flagship)")
    ap.add_argument("--proxy", default=None, help="search on this smaller shape, then re-time the best on --shape")
    ap.add_argument("--top", type=int, default=6, help="proxy schedules re-timed on the full-size kernel")
    ap.add_argument("--beam", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)

    def kernel_of(shape: str):
        # The dtype suffix of the flagship's name ("-bf16") may be left out of --shape and --proxy.
        suffix = "-bf16" if FLAGSHIP[args.family].endswith("-bf16") else ""
        return get_kernel(f"trainium/{args.family}-{shape.removesuffix(suffix)}{suffix}")

    fam = family("trainium", args.family)
    kernel = kernel_of(args.shape or FLAGSHIP[args.family])
    sim = simulator("trainium")
    search_kernel = kernel_of(args.proxy) if args.proxy else kernel
    naive, seen = beam_search(fam, search_kernel, sim, args.beam, args.steps, log)

    ranked = sorted(seen.items(), key=lambda kv: kv[1])
    if args.proxy:
        full: dict[str, float] = {}
        for k, _ in ranked:
            s = fam.fit(kernel, json.loads(k))
            if key(s) not in full:
                full[key(s)] = timed(sim, fam.emit(kernel, s), kernel.name, log)
                log(f"  full size: {full[key(s)]:.1f} us  {key(s)}")
            if len(full) == args.top:
                break
        naive_full = timed(sim, fam.emit(kernel, fam.naive_schedule(kernel)), kernel.name, log)
        best_key, best_lat = min(full.items(), key=lambda kv: kv[1])
    else:
        naive_full = seen[key(naive)]
        best_key, best_lat = ranked[0]
    best = json.loads(best_key)

    small = get_kernel(kernel.small)
    fitted = fam.fit(small, best)
    r = sim.run(fam.emit(small, fitted), small.name)
    log(f"best schedule: {best_key}")
    log(f"small-variant check {small.name} with {key(fitted)}: correct={r.correct} error={r.error}")
    log(
        f"RESULT {kernel.name}: naive {naive_full:.1f} us -> best {best_lat:.1f} us "
        f"({naive_full / best_lat:.2f}x); roofline {kernel.roofline:.1f} us; "
        f"fraction of roofline {kernel.roofline / best_lat:.1%}"
    )
    return 0 if r.correct and best_lat < float("inf") else 1


if __name__ == "__main__":
    raise SystemExit(main())
