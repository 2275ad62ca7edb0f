"""An evaluation service on Ray: a pool of actors that simulate candidates for many concurrent rollouts.

`EvalService(workers=2)` starts Ray on this machine (or joins a cluster with `address=`) and keeps a pool
of `EvalWorker` actors, each with its own simulators and an `Evaluator` on the shared content-addressed
disk cache. Callers (hundreds of rollout threads, or one batch) submit (kernel, code) requests:

- `submit(kernel, code) -> Future`: a `concurrent.futures.Future` of the `SimResult`. At most
  `max_queued` requests wait; a further `submit` blocks until there is room (back-pressure).
- `evaluate_many(items)` evaluates a batch and returns the results in order.
- `evaluate(kernel, code)` / `evaluate_with_hit(kernel, code)` make the service a drop-in `Evaluator` for
  `AutocompEnv(evaluator=...)` and `TextEnv(evaluator=...)`.

A dispatcher thread gives each worker at most `per_worker` requests at once. A request that runs longer
than its timeout (`timeout`, else the simulator's own limit plus `TIMEOUT_SLACK`) gets a "timeout"
failure and its worker is replaced. A request whose worker dies is retried on another worker (up to
`max_attempts` times, then a "runtime_error" failure naming the lost workers), so no request is lost, and
each future is completed exactly once. Cache hits are answered on the caller's side without a round trip.
"""

from __future__ import annotations

import itertools
import os
import queue
import resource
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from autocomp_env import targets
from autocomp_env.cache import EvalCache
from autocomp_env.core import Kernel
from autocomp_env.evaluation import Evaluator
from autocomp_env.kernels import get_kernel
from autocomp_env.raysetup import init_ray
from simulators.result import SimResult

# Seconds added to the simulator's own wall-clock limit before the service gives up on a worker: the
# sandbox kills a slow candidate itself, so only a hung worker reaches this.
TIMEOUT_SLACK = 30.0


class EvalWorker:
    """One Ray actor: simulates candidates with its own simulators and the shared disk cache."""

    def __init__(self, cache_dir: str | None, seeds: tuple[int, ...]):
        cache = None if cache_dir == "" else EvalCache(cache_dir)
        self.evaluator = Evaluator(cache=cache, seeds=seeds)

    def evaluate(self, kernel: str, code: str) -> tuple[SimResult, bool]:
        return self.evaluator.evaluate_with_hit(get_kernel(kernel), code)

    def pid(self) -> int:
        return os.getpid()

    def cpu_seconds(self) -> float:
        """CPU time of this worker and the sandboxed processes it ran (compilers, simulators)."""
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class _Request:
    id: int
    kernel: Kernel
    code: str
    future: Future
    timeout: float | None = None
    attempts: int = 0
    lost_on: list[int] = field(default_factory=list)


@dataclass
class ServiceStats:
    """Counts over the service's lifetime."""

    submitted: int = 0
    completed: int = 0
    cache_hits: int = 0  # answered on the caller's side
    retried: int = 0  # requests re-sent after their worker died
    timeouts: int = 0
    workers_replaced: int = 0


