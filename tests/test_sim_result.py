"""The one roofline check (`simulators.result.within_roofline`), which every simulator's `run` ends with."""

import math

import pytest

from simulators.result import SimResult, within_roofline


def test_a_correct_latency_at_or_above_the_roofline_passes_unchanged():
    r = SimResult(True, 100.0, "cycles", utilization=0.5, counters={"busy": 1})
    assert within_roofline(r, 100.0) is r and within_roofline(r, 50.0) is r


@pytest.mark.parametrize("latency", [99.0, 0.0, -1.0, math.nan, math.inf])
def test_a_latency_below_the_roofline_or_not_finite_is_beyond_roofline(latency):
    r = within_roofline(SimResult(True, latency, "us", counters={"busy": 1}, sim_seconds=0.5), 100.0, "k/x-1")
    assert not r.correct and r.latency is None and r.error.type == "beyond_roofline"
    assert "roofline 100" in r.error.message and "k/x-1" in r.error.message
    assert r.counters["busy"] == 1 and r.sim_seconds == 0.5
    assert r.counters["claimed_latency"] == latency or math.isnan(latency)


def test_failures_pass_through():
    bad = SimResult.failure("cycles", "wrong_output", "mismatch")
    assert within_roofline(bad, 100.0) is bad
