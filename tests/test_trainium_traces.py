"""Autocomp's search traces measured on trn1 (../shared/third_party/autocomp/trn-tutorial): every intact step runs
and is correct, and the simulated latencies rank the steps like the hardware (issue 12's targets)."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from simulators.trainium import TrainiumSimulator
from simulators.trainium.nkisim.api import run_kernel
from simulators.trainium.nkisim.typing import Placeholder
from simulators.trainium.traces import damage, family_of, meets, parse_trace, run_trace, score, spearman, trace_files

TRACES = Path(__file__).resolve().parents[2] / "shared" / "third_party" / "autocomp" / "trn-tutorial"
needs_traces = pytest.mark.skipif(not TRACES.is_dir(), reason="../shared/third_party/autocomp/trn-tutorial is absent")
# Shapes of the functional check: the measured ones, except a smaller GEMM (the full one takes a minute per step).
# Attention stays at seq 4096: its tolerance is absolute, and shorter rows have larger softmax values.
CHECK = {
    "gemm": "trainium/gemm-512x1024x1024-bf16",
    "mamba": "trainium/mamba-1x256x2048x16",
    "attention": "trainium/attention-128x4096-bf16",
}
# Targets the model does not meet yet, with the reason (strict: the test fails once they are met, so this list
# must shrink with the model).
KNOWN_MISSES = {
    ("1_gemm_trace.py", "spearman"): "trn1 measured step 1 (2 N-tiles per loaded lhsT tile) 37 % slower than step 0; "
    "the model, DMA-bound on both, gives it 12 % faster (fewer bytes); no physical cause found",
    ("1_gemm_trace.py", "direction"): "same step 0 -> 1 as above",
    ("4_attention_trace.py", "direction"): "steps 6 and 7 are the same kernel up to whitespace and a no-op "
    "conditional, measured 681 and 579 us; and 4 -> 5 is 3.3 % faster simulated, 1.3 % measured",
}


@pytest.fixture(scope="module")
def results():
    return {Path(f).name: run_trace(f) for f in trace_files(str(TRACES))}


# -- parsing and statistics (no third-party data needed) ------------------------------------------------------------
def test_damage_finds_syntax_errors_and_names_lost_mid_line():
    assert damage("def f(:\n  pass").startswith("syntax error at line 1")
    lost = "@nki.jit\ndef test(a):\n    t = nl.load(a)  # load it   x = 3\n    return nl.exp(t) + x\n"
    assert "undefined name 'x' at line 4" in damage(lost)
    assert damage("def f(a):\n    acc += a\n").startswith("undefined name 'acc'")  # `+=` binds nothing new
    ok = "import numpy as np\n@nki.jit\ndef test(a, **kw):\n    for i in nl.affine_range(2):\n        b = a\n    return b\n"
    assert damage(ok) is None


def test_statistics():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    f = score([100.0, 50.0, 49.0], [90.0, 60.0, 60.5])
    assert f["direction"] == 1.0  # faster, then the same within 3 % on both
    assert f["median_error"] == pytest.approx(0.2)
    assert f["speedup_ratio"] == pytest.approx((90 / 60.5) / (100 / 49))
    assert not meets(f)["speedup"] and meets(f)["direction"]


def test_trace_parsing_reads_the_nested_candidates_root_first(tmp_path):
    inner = "CodeCandidate(parent=None, plan=None, code='''@nki.jit\ndef test(a):\n  return a\n''', score=2.0)"
    outer = f"CodeCandidate(parent={inner}, plan='p', code='''@nki.jit\ndef test(a):\n  return b\n''', score=1.5)"
    path = tmp_path / "7_softmax_trace.py"
    path.write_text(outer)
    steps = parse_trace(str(path))
    assert [s.measured_us for s in steps] == [2000.0, 1500.0]
    assert steps[0].damage is None and "undefined name 'b'" in steps[1].damage
    assert family_of(str(path)) == "softmax" and family_of("/x/5_sd_attention_trace.py") == "sdattention"


# -- the traces ----------------------------------------------------------------------------------------------------
@needs_traces
def test_every_intact_step_runs_and_damaged_ones_are_listed(results):
    assert set(results) >= {"1_gemm_trace.py", "3_mamba_trace.py", "4_attention_trace.py"}
    for name, r in results.items():
        for s in r["steps"]:
            if s["damage"] is None:
                assert s["error"] is None and s["simulated_us"] > 0, (name, s["index"], s["error"])
            else:
                assert s["simulated_us"] is None and s["damage"]
        assert r["figures"]["failed"] == 0 and r["figures"]["steps"] >= 3, name


@needs_traces
@pytest.mark.parametrize("trace", ["1_gemm_trace.py", "3_mamba_trace.py", "4_attention_trace.py"])
@pytest.mark.parametrize("target", ["spearman", "direction", "median_error", "speedup"])
def test_trace_meets_the_ranking_targets(results, trace, target, request):
    reason = KNOWN_MISSES.get((trace, target))
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    fig = results[trace]["figures"]
    assert meets(fig)[target], (trace, target, {k: round(v, 3) for k, v in fig.items()})


# Step 8 of the attention trace keeps q.k in bf16 between its two passes (a 0.06 ulp at |q.k| ~ 15 feeds exp):
# its output is off by up to ~0.05 on ~0.3 % of the elements, outside the harness's atol 1e-2, although trn1 ran it.
IMPRECISE = {("4_attention_trace.py", 8): 0.08}


@needs_traces
@pytest.mark.parametrize("trace", ["1_gemm_trace.py", "3_mamba_trace.py", "4_attention_trace.py"])
def test_every_intact_step_is_correct(trace):
    sim = TrainiumSimulator()
    kernel = CHECK[family_of(trace)]
    for s in parse_trace(str(TRACES / trace)):
        if s.damage is None:
            r = sim.run(s.code, kernel, seeds=(0,), mode="functional", timeout=300)
            bound = IMPRECISE.get((trace, s.index))
            if bound is None:
                assert r.correct, (trace, s.index, r.error)
            else:  # it runs, and its error is the bf16 rounding described above, no more
                assert r.error.type == "wrong_output", r.error
                assert float(r.error.message.rsplit("max abs error ", 1)[1]) < bound, r.error.message


# -- the model never sees names ------------------------------------------------------------------------------------
def _kernel(code: str, filename: str):
    from simulators.trainium.nkisim import isa, language
    from simulators.trainium.nkisim import typing as nt
    from simulators.trainium.nkisim.api import Kernel, jit

    class _Nki:
        pass

    nki = _Nki()
    nki.jit, nki.language, nki.isa = jit, language, isa
    ns = {"nki": nki, "nl": language, "nisa": isa, "nt": nt, "np": np, "math": math, "par_dim": language.par_dim}
    exec(compile(code, filename, "exec"), ns)
    return next(v for v in ns.values() if isinstance(v, Kernel)).func


@needs_traces
def test_latency_does_not_depend_on_file_function_or_trace_names():
    step = parse_trace(str(TRACES / "4_attention_trace.py"))[10]
    renamed = re.sub(r"\bdef test\(", "def my_fast_kernel(", step.code)
    renamed = "# a comment that names gemm, mamba and attention\n" + renamed
    args = [Placeholder((128, 4096), "bfloat16")] * 3
    a = run_kernel(_kernel(step.code, "4_attention_trace.py"), args, functional=False)[1].tl.profile()
    b = run_kernel(_kernel(renamed, "unrelated_name.py"), args, functional=False)[1].tl.profile()
    assert a == b
    # and through the sandbox: the kernel name only picks the input shapes; the file is always solution.py
    sim = TrainiumSimulator()
    x = sim.run(step.code, "trainium/attention-128x4096-bf16", mode="timing").latency
    y = sim.run(renamed, "trainium/attention-128x4096-bf16", mode="timing").latency
    assert x == y == pytest.approx(a["latency_us"], rel=1e-6)
