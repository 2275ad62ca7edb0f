"""The candidate compiler is pinned (simulators/gemmini/toolchain.py): cycles do not depend on the host's gcc."""

from __future__ import annotations

from importlib import metadata

import pytest

from autocomp_env.evaluation import Evaluator
from autocomp_env.kernels import get_kernel
from simulators.gemmini import GemminiSimulator, toolchain

# CPU work (a scalar loop, address arithmetic) and accelerator work in one fixed candidate.
FIXED = """
void solution(int8_t A[MAT_DIM_I][MAT_DIM_K], int8_t B[MAT_DIM_K][MAT_DIM_J], int8_t C[MAT_DIM_I][MAT_DIM_J]) {
  volatile int sink = 0;
  for (int i = 0; i < 100; i++) sink += i * 3;
  config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);
  config_st(MAT_DIM_J);
  config_ld(MAT_DIM_K, MVIN_SCALE_IDENTITY, DIM, 0);
  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 1);
  for (int i = 0; i < MAT_DIM_I; i += DIM)
    for (int j = 0; j < MAT_DIM_J; j += DIM) {
      for (int k = 0; k < MAT_DIM_K; k += DIM) {
        mvin(&A[i][k], 0, DIM, DIM);
        mvin2(&B[k][j], DIM, DIM, DIM);
        preload(DIM, (1u << 31) | (k ? (1u << 30) : 0), DIM, DIM, DIM, DIM);
        compute_preloaded(0, GARBAGE_ADDR, DIM, DIM, DIM, DIM);
      }
      mvout(&C[i][j], 1u << 31, DIM, DIM);
    }
  fence();
}
"""
# Golden figures: they change only with the pinned compiler or the timing model (then bump
# GemminiSimulator.version and update them here, saying why in the commit).
GOLDEN_CPU_INSTRUCTIONS = 1048  # gsim-count: alignment padding executed as nops is not charged (was 1060)
GOLDEN_CYCLES = 2939  # gemmini-9: bank ports, the loop arbiter, RISC-V-based CPU cost (was 2941)


def test_the_cost_of_a_fixed_candidate_is_a_golden_number():
    r = GemminiSimulator().run(FIXED, "gemmini/matmul-32x64x32", seeds=(0,))
    assert r.correct, r.error
    assert r.counters["cpu_instructions"] == GOLDEN_CPU_INSTRUCTIONS
    assert r.latency == GOLDEN_CYCLES


def test_the_toolchain_is_in_the_simulator_version_and_the_cache_key(monkeypatch):
    assert toolchain.TOOLCHAIN in GemminiSimulator.version
    assert toolchain.ZIG_VERSION in toolchain.TOOLCHAIN
    ev = Evaluator()
    kernel = get_kernel("gemmini/matmul-32x64x32")
    before = ev.key(kernel, FIXED)
    monkeypatch.setattr(GemminiSimulator, "version", GemminiSimulator.version.replace(toolchain.TOOLCHAIN, "zig9"))
    assert ev.key(kernel, FIXED) != before


def test_another_zig_version_is_a_clear_error(monkeypatch):
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "0.0.1" if name == "ziglang" else real(name))
    toolchain.zig.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=f"pinned to {toolchain.ZIG_VERSION}"):
            toolchain.zig()
    finally:
        monkeypatch.undo()
        toolchain.zig.cache_clear()
    assert toolchain.zig().is_file()
