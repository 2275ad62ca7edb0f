"""`neuronxcc.nki.isa` (nisa): one call = one engine instruction, costed with the ISA formulas (research §3.1)."""

from __future__ import annotations

import builtins as _b
from enum import Enum

import numpy as np

from . import dtypes as _dt
from . import language as nl
from .runtime import Tensor, copy_engine, dma, emit, fail, mask_count, new_tile, read, session, write
from .timeline import GPSIMD, SCALAR, TENSOR, VECTOR

tensor_engine, vector_engine, scalar_engine, gpsimd_engine, unknown_engine = TENSOR, VECTOR, SCALAR, GPSIMD, None
activation_engine, pool_engine = SCALAR, GPSIMD


class reduce_cmd(Enum):  # noqa: N801
    idle = 0
    reset = 1
    reduce = 2
    reset_reduce = 3


class dge_mode(Enum):  # noqa: N801
    unknown = 0
    swdge = 1
    hwdge = 2
    none = 3


class oob_mode(Enum):  # noqa: N801
    error = 0
    skip = 1


def _ii(n: float) -> float:
    return _b.max(session().cfg.min_ii, n)


def _sb(t, op: str, arg: str = "data", where: str = "sbuf|psum") -> Tensor:
    return nl._need(t, where, op, arg)


def _eng(engine, default: str, allowed: tuple) -> str:
    e = default if engine is None else engine
    if e not in allowed:
        fail(f"engine {e!r} is not valid here (allowed: {', '.join(allowed)})")
    return e


def _n(t: Tensor, mask) -> int:
    return mask_count(mask, t.shape)[1]


def _col(x, P: int, op: str, what: str):
    """A scalar or a [P,1] per-partition operand."""
    if isinstance(x, Tensor):
        if x.free_elems() != 1 or x.shape[0] not in (1, P):
            fail(f"'{what}' of '{op}' must be a scalar or a [P,1] tile, got {x.shape}")
        v = read(x)
        return None if v is None else v.reshape(-1, 1)
    return x


# -- TensorE ---------------------------------------------------------------------------------------------------------
def nc_matmul(
    stationary,
    moving,
    *,
    is_stationary_onezero=False,
    is_moving_onezero=False,
    is_transpose=False,
    tile_position=(),
    tile_size=(),
    mask=None,
    **kw,
) -> Tensor:
    """stationary[K,M].T @ moving[K,N] -> PSUM [M,N] fp32. Cost max(min(64, M), N) TensorE cycles (x4 for fp32).

    is_transpose=True runs the PE array in transpose mode; with an identity `moving` that is a transpose of
    `stationary`. The result is the same product either way: Autocomp's attention kernels pass q and k with
    is_transpose=True, and trn1 accepted their outputs as q.T @ k."""
    # The TensorE matmul itself lives in `language`, which nl.matmul shares (and isa imports language).
    return nl._tensor_matmul(
        stationary, moving, is_stationary_onezero=is_stationary_onezero, is_moving_onezero=is_moving_onezero
    )


def nc_transpose(data, *, mask=None, dtype=None, engine=None, **kw) -> Tensor:
    _sb(data, "nc_transpose")
    if data.ndim < 2:
        fail("nc_transpose needs a tile of rank >= 2")
    P, F = data.shape[0], data.free_elems()
    e = engine if engine is not None else (VECTOR if P <= 32 and F <= 32 else TENSOR)
    if e == TENSOR:
        if P > 128 or F > 128:
            fail(f"TensorE transpose input must be at most 128x128, got {P}x{F}")
        out = new_tile((F, P), dtype or data.dtype, "psum")
        cyc = nl.pe_transpose_cycles(P, F, data.dtype)
        session().tl.c["transpose_flops"] += 2 * P * F * P
    elif e == VECTOR:
        if P > 32 or F > 32:
            fail(f"VectorE transpose input must be at most 32x32, got {P}x{F}")
        out = new_tile((F, P), dtype or data.dtype, "sbuf")
        cyc = _ii(F)
    else:
        fail(f"nc_transpose runs on the tensor or vector engine, not {e!r}")
    v = read(data)
    if v is not None:
        write(out, v.reshape(P, F).T)
    emit(e, cyc, [data], [out])
    return out


