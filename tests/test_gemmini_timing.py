"""Timing-model invariants on small GEMMs: lower bound, DMA cost, double buffering, wide mvins, loop_ws, fences."""

from __future__ import annotations

import helpers
import pytest

from simulators.gemmini import GemminiConfig, GemminiSimulator, vendor_code

K64 = "gemmini/matmul-64x128x64"
SIM = GemminiSimulator()
# The accelerator-side invariants are checked with free CPU code, so the address arithmetic of each variant
# does not blur them; CPU cost has its own test.
HW = GemminiSimulator(GemminiConfig(cpu_centicycles_per_instruction=0, cpu_cycles_per_block=0))

TEMPLATE = """
void solution(int8_t A[MAT_DIM_I][MAT_DIM_K], int8_t B[MAT_DIM_K][MAT_DIM_J], int8_t C[MAT_DIM_I][MAT_DIM_J]) {
  config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);
  config_st(MAT_DIM_J);
  config_ld(MAT_DIM_K, MVIN_SCALE_IDENTITY, DIM, 0);
  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, MAT_DIM_K, 1);
  const int W = WIDE ? 4 : 1;
  for (int k = 0; k < MAT_DIM_K; k += DIM)
    for (int j = 0; j < MAT_DIM_J; j += W * DIM)
      mvin2(&B[k][j], BBASE + ((j / DIM) * (MAT_DIM_K / DIM) + k / DIM) * DIM, W * DIM, DIM);
  int n = 0;
  for (int i = 0; i < MAT_DIM_I; i += DIM) {
    uint32_t a_base = DBUF ? ((i / DIM) % 2) * 1024 : 0;
    for (int k = 0; k < MAT_DIM_K; k += W * DIM) mvin(&A[i][k], a_base + (k / DIM) * DIM, W * DIM, DIM);
    for (int e = 0; e < EXTRA; e++)
      for (int k = 0; k < MAT_DIM_K; k += DIM) mvin(&A[i][k], a_base + (k / DIM) * DIM, DIM, DIM);
    for (int j = 0; j < MAT_DIM_J; j += DIM) {
      uint32_t c = (1u << 31) | ((DBUF ? n++ % 2 : 0) * DIM);
      for (int k = 0; k < MAT_DIM_K; k += DIM) {
        preload(BBASE + ((j / DIM) * (MAT_DIM_K / DIM) + k / DIM) * DIM, c | (k ? (1u << 30) : 0), DIM, DIM, DIM, DIM);
        compute_preloaded(a_base + (k / DIM) * DIM, GARBAGE_ADDR, DIM, DIM, DIM, DIM);
      }
      mvout(&C[i][j], c, DIM, DIM);
      if (FENCE) fence();
    }
  }
  fence();
}
"""


# One 16x16x16 step at a time into the same rows, a fence after each output tile.
NAIVE = helpers.script("bench_gemmini").NAIVE


def variant(wide=1, dbuf=1, extra=0, fence=0, bbase=4096) -> str:
    defs = f"#define WIDE {wide}\n#define DBUF {dbuf}\n#define EXTRA {extra}\n#define FENCE {fence}\n#define BBASE {bbase}\n"
    return defs + TEMPLATE


def cycles(code: str, kernel: str = K64, sim: GemminiSimulator = HW) -> float:
    r = sim.run(code, kernel, seeds=(0,))
    assert r.correct, r.error
    return r.latency


@pytest.fixture(scope="module")
def base() -> float:
    return cycles(variant())


def test_never_faster_than_the_roofline(base):
    roof = SIM.roofline(K64)
    assert base >= roof
    for fsm in (True, False):
        assert cycles(vendor_code(K64, fsm)) >= roof
        assert cycles(vendor_code(K64, fsm), sim=SIM) >= roof


def test_cpu_instructions_cost_cycles():
    code = variant()
    r = SIM.run(code, K64, seeds=(0,))
    assert r.counters["cpu_instructions"] > 0
    assert r.latency > cycles(code)  # the same program with free CPU code
    busy = code.replace("  int n = 0;", "  int n = 0;\n  for (volatile int w = 0; w < 2000; w++) {}")
    assert cycles(busy, sim=SIM) > r.latency


def test_more_dma_traffic_is_never_cheaper(base):
    assert cycles(variant(extra=1)) > base
    assert cycles(variant(extra=2)) >= cycles(variant(extra=1))


def test_double_buffering_helps(base):
    assert cycles(variant(dbuf=0)) > base


def test_64_column_mvins_help(base):
    assert cycles(variant(wide=0)) > base


def test_a_fence_costs(base):
    assert cycles(variant(fence=1)) > base


def test_bank_conflicts_cost(base):
    assert cycles(variant(bbase=512)) > base  # B in A's bank: each fused row takes two cycles


def test_memory_latency_is_monotonic(base):
    slow = GemminiSimulator(GemminiConfig(mem_latency_rd=200, mem_latency_wr=200, cpu_centicycles_per_instruction=0))
    assert cycles(variant(), sim=slow) > base


def test_loop_ws_beats_the_software_path_and_hand_tiling():
    # several tiles, so the FSM can load the next tile into the other scratchpad half while it computes (a
    # single tile's loads write the banks its computes read, and writes take the port)
    k = "gemmini/matmul-128x256x128"
    fsm = cycles(vendor_code(k, True), k)
    assert fsm < cycles(vendor_code(k, False), k)
    assert fsm < cycles(variant(), k)


def test_utilization_figures_are_sane():
    k = "gemmini/matmul-128x256x256"
    r = SIM.run(vendor_code(k, True), k, seeds=(0,))
    assert r.utilization > 0.8
    r2 = SIM.run(NAIVE, k, seeds=(0,))
    assert r2.correct and r2.utilization < 0.3
    c = r.counters
    assert c["busy_ex"] <= c["cycles"] and c["fsm_instructions"] > 0 and c["n_loop_ws"] >= 1
