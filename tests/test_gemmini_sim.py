"""GemminiSimulator end to end: kernels, vendor code, error classes, hostile code, CLI."""

from __future__ import annotations

import json
import re

import helpers
import pytest

from simulators.gemmini import GemminiSimulator, main, parse_kernel, vendor_code
from simulators.result import ERROR_TYPES

SIM = GemminiSimulator()
MM = "gemmini/matmul-32x48x32"
BENCH = helpers.script("bench_gemmini")
MM_SIG = BENCH.SIG
MM_HEAD = MM_SIG + " {" + BENCH.SETUP  # the signature, then the weight-stationary config_ex, config_st, config_ld

# Autocomp-style low-level code: no #include, short names, one output tile at a time.
TILED = (
    MM_HEAD
    + """  for (int i = 0; i < MAT_DIM_I; i += DIM)
    for (int j = 0; j < MAT_DIM_J; j += DIM) {
      for (int k = 0; k < MAT_DIM_K; k += DIM) {
        mvin(&A[i][k], 0, DIM, DIM);
        mvin2(&B[k][j], 4096, DIM, DIM);
        preload(4096, (1u << 31) | (k ? (1u << 30) : 0), DIM, DIM, DIM, DIM);
        compute_preloaded(0, GARBAGE_ADDR, DIM, DIM, DIM, DIM);
      }
      mvout(&C[i][j], 1u << 31, DIM, DIM);
    }
  fence();
}
"""
)


def run(code: str, kernel: str = MM, **kw):
    r = SIM.run(code, kernel, **kw)
    assert r.unit == "cycles"
    return r


def test_low_level_short_names_pass_and_report_counters():
    r = run(TILED)
    assert r.correct and r.error is None
    assert r.latency >= SIM.roofline(MM)
    assert 0 < r.utilization <= 1
    c = r.counters
    assert c["n_compute"] == 2 * 2 * 3 and c["n_mvout"] == 4
    assert c["dma_read_bytes"] == 2 * 2 * 3 * 2 * 256 and c["dma_write_bytes"] == 32 * 32
    assert c["busy_ex"] > 0 and c["spad_rows_touched"] == 32 and c["acc_rows_touched"] == 16


@pytest.mark.parametrize(
    "kernel",
    [
        "gemmini/matmul-40x24x56",
        "gemmini/matmul-33x17x9-bias-relu",
        "gemmini/matmul-40x50x30-at",
        "gemmini/matmul-17x33x70-bt-bias",
        "gemmini/conv-1x5x7x20x24",
        "gemmini/conv-2x4x4x16x40",
        "gemmini/tinympc-matvec-12x4",
        "gemmini/tinympc-forward-12x4x5",
        "gemmini/tinympc-backward-12x4x10",
    ],
)
@pytest.mark.parametrize("fsm", [True, False])
def test_vendor_code_is_correct(kernel, fsm):
    r = run(vendor_code(kernel, fsm), kernel, seeds=(3,) if fsm else (4,))
    assert r.correct, r.error
    assert r.latency >= SIM.roofline(kernel)


def test_flush_is_accepted_and_counted():
    r = run(TILED.replace("  config_st(MAT_DIM_J);", "  gemmini_flush(0);\n  config_st(MAT_DIM_J);"))
    assert r.correct and r.counters["n_flush"] == 1


def test_wrong_output_is_reported_with_location():
    r = run(TILED.replace("(k ? (1u << 30) : 0)", "0"))
    assert not r.correct and r.error.type == "wrong_output"
    assert "C[" in r.error.message and "seed" in r.error.message


def test_fp32_kernel_uses_the_4x4_config():
    assert SIM.config_for("gemmini/tinympc-matvec-12x4").dim == 4
    assert SIM.roofline("gemmini/tinympc-matvec-12x4") == 12 * 4 / 16


def test_parse_kernel_rejects_bad_names():
    for bad in [
        "gemmini/matmul-0x4x4",
        "gemmini/matmul-4x4",
        "gemmini/matmul-4x4x4-relu-relu",
        "trainium/gemm-1x1x1",
        "gemmini/conv-1x2x3",
        42,
    ]:
        with pytest.raises(ValueError):
            parse_kernel(bad)
    r = SIM.run(TILED, "gemmini/nope")
    assert r.error.type == "invalid_kernel"


def test_compile_error_names_the_line():
    r = run(MM_SIG + " {\n  config_st(MAT_DIM_J);\n  this is not C;\n}\n")
    assert r.error.type == "compile_error" and r.error.line == 3


