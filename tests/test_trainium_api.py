"""The NKI API of the Trainium simulator, in process: each call against numpy, bf16 rounding, constraint errors."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from simulators.trainium.nkisim import isa as nisa  # noqa: E402
from simulators.trainium.nkisim import language as nl  # noqa: E402
from simulators.trainium.nkisim.api import benchmark, jit, run_kernel, simulate_kernel  # noqa: E402
from simulators.trainium.nkisim.runtime import ConstraintError  # noqa: E402
from simulators.trainium.nkisim.typing import tensor as nt_tensor  # noqa: E402

BF16 = np.dtype(ml_dtypes.bfloat16)
rng = np.random.default_rng(0)


def run(f, *args):
    out, _ = run_kernel(f, list(args))
    return out


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_load_store_slices_arange_and_mask():
    a = f32(200, 64)

    def k(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        ip, jf = nl.arange(128)[:, None], nl.arange(64)[None, :]
        for i in nl.affine_range(2):
            t = nl.load(a[i * 128 + ip, jf], mask=(i * 128 + ip < 200))
            nl.store(out[i * 128 + ip, jf], value=t, mask=(i * 128 + ip < 200))
        return out

    np.testing.assert_array_equal(run(k, a), a)

    def k2(a):
        out = nl.ndarray((64, 32), a.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=nl.load(a[10:74, 16:48]))
        return out

    np.testing.assert_array_equal(run(k2, a), a[10:74, 16:48])


def test_elementwise_and_partition_vector_broadcast():
    a, b = f32(128, 32), f32(128, 32)

    def k(a, b):
        out = nl.ndarray((6, 128, 32), nl.float32, buffer=nl.shared_hbm)
        x, y = nl.load(a), nl.load(b)
        s = nl.sum(x, axis=[1])  # shape (128,): a per-partition scalar
        nl.store(out[0], value=nl.add(x, y))
        nl.store(out[1], value=x * y - 2.0)
        nl.store(out[2], value=nl.multiply(x, s))
        nl.store(out[3], value=nl.exp(x) / (1.0 + nl.square(y)))
        nl.store(out[4], value=nl.maximum(x, y))
        nl.store(out[5], value=nl.tanh(x))
        return out

    o = run(k, a, b)
    s = a.sum(1, keepdims=True)
    for got, want in zip(
        o, [a + b, a * b - 2, a * s, np.exp(a) / (1 + b * b), np.maximum(a, b), np.tanh(a)], strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_partition_broadcast_of_a_row():
    a, g = f32(128, 16), f32(1, 16)

    def k(a, g):
        out = nl.ndarray((2, 128, 16), nl.float32, buffer=nl.shared_hbm)
        x, gt = nl.load(a), nl.load(g)
        nl.store(out[0], value=nl.multiply(x, gt))
        nl.store(out[1], value=gt.broadcast_to((128, 16)))
        return out

    o = run(k, a, g)
    np.testing.assert_allclose(o[0], a * g, rtol=1e-6)
    np.testing.assert_array_equal(o[1], np.broadcast_to(g, (128, 16)))


def test_reductions():
    a = f32(64, 8, 16)

    def k(a):
        out = nl.ndarray((64, 4), nl.float32, buffer=nl.shared_hbm)
        x = nl.load(a)
        r = nl.ndarray((64, 4), nl.float32)
        r[:, 0:1] = nl.sum(x, axis=[1, 2], keepdims=True)
        r[:, 1:2] = nl.max(x, axis=(1, 2), keepdims=True)
        r[:, 2:3] = nl.mean(x, axis=[1, 2], keepdims=True)
        r[:, 3:4] = nisa.tensor_reduce(np.min, x, axis=(1, 2), keepdims=True, negate=True)
        nl.store(out, value=r)
        return out

    o = run(k, a)
    want = np.stack([a.sum((1, 2)), a.max((1, 2)), a.mean((1, 2)), -a.min((1, 2))], 1)
    np.testing.assert_allclose(o, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConstraintError, match="partition"):
        run(lambda a: nl.sum(nl.load(a), axis=0), a)


@pytest.mark.parametrize("transpose_x", [True, False])
def test_matmul_accumulates_in_psum_in_fp32(transpose_x):
    K, M, N = 256, 64, 96
    lhsT = f32(K, M).astype(BF16)
    rhs = f32(K, N).astype(BF16)
    lhs = np.ascontiguousarray(lhsT.T)

    def k(x, y):
        out = nl.ndarray((M, N), nl.float32, buffer=nl.shared_hbm)
        ps = nl.zeros((M, N), nl.float32, buffer=nl.psum)
        for kk in nl.affine_range(K // 128):
            yt = nl.load(y[kk * 128 : (kk + 1) * 128, :])
            if transpose_x:
                ps += nl.matmul(nl.load(x[kk * 128 : (kk + 1) * 128, :]), yt, transpose_x=True)
            else:
                ps += nl.matmul(nl.load(x[:, kk * 128 : (kk + 1) * 128]), yt)
        nl.store(out, value=nl.copy(ps))
        return out

    o = run(k, lhsT if transpose_x else lhs, rhs)
    want = lhsT.astype(np.float32).T @ rhs.astype(np.float32)
    np.testing.assert_allclose(o, want, rtol=1e-5, atol=1e-4)


def test_nc_matmul_psum_index_accumulation_and_overwrite():
    a, b = f32(128, 128), f32(128, 512)

    def k(a, b):
        out = nl.ndarray((2, 128, 512), nl.float32, buffer=nl.shared_hbm)
        x, y = nl.load(a), nl.load(b)
        ps = nl.zeros((2, nl.par_dim(128), 512), nl.float32, buffer=nl.psum)
        ps[0, :, :] += nisa.nc_matmul(x, y)
        ps[0, :, :] += nisa.nc_matmul(x, y)
        ps[1] = nisa.nc_matmul(x, y)
        ps[1] = nisa.nc_matmul(x, y)  # plain assignment overwrites
        nl.store(out[0], value=nl.copy(ps[0]))
        nl.store(out[1], value=nl.copy(ps[1]))
        return out

    o = run(k, a, b)
    np.testing.assert_allclose(o[0], 2 * a.T @ b, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(o[1], a.T @ b, rtol=1e-4, atol=1e-3)


def test_isa_activation_tensor_scalar_tensor_tensor():
    a, s, c = f32(128, 64), f32(128, 1), f32(128, 1)

    def k(a, s, c):
        out = nl.ndarray((5, 128, 64), nl.float32, buffer=nl.shared_hbm)
        x, st, ct = nl.load(a), nl.load(s), nl.load(c)
        red = nl.ndarray((128, 1), nl.float32)
        nl.store(out[0], value=nisa.activation(op=nl.exp, data=x, scale=st, bias=ct, reduce_res=red))
        nl.store(out[1], value=nisa.tensor_scalar(x, np.subtract, st, op1=np.multiply, operand1=3.0))
        nl.store(out[2], value=nisa.tensor_scalar(x, np.subtract, 1.0, reverse0=True))
        nl.store(out[3], value=nisa.tensor_tensor(x, x, op=np.maximum))
        nl.store(out[4], value=nisa.tensor_copy(red.broadcast_to((128, 64))))
        return out

    o = run(k, a, s, c)
    e = np.exp(a * s + c)
    np.testing.assert_allclose(o[0], e, rtol=1e-5)
    np.testing.assert_allclose(o[1], (a - s) * 3, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(o[2], 1 - a, rtol=1e-6)
    np.testing.assert_array_equal(o[3], a)
    np.testing.assert_allclose(o[4], np.broadcast_to(e.sum(1, keepdims=True), (128, 64)), rtol=1e-5)


def test_scan_reciprocal_transpose_select_iota_bn_stats():
    a, b = (rng.random((32, 48)).astype(np.float32) + 0.5 for _ in range(2))

    def k(a, b):
        out = nl.ndarray((5, 32, 48), nl.float32, buffer=nl.shared_hbm)
        x, y = nl.load(a), nl.load(b)
        nl.store(out[0], value=nisa.tensor_tensor_scan(x, y, initial=0.5, op0=np.multiply, op1=np.add))
        nl.store(out[1], value=nisa.reciprocal(x))
        ip, jf = nl.arange(32)[:, None], nl.arange(48)[None, :]
        nl.store(out[2], value=nisa.affine_select(ip >= jf, x, -1.0))
        nl.store(out[3], value=nisa.iota(ip * 48 + jf, dtype=nl.float32))
        st = nl.ndarray((32, 12), nl.float32)
        st[:, 0:6] = nisa.bn_stats(x[:, 0:24])
        st[:, 6:12] = nisa.bn_stats(x[:, 24:48])
        mv = nisa.bn_aggr(st)
        nl.store(out[4, :, 0:2], value=mv)
        return out

    o = run(k, a, b)
    h, want = np.full(32, 0.5, np.float64), np.empty((32, 48))
    for i in range(48):
        h = a[:, i] * h + b[:, i]
        want[:, i] = h
    np.testing.assert_allclose(o[0], want, rtol=1e-5)
    np.testing.assert_allclose(o[1], 1 / a, rtol=1e-6)
    ip, jf = np.ogrid[0:32, 0:48]
    np.testing.assert_array_equal(o[2], np.where(ip >= jf, a, -1.0))
    np.testing.assert_array_equal(o[3], ip * 48 + jf)
    np.testing.assert_allclose(o[4][:, 0], a.mean(1), rtol=1e-5)
    np.testing.assert_allclose(o[4][:, 1], a.var(1), rtol=1e-4)


def test_transposes_and_dma_copy():
    a = f32(32, 32)
    b = f32(64, 128)

    def k(a, b):
        out = nl.ndarray((32, 32), nl.float32, buffer=nl.shared_hbm)
        out2 = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        out3 = nl.ndarray((64, 128), nl.float32, buffer=nl.shared_hbm)
        nl.store(out, value=nisa.nc_transpose(nl.load(a), engine=nisa.vector_engine))
        nl.store(out2, value=nl.copy(nl.transpose(nl.load(b))))
        nisa.dma_copy(dst=out3, src=b)
        return out, out2, out3

    o, o2, o3 = run(k, a, b)
    np.testing.assert_array_equal(o, a.T)
    np.testing.assert_array_equal(o2, b.T)
    np.testing.assert_array_equal(o3, b)


def test_load_transpose2d_and_bf16_load_cast():
    a = f32(64, 128)

    def k(a):
        out = nl.ndarray((128, 64), nl.bfloat16, buffer=nl.shared_hbm)
        nl.store(out, value=nl.load_transpose2d(a, dtype=nl.bfloat16))
        return out

    o = run(k, a)
    assert o.dtype == BF16
    np.testing.assert_array_equal(o, a.T.astype(BF16))


def test_bf16_rounding_is_round_to_nearest_even():
    x = np.array([[1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-9, -(1 + 3 * 2**-8)]], np.float32)

    def k(x):
        out = nl.ndarray(x.shape, nl.bfloat16, buffer=nl.shared_hbm)
        nl.store(out, value=nl.copy(nl.load(x), dtype=nl.bfloat16))
        return out

    o = run(k, x).astype(np.float32)
    np.testing.assert_array_equal(o, [[1.0, 1 + 2**-6, 1.0, -(1 + 2**-6)]])


def test_bf16_arithmetic_rounds_each_result():
    a = np.full((1, 4), 1.0, np.float32).astype(BF16)
    e = np.full((1, 4), 3 * 2**-10, np.float32).astype(BF16)  # below half an ulp of 1.0; twice it is above

    def k(a, e):
        out = nl.ndarray((1, 4), nl.bfloat16, buffer=nl.shared_hbm)
        x, y = nl.load(a), nl.load(e)
        s = nl.add(x, y, dtype=nl.bfloat16)  # rounds back to 1.0; with one final rounding 1 + 2y -> 1 + 2^-7
        nl.store(out, value=nl.add(s, y, dtype=nl.bfloat16))
        return out

    np.testing.assert_array_equal(run(k, a, e).astype(np.float32), np.ones((1, 4)))


def test_dtype_promotion():
    a = np.ones((4, 4), BF16)

    def k(a):
        x = nl.load(a)
        return (x + x).dtype, (x + 1.0).dtype, nl.add(x, 1.0, dtype=nl.bfloat16).dtype

    assert run(k, a) == (BF16, np.dtype(np.float32), BF16)


# -- constraint errors ---------------------------------------------------------------------------------------------
def _err(f, *args):
    with pytest.raises(ConstraintError) as e:
        run(f, *args)
    return str(e.value)


def test_constraint_errors():
    a = f32(256, 64)
    assert "exceeds architecture limitation of 128" in _err(lambda a: nl.ndarray((256, 4), nl.float32), a)
    assert "exceeds architecture limitation of 128" in _err(lambda a: nl.load(a), a)
    assert "Insufficient rank" in _err(lambda a: nl.ndarray((128,), nl.float32), a)
    assert "out of bounds" in _err(lambda a: nl.load(a[200:300, :]), a)
    ip = nl.arange(128)[:, None]
    assert "out of bounds" in _err(lambda a: nl.load(a[128 + ip, nl.arange(64)[None, :]]), f32(200, 64))
    assert "address space 'hbm'" in _err(lambda a: nl.load(nl.load(a[0:128])), a)
    assert "2048-byte bank" in _err(lambda a: nl.zeros((128, 1024), nl.float32, buffer=nl.psum), a)
    assert "mixing" in _err(lambda a: a[nl.arange(128)[:, None], 0:64], a)
    b = f32(128, 1024)

    def mm(x, y, m):
        return nisa.nc_matmul(nl.load(x[0:128, 0:m]), nl.load(y[0:128, :]))

    assert "gemm_moving_fmax" in _err(lambda b: mm(b, b, 128), b)
    assert "gemm_stationary_fmax" in _err(lambda b: mm(b, b[:, 0:512], 256), b)
    assert "contraction" in _err(lambda b: nisa.nc_matmul(nl.load(b[0:64, 0:128]), nl.load(b[0:128, 0:128])), b)

    def both_psum(b):
        t = nl.load(b[0:128, 0:128])
        return nisa.tensor_tensor(nisa.nc_matmul(t, t), nisa.nc_matmul(t, t), op=np.add)

    assert "both be in PSUM" in _err(both_psum, b)
    assert "not known at trace time" in _err(lambda b: 1 if nl.load(b[0:128, 0:8]) else 0, b)


def test_psum_matmul_operand_is_copied_to_sbuf_first():
    b = f32(128, 128)

    def k(b):
        out = nl.ndarray((128, 128), nl.float32, buffer=nl.shared_hbm)
        t = nl.load(b)
        nl.store(out, nisa.nc_matmul(nl.copy(t), nisa.nc_matmul(t, t)))
        return out

    got, s = run_kernel(k, [b])
    np.testing.assert_allclose(got, b.T @ (b.T @ b), rtol=1e-4, atol=1e-3)
    # the inserted PSUM -> SBUF copy is an instruction of its own, on ScalarE or VectorE
    assert s.tl.count["scalar"] + s.tl.count["vector"] >= 3


def test_masked_out_of_bounds_is_allowed():
    a = f32(130, 8)

    def k(a):
        out = nl.ndarray((130, 8), nl.float32, buffer=nl.shared_hbm)
        ip, jf = nl.arange(128)[:, None], nl.arange(8)[None, :]
        for i in nl.affine_range(2):
            m = i * 128 + ip < 130
            nl.store(out[i * 128 + ip, jf], value=nl.exp(nl.load(a[i * 128 + ip, jf], mask=m)), mask=m)
        return out

    np.testing.assert_allclose(run(k, a), np.exp(a), rtol=1e-6)


# -- entry points ----------------------------------------------------------------------------------------------------
def test_jit_benchmark_simulate_kernel_and_placeholders():
    @jit
    def k(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=nl.exp(nl.load(a)))
        return out

    a = f32(128, 256)
    np.testing.assert_allclose(k(a), np.exp(a), rtol=1e-6)
    np.testing.assert_allclose(simulate_kernel(k, a), np.exp(a), rtol=1e-6)
    lat = k.last_session.tl.latency_us()
    b = benchmark(warmup=2, iters=10)(k)
    assert b(nt_tensor[[128, 256], nl.float32]) is None
    assert b.benchmark_result.nc_latency.get_latency_percentile(99) == lat


def test_spmd_grid_instances_share_the_output():
    a = f32(4 * 128, 16)

    @jit
    def k(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        assert nl.num_programs() == 4
        nl.store(out[i * 128 : (i + 1) * 128, :], value=nl.multiply(nl.load(a[i * 128 : (i + 1) * 128, :]), 3.0))
        return out

    np.testing.assert_allclose(k[4](a), 3 * a, rtol=1e-6)


def test_scalar_tensor_tensor_and_device_print(capsys):
    a, b = f32(16, 8), f32(16, 8)

    def k(a, b):
        out = nl.ndarray(a.shape, nl.float32, buffer=nl.shared_hbm)
        x, y = nl.load(a), nl.load(b)
        r = nisa.scalar_tensor_tensor(data=x, op0=np.subtract, operand0=1.0, op1=np.multiply, operand1=y)
        nl.device_print("r", r)
        nl.store(out, value=r)
        return out

    np.testing.assert_allclose(run(k, a, b), (a - 1) * b, rtol=1e-6)
    assert capsys.readouterr().out.startswith("r [[")


def _idx(draw, n):
    from hypothesis import strategies as st

    kind = draw(st.sampled_from(["int", "slice", "step", "ds", "full"]))
    if kind == "int":
        return draw(st.integers(0, n - 1))
    if kind == "full":
        return slice(None)
    a = draw(st.integers(0, n - 1))
    b = draw(st.integers(a + 1, n))
    if kind == "ds":
        return nl.ds(a, b - a)
    return slice(a, b, draw(st.integers(2, 3)) if kind == "step" else None)


def test_indexing_matches_numpy():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    a = np.arange(6 * 40 * 24, dtype=np.float32).reshape(6, 40, 24)

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data):
        idx = tuple(_idx(data.draw, n) for n in a.shape)
        npidx = tuple(slice(i.start, i.start + i.size) if isinstance(i, nl.DynSlice) else i for i in idx)
        want = a[npidx]
        if want.ndim == 0:
            return

        def k(a):
            t = nl.load(a[idx])
            out = nl.ndarray(t.shape, nl.float32, buffer=nl.shared_hbm)
            nl.store(out, value=t)
            return out

        got = run(k, a)
        assert got.shape == (want.shape if want.ndim > 1 else (want.shape[0], 1))  # a vector loads as [P, 1]
        np.testing.assert_array_equal(got.reshape(-1), want.reshape(-1))

    check()


def test_mgrid_indexing_where_full_and_activation_accumulators():
    a = f32(256, 64)

    def k(a):
        out = nl.ndarray((2, 128, 64), nl.float32, buffer=nl.shared_hbm)
        g = nl.mgrid[0:128, 0:64]
        i_p, i_f = g
        t = nl.load(a[128 + g.p, g.x])
        nl.store(out[0, i_p, i_f], value=nl.where(nl.greater(t, 0.0), t, nl.full((128, 64), -1.0, nl.float32)))
        acc = nl.ndarray((128, 1), nl.float32)
        nisa.activation(op=nl.exp, data=t, reduce_res=acc, reduce_cmd=nisa.reduce_cmd.reset_reduce)
        nisa.activation(op=nl.exp, data=t, reduce_res=acc, reduce_cmd=nisa.reduce_cmd.reduce)
        nl.store(out[1], value=acc.broadcast_to((128, 64)))
        return out

    o = run(k, a)
    b = a[128:]
    np.testing.assert_array_equal(o[0], np.where(b > 0, b, -1.0))
    np.testing.assert_allclose(o[1][:, 0], 2 * np.exp(b).sum(1), rtol=1e-5)
