"""A Ray worker SIGKILLed from outside in the middle of a real-env rollout: the job is retried, the results
are complete, each job is stored once, and the killed sandbox child leaves nothing behind."""

from __future__ import annotations

import os
import signal
import threading
import time

import helpers
import pytest

from agents.rollouts import jobs_for, run_jobs

pytest.importorskip("ray")
KERNEL = "gemmini/matmul-16x16x16"


class StallOnceAgent:
    """First attempt: records its pid, takes one real step, then waits to be killed. Later attempts: random."""

    name = "stall-once"

    def __init__(self, pidfile: str, samples: int = 3):
        self.pidfile, self.samples = pidfile, samples

    def config(self) -> dict:
        return {"agent": self.name, "samples": self.samples}

    def run(self, env, seed):
        from agents.simple import RandomAgent

        if not os.path.exists(self.pidfile):
            env.reset(seed=seed)
            env.step(0)
            with open(self.pidfile + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(self.pidfile + ".tmp", self.pidfile)
            time.sleep(120)  # mid-rollout: the test kills this worker now
        return RandomAgent(samples=self.samples).run(env, seed)


ray_session = helpers.ray_session  # autouse fixture: one Ray session for the module


def test_a_worker_killed_from_outside_mid_rollout_is_retried(tmp_path):
    pidfile = tmp_path / "worker.pid"
    kw = {"imports": ("autocomp_env",), "env_kwargs": {"cache_dir": str(tmp_path / "eval")}}
    jobs = jobs_for({"random": {"samples": 3}}, [KERNEL], [0, 1], **kw)
    jobs += jobs_for({"test_faults_ray:StallOnceAgent": {"pidfile": str(pidfile)}}, [KERNEL], [0], **kw)
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 240
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pidfile.exists():
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    recs = run_jobs(
        jobs, tmp_path / "out", backend="ray", workers=2, max_retries=2, progress=False, pythonpath=(helpers.TESTS,)
    )
    t.join(timeout=5)
    assert killed, "the worker was never killed"
    assert len(recs) == 3 and all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3  # the killed attempt stored nothing
    assert recs[-1]["result"]["samples"] == 3