# -- ScalarE ---------------------------------------------------------------------------------------------------------
def activation(
    op,
    data,
    *,
    bias=None,
    scale=1.0,
    reduce_op=None,
    reduce_res=None,
    reduce_cmd=reduce_cmd.idle,
    mask=None,
    dtype=None,
    **kw,
) -> Tensor:
    """op(data * scale + bias) on ScalarE, optional add-reduction along the free axis into reduce_res."""
    s = session()
    _sb(data, "activation")
    fn = nl.activation_fn(op)
    P = data.shape[0]
    if isinstance(scale, Tensor):
        sc = _col(scale, P, "activation", "scale")
    else:
        sc = float(scale)
    bi = _col(bias, P, "activation", "bias") if bias is not None else None
    out = new_tile(data.shape, dtype or data.dtype)
    if s.functional:
        v = nl._align(read(data), data.shape)
        if data.ndim == 1:
            v = v.reshape(-1, 1)
        x = v * (sc.reshape((-1,) + (1,) * (v.ndim - 1)) if isinstance(sc, np.ndarray) else sc)
        if bi is not None:
            x = x + bi.reshape((-1,) + (1,) * (v.ndim - 1))
        with np.errstate(all="ignore"):
            r = fn(x)
        write(out, r.reshape(out.shape), mask)
        if reduce_res is not None or reduce_cmd != reduce_cmd.idle:
            _reduce_into(s, reduce_res, r, reduce_cmd)
    n = _n(data, mask)
    cyc = _ii(n)
    reads, writes = [data, scale, bias], [out]
    if reduce_cmd != reduce_cmd.idle or reduce_res is not None:
        # ScalarE's accumulation registers carry the running sum from one instruction to the next: a dependency
        acc = _act_registers(s)
        reads.append(acc)
        writes.append(acc)
    if reduce_res is not None:
        writes.append(reduce_res)
        cyc += s.cfg.min_ii  # reading the accumulator out (ARCH ActReadAccumulator ~64 cycles)
    emit(SCALAR, cyc, reads, writes)
    return out


def _act_registers(s) -> Tensor:
    """The 128 accumulation registers of ScalarE (ARCH), as a tile for dependency tracking only."""
    reg = getattr(s, "act_registers", None)
    if reg is None:
        reg = s.act_registers = nl.scratch((128, 1), _dt.float32)
    return reg


def _reduce_into(s, reduce_res, r, cmd) -> None:
    """ScalarE's accumulation registers: reset and/or add this instruction's row sums; the running sums persist
    across instructions (reduce_cmd.reduce without reduce_res keeps accumulating) and are read out to
    reduce_res when it is given (idle with reduce_res, the activation_reduce form, resets first)."""
    acc = getattr(s, "act_acc", None)
    P = r.shape[0]
    if acc is None or acc.shape[0] != P or cmd in (reduce_cmd.reset, reduce_cmd.reset_reduce, reduce_cmd.idle):
        acc = np.zeros(P, np.float32)
    if cmd != reduce_cmd.reset:
        acc = acc + r.reshape(P, -1).sum(1)
    s.act_acc = acc
    if reduce_res is not None:
        write(reduce_res, acc.reshape(reduce_res.shape) if acc.size == reduce_res.elems() else acc.reshape(-1, 1))


def activation_reduce(
    op, data, *, reduce_op=None, reduce_res=None, bias=None, scale=1.0, mask=None, dtype=None, **kw
) -> Tensor:
    if reduce_res is None:
        fail("activation_reduce needs reduce_res")
    return activation(
        op,
        data,
        bias=bias,
        scale=scale,
        reduce_res=reduce_res,
        reduce_cmd=reduce_cmd.reset_reduce,
        mask=mask,
        dtype=dtype,
    )


