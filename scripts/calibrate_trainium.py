"""Print simulated vs measured trn1 latency for the calibration cases (research trainium.md §3.5).

python scripts/calibrate_trainium.py [--json]
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from simulators.trainium.calibration import pairs_ok, table  # noqa: E402


def main() -> int:
    t0 = time.time()
    rows = table()
    if "--json" in sys.argv:
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
    print(f"({time.time() - t0:.1f} s)")
    ok = all(r["ok"] for r in rows) and all(o for _, _, o in pairs_ok(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
