"""Trainium rmsnorm, layernorm, softmax, mamba and conv1d families, checked against the simulator (small shapes)."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from autocomp_env import targets
from autocomp_env.kernels import get_kernel
from autocomp_env.schedules.base import read_schedule
from autocomp_env.targets import family as family_for
from autocomp_env.targets.trainium.menu import ITEM

NAMES = ("rmsnorm", "layernorm", "softmax", "mamba", "conv1d")
# Smaller than the families' training variants where that still exercises every knob, to keep the suite fast.
SHAPES = {
    "rmsnorm": "256x1024",
    "layernorm": "256x1024",
    "softmax": "256x1024",
    "mamba": "1x256x256x4",
    "conv1d": "2x256x1024x3",
}


def kern(family, shape):
    """The Kernel record of `shape` in `family` (parsed by the simulator, as every kernel is)."""
    return get_kernel(f"{family.target}/{family.name}-{shape}")


def simulator():
    return targets.simulator("trainium")


@functools.cache
def fam_kernel(name: str):
    fam = family_for("trainium", name)
    return fam, kern(fam, SHAPES[name])


@functools.cache
def run(code: str, kernel_name: str):
    return simulator().run(code, kernel_name, seeds=(0,))


def run_all(codes, kernel_name: str, mode: str = "auto") -> list:
    """Simulate several codes at once: each run is its own sandboxed process, so threads overlap them."""
    if mode == "auto":
        with ThreadPoolExecutor(3) as pool:
            return list(pool.map(lambda c: run(c, kernel_name), codes))
    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(lambda c: simulator().run(c, kernel_name, mode=mode), codes))


def assert_correct(code: str, kernel_name: str, what: str):
    r = run(code, kernel_name)
    assert r.correct, f"{what}: {r.error}\n{code}"
    return r.latency


@pytest.mark.parametrize("name", NAMES)
def test_starting_code_and_baselines_are_correct(name):
    fam, k = fam_kernel(name)
    start = fam.starting_code(k)
    assert read_schedule(start) == fam.naive_schedule(k)
    base = fam.baselines(k)
    assert set(base) >= {"vendor", "expert"}
    run_all([start, *base.values()], k.name)
    t0 = assert_correct(start, k.name, "starting code")
    lat = {key: assert_correct(code, k.name, key) for key, code in base.items()}
    # The hand-tuned kernel beats both the naive start and the vendor-style code.
    assert lat["expert"] < t0
    assert lat["expert"] < lat["vendor"]


def reachable(fam, k, n: int, seed: int):
    rng = np.random.default_rng(seed)
    s = fam.naive_schedule(k)
    for _ in range(n):
        t = fam.apply(k, s, int(rng.choice(np.flatnonzero(fam.applicable(k, s)))), {}, rng)
        s = t.schedule
    return s


@pytest.mark.parametrize("name", NAMES)
def test_every_applicable_item_changes_the_schedule_and_code(name):
    fam, k = fam_kernel(name)
    for start in (fam.naive_schedule(k), reachable(fam, k, 4, seed=1), reachable(fam, k, 8, seed=2)):
        code0 = fam.emit(k, start)
        mask = fam.applicable(k, start)
        assert mask.shape == (len(fam.menu),) and mask.any()
        for item in range(len(fam.menu)):
            t = fam.apply(k, start, item, {}, np.random.default_rng(item))
            assert (t is None) == (not mask[item]), fam.menu[item]
            if t is not None:
                assert t.schedule != start and fam.emit(k, t.schedule) != code0, fam.menu[item]
                assert fam.valid(k, t.schedule)


@pytest.mark.parametrize("name", NAMES)
def test_every_applicable_item_on_the_starting_code_runs_correctly(name):
    fam, k = fam_kernel(name)
    start = fam.naive_schedule(k)
    moves = [
        (item, fam.apply(k, start, int(item), {}, np.random.default_rng(int(item))))
        for item in np.flatnonzero(fam.applicable(k, start))
    ]
    run_all({fam.emit(k, t.schedule) for _, t in moves}, k.name)
    for item, t in moves:
        assert_correct(fam.emit(k, t.schedule), k.name, f"{fam.menu[item]} ({t.description})")


def covering_schedules(fam, k):
    """A few valid schedules that, with the baselines, hold every value of every knob at least once."""
    have = [fam.naive_schedule(k), fam.vendor_schedule(k), fam.expert_schedule(k)]
    missing = {(kn.name, v) for kn in fam.knobs(k) for v in kn.values(k)} - {(n, v) for s in have for n, v in s.items()}
    rng = np.random.default_rng(0)
    out = []
    while missing:
        s = dict(fam.expert_schedule(k))
        for name, v in sorted(missing, key=repr):
            trial = {**s, name: v}
            if fam.valid(k, trial) and all(trial[n] == s[n] for n in s if n != name):
                s = trial
        if not any((n, v) in missing for n, v in s.items()):  # blocked by a constraint: take a random walk
            s = reachable(fam, k, 6, seed=int(rng.integers(1 << 30)))
        missing -= set(s.items())
        out.append(s)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_knob_value_runs_correctly(name):
    # Every transformation only changes knob values, so covering each value with a correct run (on top of
    # the baselines) shows that the emitter writes correct code for every move.
    fam, k = fam_kernel(name)
    cover = covering_schedules(fam, k)
    run_all([fam.emit(k, s) for s in cover], k.name)
    for s in cover:
        assert_correct(fam.emit(k, s), k.name, repr(s))


@pytest.mark.parametrize("name", NAMES)
def test_items_that_cannot_mean_anything_are_masked(name):
    fam, k = fam_kernel(name)
    mask = fam.applicable(k, fam.naive_schedule(k))
    for item in (
        "use nc_matmul with pre-transposed inputs",
        "replace load_transpose2d with load plus nc_transpose when memory-bound",
        "use lower precision",
    ):
        assert not mask[ITEM[item]]
    assert fam.apply(k, fam.naive_schedule(k), ITEM["use nc_matmul with pre-transposed inputs"], {}, None) is None


@pytest.mark.parametrize(
    "name,plan,item,params",
    [
        ("rmsnorm", "compute the sum of squares and the square in a single instruction", "fuse operations", {}),
        (
            "rmsnorm",
            "scale by rstd with nisa.activation (scale=rstd) on the scalar engine",
            "fuse multiply-add with the activation in one activation instruction",
            {},
        ),
        ("softmax", "multiply by the reciprocal of the sum instead of dividing", "eliminate redundant computation", {}),
        ("softmax", "move 4 rows per partition in each DMA", "make DMA transfers at least 32 KiB", {"group": 4}),
        (
            "mamba",
            "broadcast B and C with a ones matmul",
            "use the Tensor engine for cross-partition reductions and reshapes",
            {},
        ),
        ("mamba", "split the sequence into chunks of 512 for the scan", "loop tiling", {"lchunk": 512}),
        ("conv1d", "load the input once and reuse it for all taps", "cache reused data in local memory", {}),
        ("conv1d", "hoist the filter load out of the batch loop", "hoist redundant operations out of loops", {}),
    ],
)
def test_parse_plan_picks_an_item_this_family_can_apply(name, plan, item, params):
    fam, k = fam_kernel(name)
    got = fam.parse_plan(plan)
    assert got[:1] == [(ITEM[item], params)], got


def test_parse_plan_understands_synonyms_and_numbers():
    fam, k = fam_kernel("layernorm")
    plan = fam.parse_plan("Use bn_stats/bn_aggr for the statistics, then hoist the gamma broadcast out of the loop.")
    assert [i for i, _ in plan] == [
        ITEM["use bn_stats/bn_aggr for mean and variance"],
        ITEM["hoist redundant operations out of loops"],
    ]
    plan = fam.parse_plan("tile the free dimension into chunks of 256 columns")
    assert plan == [(ITEM["loop tiling"], {"fchunk": 256})]
    s = fam.apply(k, fam.naive_schedule(k), plan[0][0], plan[0][1], np.random.default_rng(0)).schedule
    assert s["fchunk"] == 256
    assert fam.parse_plan("make it go faster somehow") == []
    sm, _ = fam_kernel("softmax")
    assert sm.parse_plan("fold the max subtraction into the exp activation as a bias") == [
        (ITEM["fuse multiply-add with the activation in one activation instruction"], {})
    ]
    mb, _ = fam_kernel("mamba")
    assert [i for i, _ in mb.parse_plan("swap the loop order so states are outside; double-buffer")] == [
        ITEM["loop reordering and restructuring"],
        ITEM["double buffering"],
    ]


@pytest.mark.parametrize("name", NAMES)
def test_fault_injection_breaks_code(name):
    fam, k = fam_kernel(name)
    rng = np.random.default_rng(7)
    bad_codes = []
    for i in range(4):
        code = fam.emit(k, reachable(fam, k, 3 * i, seed=i))
        bad, desc = fam.inject_fault(k, code, rng)
        assert bad != code and desc
        bad_codes.append(bad)
    results = [r.correct for r in run_all(bad_codes, k.name)]
    assert sum(results) <= 1, results


FLAGSHIPS = {
    "rmsnorm": "512x4096",
    "layernorm": "4096x8192",
    "softmax": "4096x2048",
    "mamba": "1x256x2048x16",
    "conv1d": "8x512x2048x3",
}


@pytest.mark.parametrize("name", NAMES)
def test_greedy_pass_over_the_knobs_improves_flagship_latency(name):
    # Timing-only on the full-size kernel: coordinate descent (each knob set to its best value in turn),
    # a second pass only if the first did not get 20% (some moves only pay off after another one).
    fam = family_for("trainium", name)
    k = kern(fam, FLAGSHIPS[name])
    s = fam.naive_schedule(k)
    t0 = best = simulator().run(fam.emit(k, s), k.name, mode="timing").latency
    for _ in range(2):
        for knob in fam.knobs(k):
            trials = [fam.implied(k, s, knob.name, v) for v in knob.values(k) if v != s[knob.name]]
            trials = [t for t in trials if fam.valid(k, t)]
            for r, trial in zip(run_all([fam.emit(k, t) for t in trials], k.name, "timing"), trials, strict=True):
                if r.latency < best:
                    best, s = r.latency, trial
        if best < 0.8 * t0:
            break
    assert best < 0.8 * t0, (best, t0)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_code(name):
    fam, k = fam_kernel(name)
    a = reachable(fam, k, 6, seed=3)
    b = reachable(fam, k, 6, seed=3)
    assert a == b and fam.emit(k, a) == fam.emit(k, b)
    assert fam.inject_fault(k, fam.emit(k, a), np.random.default_rng(1)) == fam.inject_fault(
        k, fam.emit(k, b), np.random.default_rng(1)
    )


@pytest.mark.parametrize(
    "name,shape",
    [
        ("rmsnorm", "100x512"),
        ("layernorm", "128"),
        ("softmax", "128x0"),
        ("mamba", "1x100x256x16"),
        ("conv1d", "1x128x2x3"),
    ],
)
def test_bad_shapes_raise_value_error(name, shape):
    with pytest.raises(ValueError, match=name):
        kern(family_for("trainium", name), shape)


def test_a_move_brings_the_knob_changes_it_needs():
    fam, k = fam_kernel("conv1d")
    s = fam.naive_schedule(k)
    t = fam.apply(k, s, ITEM["accumulate partial matmuls in PSUM"], {}, np.random.default_rng(0))
    assert t.schedule["engine"] in ("tensor", "mixed") and fam.valid(k, t.schedule)
    assert t.schedule["x_load"] == "once" and t.schedule["tap"] == "stt" and "needs" in t.description
    sm, ks = fam_kernel("softmax")
    s = sm.implied(ks, sm.naive_schedule(ks), "sum", "act_reduce")
    assert s["exp"] == "act_bias" and sm.valid(ks, s)


def test_fit_carries_a_flagship_schedule_to_the_small_variant():
    fam = family_for("trainium", "mamba")
    big, small = kern(fam, "1x256x2048x16"), kern(fam, "1x128x256x16")
    s = fam.fit(small, {**fam.expert_schedule(big), "lchunk": 1024})
    assert s["lchunk"] == 256 and s["gpsimd_ops"] == fam.expert_schedule(big)["gpsimd_ops"] != "none"
    assert fam.fit(small, fam.naive_schedule(big)) == fam.naive_schedule(small)


def test_kernel_records_match_the_simulator():
    fam = family_for("trainium", "rmsnorm")
    k = kern(fam, "512x4096")
    assert k.name == "trainium/rmsnorm-512x4096" and k.unit == "us"
    assert k.small == "trainium/rmsnorm-128x512"
    assert k.roofline == pytest.approx(simulator().roofline(k.name)) and k.roofline > 0


@pytest.mark.parametrize("name", NAMES)
def test_malformed_schedules_are_made_legal_not_crashed_on(name):
    fam, k = fam_kernel(name)
    for bad in ({}, {"fchunk": "huge", "lchunk": -3, "bogus": [1]}, {**fam.naive_schedule(k), "group": 3}):
        s = read_schedule(fam.emit(k, bad))
        assert s == fam.fit(k, bad) and set(s) == set(fam.naive_schedule(k))
        assert fam.applicable(k, bad).any()
