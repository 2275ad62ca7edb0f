"""(agent x kernel x seed) jobs, run serially in-process or as Ray tasks, streamed into a `ResultStore`.

Both backends run the same `run_job` on the same jobs with the same seeds, so they give the same results
(wall times aside). Ray: `ray.init(num_cpus=workers)` on this machine by default, or `address=` for a
cluster; a worker that dies has its task retried (`max_retries`); results are stored as they finish.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents.envapi import EnvSpec, make_env
from agents.registry import make_agent
from agents.results import ResultStore
from autocomp_env.raysetup import init_ray  # noqa: F401  (re-exported: scripts and tests import it from here)


def _describe(obj: Any) -> Any:
    """A stable description of a non-JSON kwarg (e.g. a code model): its config(), not its repr (an address)."""
    config = getattr(obj, "config", None)
    return config() if callable(config) else getattr(obj, "name", None) or type(obj).__name__


def spec_dict(spec: EnvSpec) -> dict[str, Any]:
    # not dataclasses.asdict: it would deep-copy live kwargs such as an LLM code model
    return {"kernel": spec.kernel, "env_id": spec.env_id, "kwargs": dict(spec.kwargs), "imports": list(spec.imports)}


@dataclass(frozen=True)
class Job:
    agent: str  # a registry name ("beam") or "module:Class"
    env: EnvSpec
    seed: int
    agent_kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        blob = json.dumps(
            [self.agent, sorted(self.agent_kwargs), spec_dict(self.env)], sort_keys=True, default=_describe
        )
        return f"{self.agent}|{self.env.kernel}|{self.seed}|{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    def to_dict(self) -> dict[str, Any]:
        d = {
            "agent": self.agent,
            "agent_kwargs": dict(self.agent_kwargs),
            "env": spec_dict(self.env),
            "seed": self.seed,
        }
        return json.loads(json.dumps(d, default=_describe))


def jobs_for(
    agents: dict[str, dict[str, Any]],
    kernels: Iterable[str],
    seeds: Iterable[int],
    env_kwargs: dict[str, Any] | None = None,
    imports: tuple[str, ...] = ("autocomp_env",),
    env_id: str | None = None,
) -> list[Job]:
    """The cross product, in a stable order. `agents` maps agent name -> constructor kwargs."""
    kernels, seeds = list(kernels), list(seeds)
    base = EnvSpec(kernel="", env_id=env_id, imports=imports).with_kwargs(**(env_kwargs or {}))
    return [
        Job(name, dataclasses.replace(base, kernel=k), int(s), tuple(sorted(kw.items())))
        for name, kw in agents.items()
        for k in kernels
        for s in seeds
    ]


def run_job(job: Job) -> dict[str, Any]:
    """Build the env and the agent, run one episode, return the record to store. Never raises for a bad
    job: errors come back as a record with status "error" and the traceback."""
    t0 = time.perf_counter()
    try:
        agent = make_agent(job.agent, **dict(job.agent_kwargs))
        env = make_env(job.env)
        try:
            result = agent.run(env, job.seed)
        finally:
            env.close()
        return {
            "key": job.key,
            "status": "ok",
            "job": job.to_dict(),
            "config": _effective_config(job, agent),
            "result": result.to_dict(),
        }
    except Exception as e:  # a structured failure record, not a crashed run
        return {
            "key": job.key,
            "status": "error",
            "job": job.to_dict(),
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=8),
            "wall_seconds": time.perf_counter() - t0,
        }


def _effective_config(job: Job, agent: Any) -> dict[str, Any]:
    versions = {}
    for mod in ("autocomp_env", "simulators.gemmini", "simulators.trainium"):
        try:
            m = importlib.import_module(mod)
            versions[mod] = getattr(m, "__version__", None) or getattr(m, "version", None)
        except Exception:
            versions[mod] = None
    return {
        "agent": agent.config(),
        "env": json.loads(json.dumps(spec_dict(job.env), default=_describe)),
        "seed": job.seed,
        "versions": {k: str(v) for k, v in versions.items()},
    }


def run_jobs(
    jobs: list[Job],
    out_dir: str | Path,
    backend: str = "serial",
    workers: int = 2,
    address: str | None = None,
    max_retries: int = 3,
    pythonpath: tuple[str, ...] = (),
    progress: bool = True,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the jobs not yet finished in `out_dir` and return all records for `jobs` (old and new)."""
    store = ResultStore(out_dir)
    done = store.finished_keys()
    todo = [j for j in jobs if j.key not in done]
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(todo),
        desc=f"rollouts[{backend}]",
        disable=not progress,
        file=sys.stderr,
    )

    def record(rec: dict[str, Any]) -> None:
        store.append(rec)
        bar.update(1)
        if on_record:
            on_record(rec)

    try:
        if backend == "serial":
            for job in todo:
                record(run_job(job))
        elif backend == "ray":
            _run_ray(todo, workers, address, max_retries, pythonpath, record, bar)
        else:
            raise ValueError(f"unknown backend {backend!r}: use 'serial' or 'ray'")
    finally:
        bar.close()
    keys = {j.key for j in jobs}
    latest: dict[str, dict[str, Any]] = {}
    for rec in store.records():
        if rec["key"] in keys and (rec["key"] not in latest or rec.get("status") == "ok"):
            latest[rec["key"]] = rec
    return [latest[j.key] for j in jobs if j.key in latest]


def _run_ray(
    todo: list[Job], workers: int, address: str | None, max_retries: int, pythonpath: tuple[str, ...], record, bar
) -> None:
    import ray  # noqa: PLC0415  (seconds to import: only the Ray backend needs it)

    init_ray(workers, address, pythonpath)
    task = ray.remote(num_cpus=1, max_retries=max_retries)(run_job)
    pending = {task.remote(job): job for job in todo}
    while pending:
        bar.set_postfix(running=min(len(pending), workers))
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            job = pending.pop(ref)
            try:
                record(ray.get(ref))
            except Exception as e:  # the worker died more than max_retries times
                record({"key": job.key, "status": "error", "job": job.to_dict(), "error": f"{type(e).__name__}: {e}"})
