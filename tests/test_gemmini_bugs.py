"""Regression tests for the Gemmini defects of issue 13 (item 4); each failed on the code before the fix."""

from __future__ import annotations

from simulators.gemmini import GemminiSimulator

SIM = GemminiSimulator()

# u = -(Kinf^T x + d) on the FP32 4x4 config: d and x are moved in with mvin scale -1 (d into the accumulator).
NEGATED_MVIN = """
void solution(float Kinf[NX][NU], float x[NX][1], float d[NU][1], float u[NU][1]) {
  gemmini_extended3_config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 0, 1.0f, 1, 1, true, false, false);
  gemmini_extended3_config_ld(NU * sizeof(float), MVIN_SCALE_IDENTITY, false, 0);
  gemmini_extended3_config_ld(sizeof(float), -1.0f, false, 1);
  gemmini_extended3_config_ld(sizeof(float), -1.0f, false, 2);
  gemmini_config_st(sizeof(float));
  mvin(Kinf, 0, NU, NX);
  mvin2(x, 4, 1, NX);
  mvin3(d, 1u << 31, 1, NU);
  preload(4, (1u << 31) | (1u << 30), 1, NX, 1, NU);
  compute_preloaded(0, GARBAGE_ADDR, NU, NX, 4, 4);
  mvout(u, 1u << 31, 1, NU);
  fence();
}
"""


def test_fp32_accumulator_mvin_applies_the_mvin_scale():
    r = SIM.run(NEGATED_MVIN, "gemmini/tinympc-matvec-4x4", seeds=(0, 1, 2))
    assert r.correct, r.error


def test_intrinsics_are_statement_blocks_like_the_real_gemmini_h():
    # The real macros end in `{ asm volatile(...); }`, so a command followed by a statement without `;` compiles.
    code = """
void solution(int8_t A[16][16], int8_t B[16][16], int8_t C[16][16]) {
  int zero = 0;
  gemmini_config_ld(16) zero += 0;
  gemmini_extended_config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 0, 1, false, false)
  gemmini_config_st(16)
  gemmini_extended_mvin(A, 0, 16, 16)
  gemmini_extended_mvin2(B, 16, 16, 16)
  gemmini_extended_preload(16, 1u << 31, 16, 16, 16, 16)
  gemmini_extended_compute_preloaded(0, GARBAGE_ADDR, 16, 16, 16, 16)
  gemmini_extended_mvout(C, 1u << 31, 16, 16)
  gemmini_fence();
}
"""
    r = SIM.run(code, "gemmini/matmul-16x16x16")
    assert r.correct, r.error
