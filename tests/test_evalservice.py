"""The evaluation service on Ray: results, shared cache, worker deaths, timeouts, back-pressure."""

import threading
import time

import pytest

from autocomp_env.evalservice import EvalService
from autocomp_env.evaluation import Evaluator
from autocomp_env.kernels import family_of, get_kernel

KERNEL = get_kernel("gemmini-exo-small:0")
START = family_of(KERNEL).starting_code(KERNEL)
# Burns seconds of CPU before the real work: a request that is still running when the test looks.
SLOW = START.replace("{", "{ volatile long _x = 0; for (long _i = 0; _i < 4000000000L; _i++) _x++;", 1)


def variant(i: int, tag: str = "") -> str:
    return f"{START}\n// request {tag}{i}\n"  # distinct code, same work


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    import ray

    if ray.is_initialized():  # another test module's Ray session would hold the CPUs
        ray.shutdown()
    svc = EvalService(workers=2, cache_dir=str(tmp_path_factory.mktemp("evalcache")), max_queued=4)
    yield svc
    svc.close()
    ray.shutdown()


def test_results_match_a_local_evaluator_in_order(service):
    codes = [variant(i, "match") for i in range(6)] + ["void solution(int x) { }"]
    cpu = service.worker_cpu_seconds()
    results = service.evaluate_many([(KERNEL, c) for c in codes])
    assert service.worker_cpu_seconds() > cpu  # compiles and simulations are counted
    local = Evaluator(cache=None)
    for code, r in zip(codes, results, strict=True):
        expect = local.evaluate(KERNEL, code)
        assert (r.correct, r.latency) == (expect.correct, expect.latency)
    assert all(r.correct for r in results[:6]) and not results[-1].correct


def test_shared_cache_answers_repeats_without_a_round_trip(service):
    code = variant(0, "cache")
    first = service.submit(KERNEL, code)
    first.result()
    hits = service.stats.cache_hits
    again = service.submit(KERNEL.name, code)
    assert again.done() and again.cache_hit and service.stats.cache_hits == hits + 1
    assert again.result().latency == first.result().latency


def test_a_killed_worker_loses_no_request(service):
    before = service.stats.completed
    futures = [service.submit(KERNEL, variant(i, "kill")) for i in range(4)]
    time.sleep(0.2)
    service.kill_worker(0)
    futures += [service.submit(KERNEL, variant(i, "kill-late")) for i in range(4)]
    results = [f.result(timeout=300) for f in futures]
    assert all(r.correct for r in results), [r.error for r in results if not r.correct]
    assert service.stats.completed == before + len(futures)  # each exactly once
    assert service.stats.workers_replaced >= 1 and service.workers == 2


def test_timeout_replaces_the_worker_and_back_pressure_blocks_submit(service):
    service.per_worker = 1
    try:
        slow = [service.submit(KERNEL, SLOW + f"// {i}\n", timeout=2.0) for i in range(2)]  # both workers busy
        time.sleep(0.5)  # let the dispatcher hand them out
        queued = [service.submit(KERNEL, variant(i, "queued")) for i in range(4)]  # fills the queue (4)
        done = threading.Event()

        def one_more():
            service.submit(KERNEL, variant(0, "blocked")).result()
            done.set()

        t = threading.Thread(target=one_more, daemon=True)
        t.start()
        time.sleep(0.5)
        assert not done.is_set() and service._queue.full()  # submit waits for room
        results = [f.result(timeout=300) for f in slow]
        assert [r.error.type for r in results] == ["timeout", "timeout"]
        assert all(f.result(timeout=300).correct for f in queued)
        t.join(timeout=300)
        assert done.is_set() and service.stats.timeouts >= 2
    finally:
        service.per_worker = 2
    assert service.evaluate(KERNEL, variant(1, "after")).correct  # replaced workers serve again


def test_the_env_runs_on_the_service(service):
    import gymnasium as gym

    import autocomp_env  # noqa: F401

    env = gym.make("autocomp/Gemmini-matmul-v0", kernel=KERNEL.name, evaluator=service)
    obs, info = env.reset(seed=0)
    obs, reward, *_ , info = env.step(int(obs["mask"].argmax()))
    assert info["correct"] in (True, False) and isinstance(reward, float)
