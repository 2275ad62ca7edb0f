"""Print simulated vs FireSim speed relative to the hardware FSM on Autocomp's Exo GEMM problems 0, 2, 3.

python scripts/calibrate_gemmini.py [--json]      (needs ../shared/third_party; exit 1 if a target misses)
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from simulators.gemmini.calibration import GAIN_TOL, RATIO_TOL, exo_dir, table  # noqa: E402


def main() -> int:
    if exo_dir() is None:
        print("../shared/third_party/autocomp/gemmini-exo is absent: nothing to calibrate against")
        return 2
    t0 = time.time()
    rows = table()
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=1))
    else:
        print(f"ratio to the FSM, simulated (FireSim), error; targets: ratios +-{RATIO_TOL:.0%}, gain +-{GAIN_TOL:.0%}")
        print(
            f"{'problem':8} {'FSM util':>8}  {'SW library':>22} {'Exo-unopt':>22} {'Exo-opt':>22} {'expert gain':>22}"
        )
        for r in rows:
            cells = []
            for k in ("sw", "unopt", "opt"):
                mark = "" if r["ratio_ok"][k] else " X"
                cells.append(f"{r['ratio'][k]:.3f} ({r['firesim'][k]:.2f}) {100 * r['ratio_error'][k]:+5.0f}%{mark}")
            mark = "" if r["gain_ok"] else " X"
            gain = f"{r['gain']:.2f}x ({r['gain_firesim']:.2f}x) {100 * r['gain_error']:+4.0f}%{mark}"
            print(
                f"{r['problem']:<8} {r['fsm_utilization']:8.3f}  "
                + " ".join(f"{c:>22}" for c in cells)
                + f" {gain:>22}"
            )
        print(f"({time.time() - t0:.1f} s)")
    ok = all(all(r["ratio_ok"].values()) and r["gain_ok"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
