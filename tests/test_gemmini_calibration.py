"""Calibration against FireSim (issue 13, item 2): ratios to the hardware FSM on Autocomp's Exo GEMMs.

Skips without ../shared/third_party. Every target must hold: each ratio to the FSM within RATIO_TOL of FireSim's
and the expert's gain over the starting code within GAIN_TOL (simulators/gemmini/README.md, "Calibration").
"""

from __future__ import annotations

import pytest

from simulators.gemmini.calibration import GAIN_TOL, RATIO_TOL, exo_dir, table

pytestmark = pytest.mark.skipif(exo_dir() is None, reason="../shared/third_party/autocomp/gemmini-exo is absent")


@pytest.fixture(scope="module")
def rows():
    return {r["problem"]: r for r in table()}


@pytest.mark.parametrize("problem", (0, 2, 3))
@pytest.mark.parametrize("metric", ("sw", "unopt", "opt", "gain"))
def test_speed_relative_to_the_fsm_is_within_tolerance_of_firesim(rows, problem, metric):
    r = rows[problem]
    if metric == "gain":
        assert abs(r["gain_error"]) <= GAIN_TOL, r
    else:
        assert abs(r["ratio_error"][metric]) <= RATIO_TOL, (metric, r["ratio"], r["firesim"])


def test_the_expert_schedule_beats_the_starting_code_on_every_problem(rows):
    assert all(r["gain"] > 1.1 for r in rows.values())
