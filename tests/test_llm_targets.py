"""The target descriptions we give models must be true of our simulators: code written only from the idioms
the descriptions state (short-name intrinsics, address bits, weight reuse; PSUM accumulation, activation
eviction) runs correctly there."""

from __future__ import annotations

import pytest

from autocomp_env.core import Feedback, Kernel, Plan
from autocomp_env.llm.prompts import implementation_messages

GEMMINI_CODE = """\
void solution(int8_t A[64][64], int8_t B[64][64], int8_t C[64][64]) {
  config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, 0, 0);
  config_ld(64, MVIN_SCALE_IDENTITY, 16, 0);
  config_ld(64, MVIN_SCALE_IDENTITY, 16, 1);
  config_st(64);
  for (int i = 0; i < 4; i++) mvin(&A[i * 16][0], i * 64, 64, 16);
  for (int k = 0; k < 4; k++) mvin2(&B[k * 16][0], 256 + k * 64, 64, 16);
  for (int j = 0; j < 4; j++)
    for (int k = 0; k < 4; k++)
      for (int i = 0; i < 4; i++) {
        uint32_t c = 0x80000000 | (k ? 0x40000000 : 0) | (i * 64 + j * 16);
        if (i == 0) {
          preload(256 + k * 64 + j * 16, c, 16, 16, 16, 16);
          compute_preloaded(i * 64 + k * 16, GARBAGE_ADDR, 16, 16, 16, 16);
        } else {
          preload(GARBAGE_ADDR, c, 16, 16, 16, 16);
          compute_accumulated(i * 64 + k * 16, GARBAGE_ADDR, 16, 16, 16, 16);
        }
      }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) mvout(&C[i * 16][j * 16], 0x80000000 | (i * 64 + j * 16), 16, 16);
  fence();
}
"""

NKI_CODE = """\
@nki.jit
def solution(lhsT, rhs):
    K, M = lhsT.shape
    _, N = rhs.shape
    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)
    for m in nl.affine_range(M // 128):
        acc = nl.zeros((128, N), dtype=nl.float32, buffer=nl.psum)
        for k in nl.affine_range(K // 128):
            a = nl.load(lhsT[k * 128:(k + 1) * 128, m * 128:(m + 1) * 128])
            b = nl.load(rhs[k * 128:(k + 1) * 128, 0:N])
            acc[...] += nisa.nc_matmul(a, b)
        out = nisa.activation(nl.copy, acc, scale=1.0, dtype=lhsT.dtype)
        nl.store(result[m * 128:(m + 1) * 128, 0:N], value=out)
    return result
"""


def _prompt(kernel: Kernel) -> str:
    return implementation_messages(kernel, "", Plan("p"), Feedback())[-1]["content"]


def test_gemmini_description_idioms_run_on_the_simulator() -> None:
    sim = pytest.importorskip("simulators.gemmini").GemminiSimulator()
    kernel = Kernel("gemmini/matmul-64x64x64", "gemmini", "matmul", {}, 64**3, 1024.0, "cycles")
    text = _prompt(kernel)
    for idiom in ("0x80000000", "0xC0000000", "GARBAGE_ADDR", "compute_accumulated", "config_ld(dram_stride_bytes"):
        assert idiom in text
    result = sim.run(GEMMINI_CODE, kernel.name)
    assert result.correct, result.error
    assert result.latency >= sim.roofline(kernel.name)


def test_trainium_description_idioms_run_on_the_simulator() -> None:
    sim = pytest.importorskip("simulators.trainium").TrainiumSimulator()
    kernel = Kernel("trainium/gemm-256x256x256-bf16", "trainium", "gemm", {}, 256**3, 1.0, "us")
    text = _prompt(kernel)
    for idiom in ("+= nisa.nc_matmul", "nl.zeros(..., buffer=nl.psum)", "nisa.activation(op, data", "nl.shared_hbm"):
        assert idiom in text
    result = sim.run(NKI_CODE, kernel.name)
    assert result.correct, result.error


def test_every_registered_kernel_gets_a_specific_signature_and_prompts() -> None:
    import numpy as np

    from autocomp_env.llm.prompts import planning_messages, repair_messages

    try:
        from autocomp_env import kernels

        names = kernels.list_kernels()
    except Exception as e:
        pytest.skip(f"kernel registry unavailable: {e}")
    seen = set()
    for name in names:
        kernel = kernels.get_kernel(name)
        if (kernel.target, kernel.family) in seen:
            continue
        seen.add((kernel.target, kernel.family))
        family = kernels.family_of(kernel)
        code = family.starting_code(kernel)
        msgs, shown, _ = planning_messages(
            kernel, code, Feedback(latency=1.0), family.menu, None, np.random.default_rng(0)
        )
        text = msgs[-1]["content"]
        assert f"Kernel: {kernel.name}" in text and "with the signature of the original" not in text
        assert "arguments of the original kernel" not in text and shown
        assert code.strip() in repair_messages(kernel, code, Plan("p"), "wrong_output")[-1]["content"]
    assert {t for t, _ in seen} == {"gemmini", "trainium"}
