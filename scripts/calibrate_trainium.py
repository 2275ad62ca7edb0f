"""Print simulated vs measured trn1 latency: the calibration table (research trainium.md §3.5), and with --traces
every intact step of Autocomp's measured search traces with the per-trace ranking figures.

python scripts/calibrate_trainium.py [--json]
python scripts/calibrate_trainium.py --traces DIR [--kernel FILE=NAME ...] [--json]

A trace file `N_<family>_trace.py` is parsed with `ast` (never executed); its steps run in the sandbox, timing
only, at the family's default shape (or --kernel FILE=trainium/...). Damaged steps are listed, not run.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from simulators.trainium.calibration import pairs_ok, table  # noqa: E402
from simulators.trainium.traces import TARGETS, meets, run_trace, trace_files  # noqa: E402


def _table(as_json: bool) -> bool:
    rows = table()
    if as_json:
        print(json.dumps([{k: v for k, v in r.items() if k != "profile"} for r in rows], indent=1))
    else:
        print(f"{'case':18} {'kernel':36} {'bound':7} {'measured us':>12} {'simulated us':>13} {'error':>7}  ok")
        for r in rows:
            print(
                f"{r['case']:18} {r['kernel']:36} {r['bound']:7} {r['measured_us']:12.1f} {r['simulated_us']:13.1f} "
                f"{100 * r['error']:+6.1f}%  {'yes' if r['ok'] else 'NO'} (tol {100 * r['tolerance']:.0f}%)"
            )
        for a, b, ok in pairs_ok(rows):
            print(f"order {a} > {b}: {'yes' if ok else 'NO'}")
        for r in rows:
            p = r["profile"]
            busy = " ".join(f"{e}={p[e + '_busy_pct']:.0f}%" for e in ("tensor", "vector", "scalar", "gpsimd", "dma"))
            print(f"  {r['case']:18} {busy} mfu={p['mfu']:.2f} mbu={p['mbu']:.2f}")
    return all(r["ok"] for r in rows) and all(o for _, _, o in pairs_ok(rows))


def _traces(directory: str, kernels: dict, as_json: bool) -> bool:
    results = [run_trace(f, kernels.get(os.path.basename(f))) for f in trace_files(directory)]
    if as_json:
        print(json.dumps(results, indent=1))
        return all(all(meets(r["figures"]).values()) and not r["figures"]["failed"] for r in results)
    for r in results:
        print(f"{r['file']} ({r['kernel']})")
        for s in r["steps"]:
            sim = s["simulated_us"]
            tail = s["damage"] and f"damaged: {s['damage']}" or s["error"] and f"FAILED: {s['error']}" or ""
            err = f"{100 * (sim / s['measured_us'] - 1):+6.1f}%" if sim else ""
            name = f"{s['index']}" + (" (opt file)" if s["source"] == "opt" else "")
            print(
                f"  step {name:12} measured {s['measured_us']:9.1f} us  simulated "
                + (f"{sim:9.1f} us" if sim else f"{'-':>9}   ")
                + f" {err:>7}  {tail}"
            )
    print()
    print("| trace | intact steps | Spearman | direction right | median abs error | speedup trn1 | speedup sim |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        f, m = r["figures"], meets(r["figures"])
        ok &= all(m.values()) and not f["failed"]
        mark = {k: "" if v else " (miss)" for k, v in m.items()}
        print(
            f"| {r['file']} | {f['steps']} | {f['spearman']:.3f}{mark['spearman']} "
            f"| {100 * f['direction']:.0f} %{mark['direction']} | {100 * f['median_error']:.1f} %{mark['median_error']} "
            f"| {f['speedup_measured']:.2f}x | {f['speedup_simulated']:.2f}x{mark['speedup']} |"
        )
    print(
        f"targets: Spearman >= {TARGETS['spearman']}, direction (faster/slower/same within 3 %) right >= "
        f"{100 * TARGETS['direction']:.0f} % of steps, median |error| <= {100 * TARGETS['median_error']:.0f} %, "
        f"end-to-end speedup within {100 * TARGETS['speedup_ratio']:.0f} % of trn1's"
    )
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", metavar="DIR", help="directory of Autocomp *_trace.py files")
    ap.add_argument("--kernel", action="append", default=[], metavar="FILE=NAME", help="kernel for a trace file")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    if a.traces:
        kernels = dict(k.split("=", 1) for k in a.kernel)
        ok = _traces(a.traces, kernels, a.json)
    else:
        ok = _table(a.json)
    print(f"({time.time() - t0:.1f} s)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
