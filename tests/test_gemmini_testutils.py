"""gemmini_testutils.h helpers and gemmini_counter.h performance counters, as gemmini-rocc-tests programs use
them (issue 13, item 5), checked against numpy and against the model's own counts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from simulators.gemmini import GemminiSimulator

SIM = GemminiSimulator()
HEAD = '#include "include/gemmini_testutils.h"\n'


def run(code: str, kernel: str = "gemmini/matmul-16x16x16"):
    r = SIM.run(HEAD + code, kernel, seeds=(0, 1))
    assert r.correct, r.error
    return r


@pytest.mark.parametrize(
    "kernel, body",
    [
        ("gemmini/matmul-16x16x16", "matmul(A, B, Z, F); matscale(F, C, ACC_SCALE_IDENTITY);"),
        ("gemmini/matmul-16x16x16", "matmul_full(A, B, ZF, F); matshift(F, C, 0);"),
        ("gemmini/matmul-16x16x16-at", "matmul_A_transposed(A, B, Z, F); matscale(F, C, ACC_SCALE_IDENTITY);"),
        ("gemmini/matmul-16x16x16-bt", "matmul_B_transposed(A, B, Z, F); matshift(F, C, 0);"),
        ("gemmini/matmul-16x16x16-relu", "matmul(A, B, Z, F); matscale(F, T, ACC_SCALE_IDENTITY); matrelu(T, C);"),
        (
            "gemmini/matmul-16x16x16-at",
            "elem_t At[DIM][DIM]; transpose(A, At); matmul(At, B, Z, F); matscale(F, C, ACC_SCALE_IDENTITY);",
        ),
    ],
)
def test_testutils_matmuls_on_the_cpu_match_the_reference(kernel, body):
    code = f"""
void solution(elem_t A[DIM][DIM], elem_t B[DIM][DIM], elem_t C[DIM][DIM]) {{
  static elem_t Z[DIM][DIM], T[DIM][DIM];
  static full_t ZF[DIM][DIM], F[DIM][DIM];
  {body}
  if (!is_equal(C, C) || !MAT_IS_EQUAL(DIM, DIM, C, C)) C[0][0] ^= 1;
}}
"""
    r = run(code, kernel)
    assert r.counters["n_mvin"] == 0 and r.counters["cpu_instructions"] > 16 * 16 * 16  # CPU work is charged


def test_rounding_shift_scale_and_relu6_follow_the_hardware():
    code = r"""
void solution(elem_t A[DIM][DIM], elem_t B[DIM][DIM], elem_t C[DIM][DIM]) {
  full_t F[DIM][DIM]; elem_t T[DIM][DIM], U[DIM][DIM];
  for (int i = 0; i < DIM; i++) for (int j = 0; j < DIM; j++) F[i][j] = 4 * (i - 8) + j - 2;
  matshift(F, T, 2); matrelu6(T, U, 1);
  for (int j = 0; j < DIM; j++) printf("%d %d %d\n", (int)T[1][j], (int)U[1][j], (int)ACC_SCALE(F[1][j], 0.25f));
  full_t G[DIM][DIM];
  matmul(A, B, (elem_t (*)[DIM])T, G);  /* the bias path, then the answer */
  for (int i = 0; i < DIM; i++) for (int j = 0; j < DIM; j++) G[i][j] -= T[i][j];
  matscale(G, C, ACC_SCALE_IDENTITY);
}
"""
    r = run(code)
    rows = [tuple(map(int, ln.split())) for ln in r.stdout.strip().splitlines()][:16]  # the first seed
    x = np.array([4 * (1 - 8) + j - 2 for j in range(16)], dtype=np.int64)
    half_even = np.array([int(np.round(v / 4)) for v in x])  # numpy rounds half to even
    assert [t for t, _, _ in rows] == list(half_even)
    assert [u for _, u, _ in rows] == list(np.clip(half_even, 0, 6))
    assert [s for _, _, s in rows] == list(half_even)  # nearbyint(x * 0.25) is the same rounding


def test_rand_is_the_test_suites_generator():
    code = r"""
void solution(elem_t A[DIM][DIM], elem_t B[DIM][DIM], elem_t C[DIM][DIM]) {
  for (int i = 0; i < 5; i++) printf("%d\n", rand());
  full_t F[DIM][DIM]; static elem_t Z[DIM][DIM];
  matmul(A, B, Z, F); matscale(F, C, ACC_SCALE_IDENTITY);
}
"""
    got = [int(v) for v in run(code).stdout.split()[:5]]
    x, want = 777, []
    for _ in range(5):
        x = (x * 1664525 + 1013904223) % 2**32
        want.append(x >> 24)
    assert got == want


COUNTERS = r"""
void solution(elem_t A[DIM][DIM], elem_t B[DIM][DIM], elem_t C[DIM][DIM]) {
  counter_reset();
  counter_configure(0, LOAD_ACTIVE_CYCLE);
  counter_configure(1, RDMA_BYTES_REC);
  counter_configure(2, WDMA_BYTES_SENT);
  counter_configure(3, DMA_TLB_MISS_CYCLE);
  printf("start %u\n", counter_read(1));
  gemmini_config_ld(DIM * sizeof(elem_t));
  gemmini_config_st(DIM * sizeof(elem_t));
  gemmini_config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 0);
  gemmini_mvin(A, 0);
  gemmini_mvin(B, DIM);
  gemmini_preload(DIM, 1u << 31);
  gemmini_compute_preloaded(0, GARBAGE_ADDR);
  gemmini_mvout(C, 1u << 31);
  gemmini_fence();
  counter_snapshot_take();
  printf("snap %u %u %u %u\n", counter_read(0), counter_read(1), counter_read(2), counter_read(3));
  gemmini_mvin(A, 0);
  gemmini_fence();
  printf("still %u\n", counter_read(1));
  counter_snapshot_reset();
  printf("live %u\n", counter_read(1));
}
"""


def test_performance_counters_count_what_the_model_did_and_snapshots_freeze_them():
    r = run(COUNTERS)
    out = r.stdout
    assert re.search(r"^start 0$", out, re.M)
    snap = [int(v) for v in re.search(r"^snap (\d+) (\d+) (\d+) (\d+)$", out, re.M).groups()]
    assert snap[0] > 0  # the load unit was busy
    assert snap[1] == 2 * 16 * 16 and snap[2] == 16 * 16  # bytes each way, as the model moved them
    assert snap[3] == 0  # bare metal: no TLB misses
    assert int(re.search(r"^still (\d+)$", out, re.M).group(1)) == snap[1]
    assert int(re.search(r"^live (\d+)$", out, re.M).group(1)) == 3 * 16 * 16
    assert r.counters["dma_read_bytes"] == 3 * 16 * 16


def test_a_counter_index_out_of_range_is_a_structured_error():
    r = SIM.run(
        HEAD + "void solution(elem_t A[DIM][DIM], elem_t B[DIM][DIM], elem_t C[DIM][DIM]) { counter_read(9); }",
        "gemmini/matmul-16x16x16",
        seeds=(0,),
    )
    assert not r.correct and r.error.type == "constraint_error" and "counter index 9" in r.error.message
    assert r.error.line == 2  # the candidate line (its #include is line 1)