# -- VectorE ---------------------------------------------------------------------------------------------------------
def tensor_tensor(data1, data2, op, *, dtype=None, mask=None, engine=None, **kw) -> Tensor:
    _sb(data1, "tensor_tensor", "data1")
    _sb(data2, "tensor_tensor", "data2")
    if data1.shape[0] != data2.shape[0]:
        fail(f"number of partitions mismatch in 'tensor_tensor': {data1.shape} vs {data2.shape}")
    if data1.free_elems() != data2.free_elems():
        fail(f"tensor_tensor operands need the same number of elements per partition: {data1.shape}, {data2.shape}")
    if data1.buffer == "psum" and data2.buffer == "psum":
        fail("tensor_tensor operands cannot both be in PSUM")
    e = _eng(engine, VECTOR, (VECTOR, GPSIMD))
    if e == GPSIMD and "psum" in (data1.buffer, data2.buffer):
        fail("GpSimd cannot access PSUM")
    fn = nl.alu(op)
    out = new_tile(data1.shape, dtype or _dt.promote([data1.dtype, data2.dtype], False))
    if session().functional:
        a, b = read(data1), read(data2).reshape(data1.shape)
        with np.errstate(all="ignore"):
            write(out, fn(a, b), mask)
    n = _n(data1, mask)
    cheap = "psum" in (data1.buffer, data2.buffer) or (
        fn in (np.add, np.subtract, np.multiply) and data1.dtype == data2.dtype == out.dtype == _dt.bfloat16
    )
    emit(e, _ii(n if cheap else 2 * n), [data1, data2], [out])
    return out


def tensor_scalar(
    data,
    op0,
    operand0,
    reverse0=False,
    op1=None,
    operand1=None,
    reverse1=False,
    *,
    dtype=None,
    mask=None,
    engine=None,
    **kw,
) -> Tensor:
    """(data op0 operand0) op1 operand1, operands scalars or [P,1] tiles; one VectorE pass max(MIN_II, N)."""
    _sb(data, "tensor_scalar")
    e = _eng(engine, VECTOR, (VECTOR, SCALAR, GPSIMD))
    P = data.shape[0]
    o0 = _col(operand0, P, "tensor_scalar", "operand0")
    o1 = _col(operand1, P, "tensor_scalar", "operand1") if op1 is not None else None
    f0 = nl.alu(op0)
    f1 = nl.alu(op1) if op1 is not None else None
    out = new_tile(data.shape, dtype or data.dtype)
    if session().functional:
        v = read(data)
        if v.ndim == 1:
            v = v.reshape(-1, 1)
        with np.errstate(all="ignore"):
            v = f0(o0, v) if reverse0 else f0(v, o0)
            if f1 is not None:
                v = f1(o1, v) if reverse1 else f1(v, o1)
        write(out, v.reshape(out.shape), mask)
    emit(e, _ii(_n(data, mask)), [data, operand0, operand1], [out])
    return out


def scalar_tensor_tensor(
    *, data, op0, operand0, op1, operand1, reverse0=False, reverse1=False, dtype=None, mask=None, **kw
) -> Tensor:
    """(data op0 operand0) op1 operand1 with operand0 a scalar/[P,1] and operand1 a tile; one VectorE instruction,
    N cycles for bf16 subtract->multiply, else 2N."""
    _sb(data, "scalar_tensor_tensor")
    _sb(operand1, "scalar_tensor_tensor", "operand1")
    P = data.shape[0]
    o0 = _col(operand0, P, "scalar_tensor_tensor", "operand0")
    f0, f1 = nl.alu(op0), nl.alu(op1)
    out = new_tile(data.shape, dtype or data.dtype)
    if session().functional:
        v = read(data).reshape(P, -1)
        with np.errstate(all="ignore"):
            t = f0(o0, v) if reverse0 else f0(v, o0)
            b = read(operand1).reshape(P, -1)
            write(out, (f1(b, t) if reverse1 else f1(t, b)).reshape(out.shape), mask)
    n = _n(data, mask)
    cheap = data.dtype == _dt.bfloat16 and f0 is np.subtract and f1 is np.multiply and n % 2 == 0
    emit(VECTOR, _ii(n if cheap else 2 * n), [data, operand0, operand1], [out])
    return out


def tensor_reduce(op, data, axis, *, mask=None, dtype=None, negate=False, keepdims=False, **kw) -> Tensor:
    _sb(data, "tensor_reduce")
    return nl.reduce(nl.alu(op), data, axis, dtype=dtype, mask=mask, keepdims=keepdims, negate=negate)