class EvalService:
    """See the module docstring. `cache_dir`: the shared evaluation cache ("" for none, None for the default
    directory); `seeds`: correctness seeds (the env's default); `per_worker`: requests in flight per
    worker; `max_queued`: requests waiting before `submit` blocks."""

    def __init__(
        self,
        workers: int = 2,
        address: str | None = None,
        cache_dir: str | None = None,
        seeds: tuple[int, ...] = (0, 1),
        per_worker: int = 2,
        max_queued: int = 1024,
        timeout: float | None = None,
        max_attempts: int = 3,
    ):
        import ray  # noqa: PLC0415  (seconds to import: only the service needs it)

        if workers < 1 or per_worker < 1 or max_queued < 1 or max_attempts < 1:
            raise ValueError("workers, per_worker, max_queued and max_attempts must be >= 1")
        init_ray(workers, address)
        self._ray = ray
        self.cache_dir = cache_dir
        self.seeds = tuple(int(s) for s in seeds)
        self.per_worker = per_worker
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.stats = ServiceStats()
        # The caller-side evaluator only reads the cache (and builds keys); workers write it.
        self._local = Evaluator(cache=None if cache_dir == "" else EvalCache(cache_dir), seeds=self.seeds)
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(EvalWorker)
        self._workers: dict[int, Any] = {}
        self._starting: dict[Any, int] = {}  # ready-probe ref -> worker id, until the worker answers
        self._ready: set[int] = set()
        self._next_worker = itertools.count()
        for _ in range(workers):
            self._spawn()
        self._queue: queue.Queue[_Request] = queue.Queue(maxsize=max_queued)
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name="EvalService-dispatch", daemon=True)
        self._thread.start()

    # --- public API -----------------------------------------------------------------------------------
    def submit(self, kernel: Kernel | str, code: str, timeout: float | None = None) -> Future:
        """A Future of the SimResult (with `.cache_hit` set on the future). Blocks while the queue is full.
        `timeout` (seconds from dispatch) overrides the service's for this request."""
        if self._closed:
            raise RuntimeError("the evaluation service is closed")
        k = get_kernel(kernel) if isinstance(kernel, str) else kernel
        fut: Future = Future()
        with self._lock:
            self.stats.submitted += 1
        fut.cache_hit = False
        if not isinstance(code, str):
            msg = f"code must be a string, got {type(code).__name__}"
            self._finish(fut, SimResult.failure(k.unit, "compile_error", msg))
            return fut
        hit = self._local.cache.get(self._local.key(k, code)) if self._local.cache is not None else None
        if hit is not None:
            fut.cache_hit = True
            with self._lock:
                self.stats.cache_hits += 1
            self._finish(fut, hit)
            return fut
        self._queue.put(_Request(next(self._ids), k, code, fut, timeout))  # blocks when full: back-pressure
        return fut

    def evaluate_many(self, items: Iterable[tuple[Kernel | str, str]]) -> list[SimResult]:
        """Results in the order of `items`."""
        return [f.result() for f in [self.submit(k, c) for k, c in items]]

    def evaluate_with_hit(self, kernel: Kernel, code: str, *, use_cache: bool = True) -> tuple[SimResult, bool]:
        """The `Evaluator` call the env makes. `use_cache=False` is not offered by the pool (workers always
        consult the cache), so it falls back to a local simulation."""
        if not use_cache:
            return self._local.evaluate_with_hit(kernel, code, use_cache=False)
        fut = self.submit(kernel, code)
        return fut.result(), fut.cache_hit

    def evaluate(self, kernel: Kernel, code: str) -> SimResult:
        return self.evaluate_with_hit(kernel, code)[0]

    def key(self, kernel: Kernel, code: str) -> str:
        return self._local.key(kernel, code)

    @property
    def workers(self) -> int:
        return len(self._workers)

    def worker_cpu_seconds(self) -> float:
        """CPU seconds used so far by the live workers (their own and their sandboxed children's)."""
        return float(sum(self._ray.get([w.cpu_seconds.remote() for w in self._workers.values()])))

    def worker_pids(self) -> list[int]:
        return self._ray.get([w.pid.remote() for w in self._workers.values()])

    def kill_worker(self, index: int = 0) -> None:
        """Kill one worker process (for fault tests and the benchmark); its requests are retried elsewhere."""
        wid = sorted(self._workers)[index]
        self._ray.kill(self._workers[wid], no_restart=True)

    def close(self) -> None:
        """Stop dispatching; requests still queued or running get a "runtime_error" failure."""
        self._closed = True
        self._thread.join(timeout=10)
        for w in self._workers.values():
            self._ray.kill(w, no_restart=True)
        self._workers.clear()

    def __enter__(self) -> EvalService:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("an EvalService lives in one process: pass its settings, not the service")

    # --- dispatcher ---------------------------------------------------------------------------------------
    def _spawn(self) -> int:
        """Start a worker; it gets work once it answers (its start-up must not eat a request's timeout)."""
        wid = next(self._next_worker)
        actor = self._actor_cls.remote(self.cache_dir, self.seeds)
        self._workers[wid] = actor
        self._starting[actor.pid.remote()] = wid
        return wid

    def _limit(self, req: _Request) -> float:
        if req.timeout is not None:
            return req.timeout
        return self.timeout if self.timeout is not None else targets.target(req.kernel.target).timeout_for(req.kernel, len(self.seeds)) + TIMEOUT_SLACK

    def _deadline(self, req: _Request) -> float:
        return time.monotonic() + self._limit(req)

    def _finish(self, fut: Future, result: SimResult) -> None:
        if not fut.done():  # exactly once
            fut.set_result(result)
            with self._lock:
                self.stats.completed += 1

    def _dispatch(self) -> None:
        ray = self._ray
        inflight: dict[Any, tuple[_Request, int, float]] = {}  # ref -> (request, worker id, deadline)
        ready_reqs: list[_Request] = []  # retries first, then requests taken from the queue
        load: dict[int, int] = {}
        while not self._closed or inflight:
            if self._closed:  # fail what is left rather than hang the callers
                left = [req for req, _, _ in inflight.values()] + ready_reqs
                while not self._queue.empty():
                    left.append(self._queue.get_nowait())
                for req in left:
                    self._finish(req.future, SimResult.failure(req.kernel.unit, "runtime_error", "service closed"))
                inflight.clear()
                break
            # hand out work while some worker has a free slot
            while True:
                free = [w for w in self._workers if w in self._ready and load.get(w, 0) < self.per_worker]
                if not free:
                    break
                if ready_reqs:
                    req = ready_reqs.pop(0)
                else:
                    try:
                        req = self._queue.get_nowait()
                    except queue.Empty:
                        break
                wid = min(free, key=lambda w: (load.get(w, 0), w))
                req.attempts += 1
                ref = self._workers[wid].evaluate.remote(req.kernel.name, req.code)
                inflight[ref] = (req, wid, self._deadline(req))
                load[wid] = load.get(wid, 0) + 1
            if self._starting:
                started, _ = ray.wait(list(self._starting), num_returns=len(self._starting), timeout=0)
                for ref in started:
                    wid = self._starting.pop(ref)
                    try:
                        ray.get(ref)
                        self._ready.add(wid)
                    except ray.exceptions.RayError:  # died while starting: start another
                        if wid in self._workers:
                            self._replace(wid, load, inflight)
            if not inflight:
                if ready_reqs:  # work waits for a worker to start
                    time.sleep(0.02)
                    continue
                try:  # idle: wait for a request instead of spinning
                    ready_reqs.append(self._queue.get(timeout=0.05))
                except queue.Empty:
                    pass
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.05)
            for ref in ready:
                req, wid, _ = inflight.pop(ref)
                load[wid] = load.get(wid, 0) - 1
                try:
                    result, _hit = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                    self._replace(wid, load, inflight)
                    self._lost(req, wid, e, ready_reqs)
                    continue
                except ray.exceptions.RayError as e:  # a task error inside a live worker: report, do not retry
                    result = SimResult.failure(req.kernel.unit, "runtime_error", f"evaluation failed: {e}")
                self._finish(req.future, result)
            now = time.monotonic()
            for ref, (req, wid, deadline) in list(inflight.items()):
                if now > deadline and ref in inflight:
                    inflight.pop(ref)
                    load[wid] = load.get(wid, 0) - 1
                    with self._lock:
                        self.stats.timeouts += 1
                    msg = f"no answer from worker {wid} in time (limit {self._limit(req):.0f} s): worker replaced"
                    self._finish(req.future, SimResult.failure(req.kernel.unit, "timeout", msg))
                    self._replace(wid, load, inflight, kill=True)

    def _replace(self, wid: int, load: dict[int, int], inflight: dict, kill: bool = False) -> None:
        """Retire worker `wid` (once) and start a new one; its other in-flight requests fail over to the
        retry path when their refs raise."""
        if wid not in self._workers:
            return
        actor = self._workers.pop(wid)
        self._ready.discard(wid)
        if kill:
            self._ray.kill(actor, no_restart=True)
        load.pop(wid, None)
        load[self._spawn()] = 0
        with self._lock:
            self.stats.workers_replaced += 1

    def _lost(self, req: _Request, wid: int, error: Exception, ready_reqs: list[_Request]) -> None:
        req.lost_on.append(wid)
        if req.attempts < self.max_attempts:
            with self._lock:
                self.stats.retried += 1
            ready_reqs.insert(0, req)
        else:
            msg = f"the workers running this evaluation died {req.attempts} times (workers {req.lost_on}): {error}"
            self._finish(req.future, SimResult.failure(req.kernel.unit, "runtime_error", msg))
