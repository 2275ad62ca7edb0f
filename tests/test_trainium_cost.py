"""Invariants of the Trainium timing model (in process, small shapes)."""

import dataclasses
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from simulators.trainium import TrainiumConfig, TrainiumSimulator, parse_kernel  # noqa: E402
from simulators.trainium.calibration import load_example  # noqa: E402
from simulators.trainium.nkisim import isa as nisa  # noqa: E402
from simulators.trainium.nkisim import language as nl  # noqa: E402
from simulators.trainium.nkisim.api import _run_once, run_kernel  # noqa: E402
from simulators.trainium.nkisim.typing import Placeholder  # noqa: E402

CFG = TrainiumConfig()


def session(f, *args, cfg=None, functional=False):
    args = [Placeholder(a.shape, a.dtype) if isinstance(a, np.ndarray) and not functional else a for a in args]
    return run_kernel(f, args, cfg=cfg, functional=functional)[1]


def load_only(view=lambda a: a):
    def k(a):
        nl.load(view(a))

    return k


def z(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


# -- an instruction never costs less than its published formula ----------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4096), op=st.sampled_from(["act", "tt", "ts", "scan", "recip", "reduce", "copy"]))
def test_vector_and_scalar_ops_cost_at_least_their_formula(n, op):
    def k(a):
        x = nl.load(a)
        if op == "act":
            nisa.activation(op=nl.exp, data=x)
        elif op == "tt":
            nisa.tensor_tensor(x, x, op=np.add)
        elif op == "ts":
            nisa.tensor_scalar(x, np.add, 1.0, op1=np.multiply, operand1=2.0)
        elif op == "scan":
            nisa.tensor_tensor_scan(x, x, initial=0, op0=np.multiply, op1=np.add)
        elif op == "recip":
            nisa.reciprocal(x)
        elif op == "reduce":
            nisa.tensor_reduce(np.add, x, axis=(1,))
        else:
            nisa.tensor_copy(x)

    s = session(k, z(128, n))
    formula = {  # engine, cycles (research §3.1), fp32 operands in SBUF
        "act": ("scalar", max(64, n)),
        "tt": ("vector", max(64, 2 * n)),
        "ts": ("vector", max(64, n)),
        "scan": ("vector", max(64, 2 * n)),
        "recip": ("vector", max(64, 8 * n)),
        "reduce": ("vector", n),
        "copy": ("vector", max(64, n)),
    }[op]
    eng, cycles = formula
    if op == "copy" and s.tl.count["scalar"]:
        eng = "scalar"  # an engine-less tensor_copy goes to whichever of VectorE / ScalarE finishes it first
    freq = {"vector": CFG.f_vector, "scalar": CFG.f_scalar}[eng]
    assert s.tl.busy[eng] >= cycles / freq - 1e-9
    assert s.tl.count[eng] == 1


@pytest.mark.parametrize("dtype,m,n,factor", [(np.float32, 128, 512, 4), ("bf16", 128, 512, 1), ("bf16", 32, 16, 1)])
def test_matmul_costs_at_least_its_formula(dtype, m, n, factor):
    dt = nl.bfloat16 if dtype == "bf16" else np.dtype(dtype)

    def k(a, b):
        for _ in nl.sequential_range(4):
            nisa.nc_matmul(nl.load(a), nl.load(b))

    s = session(k, z(128, m, dtype=dt), z(128, n, dtype=dt))
    assert s.tl.count["tensor"] == 4
    assert s.tl.busy["tensor"] >= 4 * factor * max(min(64, m), n) / CFG.f_tensor
    assert s.tl.c["matmul_flops"] == 4 * 2 * 128 * m * n


def test_a_dma_is_never_faster_than_the_dma_bandwidth_plus_latency():
    s = session(load_only(), z(128, 4096))
    nbytes = 128 * 4096 * 4
    assert s.tl.end >= nbytes / (CFG.dma_engines * CFG.dma_bw_bytes_per_ns) + CFG.dma_latency_ns
    assert s.tl.c["hbm_read_bytes"] == nbytes


# -- overlap, chunking, dependencies, buffers, spills ------------------------------------------------------------
def _pipeline(rng_fn):
    def k(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        for i in rng_fn(a.shape[0] // 128):
            t = nl.load(a[i * 128 : (i + 1) * 128, :])
            nl.store(out[i * 128 : (i + 1) * 128, :], value=nl.exp(nl.multiply(t, 2.0)))
        return out

    return k


def test_overlapping_dma_with_compute_helps():
    a = z(128 * 8, 2048)
    par = session(_pipeline(nl.affine_range), a)
    one = dataclasses.replace(CFG, affine_buffers=1, sequential_buffers=1)  # no multi-buffering: no overlap
    seq = session(_pipeline(nl.sequential_range), a, cfg=one)
    assert par.tl.latency_us() < seq.tl.latency_us()
    # sequential loops get (fewer) rotating buffers too: the DMA of the next iteration still overlaps
    assert session(_pipeline(nl.sequential_range), a).tl.latency_us() < seq.tl.latency_us()
    busy_sum = sum(par.tl.busy.values()) + par.tl.dma_busy / CFG.dma_engines
    assert par.tl.end < busy_sum  # engines really ran concurrently


def test_larger_dma_chunks_help():
    contiguous = session(load_only(lambda a: a[0:128, 0:1024]), z(128, 1024))
    strided = session(load_only(lambda b: b[0:128, 0:16, 0:64]), z(128, 16, 128))  # same bytes, 256 B chunks
    assert contiguous.tl.c["hbm_read_bytes"] == strided.tl.c["hbm_read_bytes"]
    assert contiguous.tl.latency_us() < strided.tl.latency_us()
    assert contiguous.tl.dma_busy < strided.tl.dma_busy


def test_dependent_ops_serialize_and_independent_engines_overlap():
    def chain(a):
        x = nl.load(a)
        for _ in nl.static_range(4):
            x = nisa.tensor_scalar(x, np.add, 1.0)

    def split(a):
        x = nl.load(a)
        nisa.tensor_scalar(x, np.add, 1.0)
        nisa.activation(op=nl.exp, data=x)

    s = session(chain, z(128, 1024))
    per = 1024 / CFG.f_vector + CFG.pipe_vector / CFG.f_vector
    assert s.tl.end >= s.tl.free["vector"] and s.tl.busy["vector"] == pytest.approx(4 * 1024 / CFG.f_vector)
    dma_done = s.tl.end - 4 * per
    assert dma_done >= CFG.dma_latency_ns  # the chain started only after the load landed
    p = session(split, z(128, 1024))
    only_dma = session(load_only(), z(128, 1024))
    serial = p.tl.busy["vector"] + p.tl.busy["scalar"]
    assert p.tl.end - only_dma.tl.end < serial  # VectorE and ScalarE worked at the same time


def test_more_rotating_buffers_help_the_naive_gemm():
    f = load_example("gemm_naive")
    args = [Placeholder(*a) for a in parse_kernel("trainium/gemm-256x1024x1024-bf16").input_shapes()]
    one = run_kernel(f, args, cfg=TrainiumConfig(affine_buffers=1), functional=False)[1].tl.latency_us()
    three = run_kernel(f, args, cfg=TrainiumConfig(affine_buffers=3), functional=False)[1].tl.latency_us()
    assert three < one


def _hold(n_tiles):
    def k(a):
        out = nl.ndarray((128, 4096), nl.float32, buffer=nl.shared_hbm)
        tiles = [nl.load(a[i]) for i in range(n_tiles)]  # all live until the end
        acc = tiles[0]
        for t in tiles[1:]:
            acc = nl.add(acc, t)
        nl.store(out, value=acc)
        return out

    return k


def test_over_capacity_sbuf_spills_instead_of_failing():
    a = z(16, 128, 4096)  # 16 KiB per partition per tile; SBUF holds 176 KiB
    fits = session(_hold(6), a)
    spills = session(_hold(14), a)
    assert fits.tl.c["spill_save_bytes"] == 0 and fits.spilled_allocs == 0
    assert spills.tl.c["spill_save_bytes"] > 0 and spills.spilled_allocs > 0
    assert spills.peak["sbuf"] > CFG.sbuf_partition_bytes
    per_tile = (spills.tl.latency_us() - fits.tl.latency_us()) / 8
    assert per_tile > 2 * 128 * 4096 * 4 / (CFG.dma_engines * CFG.dma_bw_bytes_per_ns) / 1000  # reload + save


# -- whole kernels ---------------------------------------------------------------------------------------------------
EXAMPLES = [
    ("rmsnorm", "trainium/rmsnorm-300x512"),
    ("layernorm_v1", "trainium/layernorm-256x1024"),
    ("layernorm_v2", "trainium/layernorm-256x1024"),
    ("softmax", "trainium/softmax-256x512"),
    ("gemm_naive", "trainium/gemm-256x512x1024-bf16"),
    ("gemm_opt", "trainium/gemm-256x1024x1024-bf16"),
    ("mamba_v1", "trainium/mamba-1x128x256x4"),
    ("attention_naive", "trainium/attention-128x512-bf16"),
    ("sdattention", "trainium/sdattention-512x64"),
    ("conv1d", "trainium/conv1d-2x128x256x3"),
]


@pytest.mark.parametrize("example,kernel", EXAMPLES)
def test_examples_are_correct_deterministic_and_above_roofline(example, kernel):
    spec = parse_kernel(kernel)
    f = load_example(example)
    args = spec.inputs(3)
    out, s = run_kernel(f, args, functional=True)
    ok, msg = spec.check(out, spec.reference(args))
    assert ok, msg
    shapes = [Placeholder(*a) if isinstance(a, tuple) else a for a in spec.input_shapes()]
    t1 = run_kernel(f, shapes, functional=False)[1].tl.profile()
    t2 = run_kernel(f, shapes, functional=False)[1].tl.profile()
    assert t1 == t2 == s.tl.profile()  # timing-only traces what the functional run traced, deterministically
    assert t1["latency_us"] > TrainiumSimulator().roofline(kernel)


def test_vector_and_gpsimd_share_the_sbuf_port_but_scalar_does_not():
    def two(engine):
        def k(a, b):
            x = nl.load(a)  # both copies become ready at the same moment
            nisa.tensor_copy(x, engine=nisa.vector_engine)
            nisa.tensor_copy(x, engine=engine)

        return k

    a = z(128, 2048)
    gp = session(two(nisa.gpsimd_engine), a, a)
    sc = session(two(nisa.scalar_engine), a, a)
    one = 2048 / CFG.f_vector
    assert gp.tl.busy["gpsimd"] > 0 and sc.tl.busy["scalar"] > 0
    assert gp.tl.end - sc.tl.end > 0.9 * min(one, 2048 / CFG.f_gpsimd)  # GpSimd waited for VectorE's SBUF access


def test_tiles_kept_alive_across_iterations_get_their_own_buffers():
    def k(a):
        out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
        tiles = []
        for i in nl.sequential_range(8):  # one buffer per site (cfg below), but all 8 tiles stay live
            tiles.append(nl.load(a[i]))
        acc = tiles[0]
        for t in tiles[1:]:
            acc = nl.add(acc, t)
        nl.store(out, value=acc)
        return out

    args = [Placeholder((8, 128, 512), np.dtype(np.float32))]
    one = dataclasses.replace(CFG, sequential_buffers=1)
    first = _run_once(k, args, None, one, False, (), frozenset(), frozenset())[1]
    assert len(first.overlapping_rotations()) == 7  # seen in the first trace (each load waited for the last) ...
    final = run_kernel(k, args, cfg=one, functional=False)[1]
    # ... so in the final trace the 8 loads overlap: at least 7 DMA latencies saved
    assert final.tl.latency_us() < first.tl.latency_us() - 7 * CFG.dma_latency_ns / 1000
