"""NKI v1 features public kernels use (issue 12, item 1), in process and through the sandbox."""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from simulators.trainium import TrainiumSimulator  # noqa: E402
from simulators.trainium.nkisim import compiler as ncc  # noqa: E402
from simulators.trainium.nkisim import isa as nisa  # noqa: E402
from simulators.trainium.nkisim import language as nl  # noqa: E402
from simulators.trainium.nkisim.api import jit, run_kernel  # noqa: E402

rng = np.random.default_rng(3)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def run(f, *args, grid=()):
    return run_kernel(f, list(args), grid=grid)


def test_nc_matmul_is_transpose_gives_the_product_and_transposes_with_an_identity():
    a, b = f32(128, 128), f32(128, 512)

    def k(a, b):
        out = nl.ndarray((128, 512), nl.float32, buffer=nl.shared_hbm)
        t = nl.ndarray((128, 128), nl.float32, buffer=nl.shared_hbm)
        x, y = nl.load(a), nl.load(b)
        nl.store(out, nisa.nc_matmul(stationary=x, moving=y, is_transpose=True))
        eye = nl.load(nl.shared_constant(np.eye(128, dtype=np.float32)))
        nl.store(t, nisa.nc_matmul(x, eye, is_transpose=True, is_moving_onezero=True))
        return out, t

    (out, t), _ = run(k, a, b)
    np.testing.assert_allclose(out, a.T @ b, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(t, a.T, rtol=1e-6)


def test_nc_transpose_engine_follows_the_tile_size():
    a = f32(128, 128)

    def k(a, n):
        out = nl.ndarray((n, n), nl.float32, buffer=nl.shared_hbm)
        nl.store(out, nisa.nc_transpose(nl.load(a[0:n, 0:n])))
        return out

    for n, engine in ((32, "vector"), (128, "tensor")):
        got, s = run(lambda a, n=n: k(a, n), a)
        np.testing.assert_array_equal(got, a[0:n, 0:n].T)
        assert s.tl.count[engine] >= 1, (n, engine)


def test_column_index_keeps_a_partition_by_one_tile():
    a = f32(128, 16)

    def k(a):
        out = nl.ndarray((128, 1), nl.float32, buffer=nl.shared_hbm)
        t = nl.load(a)
        col = t[:, 7]
        assert col.shape == (128, 1)
        nl.store(out, nl.multiply(col, 2.0))
        return out

    got, _ = run(k, a)
    np.testing.assert_allclose(got, 2 * a[:, 7:8])


def test_loop_reduce_folds_the_loop_into_the_destination():
    a = f32(4, 128, 64)

    def k(a):
        out = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        b = nl.zeros((128, 64), nl.float32)
        for i in nl.affine_range(4):
            b = nl.loop_reduce(nl.load(a[i]), op=np.maximum, loop_indices=[i])
        nl.store(out, b)
        return out

    got, _ = run(k, a)
    np.testing.assert_allclose(got, np.maximum(a.max(0), 0.0))  # b starts at zeros (NKI's definition)


def test_dtype_aliases_and_finfo():
    assert nl.fp32 == nl.float32 and nl.bf16 == nl.bfloat16 and nl.fp16 == nl.float16
    assert nl.finfo(nl.bfloat16).max == float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    assert nl.finfo(nl.float32).eps == np.finfo(np.float32).eps


def test_spmd_grid_program_id_and_spmd_dim():
    a = f32(4 * 128, 8)

    def k(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        i = nl.program_id(0)
        nl.store(out[i * 128 : (i + 1) * 128], nl.add(nl.load(a[i * 128 : (i + 1) * 128]), float(i)))
        return out

    want = a + np.repeat(np.arange(4, dtype=np.float32), 128)[:, None]
    got, _ = run(k, a, grid=(4,))
    np.testing.assert_allclose(got, want)
    grid = nl.spmd_dim(nl.nc(2), 2)
    assert int(grid) == 4
    got, _ = run(k, a, grid=(grid,))
    np.testing.assert_allclose(got, want)


def test_reshape_of_sbuf_tiles_and_static_cast():
    a = f32(128, 64)

    def k(a):
        out = nl.ndarray((128, 4, 16), nl.bfloat16, buffer=nl.shared_hbm)
        t = nl.load(a)
        r = t.reshape((128, 4, 16))
        nl.store(out, nl.static_cast(r, nl.bfloat16))
        return out

    got, _ = run(k, a)
    np.testing.assert_array_equal(got, a.reshape(128, 4, 16).astype(ml_dtypes.bfloat16))
    with pytest.raises(Exception, match="partition dim"):
        run(lambda a: nl.load(a).reshape((64, 128)), a)


def test_direct_allocation_names_the_memory():
    a = f32(128, 64)

    def k(a):
        out = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        buf = nl.ndarray((128, 64), nl.float32, buffer=ncc.sbuf.mod_alloc(base_addr=0, num_free_tiles=(2,)))
        buf[...] = nl.load(a)
        nl.store(out, buf)
        return out

    got, _ = run(k, a)
    np.testing.assert_array_equal(got, a)
    assert ncc.psum.auto_alloc() == "psum"


# -- through the sandbox: imports, `test` entry point, **kwargs, helper functions ----------------------------------
SOURCE = """
import numpy as np
import neuronxcc.nki as nki
import neuronxcc.nki.language as nl
import neuronxcc.nki.isa as nisa
import neuronxcc.nki.compiler as ncc


def helper(t):
    return nl.multiply(t, 2.0, dtype=nl.fp32)


@nki.jit
def other(a_tensor, g_tensor):
    return a_tensor


@nki.jit
def test(a_tensor, g_tensor, **kwargs):
    out = nl.ndarray(a_tensor.shape, a_tensor.dtype, buffer=nl.shared_hbm)
    g = nl.load(g_tensor.reshape((1, g_tensor.shape[0])))
    for i in nl.affine_range(a_tensor.shape[0] // 128):
        a = nl.load(a_tensor[i * 128:(i + 1) * 128, :])
        sq = nl.sum(nl.square(a), axis=[1]) / a_tensor.shape[1]
        r = nl.rsqrt(sq)
        y = nl.multiply(nl.multiply(a, r), g)
        nl.store(out[i * 128:(i + 1) * 128, :], value=helper(y) / 2.0)
    return out
"""


def test_autocomp_style_file_runs_through_the_sandbox():
    r = TrainiumSimulator().run(SOURCE, "trainium/rmsnorm-256x512", seeds=(0,))
    assert r.correct and r.latency > 0, r.error


def test_unsupported_features_name_the_feature_and_the_line():
    src = "@nki.jit\ndef solution(a, g):\n    t = nl.load(a)\n    return t.view(nl.int32)\n"
    r = TrainiumSimulator().run(src, "trainium/rmsnorm-128x64", seeds=(0,))
    assert r.error is not None and "view" in r.error.message and r.error.line == 4, r.error


def test_jit_kernel_called_with_numpy_returns_numpy():
    a = f32(128, 8)

    @jit
    def k(a):
        out = nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.exp(nl.load(a)))
        return out

    np.testing.assert_allclose(k(a), np.exp(a), rtol=1e-6)