def test_a_single_void_function_with_another_name_is_the_entry_point():
    assert run(TILED.replace("void solution(", "void test(")).correct


def test_missing_solution_is_a_compile_error():
    r = run("void other(void) {}\n")
    assert r.error.type == "compile_error"


@pytest.mark.parametrize(
    ("body", "etype", "line"),
    [
        ("  mvin(A, 20000, 16, 16);", "address_error", 2),
        ("  mvin(A, 0, 16, 17);", "constraint_error", 2),
        (
            "  preload(0, 1u<<31, 16, 16, 16, 16);\n  compute_preloaded(0, GARBAGE_ADDR, 16, 16, 16, 16);\n"
            "  compute_accumulated(0, GARBAGE_ADDR, 16, 16, 16, 16);",
            "constraint_error",
            4,
        ),
        ("  mvin((int8_t *)A + (1 << 26), 0, 16, 16);", "address_error", 2),
        ("  config_st(MAT_DIM_J); mvout(C, 0, 16, 16);\n  mvin(C, 0, 16, 16);", "hazard_error", 3),
    ],
)
def test_isa_errors_are_structured(body, etype, line):
    r = run(MM_SIG + " {\n" + body + "\n}\n")
    assert not r.correct and r.latency is None
    assert r.error.type == etype and r.error.type in ERROR_TYPES
    assert r.error.line == line and r.error.instruction is not None


def test_infinite_loop_times_out():
    r = run(MM_SIG + " { volatile int x = 1; while (x) {} }\n", timeout=3.0)
    assert r.error.type == "timeout"


def test_output_flood_is_an_output_limit():
    r = run(MM_SIG + ' { for (;;) printf("%s", "0123456789abcdef0123456789abcdef"); }\n', timeout=20.0)
    assert r.error.type == "output_limit"


def test_segfault_is_a_runtime_error():
    r = run(MM_SIG + " { volatile int *p = (int *)8; *p = 1; }\n")
    assert r.error.type == "runtime_error"


@pytest.mark.parametrize(
    "stmt", ['fopen("gsim_error.txt", "w");', "extern unsigned long gsim_bb; gsim_bb = 0;", 'asm("nop");']
)
def test_forbidden_calls_are_rejected_before_compiling(stmt):
    r = run(MM_SIG + " {\n  " + stmt + "\n}\n")
    assert r.error.type == "sandbox_violation" and r.error.line == 2


def test_cpu_only_solution_pays_for_its_basic_blocks():
    code = (
        MM_SIG
        + """ {
  for (int i = 0; i < MAT_DIM_I; i++) for (int j = 0; j < MAT_DIM_J; j++) {
    int s = 0; for (int k = 0; k < MAT_DIM_K; k++) s += A[i][k] * B[k][j];
    C[i][j] = s > 127 ? 127 : s < -128 ? -128 : s; }
}
"""
    )
    r = run(code)
    assert r.correct and r.counters["cpu_basic_blocks"] >= 32 * 32 * 48
    assert r.latency > run(TILED).latency


def test_overwriting_inputs_cannot_pass():
    r = run(
        MM_SIG + " { memset(A, 0, sizeof(int8_t) * MAT_DIM_I * MAT_DIM_K); memset(C, 0, MAT_DIM_I * MAT_DIM_J); }\n"
    )
    assert r.error.type == "wrong_output"


def test_deterministic():
    a, b = run(TILED), run(TILED)
    assert a.latency == b.latency and a.counters == b.counters


