"""OfflineCodeModel (on the toy family) and the budget/price helpers."""

import numpy as np
import pytest
import test_env_fakes as fakes

from autocomp_env.budget import Budget, Usage, price
from autocomp_env.codemodel import CodeModel, OfflineCodeModel
from autocomp_env.core import Feedback, Plan
from autocomp_env.kernels import get_kernel, starting_code
from autocomp_env.schedules.base import read_schedule

fakes.install()
K = get_kernel("toy/axpy-1024")
START = starting_code(K)
FB = Feedback()


def rng(seed=0):
    return np.random.default_rng(seed)


def test_offline_model_implements_the_protocol():
    assert isinstance(OfflineCodeModel(), CodeModel)


def test_menu_plan_applies_the_family_transform():
    g = OfflineCodeModel().implement(K, START, Plan("loop unrolling", 1), FB, rng())
    assert read_schedule(g.code) == {"tile": 1, "unroll": 2, "vec": False} and g.fault is None
    assert "loop unrolling" in g.note and g.model == "offline" and g.llm_calls == 0


def test_text_plan_applies_every_item_it_names_with_its_parameters():
    g = OfflineCodeModel().implement(K, START, Plan("Tile by 8, then vectorize the inner loop"), FB, rng())
    assert read_schedule(g.code) == {"tile": 8, "unroll": 1, "vec": True}


@pytest.mark.parametrize(
    "code, plan, note",
    [
        (START, Plan("make it faster somehow"), "not understood"),
        ("void solution() {}", Plan("loop tiling", 0), "no autocomp-schedule marker"),
        (START, Plan("fuse loops", 3), "does not apply"),
    ],
)
def test_plans_it_cannot_carry_out_return_the_code_unchanged_with_a_note(code, plan, note):
    g = OfflineCodeModel().implement(K, code, plan, FB, rng())
    assert g.code == code and note in g.note and g.error is None


def test_same_rng_same_generation_and_tiling_draws_from_the_rng():
    m = OfflineCodeModel()
    a = [m.implement(K, START, Plan("loop tiling", 0), FB, rng(s)).code for s in range(10)]
    b = [m.implement(K, START, Plan("loop tiling", 0), FB, rng(s)).code for s in range(10)]
    assert a == b and len(set(a)) == 2  # tile factor 2 or 4


def test_fault_rate_injects_recorded_bugs_in_that_share_of_generations():
    m = OfflineCodeModel(fault_rate=0.5)
    r = rng(1)
    gens = [m.implement(K, START, Plan("loop unrolling", 1), FB, r) for _ in range(200)]
    faulty = [g for g in gens if g.fault]
    assert 60 < len(faulty) < 140
    assert all("BUG" in g.code for g in faulty) and all("BUG" not in g.code for g in gens if not g.fault)
    assert all(g.fault is None for g in (OfflineCodeModel().implement(K, START, Plan("x", 1), FB, rng()),))
    with pytest.raises(ValueError):
        OfflineCodeModel(fault_rate=1.5)


def test_propose_plans_applies_menu_dropout_and_never_returns_an_empty_list():
    m = OfflineCodeModel()
    menu = fakes.MENU
    mask = np.array([1, 1, 1, 0, 0], bool)
    sizes = []
    r = rng(0)
    for _ in range(200):
        plans = m.propose_plans(K, START, FB, menu, mask, 5, r)
        idx = [p.menu_index for p in plans]
        assert plans and len(set(idx)) == len(idx) and set(idx) <= {0, 1, 2}
        assert all(p.text == menu[p.menu_index] for p in plans)
        sizes.append(len(plans))
    # With keep probability 0.25 most prompts keep one applicable item; all three is rare.
    assert np.mean(sizes) < 2.0 and max(sizes) <= 3
    all_kept = OfflineCodeModel(keep_probability=1.0).propose_plans(K, START, FB, menu, mask, 2, rng())
    assert len(all_kept) == 2
    assert m.propose_plans(K, START, FB, menu, np.zeros(5, bool), 3, rng()) == []


def test_price_table_matches_prefixes_and_local_models_are_free():
    assert price("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)
    assert price("openai::gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert price("gpt-4o-mini", 0, 1_000_000) == pytest.approx(0.6)  # longest prefix wins over gpt-4o
    assert price("smollm2-135m", 10**6, 10**6) == 0.0


def test_budget_left_and_exhausted():
    b = Budget(samples=4, dollars=1.0)
    u = Usage(samples=1, dollars=0.5, prompt_tokens=10)
    assert b.left(u)["samples"] == 3 and b.left(u)["tokens"] is None
    assert b.left_fraction(u) == {"samples": 0.75, "llm_calls": 1.0, "tokens": 1.0, "dollars": 0.5, "sim_seconds": 1.0}
    assert b.exhausted(u) == [] and b.exhausted(Usage(samples=4)) == ["samples"]
    assert Budget.of({"tokens": 5}) == Budget(tokens=5) and Budget.of(None) == Budget()
    for bad in ({"samples": -1}, {"nope": 1}, 3):
        with pytest.raises(ValueError):
            Budget.of(bad)
