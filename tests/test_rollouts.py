"""Serial rollouts into the crash-safe store: records, resume after interruption, torn lines, bad jobs."""

from __future__ import annotations

import json

import pytest
import test_agents_fake as fake

from agents.results import ResultStore
from agents.rollouts import jobs_for, run_jobs

KW = {"imports": ("test_agents_fake",), "env_id": fake.ENV_ID}


def _jobs(n_seeds=2):
    return jobs_for(
        {"random": {"samples": 10}, "greedy": {"samples": 10}},
        ["fake/matmul-64", "fake/matmul-128"],
        range(n_seeds),
        **KW,
    )


def test_serial_run_stores_one_record_per_job_with_effective_config(tmp_path):
    jobs = _jobs()
    recs = run_jobs(jobs, tmp_path, progress=False)
    assert [r["key"] for r in recs] == [j.key for j in jobs]
    assert len({j.key for j in jobs}) == len(jobs) == 8
    assert all(r["status"] == "ok" for r in recs)
    r = recs[0]
    assert r["config"]["agent"] == {"agent": "random", "samples": 10}
    assert r["config"]["env"]["kernel"] == "fake/matmul-64" and r["config"]["seed"] == 0
    assert r["result"]["samples"] == 10
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(line)["key"] for line in lines)


def test_interrupted_run_resumes_by_skipping_finished_jobs(tmp_path):
    jobs = _jobs()
    seen = []

    def stop_after_three(rec):
        seen.append(rec["key"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, tmp_path, progress=False, on_record=stop_after_three)
    assert len(ResultStore(tmp_path).finished_keys()) == 3
    rerun = []
    recs = run_jobs(jobs, tmp_path, progress=False, on_record=lambda r: rerun.append(r["key"]))
    assert len(rerun) == 5 and not set(rerun) & set(seen)
    assert len(recs) == 8 and len(ResultStore(tmp_path).records()) == 8
    # the resumed results equal a clean run's (same seeds, same jobs)
    clean = run_jobs(jobs, tmp_path / "clean", progress=False)
    strip = lambda rs: [{**r["result"], "wall_seconds": 0} for r in rs]  # noqa: E731
    assert strip(recs) == strip(clean)


def test_torn_last_line_is_cut_and_its_job_rerun(tmp_path):
    jobs = _jobs(1)
    run_jobs(jobs[:2], tmp_path, progress=False)
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"key": "' + jobs[2].key + '", "status": "o')  # killed mid-write
    store = ResultStore(tmp_path)
    assert store.finished_keys() == {jobs[0].key, jobs[1].key}
    assert (tmp_path / "results.jsonl").read_text().endswith("\n")
    recs = run_jobs(jobs, tmp_path, progress=False)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)


def test_bad_job_becomes_an_error_record_and_is_retried_on_resume(tmp_path):
    jobs = jobs_for({"random": {"samples": 5}, "nope": {}}, ["fake/matmul-64"], [0], **KW)
    recs = run_jobs(jobs, tmp_path, progress=False)
    assert [r["status"] for r in recs] == ["ok", "error"]
    assert "unknown agent" in recs[1]["error"]
    assert ResultStore(tmp_path).finished_keys() == {jobs[0].key}


def test_unknown_backend_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown backend"):
        run_jobs(_jobs(1), tmp_path, backend="mpi", progress=False)


def test_summary_writes_are_atomic(tmp_path):
    store = ResultStore(tmp_path)
    store.write_summary("s.json", {"a": 1})
    store.write_summary("s.json", {"a": 2})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


class _Model:
    name = "m"

    def __init__(self, temperature):
        self.temperature = temperature

    def config(self):
        return {"name": self.name, "temperature": self.temperature}


def test_job_keys_describe_live_kwargs_by_their_config_not_their_address():
    a = jobs_for({"beam": {}}, ["fake/matmul-64"], [0], {"code_model": _Model(1.0)}, **KW)[0]
    b = jobs_for({"beam": {}}, ["fake/matmul-64"], [0], {"code_model": _Model(1.0)}, **KW)[0]
    c = jobs_for({"beam": {}}, ["fake/matmul-64"], [0], {"code_model": _Model(0.5)}, **KW)[0]
    assert a.key == b.key != c.key
    assert json.loads(json.dumps(a.to_dict()))["env"]["kwargs"]["code_model"] == {"name": "m", "temperature": 1.0}


def test_results_store_is_readable_by_the_validator(tmp_path):
    from autocomp_env.episode import claims_from

    recs = run_jobs(_jobs(1), tmp_path, progress=False)
    claims = claims_from(tmp_path / "results.jsonl")
    assert len(claims) == len(recs) == 4
    assert [(c.kernel, c.latency) for c in claims] == [
        (r["result"]["kernel"], r["result"]["best_latency"]) for r in recs
    ]
    assert all("autocomp-schedule" in c.code for c in claims)
