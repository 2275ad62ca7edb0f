"""The search-space claim, run as the scripts users run: a search over the offline code model's schedule
space alone gets close to the roofline. On the flagships it is >= 85 % (README); here, on small variants."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_gemmini_schedule_space_reaches_85_percent_of_roofline_on_a_small_gemm():
    out = run(
        "scripts/search_space_gemmini.py", "--kernel", "gemmini/matmul-128x128x128", "--beam", "2", "--rounds", "6"
    )
    fraction = float(re.search(r"BEST FRACTION OF ROOFLINE: ([0-9.]+)", out).group(1))
    assert fraction >= 0.85


def test_trainium_gemm_schedule_space_doubles_speed_on_a_small_gemm():
    out = run(
        "scripts/search_space_trainium.py", "--family", "gemm", "--shape", "512x1024x1024",
        "--proxy", "512x1024x1024", "--top", "2", "--beam", "2", "--steps", "4",
    )  # fmt: skip
    m = re.search(r"\(([0-9.]+)x\); roofline [0-9.]+ us; fraction of roofline ([0-9.]+)%", out)
    speedup, fraction = float(m.group(1)), float(m.group(2)) / 100
    assert "correct=True" in out  # the best schedule re-checked on the small variant
    # At this size the 10 us launch overhead is a third of the ideal time, so the bar is lower than 85 %.
    assert speedup >= 1.8 and fraction >= 0.75
