"""The Trainium gemm, attention and sdattention families against the Trainium simulator (small shapes)."""

from __future__ import annotations

import numpy as np
import pytest

from autocomp_env.kernels import get_kernel
from autocomp_env.schedules.base import read_schedule
from autocomp_env.targets import family
from autocomp_env.targets.trainium.menu import MENU as TRAINIUM

family_for = family

sim_mod = pytest.importorskip("simulators.trainium")

ITEM = {n: i for i, n in enumerate(TRAINIUM)}
SHAPES = {"gemm": "256x256x1024-bf16", "attention": "128x256-bf16", "sdattention": "256x64"}


def kern(family, shape):
    """The Kernel record of `shape` in `family` (parsed by the simulator, as every kernel is)."""
    return get_kernel(f"{family.target}/{family.name}-{shape}")


@pytest.fixture(scope="module")
def sim():
    return sim_mod.TrainiumSimulator()


_CACHE: dict[tuple[str, str], object] = {}


def run(sim, code: str, kernel: str):
    key = (code, kernel)
    if key not in _CACHE:
        _CACHE[key] = sim.run(code, kernel, seeds=(0,))
    return _CACHE[key]


def fam_kernel(name: str):
    fam = family_for("trainium", name)
    return fam, kern(fam, SHAPES[name])


def reachable(fam, kernel, seed: int, steps: int) -> dict:
    """A random schedule a few transformations away from the naive one."""
    rng = np.random.default_rng(seed)
    s = fam.naive_schedule(kernel)
    for _ in range(steps):
        items = np.flatnonzero(fam.applicable(kernel, s))
        t = fam.apply(kernel, s, int(rng.choice(items)), {}, rng)
        s = t.schedule
    return s


@pytest.mark.parametrize("name", ["gemm", "attention", "sdattention"])
def test_starting_code_and_baselines_are_correct(sim, name):
    fam, k = fam_kernel(name)
    codes = {"start": fam.starting_code(k), **fam.baselines(k)}
    assert {"vendor", "expert"} <= set(codes)
    lat = {}
    for label, code in codes.items():
        r = run(sim, code, k.name)
        assert r.correct, (label, r.error)
        lat[label] = r.latency
    assert read_schedule(codes["start"]) == fam.naive_schedule(k)
    assert lat["expert"] < lat["start"]  # the hand-tuned kernel beats the naive one


@pytest.mark.parametrize("name", ["gemm", "attention", "sdattention"])
def test_every_applicable_item_gives_correct_different_code(sim, name):
    fam, k = fam_kernel(name)
    applied, extra = set(), 0
    for start, s in enumerate((fam.naive_schedule(k), reachable(fam, k, 1, 4), reachable(fam, k, 2, 6))):
        code = fam.emit(k, s)
        mask = fam.applicable(k, s)
        assert mask.shape == (len(TRAINIUM),) and mask.dtype == bool
        for item in range(len(TRAINIUM)):
            t = fam.apply(k, s, item, {}, np.random.default_rng(item))
            if not mask[item]:
                assert t is None, TRAINIUM[item]
                continue
            assert t is not None and t.schedule != s and t.description
            new = fam.emit(k, t.schedule)
            assert new != code and read_schedule(new) == t.schedule
            # From the naive schedule every item is simulated; later starts only add a few new codes (test time).
            if start and ((new, k.name) in _CACHE or extra >= 3):
                continue
            extra += bool(start)
            r = run(sim, new, k.name)
            assert r.correct, (TRAINIUM[item], t.schedule, r.error)
            applied.add(item)
    assert len(applied) >= 8


def test_gemm_transforms_change_latency(sim):
    fam, k = fam_kernel("gemm")
    s = fam.naive_schedule(k)
    base = run(sim, fam.emit(k, s), k.name).latency
    t = fam.apply(k, s, ITEM["hoist redundant operations out of loops"], {}, np.random.default_rng(0))
    hoisted = run(sim, fam.emit(k, t.schedule), k.name).latency
    assert hoisted < base


def test_parse_plan_understands_free_form_plans():
    fam = family_for("trainium", "gemm")
    plan = fam.parse_plan("Double buffer the rhs tiles, then tile J by 64 and hoist the lhsT loads.")
    items = [i for i, _ in plan]
    assert items[:1] == [ITEM["double buffering"]]
    assert ITEM["hoist redundant operations out of loops"] in items
    tiling = dict(plan)[ITEM["loop tiling"]]
    assert tiling == {"tile_n": 64}
    assert fam.parse_plan("set TILES_IN_BLOCK_M = 8") == [(ITEM["loop tiling"], {"block_m": 8})]
    assert fam.parse_plan("make it faster somehow") == []
    att = family_for("trainium", "attention")
    items = [
        i for i, _ in att.parse_plan("keep the scores in SBUF instead of HBM round trips and fuse the exp with a bias")
    ]
    assert ITEM["keep reused data resident in SBUF"] in items
    assert ITEM["fuse multiply-add with the activation in one activation instruction"] in items
    sd = family_for("trainium", "sdattention")
    assert [i for i, _ in sd.parse_plan("replace load_transpose2d with nc_transpose")] == [
        ITEM["replace load_transpose2d with load plus nc_transpose when memory-bound"]
    ]


