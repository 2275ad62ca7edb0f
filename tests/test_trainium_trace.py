"""Record and replay (nkisim/trace.py): a kernel's recorded NKI calls, replayed on the same inputs, give bitwise the
same outputs and the same profile as running the kernel directly, for our examples and for kernels whose Python
does awkward things (leaving a loop early, catching an API error, calling another kernel, comparing tensors).

Runs in a child process: it imports the `neuronxcc` shim, which the test process does not have on its path.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from simulators.trainium import simulator as trn_sim

# Python that exercises what a recorder could get wrong: identity of returned tensors, a loop left with break
# (its iterator is closed mid-way), an exception caught around an API call, a jit kernel called inside, nl.ds,
# nl.mgrid, par_dim, numpy scalars, ops passed as nl functions and numpy ufuncs, keyword arguments, in-place ops.
AWKWARD = """
@nki.jit
def helper(t, scale):
    return nl.multiply(t, scale)


@nki.jit
def solution(a_tensor, g_tensor):
    R, C = a_tensor.shape
    out = nl.ndarray((R, C), dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    g = nl.load(g_tensor.reshape((1, C)))
    acc = nl.zeros((nl.par_dim(128), C), dtype=nl.float32, buffer=nl.sbuf)
    assert acc is acc[...]
    for i in nl.affine_range(R // 128):
        if i == 1:
            break
        a = nl.load(a_tensor[nl.ds(i * 128, 128), :])
        try:
            nl.load(a_tensor[0:256, 0:C])  # more than 128 partitions: refused, and caught
        except Exception:
            pass
        sq = nisa.activation(op=nl.square, data=a)
        s = nisa.tensor_reduce(np.add, sq, axis=(1,), keepdims=True)
        r = nl.rsqrt(s * np.float32(1.0 / C))
        acc[...] += helper(a, r)
    ip, jf = nl.mgrid[0:128, 0:C]
    t = nl.multiply(acc[ip, jf], g.broadcast_to((128, C)), dtype=nl.float32)
    for i in nl.affine_range(R // 128):
        nl.store(out[i * 128 + ip, jf], value=t)
    return out
"""

SCRIPT = r"""
import json, sys
root = sys.argv[1]
sys.path[:0] = [root + "/simulators/trainium/shim", root]
import numpy as np
from simulators.trainium import replay, runner
from simulators.trainium.calibration import example_source
from simulators.trainium.kernels import parse_kernel
from simulators.trainium.nkisim import trace
from simulators.trainium.nkisim.api import run_kernel
import math
import neuronxcc.nki as nki, neuronxcc.nki.isa as nisa, neuronxcc.nki.language as nl, neuronxcc.nki.typing as nt

cases = json.loads(sys.argv[2])
res = {}
for name, source, kernel in cases:
    source = source or example_source(name)
    out = runner.record({"source": source, "kernel": kernel})
    status, _, data = out.partition(b"\n")
    if b"error" in status:
        res[name] = {"error": status.decode()}
        continue
    ns = {"nki": nki, "nl": nl, "nisa": nisa, "nt": nt, "np": np, "math": math, "par_dim": nl.par_dim,
          "range": nl.sequential_range}
    exec(compile(source, "solution.py", "exec"), ns)
    spec = parse_kernel(kernel)
    inputs = spec.inputs(3)
    want, s1 = run_kernel(ns["solution"].func, inputs)
    got, s2 = run_kernel(trace.Program(data, replay.names()), inputs)
    p1, p2 = replay._profile(s1), replay._profile(s2)
    res[name] = {
        "same_output": bool(np.array_equal(np.asarray(want).view(np.uint8), np.asarray(got).view(np.uint8))),
        "profile_diff": {k: [p1[k], p2.get(k)] for k in p1 if p1[k] != p2.get(k)},
        "entries": json.loads(status)["entries"],
    }
print(json.dumps(res))
"""

CASES = [  # example, code (None: the example's), small shape
    ("rmsnorm", None, "trainium/rmsnorm-256x512"),
    ("layernorm_v1", None, "trainium/layernorm-256x512"),
    ("layernorm_v2", None, "trainium/layernorm-256x512"),
    ("softmax", None, "trainium/softmax-256x512"),
    ("gemm_naive", None, "trainium/gemm-256x256x512-bf16"),
    ("gemm_opt", None, "trainium/gemm-256x256x512-bf16"),
    ("mamba_v1", None, "trainium/mamba-1x128x128x4"),
    ("attention_naive", None, "trainium/attention-128x512-bf16"),
    ("sdattention", None, "trainium/sdattention-512x64"),
    ("conv1d", None, "trainium/conv1d-2x128x256x3"),
    ("awkward", AWKWARD, "trainium/rmsnorm-256x64"),
]


@pytest.fixture(scope="module")
def replayed() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, trn_sim._ROOT, json.dumps(CASES)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_replay_gives_the_outputs_and_profile_of_a_direct_run(replayed, name):
    r = replayed[name]
    assert "error" not in r, r
    assert r["same_output"] and r["profile_diff"] == {} and r["entries"] > 0, r


def test_the_awkward_kernel_is_correct_through_the_sandbox():
    # The same kernel end to end: recorded in the confined child, replayed on secret inputs, judged.
    r = trn_sim.TrainiumSimulator().run(AWKWARD, "trainium/rmsnorm-256x64")
    assert r.error is not None and r.error.type == "wrong_output"  # it normalizes the first row tile only
    half = AWKWARD.replace("        if i == 1:\n            break\n", "")
    r = trn_sim.TrainiumSimulator().run(half, "trainium/rmsnorm-128x64")
    assert r.correct, r.error
