"""The Gemmini families of the offline code model, checked against the Gemmini simulator on small shapes."""

from __future__ import annotations

import numpy as np
import pytest

from autocomp_env.kernels import get_kernel
from autocomp_env.schedules.base import read_schedule
from autocomp_env.targets import simulator
from autocomp_env.targets.gemmini import common
from autocomp_env.targets.gemmini.families import conv as gemmini_conv
from autocomp_env.targets.gemmini.families import matmul as gemmini_matmul
from autocomp_env.targets.gemmini.families import tinympc as gemmini_tinympc
from autocomp_env.targets.gemmini.menu import GEMM as GEMMINI_GEMM
from autocomp_env.targets.gemmini.menu import LINALG as GEMMINI_LINALG

MM = gemmini_matmul.FAMILY
CONV = gemmini_conv.FAMILY


def kern(family, shape):
    """The Kernel record of `shape` in `family` (parsed by the simulator, as every kernel is)."""
    return get_kernel(f"{family.target}/{family.name}-{shape}")


@pytest.fixture(scope="module")
def sim():
    return simulator("gemmini")


@pytest.fixture(scope="module")
def mm_kernel():
    return kern(MM, "64x64x64")


@pytest.fixture(scope="module")
def conv_kernel():
    return kern(CONV, "1x4x8x32x32")


def walk(family, kernel, rng, steps):
    """A schedule reached by `steps` random applicable transformations from the naive one."""
    s = family.naive_schedule(kernel)
    for _ in range(steps):
        items = np.flatnonzero(family.applicable(kernel, s))
        if not len(items):
            break
        s = family.apply(kernel, s, int(rng.choice(items)), {}, rng).schedule
    return s


_LATENCY: dict[tuple[str, str], float] = {}  # (kernel, code) -> cycles: transformations often meet again


def check(sim, kernel, code):
    """Simulate `code` (once per module), assert it is correct, return its latency."""
    key = (kernel.name, code)
    if key not in _LATENCY:
        r = sim.run(code, kernel.name, seeds=(0,))
        assert r.correct, (r.error, code)
        _LATENCY[key] = r.latency
    return _LATENCY[key]


# --- matmul ----------------------------------------------------------------------------------
def test_matmul_kernel_parsing(mm_kernel):
    assert mm_kernel.name == "gemmini/matmul-64x64x64"
    assert mm_kernel.macs == 64**3 and mm_kernel.roofline == pytest.approx(64**3 / 256)
    assert kern(MM, "512x512x512").small == "gemmini/matmul-128x128x128"
    for bad in ("512x512", "a x b x c", "512x512x500", "0x16x16"):
        with pytest.raises(ValueError):
            kern(MM, bad)


def test_matmul_starting_code_and_baselines_are_correct(sim, mm_kernel):
    start = MM.starting_code(mm_kernel)
    assert read_schedule(start) == MM.naive_schedule(mm_kernel)
    naive = check(sim, mm_kernel, start)
    base = MM.baselines(mm_kernel)
    assert {"vendor", "vendor_fsm", "expert"} <= set(base)
    lat = {name: check(sim, mm_kernel, code) for name, code in base.items()}
    assert lat["expert"] < naive / 3  # the hand-tuned schedule is far faster than one block at a time


@pytest.mark.parametrize("walk_steps", [0, 5])
def test_matmul_every_item_is_masked_or_gives_correct_different_code(sim, mm_kernel, walk_steps):
    rng = np.random.default_rng(walk_steps)
    s = walk(MM, mm_kernel, rng, walk_steps)
    code = MM.emit(mm_kernel, s)
    mask = MM.applicable(mm_kernel, s)
    assert mask.shape == (len(GEMMINI_GEMM),) and mask.any()
    for item in range(len(GEMMINI_GEMM)):
        t = MM.apply(mm_kernel, s, item, {}, np.random.default_rng(item))
        assert (t is not None) == bool(mask[item]), GEMMINI_GEMM[item]
        if t is None:
            continue
        new = MM.emit(mm_kernel, t.schedule)
        assert new != code and t.description
        check(sim, mm_kernel, new)


def test_matmul_random_walks_stay_correct_on_a_rectangular_shape(sim):
    k = kern(MM, "32x128x48")
    rng = np.random.default_rng(7)
    for _ in range(6):
        check(sim, k, MM.emit(k, walk(MM, k, rng, 8)))


def hill_climb(sim, family, kernel, evaluations, seed=0):
    """First-improvement hill climbing over random applicable transformations: (naive latency, best latency)."""
    rng = np.random.default_rng(seed)
    s = family.naive_schedule(kernel)
    naive = best = check(sim, kernel, family.emit(kernel, s))
    for _ in range(evaluations):
        items = np.flatnonzero(family.applicable(kernel, s))
        t = family.apply(kernel, s, int(rng.choice(items)), {}, rng)
        lat = check(sim, kernel, family.emit(kernel, t.schedule))
        if lat < best:
            best, s = lat, t.schedule
    return naive, best