def test_named_block_sizes_are_applied():
    fam, k = fam_kernel("gemm")
    s = dict(fam.naive_schedule(k), loads="block")
    t = fam.apply(k, s, ITEM["loop tiling"], {"block_m": 2, "block_k": 2}, np.random.default_rng(0))
    assert t.schedule["bm"] == 2 and t.schedule["bk"] == 2


@pytest.mark.parametrize("name", ["gemm", "attention", "sdattention"])
def test_injected_faults_are_caught(sim, name):
    fam, k = fam_kernel(name)
    code = fam.emit(k, fam.expert_schedule(k))
    bad = 0
    n = 4
    for seed in range(n):
        buggy, desc = fam.inject_fault(k, code, np.random.default_rng(seed))
        assert buggy != code and desc
        bad += not run(sim, buggy, k.name).correct
    assert bad == n


def greedy_speedup(sim, fam, k, steps: int, per_step: int) -> float:
    """Best latency over start latency after a greedy search over `per_step` sampled menu items per step."""
    s = fam.naive_schedule(k)
    best = start = sim.run(fam.emit(k, s), k.name, mode="timing").latency
    rng = np.random.default_rng(0)
    for _ in range(steps):
        items = rng.permutation(np.flatnonzero(fam.applicable(k, s)))[:per_step]
        cands = []
        for item in items:
            t = fam.apply(k, s, int(item), {}, rng)
            r = sim.run(fam.emit(k, t.schedule), k.name, mode="timing")
            assert r.latency is not None, (t.schedule, r.error)
            cands.append((r.latency, t.schedule))
        lat, nxt = min(cands, key=lambda c: c[0])
        if lat < best:
            best, s = lat, nxt
    return best / start


def test_greedy_search_over_gemm_schedules_speeds_up(sim):
    fam = family_for("trainium", "gemm")
    k = kern(fam, "512x1024x2048-bf16")  # big enough that launch overhead does not hide the gains
    assert greedy_speedup(sim, fam, k, steps=3, per_step=4) < 0.6


@pytest.mark.parametrize("name", ["gemm", "attention", "sdattention"])
def test_transforms_are_deterministic(name):
    fam, k = fam_kernel(name)
    a = reachable(fam, k, 7, 6)
    b = reachable(fam, k, 7, 6)
    assert a == b and fam.emit(k, a) == fam.emit(k, b)


def test_kernel_names_parse_and_bad_shapes_raise():
    gemm = family_for("trainium", "gemm")
    k = kern(gemm, "4096x8192x8192-bf16")
    assert k.name == "trainium/gemm-4096x8192x8192-bf16" and k.unit == "us" and k.roofline > 0
    assert k.small == "trainium/gemm-256x512x512-bf16"
    assert k.macs == 4096 * 8192 * 8192
    for bad in ("4096x8192", "4096x8192x100-bf16", "axbxc"):
        with pytest.raises(ValueError):
            kern(gemm, bad)
    assert kern(family_for("trainium", "attention"), "128x4096-bf16").small == "trainium/attention-128x512-bf16"
    assert kern(family_for("trainium", "sdattention"), "4096x64").small == "trainium/sdattention-512x64"
    with pytest.raises(ValueError):
        kern(family_for("trainium", "attention"), "256x4096-bf16")


def test_fit_adapts_a_flagship_schedule_to_a_small_shape():
    gemm = family_for("trainium", "gemm")
    big, small = kern(gemm, "4096x8192x8192-bf16"), kern(gemm, "256x512x512-bf16")
    s = gemm.fit(small, gemm.expert_schedule(big))
    assert gemm.valid(small, s) and s["bm"] <= 2 and s["loads"] == "block"
    att = family_for("trainium", "attention")
    s = att.fit(kern(att, "128x256-bf16"), att.expert_schedule(kern(att, "128x4096-bf16")))
    assert att.valid(kern(att, "128x256-bf16"), s) and s["unroll"] == 2 and s["scores"] == "sbuf"


@pytest.mark.parametrize(
    "knobs",
    [
        {"loads": "outer", "alloc": "hoisted", "acc": "psum", "bk": 1, "bm": 2, "inner": "kn", "order": "nm"},
        {"loads": "block", "alloc": "hoisted", "bk": 1, "bn": 2, "coalesce": True, "loop": "sequential"},
        {"loads": "inner", "bm": 2, "bn": 2, "inner": "kn", "mm": "nc_matmul", "evict": "vector", "tn": 256},
        {"stat": "rhs", "tn": 256, "bm": 1, "bn": 2},
    ],
)
def test_gemm_knob_combinations_are_correct(sim, knobs):
    fam, k = fam_kernel("gemm")
    s = dict(fam.naive_schedule(k), **knobs)
    assert fam.valid(k, s)
    r = run(sim, fam.emit(k, s), k.name)
    assert r.correct, r.error


@pytest.mark.parametrize("name, shape", [("attention", "128x1024-bf16"), ("sdattention", "1024x64")])
def test_greedy_search_over_attention_schedules_speeds_up(sim, name, shape):
    fam = family_for("trainium", name)
    # a sampled greedy (15 candidates); the experts reach about 0.55
    assert greedy_speedup(sim, fam, kern(fam, shape), steps=5, per_step=3) < 0.8