def test_cli_json(tmp_path, capsys):
    f = tmp_path / "sol.c"
    f.write_text(TILED)
    assert main([str(f), "--kernel", MM, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["correct"] is True and out["error"] is None and out["cycles"] > 0 and "n_mvin" in out["counters"]
    f.write_text("void solution(")
    assert main([str(f), "--kernel", MM, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["type"] == "compile_error"


def test_tinympc_helpers_exist_and_a_candidate_may_redefine_them():
    code = """
void solution(float Kinf[NX][NU], float x[NX][1], float d[NU][1], float u[NU][1]) {
  static float p[NU][1], dn[NU][1];
  tiled_matmul_auto(NU, 1, NX, (elem_t *)Kinf, (elem_t *)x, NULL, (elem_t *)p, NU, 1, 1, 1,
      MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, -1.0f, 0,
      false, true, false, false, false, 3, WS);
  negate_matrix(d, dn, NU, 1);
  add_matrix(p, dn, u, NU, 1);
}
"""
    k = "gemmini/tinympc-matvec-12x4"
    assert run(code, k).correct
    own = "void add_matrix(float *a, float *b, float *c, int r, int k) { for (int i = 0; i < r * k; i++) c[i] = a[i] + b[i] + 1; }\n"
    assert run(own + code, k).error.type == "wrong_output"


def test_cpu_helper_reading_unfenced_mvout_is_a_hazard():
    code = """
void solution(float Kinf[NX][NU], float x[NX][1], float d[NU][1], float u[NU][1]) {
  static float t[NU][1];
  config_st(sizeof(float));
  mvin(0, 1u << 31, 1, NU);
  mvout(t, 1u << 31, 1, NU);
  add_matrix(t, d, u, NU, 1);
}
"""
    r = run(code, "gemmini/tinympc-matvec-12x4")
    assert r.error.type == "hazard_error" and "add_matrix" in r.error.message and "#3" in r.error.message


def test_other_array_sizes_are_configurable():
    from simulators.gemmini import GemminiConfig

    sim32 = GemminiSimulator(GemminiConfig(dim=32, acc_rows=2048))
    k = "gemmini/matmul-100x70x90"
    r = sim32.run(vendor_code(k, True), k, seeds=(0,))
    assert r.correct and sim32.roofline(k) == 100 * 70 * 90 / 1024
    with pytest.raises(ValueError):
        GemminiConfig(dim=12)
    with pytest.raises(ValueError):
        GemminiConfig(rs_ld=0)


def test_loop_ws_pinned_halves_reuse_a_across_loops():
    # Two loops over the two column halves of C; the second reuses A left in scratchpad half 0 (A = NULL).
    code = (
        MM_HEAD
        + """  gemmini_loop_ws(2, 2, 3, 0, 0, 0, A, B, NULL, C, MAT_DIM_K, MAT_DIM_J, 0, MAT_DIM_J,
                  false, false, false, false, false, 0, 1, 2, false);
  gemmini_loop_ws(2, 2, 3, 0, 0, 0, NULL, &B[0][32], NULL, &C[0][32], MAT_DIM_K, MAT_DIM_J, 0, MAT_DIM_J,
                  false, false, false, false, false, 0, 1, 2, false);
  fence();
}
"""
    )
    r = run(code, "gemmini/matmul-32x48x64")
    assert r.correct, r.error
    assert r.counters["n_loop_ws"] == 2 and r.counters["n_mvin"] < 2 * 2 * 3 + 2 * 3 * 2


def test_chained_loops_without_a_fence_are_a_hazard():
    # The second loop reads C, which the first loop's stores are still writing.
    code = (
        MM_HEAD
        + """  gemmini_loop_ws(2, 2, 2, 0, 0, 0, A, B, NULL, C, MAT_DIM_K, MAT_DIM_J, 0, MAT_DIM_J,
                  false, false, false, false, false, 0, 0, 0, false);
  gemmini_loop_ws(2, 2, 2, 0, 0, 0, C, B, NULL, C, MAT_DIM_J, MAT_DIM_J, 0, MAT_DIM_J,
                  false, false, false, false, false, 0, 0, 0, false);
  fence();
}
"""
    )
    r = run(code, "gemmini/matmul-32x32x32")
    assert r.error.type == "hazard_error"


def test_read_cycles_reports_the_simulated_clock():
    code = TILED.replace("  fence();\n}", "  fence();\n  uint64_t t = read_cycles();\n  if (t == 0) C[0][0] ^= 1;\n}")
    assert run(code).correct


def test_straight_line_cpu_code_is_charged_per_instruction():
    terms = lambda j: " + ".join(f"Kinf[{i}][{j}] * x[{i}][0]" for i in range(12))  # noqa: E731
    body = "".join(f"  u[{j}][0] = -({terms(j)} + d[{j}][0]);\n" for j in range(4))
    r = run(
        "void solution(float Kinf[NX][NU], float x[NX][1], float d[NU][1], float u[NU][1]) {\n" + body + "}\n",
        "gemmini/tinympc-matvec-12x4",
    )
    assert r.correct and r.counters["cpu_basic_blocks"] <= 3
    assert r.counters["cpu_instructions"] >= 2 * 48 and r.latency >= r.counters["cpu_instructions"]


def test_the_harness_runs_by_hand(tmp_path):
    # Benchmarks run compile_script() and the cached harness themselves: no result channel, so stats0.txt and
    # no seccomp filter.
    import subprocess

    from simulators.gemmini.build import build_runtime, harness_binary
    from simulators.gemmini.config import DEFAULT
    from simulators.gemmini.kernels import case
    from simulators.gemmini.simulator import compile_script, harness_exports, harness_main_source, solution_source

    spec = parse_kernel(MM)
    root = build_runtime(DEFAULT)
    (tmp_path / "solution.c").write_text(solution_source(spec, TILED))
    for a in spec.arrays:
        (tmp_path / f"in0_{a.name}.bin").write_bytes(case(spec, 0)[0][a.name].tobytes())
    subprocess.run(["/bin/sh", "-c", compile_script(root)], cwd=tmp_path, check=True)
    harness = harness_binary(root, harness_main_source(spec), harness_exports(spec))
    subprocess.run([str(harness), "1"], cwd=tmp_path, check=True, env={"PATH": "/usr/bin:/bin"})
    stats = dict(line.split() for line in (tmp_path / "stats0.txt").read_text().splitlines())
    assert int(stats["cycles"]) > 0 and stats["seccomp"] == "0" and stats["n_compute"] == "12"
    assert int(stats["cpu_instructions"]) > int(stats["cpu_basic_blocks"]) > 0  # block lengths were read
    assert not (tmp_path / "result.bin").exists()


def test_a_seed_does_not_see_the_previous_seeds_mvouts():
    # Each seed starts at command 0. An unfenced mvout, then a mvin of a scratch buffer that the previous seed
    # wrote late (and fenced): no hazard in this seed, so no error.
    code = "static int8_t scratch[DIM][MAT_DIM_J] __attribute__((aligned(64)));\n" + TILED.replace(
        "  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 1);\n",
        "  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 1);\n"
        "  mvin(&A[0][0], 8192, DIM, DIM);\n  mvout(&C[0][0], 8192, DIM, DIM);\n"
        "  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 2);\n  mvin3(scratch, 8208, DIM, DIM);\n"
        "  config_ld(MAT_DIM_K, MVIN_SCALE_IDENTITY, DIM, 0);\n  fence();\n",
    ).replace("  fence();\n}\n", "  mvout(scratch, 8192, DIM, DIM);\n  fence();\n}\n")
    r = SIM.run(code, MM, seeds=(0, 1, 2))
    assert r.correct, r.error
    # and a real hazard is still one: the same read right after its own unfenced write
    bad = code.replace(
        "  mvin3(scratch, 8208, DIM, DIM);\n",
        "  mvout(scratch, 8192, DIM, DIM);\n  mvin3(scratch, 8208, DIM, DIM);\n",
        1,
    )
    r = SIM.run(bad, MM, seeds=(0,))
    assert not r.correct and r.error.type == "hazard_error", r.error


def test_dma_to_the_candidates_own_static_buffer_works():
    # The candidate is a shared object: its static arrays are DRAM it may use.
    code = "static int8_t buf[DIM][MAT_DIM_J] __attribute__((aligned(64)));\n" + TILED.replace(
        "      mvout(&C[i][j], 1u << 31, DIM, DIM);\n",
        "      mvout(buf, 1u << 31, DIM, DIM);\n      fence();\n      mvin3(buf, 8192, DIM, DIM);\n"
        "      mvout(&C[i][j], 8192, DIM, DIM);\n",
    ).replace(
        "  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 1);\n",
        "  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 1);\n  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 2);\n",
    )
    r = SIM.run(code, MM, seeds=(0, 1))
    assert r.correct, r.error
    assert r.counters["dma_write_bytes"] > SIM.run(TILED, MM, seeds=(0,)).counters["dma_write_bytes"]


def test_a_declared_but_undefined_function_is_a_compile_error():
    code = "void helper(int);\n" + TILED.replace("  fence();\n}", "  helper(1);\n  fence();\n}")
    r = run(code)
    assert r.error.type == "compile_error" and "helper" in r.error.message
    assert r.error.line == code.splitlines().index("  helper(1);") + 1


def test_compile_errors_name_the_candidates_lines_not_the_prelude():
    # A declaration that conflicts with the harness's (the prelude declares solution() and the arrays): the
    # error is on the candidate's line 2, and our lines are named "<harness prelude>", never solution.c.
    code = "#include <stdint.h>\nvoid solution(int *A) { (void)A; }\n"
    r = run(code)
    assert r.error.type == "compile_error" and r.error.line == 2, r.error
    quoted = [int(n) for n in re.findall(r"solution\.c:(\d+)", r.error.message)]
    assert quoted and max(quoted) <= len(code.splitlines()), r.error.message
    assert "<harness prelude>" in r.error.message