def test_matmul_small_search_over_transformations_gets_much_faster(sim):
    naive, best = hill_climb(sim, MM, kern(MM, "128x128x128"), evaluations=14)
    assert naive / best > 3


def test_matmul_transformations_are_deterministic(mm_kernel):
    def run(seed):
        rng = np.random.default_rng(seed)
        s, codes = MM.naive_schedule(mm_kernel), []
        for _ in range(6):
            items = np.flatnonzero(MM.applicable(mm_kernel, s))
            s = MM.apply(mm_kernel, s, int(rng.choice(items)), {}, rng).schedule
            codes.append(MM.emit(mm_kernel, s))
        return codes

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_matmul_parse_plan_understands_items_and_numbers(mm_kernel):
    items = MM.parse_plan("Double buffer the B tiles and tile J by 64.")
    assert [i for i, _ in items] == [GEMMINI_GEMM.index("double buffering"), GEMMINI_GEMM.index("modify loop tiling")]
    assert items[1][1]["tj"] == 4  # 64 elements = 4 blocks
    plan = MM.parse_plan("Use the gemmini_loop_ws hardware loop")
    assert plan[0][0] == GEMMINI_GEMM.index("substitute operations with equivalent faster ones")
    assert MM.parse_plan("unroll the inner loop by 4")[0] == (GEMMINI_GEMM.index("loop unrolling"), {"unroll": 4})
    assert MM.parse_plan("keep the A panel resident and guard loads with if statements")[0][1]["resident"] == "A"
    assert MM.parse_plan("make it better somehow") == []
    # A named value steers the transformation.
    s = MM.naive_schedule(mm_kernel)
    t = MM.apply(mm_kernel, s, GEMMINI_GEMM.index("modify loop tiling"), {"tj": 4}, np.random.default_rng(0))
    assert t.schedule["tj"] == 4
    ((item, params),) = MM.parse_plan("Use a J tile of 64 columns and an I tile of 2")
    t = MM.apply(mm_kernel, s, item, params, np.random.default_rng(0))
    assert (t.schedule["ti"], t.schedule["tj"]) == (2, 4)
    assert MM.parse_plan("set tile_i=2, tk=4")[0] == (GEMMINI_GEMM.index("modify loop tiling"), {"ti": 2, "tk": 4})


def test_matmul_injected_faults_are_caught(sim, mm_kernel):
    rng = np.random.default_rng(0)
    codes = [MM.emit(mm_kernel, walk(MM, mm_kernel, rng, n)) for n in (0, 6)]
    codes.append(MM.baselines(mm_kernel)["vendor"])
    caught = total = 0
    for code in codes:
        for _ in range(3):
            buggy, desc = MM.inject_fault(mm_kernel, code, rng)
            assert buggy != code and desc
            total += 1
            caught += not sim.run(buggy, mm_kernel.name, seeds=(0,)).correct
    assert caught / total >= 0.8


# --- conv ------------------------------------------------------------------------------------
def test_conv_kernel_parsing(conv_kernel):
    assert conv_kernel.name == "gemmini/conv-1x4x8x32x32"
    assert conv_kernel.macs == 1 * 4 * 8 * 32 * 32 * 9
    with pytest.raises(ValueError):
        kern(CONV, "1x4x8x30x32")
    with pytest.raises(ValueError):
        kern(CONV, "1x4x8x32")


def test_conv_starting_code_and_baselines_are_correct(sim, conv_kernel):
    naive = check(sim, conv_kernel, CONV.starting_code(conv_kernel))
    base = CONV.baselines(conv_kernel)
    assert "tiled_conv_auto" in base["vendor"] and "tiled_conv_auto" in base["vendor_fsm"]
    assert check(sim, conv_kernel, base["expert"]) < naive / 2


@pytest.mark.parametrize("walk_steps", [4])
def test_conv_every_item_is_masked_or_gives_correct_different_code(sim, walk_steps):
    k = kern(CONV, "1x4x20x32x48")  # a ragged last pixel block (20 = 16 + 4)
    s = walk(CONV, k, np.random.default_rng(walk_steps), walk_steps)
    code = CONV.emit(k, s)
    mask = CONV.applicable(k, s)
    for item in range(len(GEMMINI_GEMM)):
        t = CONV.apply(k, s, item, {}, np.random.default_rng(item))
        assert (t is not None) == bool(mask[item])
        if t is not None:
            new = CONV.emit(k, t.schedule)
            assert new != code
            check(sim, k, new)


def test_conv_faults_are_caught(sim, conv_kernel):
    rng = np.random.default_rng(1)
    code = CONV.emit(conv_kernel, gemmini_conv.expert_schedule(conv_kernel))
    results = [sim.run(CONV.inject_fault(conv_kernel, code, rng)[0], conv_kernel.name, seeds=(0,)) for _ in range(8)]
    assert sum(not r.correct for r in results) >= 6


