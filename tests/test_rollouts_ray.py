"""Ray rollouts (one small Ray session for the module): same results as serial, survive a dead worker."""

from __future__ import annotations

import helpers
import pytest
import test_agents_fake as fake

from agents.rollouts import jobs_for, run_jobs

pytest.importorskip("ray")
KW = {"imports": ("test_agents_fake",), "env_id": fake.ENV_ID}


ray_session = helpers.ray_session  # autouse fixture: one Ray session for the module


def _strip(recs):
    return [(r["key"], {**r["result"], "wall_seconds": 0}) for r in recs]


def test_ray_and_serial_give_identical_results(tmp_path):
    jobs = jobs_for(
        {"random": {"samples": 12}, "beam": {"samples": 12}}, ["fake/matmul-64", "fake/matmul-256"], [0, 1], **KW
    )
    serial = run_jobs(jobs, tmp_path / "s", backend="serial", progress=False)
    par = run_jobs(jobs, tmp_path / "r", backend="ray", workers=2, progress=False, pythonpath=(helpers.TESTS,))
    assert all(r["status"] == "ok" for r in par)
    assert _strip(serial) == _strip(par)


def test_a_worker_killed_mid_run_is_retried_and_results_are_complete(tmp_path):
    marker = tmp_path / "killed"
    jobs = jobs_for({"random": {"samples": 6}}, ["fake/matmul-64"], [0, 1, 2], **KW)
    jobs += jobs_for(
        {"test_agents_fake:KillOnceAgent": {"marker": str(marker), "samples": 6}}, ["fake/matmul-64"], [0], **KW
    )
    recs = run_jobs(
        jobs, tmp_path / "out", backend="ray", workers=2, max_retries=2, progress=False, pythonpath=(helpers.TESTS,)
    )
    assert marker.exists()  # the worker really died once
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)
    assert recs[-1]["result"]["samples"] == 6
