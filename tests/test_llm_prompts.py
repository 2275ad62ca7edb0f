"""Prompt contents, menu dropout, code extraction and edit application (no network, no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autocomp_env.core import Feedback, Kernel, Plan
from autocomp_env.llm.extract import apply_edit, apply_edits, extract_code, fenced_blocks, parse_edits
from autocomp_env.llm.prompts import (
    PromptOptions,
    drop_menu,
    implementation_messages,
    parse_plan,
    planning_messages,
    repair_messages,
)
from autocomp_env.targets.gemmini.menu import GEMM as GEMMINI_GEMM
from autocomp_env.targets.gemmini.menu import LINALG as GEMMINI_LINALG
from autocomp_env.targets.trainium.menu import MENU as TRAINIUM

MATMUL = Kernel("gemmini/matmul-64x64x64", "gemmini", "matmul", {}, 64**3, 64**3 / 256, "cycles")
TINYMPC = Kernel("gemmini/tinympc-forward-12x4x5", "gemmini", "tinympc", {}, 400, 25.0, "cycles")
GEMM = Kernel("trainium/gemm-256x256x256-bf16", "trainium", "gemm", {}, 256**3, 1.2, "us")
C_CODE = "void solution(int8_t A[64][64], int8_t B[64][64], int8_t C[64][64]) {\n  config_st(64);\n}\n"
PY_CODE = "@nki.jit\ndef solution(lhsT, rhs):\n    out = nl.ndarray((256, 256), dtype=nl.bfloat16, buffer=nl.shared_hbm)\n    return out\n"


def user(messages: list[dict[str, str]]) -> str:
    return messages[-1]["content"]


def test_gemmini_planning_prompt_has_isa_latency_menu_rules_and_phase() -> None:
    fb = Feedback(latency=123456.0, unit="cycles", history=(("loop unrolling", 200000.0),))
    opts = PromptOptions(menu_keep=1.0)
    msgs, shown, variant = planning_messages(MATMUL, C_CODE, fb, GEMMINI_GEMM, None, np.random.default_rng(0), opts)
    text = user(msgs)
    assert "DIM = 16" in text and "int8" in text and "compute_preloaded(A_addr" in text
    assert "Kernel: gemmini/matmul-64x64x64" in text
    assert "The latency of this code is 123456 cycles." in text
    assert C_CODE.strip() in text and "```c" in text
    assert shown == list(range(len(GEMMINI_GEMM))) and variant == "pick"
    for i, item in enumerate(GEMMINI_GEMM):
        assert f"{i + 1}. {item}" in text
    assert "Pick exactly one optimization" in text and "specific to this code" in text
    assert "bit for bit" in text and "Limit the plan to the one optimization" in text
    assert "This is phase 2 of 8" in text


def test_tinympc_uses_the_fp32_4x4_description() -> None:
    msgs, _, _ = planning_messages(TINYMPC, C_CODE, Feedback(), GEMMINI_LINALG, None, np.random.default_rng(0))
    text = user(msgs)
    assert "DIM = 4" in text and "FP32" in text and "DIM = 16" not in text
    assert "Bdyn u[i]" in text


def test_trainium_planning_prompt_describes_nki_and_uses_python_fences() -> None:
    fb = Feedback(
        latency=12.5,
        unit="us",
        utilization=0.25,
        counters={"hbm_bytes_read": 1024, "note": "x", "instructions": {"tensor": 4}, "checked": True},
    )
    opts = PromptOptions(menu_keep=1.0, util_feedback=1.0, hw_feedback=1.0)
    msgs, _, _ = planning_messages(GEMM, PY_CODE, fb, TRAINIUM, None, np.random.default_rng(1), opts)
    text = user(msgs)
    assert "NeuronCore-v2" in text and "nisa.nc_matmul(stationary[K,M], moving[K,N])" in text
    assert "lhsT.T @ rhs" in text and "```python" in text
    assert "The latency of this code is 12.5 us." in text
    assert (
        "25.0% of peak" in text
        and "- hbm_bytes_read: 1024" in text
        and "note" not in text.split("Hardware feedback")[1][:80]
    )


def test_feedback_lines_follow_their_probabilities() -> None:
    fb = Feedback(latency=1000.0, unit="cycles", utilization=0.5, counters={"dma_bytes": 7})
    default = user(planning_messages(MATMUL, C_CODE, fb, GEMMINI_GEMM, None, np.random.default_rng(0))[0])
    assert "latency of this code is 1000 cycles" in default
    assert "utilization" not in default.split("# Current code")[1] and "Hardware feedback" not in default
    off = PromptOptions(score_feedback=0.0)
    text = user(planning_messages(MATMUL, C_CODE, fb, GEMMINI_GEMM, None, np.random.default_rng(0), off)[0])
    assert "latency of this code" not in text


def test_menu_only_shows_applicable_items_and_numbers_map_back() -> None:
    mask = np.zeros(len(GEMMINI_GEMM), dtype=bool)
    mask[[2, 7]] = True
    msgs, shown, _ = planning_messages(
        MATMUL, C_CODE, Feedback(), GEMMINI_GEMM, mask, np.random.default_rng(3), PromptOptions(menu_keep=1.0)
    )
    assert shown == [2, 7]
    block = user(msgs).split("<optimizations>")[1].split("</optimizations>")[0]
    assert block.strip().splitlines() == ["3. split loops", "8. double buffering"]
    assert parse_plan("Option 8: double buffer the B tiles", shown) == Plan("Option 8: double buffer the B tiles", 7)
    assert parse_plan("Option 5: something not shown", shown).menu_index is None
    assert parse_plan("   \n", shown) is None


def test_dropout_keeps_a_quarter_of_items_on_average() -> None:
    rng = np.random.default_rng(123)
    kept = [len(drop_menu(list(range(36)), 0.25, rng)) for _ in range(2000)]
    rate = np.mean(kept) / 36
    assert abs(rate - 0.25) < 0.01
    assert drop_menu(list(range(5)), 1.0, rng) == list(range(5))
    assert drop_menu(list(range(5)), 0.0, rng) == []


def test_planning_menu_is_never_empty_and_prompts_are_seeded() -> None:
    opts = PromptOptions(menu_keep=0.0)
    _, shown, _ = planning_messages(MATMUL, C_CODE, Feedback(), GEMMINI_GEMM, None, np.random.default_rng(0), opts)
    assert len(shown) == 1
    a = planning_messages(MATMUL, C_CODE, Feedback(), GEMMINI_GEMM, None, np.random.default_rng(9))
    b = planning_messages(MATMUL, C_CODE, Feedback(), GEMMINI_GEMM, None, np.random.default_rng(9))
    assert a == b


def test_instruction_variants_follow_10_10_80() -> None:
    rng = np.random.default_rng(5)
    opts = PromptOptions(instruction_variants=True)
    variants = [planning_messages(GEMM, PY_CODE, Feedback(), TRAINIUM, None, rng, opts)[2] for _ in range(1500)]
    counts = {v: variants.count(v) / len(variants) for v in ("pick", "invent", "different")}
    assert (
        abs(counts["pick"] - 0.8) < 0.04
        and abs(counts["invent"] - 0.1) < 0.03
        and abs(counts["different"] - 0.1) < 0.03
    )
    msgs, _, v = next(
        (m, s, v)
        for m, s, v in (planning_messages(GEMM, PY_CODE, Feedback(), TRAINIUM, None, rng, opts) for _ in range(200))
        if v == "invent"
    )
    assert "Invent one new optimization" in user(msgs) and "Option new:" in user(msgs)


def test_implementation_prompt_has_plan_code_rules_and_answer_format() -> None:
    plan = Plan("Option 8: double buffer the B tiles across two scratchpad halves", 7)
    text = user(implementation_messages(MATMUL, C_CODE, plan, Feedback(latency=5000, unit="cycles")))
    assert "<plan>\nOption 8: double buffer the B tiles" in text
    assert C_CODE.strip() in text and "latency of this code is 5000 cycles" in text
    assert "Return the complete new code in one ```c fenced block." in text
    assert "no #include" in text or "do not add #include" in text
    edits = user(implementation_messages(GEMM, PY_CODE, plan, Feedback(), PromptOptions(use_edits=True)))
    assert '"edits"' in edits and "old_str" in edits and "Return the complete new code" not in edits


def test_repair_prompt_clips_long_error_lines() -> None:
    err = "address_error: spad row 20000 out of range\n" + "x" * 5000
    text = user(repair_messages(MATMUL, C_CODE, Plan("tile J by 64"), err))
    assert "spad row 20000 out of range" in text and "x" * 400 + " ..." in text and "x" * 401 not in text
    assert "<plan>\ntile J by 64\n</plan>" in text and "Fix the code" in text


def test_unknown_target_is_a_clear_error() -> None:
    bad = Kernel("gpu/x", "gpu", "x", {}, 1, 1.0, "us")
    with pytest.raises(ValueError, match="unknown target 'gpu'"):
        implementation_messages(bad, "", Plan("p"), Feedback())


# --- extraction -------------------------------------------------------------------------------------------


def test_extract_takes_the_last_block_of_the_right_language() -> None:
    text = "Plan:\n```python\ndef f():\n    pass\n```\nfirst try\n```c\nvoid solution() { a(); }\n```\nbetter:\n```c\nvoid solution() { b(); }\n```\nDone."
    assert extract_code(text, "c") == "void solution() { b(); }\n"
    assert extract_code(text, "python") == "def f():\n    pass\n"


def test_extract_prefers_blocks_holding_the_solution() -> None:
    text = "```c\nvoid solution() { x(); }\n```\nand a test:\n```c\nint main() { return 0; }\n```"
    assert extract_code(text, "c") == "void solution() { x(); }\n"


def test_extract_accepts_untagged_and_unclosed_fences() -> None:
    assert extract_code("```\nvoid solution() {}\n```", "c") == "void solution() {}\n"
    assert extract_code("text\n```c\nvoid solution() {\n  f();\n", "c") == "void solution() {\n  f();\n"


def test_extract_brace_matches_without_fences() -> None:
    text = 'Here you go: void solution(int8_t A[4][4]) { if (x) { s = "}"; } /* } */ g(); } trailing words'
    assert extract_code(text, "c") == 'void solution(int8_t A[4][4]) { if (x) { s = "}"; } /* } */ g(); }\n'


def test_extract_finds_the_nki_function_by_indentation() -> None:
    text = "Sure.\n@nki.jit\ndef solution(a):\n    x = 1\n\n    return x\nThis kernel is faster."
    assert extract_code(text, "python") == "@nki.jit\ndef solution(a):\n    x = 1\n\n    return x\n"


def test_extract_returns_none_when_there_is_no_code() -> None:
    assert extract_code("Error: max retries reached", "c") is None
    assert extract_code("```c\nint main() { return 0; }\n```", "c") is None
    assert extract_code("I would tile the loops.", "python") is None
    assert fenced_blocks("no fences") == []


# --- edits ------------------------------------------------------------------------------------------------


def test_edits_apply_exactly_then_whitespace_normalized() -> None:
    code = "for (i = 0; i < 4; i++) {\n    mvin(a, b, 16, 16);\n}\nfence();\n"
    out, why = apply_edit(code, "mvin(a, b, 16, 16);", "mvin(a, b, 64, 16);")
    assert why == "" and "mvin(a, b, 64, 16);" in out
    out, why = apply_edit(
        code, "for (i = 0;  i < 4; i++) {\n  mvin(a, b, 16, 16);", "for (i = 0; i < 2; i++) {\n  mvin(a, b, 32, 16);"
    )
    assert why == "" and out.startswith("for (i = 0; i < 2; i++) {\n  mvin(a, b, 32, 16);\n}")
    assert apply_edit(code, "not there", "x") == (None, "old_str not found in the code")
    assert apply_edit("f();\nf();\n", "f();", "g();")[0] is None


def test_apply_edits_fails_as_a_whole_on_one_bad_edit() -> None:
    code = "a();\nb();\n"
    good = [{"old_str": "a();", "new_str": "c();"}, {"old_str": "b();", "new_str": "d();"}]
    assert apply_edits(code, good) == ("c();\nd();\n", "")
    out, why = apply_edits(code, [good[0], {"old_str": "zzz", "new_str": ""}])
    assert out is None and why.startswith("edit 1:")


def test_parse_edits_reads_bare_and_fenced_json() -> None:
    obj = {"plan": "p", "edits": [{"old_str": "a", "new_str": "b"}]}
    assert parse_edits(json.dumps(obj)) == ("p", obj["edits"])
    assert parse_edits("Here:\n```json\n" + json.dumps(obj) + "\n```") == ("p", obj["edits"])
    assert parse_edits('{"edits": [{"old_str": 1}]}') is None
    assert parse_edits("no json") is None


def test_stale_schedule_markers_are_called_out_only_when_present() -> None:
    marked = C_CODE.replace("{\n", '{\n  // autocomp-schedule: {"ti":1}\n', 1)
    text = user(implementation_messages(MATMUL, marked, Plan("p"), Feedback()))
    assert "Leave out the `autocomp-schedule:` comment" in text
    assert text.index("Leave out") < text.index("Return the complete new code")
    assert "Leave out" not in user(implementation_messages(MATMUL, C_CODE, Plan("p"), Feedback()))


def test_gemmini_description_names_the_hardware_loop_arguments() -> None:
    text = user(implementation_messages(MATMUL, C_CODE, Plan("p"), Feedback()))
    assert "gemmini_loop_ws(I, J, K, pad_I, pad_J, pad_K, A, B, D, C," in text and "is_resadd)" in text