def tensor_scalar_reduce(
    *, data, op0, operand0, reduce_op, reduce_res, reverse0=False, dtype=None, mask=None, **kw
) -> Tensor:
    out = tensor_scalar(data, op0, operand0, reverse0, dtype=dtype, mask=mask)
    r = nl.reduce(nl.alu(reduce_op), out, tuple(range(1, out.ndim)), keepdims=True)
    nl.assign(reduce_res, r)
    return out


def tensor_tensor_scan(
    data0, data1, initial, op0, op1, reverse0=False, reverse1=False, *, dtype=None, mask=None, **kw
) -> Tensor:
    """r[:, i] = op1(op0(data0[:, i], r[:, i-1]), data1[:, i]); VectorE max(MIN_II, 2N)."""
    _sb(data0, "tensor_tensor_scan", "data0")
    _sb(data1, "tensor_tensor_scan", "data1")
    if data0.shape != data1.shape:
        fail(f"tensor_tensor_scan operands differ in shape: {data0.shape} vs {data1.shape}")
    P = data0.shape[0]
    init = _col(initial, P, "tensor_tensor_scan", "initial")
    f0, f1 = nl.alu(op0), nl.alu(op1)
    out = new_tile(data0.shape, dtype or data0.dtype)
    if session().functional:
        a = read(data0).reshape(P, -1)
        b = read(data1).reshape(P, -1)
        r = np.empty_like(a, dtype=np.float32)
        prev = np.broadcast_to(np.asarray(init, np.float32).reshape(-1), (P,)).copy()
        for i in range(a.shape[1]):
            t = f0(prev, a[:, i]) if reverse0 else f0(a[:, i], prev)
            prev = (f1(b[:, i], t) if reverse1 else f1(t, b[:, i])).astype(np.float32)
            r[:, i] = prev
        write(out, r.reshape(out.shape), mask)
    emit(VECTOR, _ii(2 * _n(data0, mask)), [data0, data1, initial], [out])
    return out


def tensor_copy(src, *, mask=None, dtype=None, engine=None, **kw) -> Tensor:
    _sb(src, "tensor_copy", "src")
    e = _eng(engine, VECTOR, (VECTOR, SCALAR, GPSIMD))
    if e == GPSIMD and src.buffer == "psum":
        fail("GpSimd cannot access PSUM")
    out = new_tile(src.shape, dtype or src.dtype)
    write(out, read(src), mask)
    emit(copy_engine(src) if engine is None else e, _ii(_n(src, mask)), [src], [out])
    return out


def tensor_copy_predicated(*, src, dst, predicate, mask=None, dtype=None, reverse_pred=False, **kw) -> None:
    _sb(src, "tensor_copy_predicated", "src")
    _sb(dst, "tensor_copy_predicated", "dst")
    if session().functional:
        p = nl._val(predicate, dst.shape) if isinstance(predicate, Tensor) else predicate
        p = np.asarray(p) != 0
        if reverse_pred:
            p = ~p
        write(dst, np.where(p, read(src).reshape(dst.shape), read(dst)), mask)
    n = _n(dst, mask)
    same = isinstance(predicate, Tensor) and predicate.buffer == src.buffer
    emit(VECTOR, _ii(2 * n if same else n), [src, predicate, dst], [dst])


def reciprocal(data, *, dtype=None, mask=None, **kw) -> Tensor:
    """1/x on VectorE: max(MIN_II, 8N) (an activation reciprocal on ScalarE is 8x cheaper)."""
    _sb(data, "reciprocal")
    out = new_tile(data.shape, dtype or data.dtype)
    v = read(data)
    if v is not None:
        with np.errstate(all="ignore"):
            write(out, 1.0 / v, mask)
    emit(VECTOR, _ii(8 * _n(data, mask)), [data], [out])
    return out


def bn_stats(data, *, mask=None, dtype=None, **kw) -> Tensor:
    """Per partition: [count, mean, count*var] of the even and of the odd elements (6 values, fp32)."""
    _sb(data, "bn_stats")
    P, F = data.shape[0], data.free_elems()
    if F > nl.tile_size.bn_stats_fmax:
        fail(f"bn_stats free size {F} exceeds bn_stats_fmax=512")
    out = new_tile((P, 6), dtype or _dt.float32)
    v = read(data)
    if v is not None:
        v = v.reshape(P, F).astype(np.float64)
        cols = []
        for part in (v[:, 0::2], v[:, 1::2]):
            n = part.shape[1]
            m = part.mean(1) if n else np.zeros(P)
            cols += [np.full(P, n), m, ((part - m[:, None]) ** 2).sum(1) if n else np.zeros(P)]
        write(out, np.stack(cols, 1))
    emit(VECTOR, _ii(F), [data], [out])
    return out


