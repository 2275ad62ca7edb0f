"""More of the real gemmini.h API (issue 13, item 5), each checked against numpy by the simulator."""

from __future__ import annotations

import pytest

from simulators.gemmini import GemminiSimulator, vendor_code

SIM = GemminiSimulator()


@pytest.mark.parametrize(
    "kernel", ["gemmini/matmul-40x50x70-bias-relu", "gemmini/matmul-32x48x16-at", "gemmini/tinympc-matvec-12x4"]
)
def test_tiled_matmul_auto_with_the_cpu_dataflow_matches_numpy_without_accelerator_commands(kernel):
    code = vendor_code(kernel).replace(", WS);", ", CPU);")
    assert ", CPU);" in code
    r = SIM.run(code, kernel)
    assert r.correct, r.error
    assert r.counters["n_compute"] == 0 and r.counters["n_mvin"] == 0
    ws = SIM.run(vendor_code(kernel), kernel)
    assert r.latency > ws.latency  # the core is slower than the array
