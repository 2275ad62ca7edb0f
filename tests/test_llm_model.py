"""LLMCodeModel and EnsembleCodeModel behaviour against the fake server: plans, repair, edits, ensembles,
determinism, and (when the kernels and families are importable) a full offline LLM round trip."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from autocomp_env.codemodel import CodeModel
from autocomp_env.core import Feedback, Kernel, Plan
from autocomp_env.llm import CompletionCache, EnsembleCodeModel, LLMCodeModel, LLMConfig, PromptOptions, divide_work
from autocomp_env.llm.server import FakeLLMServer
from autocomp_env.targets.gemmini.menu import GEMM as GEMMINI_GEMM
from autocomp_env.targets.trainium.menu import MENU as TRAINIUM

MATMUL = Kernel("gemmini/matmul-64x64x64", "gemmini", "matmul", {}, 64**3, 64**3 / 256, "cycles")
GEMM = Kernel("trainium/gemm-256x256x256-bf16", "trainium", "gemm", {}, 256**3, 1.2, "us")
CODE = "void solution(int8_t A[64][64], int8_t B[64][64], int8_t C[64][64]) {\n  mvin(A, 0, 16, 16);\n  fence();\n}\n"
PY = "@nki.jit\ndef solution(lhsT, rhs):\n    out = nl.ndarray((256, 256), dtype=nl.bfloat16, buffer=nl.shared_hbm)\n    return out\n"
MASK = np.ones(len(GEMMINI_GEMM), dtype=bool)


def menu_answer(request: dict) -> str:
    """Pick the first option shown in a planning prompt; echo the code back in implementation prompts."""
    text = request["messages"][-1]["content"]
    m = re.search(r"<optimizations>\n(\d+)\. ([^\n]*)", text)
    if m:
        return f"Option {m.group(1)}: {m.group(2)} on the J loop."
    return "```c\n" + CODE + "```"


def make(srv: FakeLLMServer, tmp_path=None, name: str = "fake-model", **opts) -> LLMCodeModel:
    cfg = LLMConfig(model=name, base_url=srv.base_url, backoff_base=0.005, backoff_max=0.01, timeout=2.0, max_retries=1)
    cache = CompletionCache(tmp_path) if tmp_path is not None else False
    return LLMCodeModel(cfg, PromptOptions(**opts), cache=cache)


def test_llm_code_model_satisfies_the_protocol() -> None:
    with FakeLLMServer() as srv:
        assert isinstance(make(srv), CodeModel)


def test_propose_plans_returns_menu_plans_with_indices() -> None:
    with FakeLLMServer(handler=menu_answer) as srv:
        model = make(srv)
        plans = model.propose_plans(
            MATMUL, CODE, Feedback(latency=5.0, unit="cycles"), GEMMINI_GEMM, MASK, 4, np.random.default_rng(0)
        )
        assert len(plans) == 4 and len(srv.completion_requests) == 4
        for p in plans:
            assert p.menu_index is not None and GEMMINI_GEMM[p.menu_index] in p.text
        prompts = [r["body"]["messages"][-1]["content"] for r in srv.completion_requests]
        menus = {p.split("<optimizations>")[1].split("</optimizations>")[0] for p in prompts}
        assert len(menus) > 1  # every sample draws its own dropout
        assert model.usage.calls == 4 and model.usage.prompt_tokens > 0


def test_a_deterministic_prompt_is_sampled_n_times_with_distinct_seeds() -> None:
    with FakeLLMServer(handler=menu_answer) as srv:
        make(srv, menu_keep=1.0).propose_plans(
            MATMUL, CODE, Feedback(), GEMMINI_GEMM, MASK, 3, np.random.default_rng(0)
        )
        bodies = [r["body"] for r in srv.completion_requests]
        assert len({json.dumps(b["messages"]) for b in bodies}) == 1
        assert len({b["seed"] for b in bodies}) == 3


def test_failed_plan_samples_are_dropped_never_returned_as_text() -> None:
    with FakeLLMServer(handler=menu_answer) as srv:
        srv.fail_next("500", times=3)  # 2 samples x 2 attempts: exactly one sample gets an answer
        plans = make(srv, menu_keep=1.0).propose_plans(
            MATMUL, CODE, Feedback(), GEMMINI_GEMM, MASK, 2, np.random.default_rng(0)
        )
    assert len(plans) == 1 and "500" not in plans[0].text and plans[0].text.startswith("Option 1:")


def test_same_seed_same_prompts_and_plans(tmp_path) -> None:
    with FakeLLMServer(handler=menu_answer) as srv:
        a = make(srv).propose_plans(MATMUL, CODE, Feedback(), GEMMINI_GEMM, MASK, 3, np.random.default_rng(42))
        b = make(srv).propose_plans(MATMUL, CODE, Feedback(), GEMMINI_GEMM, MASK, 3, np.random.default_rng(42))
        assert a == b
        first = [r["body"] for r in srv.completion_requests[:3]]
        second = [r["body"] for r in srv.completion_requests[3:]]
        assert sorted(map(json.dumps, first)) == sorted(map(json.dumps, second))


def test_plan_replay_from_cache_makes_no_requests(tmp_path) -> None:
    with FakeLLMServer(handler=menu_answer) as srv:
        a = make(srv, tmp_path).propose_plans(
            GEMM, PY, Feedback(), TRAINIUM, np.ones(len(TRAINIUM), bool), 3, np.random.default_rng(1)
        )
        n = len(srv.requests)
        b = make(srv, tmp_path).propose_plans(
            GEMM, PY, Feedback(), TRAINIUM, np.ones(len(TRAINIUM), bool), 3, np.random.default_rng(1)
        )
        assert len(srv.requests) == n and a == b


def test_repair_sends_the_error_and_returns_fixed_code() -> None:
    fixed = CODE.replace("16, 16", "16, 8")
    with FakeLLMServer(answers=["The row count was wrong.\n```c\n" + fixed + "```"]) as srv:
        gen = make(srv).repair(
            MATMUL,
            CODE,
            Plan("use 8-row tiles"),
            "address_error: spad row 16384 out of range (line 2)",
            np.random.default_rng(0),
        )
        text = srv.completion_requests[0]["body"]["messages"][-1]["content"]
    assert gen.code == fixed and gen.error is None and gen.llm_calls == 1
    assert "spad row 16384 out of range" in text and "use 8-row tiles" in text and CODE.strip() in text


def test_edits_mode_applies_json_edits_to_the_parent() -> None:
    answer = json.dumps(
        {"plan": "wider mvin", "edits": [{"old_str": "mvin(A, 0,  16, 16);", "new_str": "mvin(A, 0, 64, 16);"}]}
    )
    with FakeLLMServer(answers=[answer, '{"edits": [{"old_str": "nothing like this", "new_str": "x"}]}']) as srv:
        model = make(srv, use_edits=True)
        gen = model.implement(MATMUL, CODE, Plan("wider mvin"), Feedback(), np.random.default_rng(0))
        assert gen.code == CODE.replace("16, 16", "64, 16") and gen.note == "1 edits applied"
        bad = model.implement(MATMUL, CODE, Plan("wider mvin"), Feedback(), np.random.default_rng(1))
        assert bad.code is None and "edits could not be applied: edit 0: old_str not found" in bad.error


def test_trainium_implementation_extracts_python() -> None:
    answer = "Kernel:\n```python\n" + PY.replace("256, 256", "256,256") + "```\nThis is faster."
    with FakeLLMServer(answers=[answer]) as srv:
        gen = make(srv).implement(GEMM, PY, Plan("tile"), Feedback(), np.random.default_rng(0))
    assert gen.code.startswith("@nki.jit\ndef solution") and "(256,256)" in gen.code


def test_divide_work_matches_autocomp() -> None:
    assert divide_work(4, 4) == [1, 1, 1, 1]
    assert divide_work(2, 4) == [1, 1, 0, 0]
    assert divide_work(7, 3) == [3, 2, 2]
    assert sum(divide_work(9, 4)) == 9


def test_ensemble_splits_plan_samples_across_models() -> None:
    with FakeLLMServer(handler=menu_answer) as srv:
        models = [make(srv, name=f"m{i}") for i in range(3)]
        ens = EnsembleCodeModel(models)
        plans = ens.propose_plans(MATMUL, CODE, Feedback(), GEMMINI_GEMM, MASK, 5, np.random.default_rng(0))
        per_model = [sum(r["body"]["model"] == f"m{i}" for r in srv.completion_requests) for i in range(3)]
    assert len(plans) == 5 and per_model == [2, 2, 1] and ens.name == "ensemble(llm:m0,llm:m1,llm:m2)"


def test_ensemble_implement_many_divides_code_samples() -> None:
    with FakeLLMServer(handler=menu_answer) as srv:
        ens = EnsembleCodeModel([make(srv, name="a"), make(srv, name="b")])
        gens = ens.implement_many(MATMUL, CODE, Plan("x"), Feedback(), 3, np.random.default_rng(0))
        used = [r["body"]["model"] for r in srv.completion_requests]
    assert [g.model for g in gens] == ["llm:a", "llm:a", "llm:b"] and used.count("a") == 2
    assert all(g.code == CODE for g in gens)
    with pytest.raises(ValueError):
        EnsembleCodeModel([])


# --- full offline LLM path: our prompts -> fake server -> offline code model -> our parser ----------------


def _offline_kernel():
    try:
        from autocomp_env.kernels import get_kernel
        from autocomp_env.targets import family as family_for

        kernel = get_kernel("gemmini/matmul-64x64x64")
        return kernel, family_for(kernel.target, kernel.family)
    except Exception as e:  # simulators or families not importable in this checkout
        pytest.skip(f"offline code model unavailable: {e}")


def test_offline_server_runs_the_two_phase_loop() -> None:
    kernel, family = _offline_kernel()
    code = family.starting_code(kernel)
    mask = family.applicable(kernel, family.naive_schedule(kernel))
    with FakeLLMServer(mode="offline") as srv:
        model = make(srv)
        rng = np.random.default_rng(0)
        plans = model.propose_plans(kernel, code, Feedback(), family.menu, mask, 4, rng)
        assert plans and all(p.menu_index is not None and mask[p.menu_index] for p in plans)
        gens = [model.implement(kernel, code, p, Feedback(), rng) for p in plans]
    changed = [g for g in gens if g.code is not None and g.code != code]
    assert changed and all("autocomp-schedule:" in g.code for g in changed)


def test_offline_llm_search_in_the_env_replays_from_cache(tmp_path) -> None:
    _offline_kernel()
    import gymnasium

    import autocomp_env  # noqa: F401  (registers the env ids)

    def episode(srv: FakeLLMServer) -> tuple[list, LLMCodeModel]:
        model = make(srv, tmp_path)
        env = gymnasium.make(
            "autocomp/Gemmini-matmul-v0", kernel="gemmini/matmul-64x64x64", code_model=model, action_mode="plan"
        )
        env.reset(seed=0)
        steps = []
        for _ in range(3):
            plan = env.unwrapped.propose_plans(2)[0]
            _, reward, _, _, info = env.step(plan)
            steps.append((plan, reward, info["latency"]))
        return steps, model

    with FakeLLMServer(mode="offline") as srv:
        first, m1 = episode(srv)
        n = len(srv.requests)
        second, m2 = episode(srv)
        assert len(srv.requests) == n  # the replay never reaches the server
    assert first == second and any(r > 0 for _, r, _ in first)
    assert m1.usage.http_requests == n and m2.usage.cache_hits == m2.usage.calls == m1.usage.calls


def test_concurrency_limit_bounds_requests_in_flight() -> None:
    import threading
    import time

    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def slow(request: dict) -> str:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return menu_answer(request)

    with FakeLLMServer(handler=slow) as srv:
        cfg = LLMConfig(model="m", base_url=srv.base_url, concurrency=2, timeout=5.0)
        plans = LLMCodeModel(cfg, cache=False).propose_plans(
            MATMUL, CODE, Feedback(), GEMMINI_GEMM, MASK, 6, np.random.default_rng(0)
        )
    assert len(plans) == 6 and state["max"] == 2


def test_server_command_line_serves_models() -> None:
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocomp_env.llm.server", "--port", str(port), "--mode", "echo"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "serving echo answers" in proc.stdout.readline()
        for _ in range(50):
            try:
                body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read())
                break
            except OSError:
                time.sleep(0.1)
        assert body["data"][0]["id"] == "autocomp-offline"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_bare_menu_action_is_planned_before_it_is_implemented() -> None:
    item = GEMMINI_GEMM[7]  # "double buffering"
    with FakeLLMServer(handler=menu_answer) as srv:
        gen = make(srv).implement(
            MATMUL, CODE, Plan(item, 7), Feedback(latency=9.0, unit="cycles"), np.random.default_rng(0)
        )
        planning, implementation = [r["body"]["messages"][-1]["content"] for r in srv.completion_requests]
    assert "<optimizations>\n8. double buffering\n</optimizations>" in planning
    assert "Explain how to apply option 8" in planning
    assert "<plan>\nOption 8: double buffering on the J loop.\n</plan>" in implementation
    assert gen.code == CODE and gen.llm_calls == 2 and gen.note.startswith("plan: Option 8: double buffering")
    assert gen.prompt_tokens > 2 * 1000


def test_specific_plans_and_disabled_expansion_take_one_call() -> None:
    with FakeLLMServer(handler=menu_answer) as srv:
        rng = np.random.default_rng(0)
        assert make(srv).implement(MATMUL, CODE, Plan("Option 8: double buffer B", 7), Feedback(), rng).llm_calls == 1
        assert (
            make(srv, expand_menu_actions=False)
            .implement(MATMUL, CODE, Plan(GEMMINI_GEMM[7], 7), Feedback(), rng)
            .llm_calls
            == 1
        )
        assert len(srv.completion_requests) == 2


def test_a_failed_planning_call_fails_the_menu_action() -> None:
    with FakeLLMServer() as srv:
        srv.fail_next("500", times=2)
        gen = make(srv).implement(MATMUL, CODE, Plan(GEMMINI_GEMM[0], 0), Feedback(), np.random.default_rng(0))
    assert gen.code is None and gen.error.startswith("LLM planning failed") and len(srv.completion_requests) == 2


def test_edit_mode_sends_the_json_schema_and_falls_back_when_rejected() -> None:
    from autocomp_env.llm.server import HTTPFailure

    answer = json.dumps({"plan": "p", "edits": [{"old_str": "fence();", "new_str": "fence();\n  fence();"}]})

    def no_schemas(request: dict) -> str:
        if "response_format" in request:
            raise HTTPFailure(400, "Unsupported parameter: 'response_format' is not supported by this server.")
        return answer

    with FakeLLMServer(answers=[answer]) as srv:
        gen = make(srv, use_edits=True).implement(MATMUL, CODE, Plan("p"), Feedback(), np.random.default_rng(0))
        fmt = srv.completion_requests[0]["body"]["response_format"]
    assert gen.code.count("fence();") == 2
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["plan", "edits"]
    with FakeLLMServer(handler=no_schemas) as srv:
        gen = make(srv, use_edits=True).implement(MATMUL, CODE, Plan("p"), Feedback(), np.random.default_rng(0))
        assert gen.code.count("fence();") == 2 and len(srv.completion_requests) == 2