def bn_aggr(data, *, mask=None, dtype=None, **kw) -> Tensor:
    """Combine bn_stats groups [P, 6k] into [P, 2] = (mean, variance)."""
    _sb(data, "bn_aggr")
    P, F = data.shape[0], data.free_elems()
    if F % 3:
        fail(f"bn_aggr input must hold bn_stats groups (a multiple of 3 per partition), got {F}")
    out = new_tile((P, 2), dtype or _dt.float32)
    v = read(data)
    if v is not None:
        g = v.reshape(P, -1, 3).astype(np.float64)
        n, m, m2 = g[..., 0], g[..., 1], g[..., 2]
        tot = n.sum(1)
        mean = (n * m).sum(1) / tot
        var = (m2 + n * (m - mean[:, None]) ** 2).sum(1) / tot
        write(out, np.stack([mean, var], 1))
    emit(VECTOR, _ii(13 * (F / 3)), [data], [out])
    return out


# -- GpSimd ----------------------------------------------------------------------------------------------------------
def iota(expr, dtype=_dt.int32, *, mask=None, **kw) -> Tensor:
    """Materialise an affine index expression (of nl.arange / loop indices) as a tile; GpSimd 150 + N."""
    arr = np.asarray(expr)
    if arr.ndim < 2:
        arr = arr.reshape(-1, 1)
    out = new_tile(arr.shape, dtype)
    write(out, arr, mask)
    emit(GPSIMD, session().cfg.pipe_gpsimd + out.free_elems(), [], [out])
    return out


def affine_select(pred, on_true_tile, on_false_value, *, mask=None, dtype=None, **kw) -> Tensor:
    _sb(on_true_tile, "affine_select", "on_true_tile")
    out = new_tile(on_true_tile.shape, dtype or on_true_tile.dtype)
    if session().functional:
        p = np.broadcast_to(np.asarray(pred), on_true_tile.shape)
        write(out, np.where(p, read(on_true_tile), on_false_value), mask)
    emit(GPSIMD, session().cfg.pipe_gpsimd + on_true_tile.free_elems(), [on_true_tile], [out])
    return out


def memset(shape, value, dtype, *, mask=None, engine=None, **kw) -> Tensor:
    e = _eng(engine, VECTOR, (VECTOR, GPSIMD))
    out = new_tile(shape, dtype)
    write(out, value, mask)
    n = out.free_elems()
    emit(e, _ii(n / 2 if value == 0 and out.itemsize == 2 else n), [], [out])
    return out


def tensor_partition_reduce(op, data, *, mask=None, dtype=None, **kw) -> Tensor:
    _sb(data, "tensor_partition_reduce", where="sbuf")
    fn = nl.alu(op)
    out = new_tile((1,) + tuple(data.shape[1:]), dtype or data.dtype)
    v = read(data)
    if v is not None:
        write(out, fn.reduce(v, axis=0, keepdims=True))
    emit(GPSIMD, _ii(data.shape[0] * data.free_elems() / 16), [data], [out])
    return out


# -- DMA ---------------------------------------------------------------------------------------------------------------
def dma_copy(*, dst, src, mask=None, dst_rmw_op=None, oob_mode=oob_mode.error, dge_mode=dge_mode.unknown, **kw):
    if not isinstance(dst, Tensor) or not isinstance(src, Tensor):
        fail("dma_copy needs tensor src and dst")
    if src.elems() != dst.elems():
        fail(f"dma_copy size mismatch: src {src.shape} vs dst {dst.shape}")
    v = read(src, mask)
    if v is not None:
        v = v.reshape(dst.shape)
        if dst_rmw_op is not None:
            v = nl.alu(dst_rmw_op)(read(dst), v)
        write(dst, v, mask)
    dma(src, dst, mask)
