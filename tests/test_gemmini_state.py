"""The scratchpad and accumulator start each seed with garbage, as on hardware (issue 13, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.gemmini import GemminiSimulator, vendor_code

SIM = GemminiSimulator()
EXO = Path(__file__).resolve().parents[2] / "shared" / "third_party" / "autocomp" / "gemmini-exo"

# One 16x16x16 step at a time; ZERO_FIRST selects whether the first k step overwrites C or adds to it.
STEP = """
void solution(int8_t A[MAT_DIM_I][MAT_DIM_K], int8_t B[MAT_DIM_K][MAT_DIM_J], int8_t C[MAT_DIM_I][MAT_DIM_J]) {
  config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);
  config_st(MAT_DIM_J);
  config_ld(MAT_DIM_K, MVIN_SCALE_IDENTITY, DIM, 0);
  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 1);
  for (int i = 0; i < MAT_DIM_I; i += DIM)
    for (int j = 0; j < MAT_DIM_J; j += DIM) {
      for (int k = 0; k < MAT_DIM_K; k += DIM) {
        mvin(&A[i][k], 0, DIM, DIM);
        mvin2(&B[k][j], DIM, DIM, DIM);
        preload(DIM, (1u << 31) | ((k || !ZERO_FIRST) ? (1u << 30) : 0), DIM, DIM, DIM, DIM);
        compute_preloaded(0, GARBAGE_ADDR, DIM, DIM, DIM, DIM);
      }
      mvout(&C[i][j], 1u << 31, DIM, DIM);
    }
  fence();
}
"""


def test_accumulating_into_rows_never_zeroed_is_wrong_output_naming_uninitialized_rows():
    code = "#define ZERO_FIRST 0\n" + STEP
    r = SIM.run(code, "gemmini/matmul-16x32x16")
    assert not r.correct
    assert r.error.type == "wrong_output"
    assert "uninitialized accumulator rows" in r.error.message
    assert "accumulating write" in r.error.message
    # the compute that adds into the preloaded C
    assert (
        r.error.line == code.splitlines().index("        compute_preloaded(0, GARBAGE_ADDR, DIM, DIM, DIM, DIM);") + 1
    )


def test_the_same_code_that_zeroes_its_rows_is_correct():
    r = SIM.run("#define ZERO_FIRST 1\n" + STEP, "gemmini/matmul-16x32x16")
    assert r.correct, r.error
    assert r.counters["uninit_reads"] == 0


def test_a_mvout_of_rows_nothing_wrote_is_wrong_output():
    code = """
void solution(int8_t A[16][16], int8_t B[16][16], int8_t C[16][16]) {
  config_st(16);
  mvout(C, 1u << 31, 16, 16);
  fence();
}
"""
    r = SIM.run(code, "gemmini/matmul-16x16x16")
    assert not r.correct and r.error.type == "wrong_output"
    assert "by a mvout" in r.error.message


def test_reading_garbage_that_never_reaches_the_output_is_still_correct():
    # A 16-row compute over rows of which only 8 were loaded; only the 8 defined output rows are stored.
    code = """
void solution(int8_t A[8][16], int8_t B[16][16], int8_t C[8][16]) {
  config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);
  config_st(16);
  config_ld(16, MVIN_SCALE_IDENTITY, DIM, 0);
  config_ld(16, MVIN_SCALE_IDENTITY, DIM, 1);
  mvin(A, 0, 16, 8);
  mvin2(B, 16, 16, 16);
  preload(16, 1u << 31, 16, 16, 16, 16);
  compute_preloaded(0, GARBAGE_ADDR, 16, 16, 16, 16);
  mvout(C, 1u << 31, 16, 8);
  fence();
}
"""
    r = SIM.run(code, "gemmini/matmul-8x16x16")
    assert r.correct, r.error
    assert r.counters["uninit_reads"] > 0


@pytest.mark.parametrize(
    "kernel",
    [
        "gemmini/matmul-64x48x80-bias-relu",
        "gemmini/matmul-40x50x70-at",
        "gemmini/conv-1x8x8x32x32",
        "gemmini/tinympc-forward-12x4x5",
        "gemmini/tinympc-backward-12x4x5",
    ],
)
@pytest.mark.parametrize("fsm", [True, False])
def test_the_vendor_library_never_reads_uninitialized_rows(kernel, fsm):
    r = SIM.run(vendor_code(kernel, fsm), kernel)
    assert r.correct, r.error
    assert r.counters["uninit_reads"] == 0


@pytest.mark.skipif(not EXO.is_dir(), reason="../shared/third_party/autocomp/gemmini-exo is absent")
@pytest.mark.parametrize("problem", [0, 2, 3])
@pytest.mark.parametrize("variant", ["exo_baseline", "exo_opt", "gemmini_baseline"])
def test_autocomp_exo_code_stays_correct(problem, variant):
    shapes = {0: "512x512x512", 2: "12544x256x64", 3: "3136x128x512"}
    path = EXO / f"sol{problem}_{variant}.c"
    if not path.is_file():
        pytest.skip(f"{path.name} is not in third_party")
    r = SIM.run(path.read_text(), f"gemmini/matmul-{shapes[problem]}", seeds=(0, 1), timeout=120)
    assert r.correct, r.error
