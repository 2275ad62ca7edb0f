"""Evaluator dispatch, roofline guard, and the persistent cross-process cache."""

import multiprocessing as mp

import pytest
import test_env_fakes as fakes

from autocomp_env.cache import EvalCache, cache_key, default_cache_dir
from autocomp_env.evaluation import Evaluator
from autocomp_env.kernels import get_kernel, starting_code
from autocomp_env.targets import simulator
from simulators.result import SimResult

fakes.install()
K = get_kernel("toy/axpy-1024")
CODE = starting_code(K)


def test_evaluate_dispatches_to_the_targets_simulator_once_per_process():
    assert simulator("toy") is simulator("toy")
    r = Evaluator().evaluate(K, CODE)
    assert r.correct and r.latency == 4106.0 and r.unit == "cycles"
    with pytest.raises(ValueError, match="unknown target"):
        simulator("tpu")


def test_disk_cache_hits_across_evaluators_and_keys_depend_on_seeds(tmp_path):
    cache = EvalCache(tmp_path)
    runs = fakes.ToySimulator.runs
    r1, hit1 = Evaluator(cache).evaluate_with_hit(K, CODE)
    r2, hit2 = Evaluator(EvalCache(tmp_path)).evaluate_with_hit(K, CODE)
    assert (hit1, hit2) == (False, True) and r1 == r2 and fakes.ToySimulator.runs == runs + 1
    assert cache.misses == 1 and len(cache) == 1
    _, hit3 = Evaluator(EvalCache(tmp_path), seeds=(0, 1, 2)).evaluate_with_hit(K, CODE)
    assert not hit3 and len(cache) == 2
    e = Evaluator()  # no disk cache: the memo still answers repeats
    assert [e.evaluate_with_hit(K, CODE)[1] for _ in range(2)] == [False, True] and e.evaluations == 1


def test_cache_key_covers_code_kernel_version_config_and_seeds():
    base = dict(code="a", kernel="k", simulator="1", config=None, seeds=[0, 1])
    keys = {cache_key(**base)}
    for field, value in [("code", "b"), ("kernel", "k2"), ("simulator", "2"), ("config", "c"), ("seeds", [0])]:
        keys.add(cache_key(**dict(base, **{field: value})))
    assert len(keys) == 6


def test_default_cache_dir_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOCOMP_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "eval"
    monkeypatch.delenv("AUTOCOMP_CACHE")
    assert default_cache_dir().parts[-2:] == ("autocomp-env", "eval")


def test_latency_below_the_roofline_is_flagged_and_not_rewarded():
    r = Evaluator().evaluate(K, CODE + "// CLAIM:3.0\n")  # roofline is 16 cycles
    assert not r.correct and r.latency is None and r.error.type == "beyond_roofline"
    assert r.counters["claimed_latency"] == 3.0 and "roofline" in r.error.message
    assert Evaluator().evaluate(K, CODE + "// CLAIM:16.0\n").correct  # at the roofline is fine


def test_a_crashing_simulator_is_an_error_value_and_not_cached(tmp_path):
    cache = EvalCache(tmp_path)
    e = Evaluator(cache)
    r = e.evaluate(K, CODE + "// RAISE\n")
    assert not r.correct and r.error.type == "runtime_error" and "simulator bug" in r.error.message
    assert len(cache) == 0 and not e.evaluate_with_hit(K, CODE + "// RAISE\n")[1]


def test_non_string_code_is_a_compile_error():
    assert Evaluator().evaluate(K, None).error.type == "compile_error"


def test_corrupt_cache_entries_are_misses(tmp_path):
    cache = EvalCache(tmp_path)
    key = Evaluator(cache).key(K, CODE)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{half a json")
    r, hit = Evaluator(cache).evaluate_with_hit(K, CODE)
    assert not hit and r.correct and SimResult.from_dict(__import__("json").loads(path.read_text())) == r
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")


def _hammer(args):
    directory, worker = args
    cache = EvalCache(directory)
    out = []
    for i in range(60):
        key = cache_key(i=i % 15)
        cache.put(key, SimResult(True, float(i % 15), "cycles", counters={"writer": worker}))
        got = cache.get(key)
        out.append(got is not None and got.latency == float(i % 15))
    return all(out)


def test_cache_is_safe_with_concurrent_writers_and_readers(tmp_path):
    with mp.get_context("fork").Pool(4) as pool:
        assert all(pool.map(_hammer, [(str(tmp_path), w) for w in range(4)]))
    cache = EvalCache(tmp_path)
    assert len(cache) == 15 and not list(tmp_path.glob("*/.tmp-*"))
    assert all(cache.get(cache_key(i=i)).latency == float(i) for i in range(15))


def test_cache_key_changes_when_the_simulator_source_changes(monkeypatch):
    from autocomp_env import evaluation

    e = Evaluator()
    key = e.key(K, CODE)
    assert evaluation.source_fingerprint(simulator("toy")) == evaluation.source_fingerprint(simulator("toy"))
    monkeypatch.setitem(evaluation._FINGERPRINTS, fakes.ToySimulator.__module__, "edited")
    assert e.key(K, CODE) != key


def test_use_cache_false_resimulates_and_overwrites(tmp_path):
    cache = EvalCache(tmp_path)
    e = Evaluator(cache)
    key = e.key(K, CODE)
    cache.put(key, SimResult.failure("cycles", "compile_error", "stale: header missing"))
    assert e.evaluate_with_hit(K, CODE) == (cache.get(key), True)
    r, hit = e.evaluate_with_hit(K, CODE, use_cache=False)
    assert r.correct and not hit and cache.get(key) == r


@pytest.mark.parametrize("claim", ["0.0", "inf", "nan"])
def test_zero_or_infinite_latencies_are_flagged(claim):
    r = Evaluator().evaluate(K, CODE + f"// CLAIM:{claim}\n")
    assert not r.correct and r.error.type == "beyond_roofline"


def test_an_unwritable_cache_costs_the_cache_not_the_evaluation(tmp_path, monkeypatch):
    cache = EvalCache(tmp_path)

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "put", full)
    with pytest.warns(RuntimeWarning, match="not written"):
        r = Evaluator(cache).evaluate(K, CODE)
    assert r.correct


def test_env_without_a_usable_default_cache_dir_still_works(monkeypatch, tmp_path):
    from autocomp_env.env import AutocompEnv

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("AUTOCOMP_CACHE", str(blocker))
    with pytest.warns(RuntimeWarning, match="no evaluation cache"):
        env = AutocompEnv(kernel="toy/axpy-64")
    assert env.evaluator.cache is None and env.reset(seed=0)[1]["correct"]
    with pytest.raises(OSError):
        AutocompEnv(kernel="toy/axpy-64", cache_dir=str(blocker / "x"))


def test_evaluators_pickle_and_survive_threads(tmp_path):
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    e = Evaluator(EvalCache(tmp_path), memo_size=4)
    codes = [CODE + f"// variant {i}\n" for i in range(40)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: e.evaluate(K, c), codes * 2))
    assert all(r.correct for r in results) and len(e._memo) <= 4
    clone = pickle.loads(pickle.dumps(e))
    assert clone.evaluate_with_hit(K, codes[0])[1] and clone.cache.dir == e.cache.dir
