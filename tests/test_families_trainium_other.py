"""Trainium rmsnorm, layernorm, softmax, mamba and conv1d families, checked against the simulator (small shapes)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import autocomp_env.families.trainium_conv1d  # noqa: F401  (registers)
import autocomp_env.families.trainium_mamba  # noqa: F401
import autocomp_env.families.trainium_norm  # noqa: F401
import autocomp_env.families.trainium_softmax  # noqa: F401
from autocomp_env.families.base import family_for, read_schedule
from autocomp_env.families.trainium_norm import ITEM, simulator

NAMES = ("rmsnorm", "layernorm", "softmax", "mamba", "conv1d")
# Smaller than the families' training variants where that still exercises every knob, to keep the suite fast.
SHAPES = {
    "rmsnorm": "128x1024",
    "layernorm": "256x1024",
    "softmax": "256x1024",
    "mamba": "1x256x256x4",
    "conv1d": "2x256x1024x3",
}


@functools.cache
def fam_kernel(name: str):
    fam = family_for("trainium", name)
    return fam, fam.kernel(SHAPES[name])


@functools.cache
def run(code: str, kernel_name: str):
    return simulator().run(code, kernel_name, seeds=(0,))


def assert_correct(code: str, kernel_name: str, what: str):
    r = run(code, kernel_name)
    assert r.correct, f"{what}: {r.error}\n{code}"
    return r.latency


@pytest.mark.parametrize("name", NAMES)
def test_starting_code_and_baselines_are_correct(name):
    fam, k = fam_kernel(name)
    start = fam.starting_code(k)
    assert read_schedule(start) == fam.naive_schedule(k)
    t0 = assert_correct(start, k.name, "starting code")
    base = fam.baselines(k)
    assert set(base) >= {"vendor", "expert"}
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
def test_every_applicable_item_gives_correct_changed_code(name):
    fam, k = fam_kernel(name)
    seen = set()
    for start in (fam.naive_schedule(k), reachable(fam, k, 4, seed=1)):
        code0 = fam.emit(k, start)
        mask = fam.applicable(k, start)
        assert mask.shape == (len(fam.menu),) and mask.any()
        for item in range(len(fam.menu)):
            t = fam.apply(k, start, item, {}, np.random.default_rng(item))
            assert (t is None) == (not mask[item]), fam.menu[item]
            if t is None:
                continue
            code = fam.emit(k, t.schedule)
            assert code != code0 and t.schedule != start, fam.menu[item]
            if code not in seen:
                seen.add(code)
                assert_correct(code, k.name, f"{fam.menu[item]} ({t.description})")


@pytest.mark.parametrize("name", NAMES)
def test_items_that_cannot_mean_anything_are_masked(name):
    fam, k = fam_kernel(name)
    mask = fam.applicable(k, fam.naive_schedule(k))
    for item in (
        "use nc_matmul with pre-transposed inputs",
        "accumulate partial matmuls in PSUM",
        "use lower precision",
    ):
        assert not mask[ITEM[item]]
    assert fam.apply(k, fam.naive_schedule(k), ITEM["use nc_matmul with pre-transposed inputs"], {}, None) is None


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
    broken = 0
    trials = 6
    for i in range(trials):
        s = reachable(fam, k, i, seed=i) if i else fam.naive_schedule(k)
        code = fam.emit(k, s)
        bad, desc = fam.inject_fault(k, code, rng)
        assert bad != code and desc
        r = run(bad, k.name)
        broken += not r.correct
    assert broken >= trials - 1


@pytest.mark.parametrize("name", NAMES)
def test_greedy_search_improves_latency(name):
    fam, k = fam_kernel(name)
    s = fam.naive_schedule(k)
    best = assert_correct(fam.emit(k, s), k.name, "start")
    t0 = best
    for _ in range(4):  # greedy over one-step moves
        moves = {}
        for item in np.flatnonzero(fam.applicable(k, s)):
            for knob, vals in fam._moves(k, s, int(item)):
                for v in vals:
                    moves[(knob.name, repr(v))] = {**s, knob.name: v}
        scored = [(run(fam.emit(k, m), k.name), m) for m in moves.values()]
        lat, m = min(((r.latency, m) for r, m in scored if r.correct), key=lambda t: t[0])
        if lat >= best:
            break
        best, s = lat, m
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
        family_for("trainium", name).kernel(shape)


def test_kernel_records_match_the_simulator():
    fam = family_for("trainium", "rmsnorm")
    k = fam.kernel("512x4096")
    assert k.name == "trainium/rmsnorm-512x4096" and k.unit == "us"
    assert k.small == "trainium/rmsnorm-128x512"
    assert k.roofline == pytest.approx(simulator().roofline(k.name)) and k.roofline > 0
