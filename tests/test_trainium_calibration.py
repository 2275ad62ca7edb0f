"""The calibration table: simulated vs measured trn1 latencies, within 15 % (compute-bound) / 25 % (DMA-bound)."""

import pytest

from simulators.trainium.calibration import CASES, PAIRS, pairs_ok, table


@pytest.fixture(scope="module")
def rows():
    return table()


def test_every_case_is_within_its_tolerance(rows):
    assert len(rows) == len(CASES) >= 7
    bad = [(r["case"], r["simulated_us"], r["measured_us"]) for r in rows if not r["ok"]]
    assert not bad, f"outside tolerance: {bad}"
    for r in rows:
        assert r["tolerance"] == (0.15 if r["bound"] == "compute" else 0.25)


def test_naive_optimized_order_is_preserved(rows):
    got = pairs_ok(rows)
    assert len(got) == len(PAIRS) and all(ok for _, _, ok in got), got


def test_bound_labels_match_the_simulated_bottleneck(rows):
    for r in rows:
        p = r["profile"]
        compute = max(p[f"{e}_busy_pct"] for e in ("tensor", "vector", "scalar", "gpsimd"))
        if r["bound"] == "compute":
            assert compute >= 80, (r["case"], p)
        else:
            assert p["dma_busy_pct"] >= 70, (r["case"], p)