# --- tinympc ---------------------------------------------------------------------------------
TINY = gemmini_tinympc.FAMILY
TINY_SHAPES = ("matvec-12x4", "forward-12x4x5", "backward-12x4x10")


def test_tinympc_kernel_parsing():
    k = kern(TINY, "forward-12x4x5")
    assert k.name == "gemmini/tinympc-forward-12x4x5" and k.spec == {
        "kind": "forward",
        "NX": 12,
        "NU": 4,
        "H": 5,
        "dtype": "float32",
    }
    for bad in ("forward-12x4", "matvec-12x4x5", "backward-10x4x5", "solve-12x4x5", "forward-12x4x1"):
        with pytest.raises(ValueError):
            kern(TINY, bad)


@pytest.mark.parametrize("shape", TINY_SHAPES)
def test_tinympc_items_are_masked_or_correct_and_the_space_gets_faster(sim, shape):
    k = kern(TINY, shape)
    naive = check(sim, k, TINY.starting_code(k))
    base = TINY.baselines(k)
    assert check(sim, k, base["vendor"]) == naive
    # matvec is 48 MACs: fixed command and CPU costs dominate, so the gain is smallest there (~19%)
    assert check(sim, k, base["expert"]) < naive * 0.85
    rng = np.random.default_rng(0)
    start = [TINY.naive_schedule(k)] if shape.startswith("backward") else [walk(TINY, k, rng, 3)]
    for s in start:
        code = TINY.emit(k, s)
        mask = TINY.applicable(k, s)
        for item in np.flatnonzero(mask):
            t = TINY.apply(k, s, int(item), {}, rng)
            new = TINY.emit(k, t.schedule)
            assert new != code
            check(sim, k, new)
        assert all(TINY.apply(k, s, int(i), {}, rng) is None for i in np.flatnonzero(~mask))


def test_tinympc_parse_plan_and_faults(sim):
    items = TINY.parse_plan("Hoist the matrix loads out of the loop, then eliminate the fence operations.")
    assert [i for i, _ in items] == [GEMMINI_LINALG.index("hoist redundant operations out of loops"),
                                     GEMMINI_LINALG.index("eliminate data dependencies and fence operations")]  # fmt: skip
    assert TINY.parse_plan("Add d using the bias instead of a CPU loop")[0][0] == GEMMINI_LINALG.index(
        "add or subtract a matrix using the bias"
    )
    assert TINY.parse_plan("nothing to see") == []
    k = kern(TINY, "forward-12x4x5")
    rng = np.random.default_rng(2)
    code = TINY.baselines(k)["expert"]
    caught = sum(not sim.run(TINY.inject_fault(k, code, rng)[0], k.name, seeds=(0,)).correct for _ in range(8))
    assert caught >= 6


@pytest.mark.parametrize(
    "bad",
    [{"ti": 3}, {"ti": 0}, {"order": "xy"}, {"dbuf": "yes"}, {"bogus": 1}, {"mvin_cols": 48}, {"ti": 64, "tj": 64}],
)
def test_corrupted_schedules_are_refused_cleanly(mm_kernel, bad):
    # A marker edited by hand (or by an LLM) must not crash the code model: nothing applies, emit says why.
    assert not MM.applicable(mm_kernel, bad).any()
    assert MM.apply(mm_kernel, bad, 0, {}, np.random.default_rng(0)) is None
    with pytest.raises(ValueError, match="not a valid"):
        MM.emit(mm_kernel, bad)


@pytest.mark.parametrize(
    ("family", "shape", "evaluations", "factor"),
    [(CONV, "1x4x8x32x32", 10, 2.0), (TINY, "forward-12x4x5", 8, 1.3)],
)
def test_small_search_improves_conv_and_tinympc(sim, family, shape, evaluations, factor):
    naive, best = hill_climb(sim, family, kern(family, shape), evaluations, seed=1)
    assert naive / best > factor


def test_loops_that_run_once_are_folded_into_readable_constants(mm_kernel):
    fold = common.fold
    assert fold("c + (0 * 1 + 0) * 16 | ACC") == "c | ACC"  # not "c * 16": a product is folded before a sum
    assert fold("&A[(io * 1 + 0) * 16][(0 * 2 + k) * 16]") == "&A[io * 16][k * 16]"
    assert fold("if (ko == 3 && 0 == 0) mvout(x)") == "if (ko == 3) mvout(x)"
    tiny = MM.starting_code(kern(MM, "16x16x16"))
    assert "< 1;" not in tiny and "for (" not in tiny  # a single block needs no loops at all


def test_tinympc_dropped_fence_is_caught_as_a_dram_hazard(sim):
    k = kern(TINY, "forward-12x4x5")
    faults = gemmini_tinympc._fence_faults(TINY.baselines(k)["expert"])
    assert faults
    r = sim.run(faults[0][0], k.name, seeds=(0,))
    assert not r.correct and r.error.type == "hazard_error"
