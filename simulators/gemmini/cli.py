"""`python -m simulators.gemmini FILE.c --kernel NAME [--json]` (also `autocomp-env sim gemmini ...`)."""

from __future__ import annotations

import argparse
import json
import sys

from .simulator import GemminiSimulator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.gemmini", description="Simulate a Gemmini C solution.")
    ap.add_argument("file", help="C file with `void solution(...)`")
    ap.add_argument("--kernel", required=True, help="e.g. gemmini/matmul-64x64x64")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--seeds", type=int, default=2, help="number of input seeds to check (default 2)")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    try:
        with open(args.file, encoding="utf-8") as f:
            code = f.read()
    except OSError as e:
        print(f"cannot read {args.file}: {e}", file=sys.stderr)
        return 2
    res = GemminiSimulator().run(code, args.kernel, seeds=tuple(range(max(1, args.seeds))), timeout=args.timeout)
    if args.json:
        d = res.to_dict()
        out = {k: d[k] for k in ("correct", "cycles", "utilization", "error", "counters", "sim_seconds")}
        print(json.dumps(out, sort_keys=True))
    elif res.correct:
        print(f"correct: {res.latency:.0f} cycles, utilization {res.utilization:.3f}")
    else:
        e = res.error
        where = f" (line {e.line})" if e and e.line else ""
        print(f"{e.type if e else 'error'}{where}: {e.message if e else ''}")
    return 0 if res.correct else 1
