"""`neuronxcc.nki.language` (nl): tensor creation, indexing helpers, loops, data movement and compute.

Engine choice for nl.* calls follows the research notes §3.2: math functions on ScalarE (activation),
tile⊕scalar or tile⊕[P,1] on VectorE (tensor_scalar), tile⊕tile on VectorE (tensor_tensor), reductions on VectorE,
nl.copy on ScalarE, partition broadcast through a TensorE ones-matmul. Assumption (calibrated, see
calibration.py): an explicit `broadcast_to` is evicted from PSUM on ScalarE like nl.copy, while the implicit
partition broadcast of a [1,F] operand of an elementwise op is materialised by a VectorE copy in that op's stream.
"""

from __future__ import annotations

import builtins as _b
import sys

import numpy as np

from . import dtypes as _dt
from . import runtime as _rt
from .dtypes import (  # noqa: F401  (re-exported NKI dtypes)
    bfloat16,
    bool_,
    float8_e4m3,
    float8_e5m2,
    float16,
    float32,
    int8,
    int16,
    int32,
    tfloat32,
    uint8,
    uint16,
    uint32,
)
from .runtime import (
    Alloc,
    DynSlice,
    Tensor,
    access,
    copy_engine,
    dma,
    emit,
    emit_now,
    fail,
    mask_count,
    new_tile,
    read,
    scratch,
    session,
    write,
)
from .timeline import SCALAR, TENSOR, VECTOR

# -- buffers, constants ---------------------------------------------------------------------------------------------
sbuf, psum, hbm, shared_hbm, private_hbm = "sbuf", "psum", "hbm", "shared_hbm", "private_hbm"
_BUF = {None: "sbuf", "sbuf": "sbuf", "psum": "psum", "hbm": "hbm", "shared_hbm": "hbm", "private_hbm": "hbm"}


class tile_size:  # noqa: N801  (NKI name)
    pmax = 128
    psum_fmax = 512
    gemm_stationary_fmax = 128
    gemm_moving_fmax = 512
    bn_stats_fmax = 512
    psum_min_align = 4
    sbuf_min_align = 1
    total_available_sbuf_size = 176 * 1024


class par_dim(int):  # noqa: N801
    """Marks the partition dimension of an SBUF/PSUM tensor: nl.ndarray((4, nl.par_dim(128), 512))."""


def _min_ii(n: float) -> float:
    return _b.max(session().cfg.min_ii, n)


def _buffer(b) -> str:
    try:
        return _BUF[b]
    except (KeyError, TypeError):
        fail(f"unknown buffer {b!r}")


# -- creation -------------------------------------------------------------------------------------------------------
def ndarray(shape, dtype=float32, *, buffer=None, name: str = "", **kw) -> Tensor:
    if isinstance(shape, int):
        shape = (shape,)
    buf = _buffer(buffer)
    pdim = next((i for i, x in enumerate(shape) if isinstance(x, par_dim)), 0)
    if buf == "hbm":
        # SPMD instances of one launch share their HBM outputs: instance k gets the allocations of instance 0
        s = session()
        shared = s.spmd_hbm
        i = s.spmd_next
        s.spmd_next += 1
        if _program[0] > 0 and i < len(shared):
            return shared[i]
        t = Tensor(Alloc(buf, tuple(int(x) for x in shape), dtype, pdim=pdim))
        shared.append(t)
        return t
    return Tensor(Alloc(buf, tuple(int(x) for x in shape), dtype, pdim=pdim))


def _filled(shape, value, dtype, buffer, memset: bool) -> Tensor:
    t = ndarray(shape, dtype, buffer=buffer)
    if t.buffer == "hbm":
        fail("HBM tensors cannot have initial values (use nl.ndarray and store into it)")
    if session().functional:
        t.alloc.data[...] = value
    # A zeroed PSUM accumulator is free: the first matmul of the group overwrites it (research §3.2).
    if memset and (t.buffer == "sbuf" or value != 0):
        n = t.alloc.pbytes // t.itemsize  # every block of a par_dim tensor
        zero16 = value == 0 and t.itemsize == 2
        emit(VECTOR, _min_ii(n / 2 if zero16 else n), [], [t])
    return t


def zeros(shape, dtype=float32, *, buffer=None, name: str = "", **kw) -> Tensor:
    return _filled(shape, 0, dtype, buffer, True)


def ones(shape, dtype=float32, *, buffer=None, name: str = "", **kw) -> Tensor:
    return _filled(shape, 1, dtype, buffer, True)


def full(shape, fill_value, dtype=float32, *, buffer=None, name: str = "", **kw) -> Tensor:
    return _filled(shape, fill_value, dtype, buffer, True)


def zeros_like(a, dtype=None, *, buffer=None, name: str = "") -> Tensor:
    return zeros(a.shape, dtype or a.dtype, buffer=buffer)


def empty_like(a, dtype=None, *, buffer=None, name: str = "") -> Tensor:
    return ndarray(a.shape, dtype or a.dtype, buffer=buffer)


def shared_constant(array, dtype=None) -> Tensor:
    arr = np.asarray(array)
    t = ndarray(arr.shape, dtype or arr.dtype, buffer=shared_hbm)
    if session().functional:
        t.alloc.data[...] = arr.astype(t.dtype)
    return t


# -- indices and loops ----------------------------------------------------------------------------------------------
def arange(*args) -> np.ndarray:
    return np.arange(*[int(a) for a in args], dtype=np.int64)


class _Grid(tuple):
    @property
    def p(self):
        return self[0]

    @property
    def x(self):
        return self[1]

    @property
    def y(self):
        return self[2]

    @property
    def z(self):
        return self[3]


class _MGrid:
    def __getitem__(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        return _Grid(np.ogrid[idx])


mgrid = _MGrid()


def ds(start, size) -> DynSlice:
    return DynSlice(start, size)


class _Range:
    """A loop range that tells the session which kind of loop its body runs in."""

    def __init__(self, args, kind: str) -> None:
        self.r = range(*[int(a) for a in args])
        self.kind = kind

    def __iter__(self):
        s = session()
        s.loops.append(self.kind)
        try:
            for i in self.r:
                s.line = None  # allocation sites are numbered per line within one iteration
                yield i
        finally:
            if s.loops:
                s.loops.pop()

    def __len__(self) -> int:
        return len(self.r)

    def __getitem__(self, i):
        return self.r[i]

    def __reversed__(self):
        return reversed(self.r)


def affine_range(*args, **kw) -> _Range:
    return _Range(args, "affine")


def sequential_range(*args, **kw) -> _Range:
    return _Range(args, "sequential")


def static_range(*args, **kw) -> _Range:
    return _Range(args, "static")


_program = [0]  # the running SPMD instance (flattened), and the grid
_grid = [()]


def program_id(axis=0) -> int:
    g = _grid[0] or (1,)
    idx = np.unravel_index(_program[0], g)
    return int(idx[axis]) if axis < len(g) else 0


def num_programs(axes=None) -> int:
    g = _grid[0] or (1,)
    if axes is None:
        return int(np.prod(g))
    return int(g[axes]) if isinstance(axes, int) else int(np.prod([g[a] for a in axes]))


def program_ndim() -> int:
    return len(_grid[0])


def device_print(prefix, x) -> None:
    """Print a tile's values (functional runs only), like nki.simulate_kernel's device_print."""
    v = read(x) if isinstance(x, Tensor) else x
    if v is not None:
        print(prefix, v)


# -- data movement --------------------------------------------------------------------------------------------------
def _need(t, where: str, op: str, arg: str) -> Tensor:
    if not isinstance(t, Tensor):
        fail(f"operand '{arg}' of '{op}' must be a tensor, got {type(t).__name__}")
    buf = t.buffer
    ok = buf in where.split("|")
    if not ok:
        fail(f"Expected operand '{arg}' of '{op}' to be in address space '{where}', but got a tile in '{buf}'")
    return t


def _tile_shape(shape) -> tuple:
    return (shape[0], 1) if len(shape) == 1 else tuple(shape)


def load(src, *, mask=None, dtype=None, **kw) -> Tensor:
    _need(src, "hbm", "load", "src")
    dst = new_tile(_tile_shape(src.shape), dtype or src.dtype)
    v = read(src, mask)
    if v is not None:
        write(dst, v.reshape(dst.shape), mask)
    # Emitted lazily: in `tile[...] = nl.load(...)` the DMA writes straight into `tile` (and waits for its buffer).
    s = session()
    s.flush()
    dst.pending = True

    def issue(target: Tensor = dst) -> None:
        dst.pending = False
        dma(src, target, mask)

    s.pending = issue
    s.pending_kind = "load"
    return dst


def store(dst, value, *, mask=None, **kw) -> None:
    _need(dst, "hbm", "store", "dst")
    if not isinstance(value, Tensor):
        fail("nl.store value must be an SBUF/PSUM tile")
    _need(value, "sbuf|psum", "store", "value")
    if value.elems() != dst.elems() and value.shape[0] != dst.shape[0]:
        fail(f"store shape mismatch: value {value.shape} into {dst.shape}")
    v = read(value)
    if v is not None:
        if v.shape != dst.shape:
            v = v.reshape(dst.shape) if v.size == dst.elems() else np.broadcast_to(v, dst.shape)
        write(dst, v, mask)
    if value.buffer == "psum":  # DMA engines do not read PSUM: the compiler inserts an eviction copy first
        value = evict(value, mask_count(mask, value.shape)[1])
    dma(value, dst, mask)


def evict(t: Tensor, n: int | None = None) -> Tensor:
    """The PSUM -> SBUF copy the compiler inserts where an instruction needs an SBUF operand (a DMA, a matmul
    operand), on ScalarE (the engine it evicts PSUM with)."""
    tmp = scratch(t.shape, t.dtype)
    emit(SCALAR, _min_ii(t.free_elems() if n is None else n), [t], [tmp])
    return tmp


def load_transpose2d(src, *, mask=None, dtype=None, **kw) -> Tensor:
    _need(src, "hbm", "load_transpose2d", "src")
    if src.ndim != 2:
        fail("load_transpose2d needs a 2-D source")
    dst = new_tile((src.shape[1], src.shape[0]), dtype or src.dtype)
    v = read(src)
    if v is not None:
        write(dst, v.T, None if mask is None else np.broadcast_to(mask, src.shape).T)
    dma(src, dst, mask, transpose=True)
    return dst


def _onchip(t, op: str, arg: str = "data") -> Tensor:
    return _need(t, "sbuf|psum", op, arg)


def copy(src, *, mask=None, dtype=None, engine=None, **kw) -> Tensor:
    """nl.copy: a ScalarE activation copy (the engine the compiler uses for PSUM eviction)."""
    _onchip(src, "copy", "src")
    out = new_tile(src.shape, dtype or src.dtype)
    v = read(src, mask)
    write(out, v, mask)
    _, n = mask_count(mask, src.shape)
    emit(engine or SCALAR, _min_ii(n), [src], [out])
    return out


def assign(view: Tensor, value) -> None:
    """`view[...] = value`: retarget a fresh result, write through a pending matmul, else copy or memset."""
    s = session()
    if view.buffer == "hbm":
        fail("assigning to an HBM tensor is not allowed; use nl.store")
    if isinstance(value, Tensor) and value.pending:
        if s.pending_kind == "load" and value.shape == view.shape and view.buffer == "sbuf":
            emit_fn, s.pending = s.pending, None
            value.pending = False
            if s.functional:
                write(view, value.alloc.data)
            emit_fn(view)
            return
        if s.pending_kind == "matmul":
            _take_matmul(view, value, accumulate=False)
            return
        if s.pending_kind == "compute" and value.elems() == view.elems() and value.buffer == view.buffer:
            emit_fn, s.pending = s.pending, None
            value.pending = False
            if s.functional:
                write(view, value.alloc.data.reshape(view.shape))
            emit_fn(view)
            return
        s.flush()
    if isinstance(value, Tensor):
        if value.elems() == 0:
            return  # an empty tile (a zero-length tail): nothing to write, no instruction
        v = read(value)
        if v is not None:
            if v.shape != view.shape:
                v = _align(v, view.shape)
                try:
                    v = np.broadcast_to(v, view.shape)
                except ValueError:
                    if v.size != view.elems():
                        fail(f"cannot assign a tile of shape {value.shape} to a region of shape {view.shape}")
                    v = v.reshape(view.shape)
            write(view, v)
        elif value.elems() != view.elems() and value.shape[0] not in (1, view.shape[0]):
            fail(f"cannot assign a tile of shape {value.shape} to a region of shape {view.shape}")
        if value.fresh and value.key is None and value.elems() == view.elems() and value.buffer == view.buffer:
            value.fresh = False
            s.flush()
            _alias(value, view)
        else:
            emit(copy_engine(value), _min_ii(view.free_elems()), [value], [view])
        return
    if isinstance(value, (int, float, np.number)):
        write(view, value)
        emit(VECTOR, _min_ii(view.free_elems()), [], [view])
        return
    fail(f"cannot assign a {type(value).__name__} to a tile")


def _alias(value: Tensor, view: Tensor) -> None:
    """The producer of a fresh tile writes straight into `view`: no instruction, just the dependency."""
    tl = session().tl
    acc = value.alloc.acc
    eng = acc.writes[-1][2] if acc.writes else VECTOR
    r, w = [access(value)], [access(view)]
    t = tl._ready(eng, r, w)
    tl._record(r, w, eng, t, t)


def _align(v, shape):
    """NKI treats a (P,) per-partition vector as (P,1) (numpy would align it with the last dim)."""
    if isinstance(v, np.ndarray) and v.ndim == 1 and len(shape) >= 2 and v.shape[0] == shape[0] and shape[0] > 1:
        return v.reshape((v.shape[0],) + (1,) * (len(shape) - 1))
    return v


def broadcast_to(src, *, shape) -> Tensor:
    shape = tuple(int(x) for x in shape)
    _onchip(src, "broadcast_to", "src")
    sshape = _tile_shape(src.shape)
    if sshape == shape:
        return src
    out = new_tile(shape, src.dtype)
    v = read(src)
    if v is not None:
        try:
            write(out, np.broadcast_to(v.reshape(sshape), shape))
        except ValueError:
            fail(f"cannot broadcast a tile of shape {src.shape} to {shape}")
    elif len(sshape) != len(shape) or any(a not in (1, b) for a, b in zip(sshape, shape, strict=True)):
        fail(f"cannot broadcast a tile of shape {src.shape} to {shape}")
    n = out.free_elems()
    if sshape[0] == 1 and shape[0] > 1:
        # partition broadcast: a TensorE ones-matmul into PSUM, then a copy back (ARCH "alternative use")
        emit(TENSOR, _b.max(64, n), [src], [out])
    emit(SCALAR if sshape[0] == 1 and shape[0] > 1 else VECTOR, _min_ii(n), [src], [out])
    return out


def transpose(x, *, dtype=None, mask=None, **kw) -> Tensor:
    _onchip(x, "transpose", "x")
    if x.ndim != 2:
        fail("nl.transpose needs a 2-D tile")
    P, F = x.shape
    if F > 128 or P > 128:
        fail(f"Size of dimension exceeds architecture limitation of 128 in transpose: {x.shape}")
    out = new_tile((F, P), dtype or x.dtype, "psum")
    v = read(x)
    write(out, None if v is None else v.T)
    emit(TENSOR, pe_transpose_cycles(P, F, x.dtype), [x], [out])
    session().tl.c["transpose_flops"] += 2 * P * F * P
    return out


def pe_transpose_cycles(P: int, F: int, dtype) -> float:
    """A TensorE transpose is a matmul against an identity (ARCH): max(P, min(64, F)) cycles (ISA nc_transpose),
    and like any matmul x4 for fp32 data (ISA nc_matmul; fp32 is not bit-exact through it on NC-v2)."""
    cyc = _b.max(P, _b.min(64, F))
    return cyc * session().cfg.fp32_matmul_factor if _dt.as_dtype(dtype).itemsize == 4 else cyc


# -- compute helpers ------------------------------------------------------------------------------------------------
_is_scalar = lambda x: isinstance(x, (int, float, np.integer, np.floating, bool))  # noqa: E731


def _out_dtype(args, dtype):
    if dtype is not None:
        return _dt.as_dtype(dtype)
    ds = [a.dtype for a in args if isinstance(a, Tensor)]
    has_float = any(isinstance(a, (float, np.floating)) for a in args)
    return _dt.promote(ds, has_float)


def _check_parts(a: Tensor, b: Tensor, op: str) -> None:
    pa, pb = a.shape[0], b.shape[0]
    if pa != pb and 1 not in (pa, pb):
        fail(f"number of partitions mismatch in '{op}': {a.shape} vs {b.shape}")


def _bshape(a, b):
    sa = a.shape if isinstance(a, Tensor) else ()
    sb = b.shape if isinstance(b, Tensor) else ()
    if len(sa) == 1 and len(sb) > 1:
        sa = (sa[0],) + (1,) * (len(sb) - 1)
    if len(sb) == 1 and len(sa) > 1:
        sb = (sb[0],) + (1,) * (len(sa) - 1)
    try:
        return tuple(np.broadcast_shapes(sa, sb))
    except ValueError:
        fail(f"operand shapes {sa} and {sb} are not broadcastable")


def _val(x, shape):
    if isinstance(x, Tensor):
        v = read(x)
        return None if v is None else _align(v, shape)
    return x


def binary(op, x, y, *, dtype=None, mask=None, out: Tensor | None = None) -> Tensor:
    """Elementwise x op y on VectorE: tensor_scalar when one side is a scalar or [P,1], else tensor_tensor."""
    fn = alu(op)
    xs, ys = isinstance(x, Tensor), isinstance(y, Tensor)
    if not xs and not ys:
        return fn(x, y)
    for t in (x, y):
        if isinstance(t, Tensor) and t.buffer == "hbm":
            fail("compute operands must be SBUF/PSUM tiles, got an HBM tensor (nl.load it first)")
    if xs and ys:
        _check_parts(x, y, getattr(op, "__name__", "op"))
    shape = _bshape(x, y)
    o = out if out is not None else new_tile(shape, _out_dtype([x, y], dtype))
    a, b = _val(x, shape), _val(y, shape)
    if session().functional:
        with np.errstate(all="ignore"):
            write(o, fn(a, b), mask)
    _, n = mask_count(mask, shape)
    srcs = [x, y]
    if xs and ys and shape[0] > 1:
        # a [1,F] operand is broadcast over partitions first by TensorE ones-matmuls (ARCH "alternative use")
        # into PSUM. If it fits one PSUM bank (as a matmul output must) the elementwise op reads it there (one
        # PSUM input: the cheaper tensor_tensor cost); a wider one is copied to SBUF chunk by chunk by the op's
        # own engine (assumption, calibrated on the layernorm tutorial kernels, which broadcast 8192 wide).
        for i, t in enumerate(srcs):
            f = t.free_elems()
            if t.shape[0] == 1 and f > 1:
                tmp = scratch((shape[0], f), _dt.float32, "psum")
                emit(TENSOR, _b.max(64, f), [t], [tmp])
                if 4 * f > session().cfg.psum_bank_bytes:
                    sb = scratch((shape[0], f), t.dtype)
                    emit(VECTOR, _min_ii(f), [tmp], [sb])
                    tmp = sb
                srcs[i] = tmp
    if xs and ys and x.free_elems() > 1 and y.free_elems() > 1:
        if x.buffer == "psum" and y.buffer == "psum":
            fail("tensor_tensor operands cannot both be in PSUM")
        cheap = any(t.buffer == "psum" for t in srcs) or (
            fn in (np.add, np.subtract, np.multiply) and x.dtype == y.dtype == o.dtype == _dt.bfloat16
        )
        if srcs[0].buffer == "psum" and srcs[1].buffer == "psum":
            srcs[0] = evict(srcs[0])  # both in PSUM (one broadcast there): one goes back to SBUF first
        emit(VECTOR, _min_ii(n if cheap else 2 * n), srcs, [o])
    else:
        emit(VECTOR, _min_ii(n), srcs, [o])
    return o


def unary(fn, x, *, dtype=None, mask=None, engine=SCALAR, scale=1.0, bias=None) -> Tensor:
    _onchip(x, getattr(fn, "__name__", "op"))
    o = new_tile(x.shape, _out_dtype([x], dtype))
    if session().functional:
        v = read(x)
        if not (isinstance(scale, (int, float)) and scale == 1.0):
            v = v * _val(scale, x.shape)
        if bias is not None:
            v = v + _val(bias, x.shape)
        with np.errstate(all="ignore"):
            write(o, _UNARY_FN[fn](v), mask)
    _, n = mask_count(mask, x.shape)
    emit(engine, _min_ii(n), [x, scale, bias], [o])
    return o


def accumulate(view: Tensor, other, op) -> Tensor:
    """`view += other`: a PSUM accumulation when other is a fresh matmul, else an in-place VectorE op."""
    if (
        isinstance(other, Tensor)
        and other.pending
        and session().pending_kind == "matmul"
        and op is np.add
        and (view.buffer == "psum")
    ):
        _take_matmul(view, other, accumulate=True)
    else:
        if view.buffer == "hbm":
            fail("cannot update an HBM tensor in place; use nl.store")
        binary(op, view, other, out=view)
    view.updated = True
    return view


def _take_matmul(view: Tensor, mm: Tensor, accumulate: bool) -> None:
    s = session()
    emit_fn = s.pending
    s.pending = None
    mm.pending = False
    if view.buffer != "psum":
        fail("matmul results can only be written to PSUM")
    if view.elems() != mm.elems():
        fail(f"matmul result {mm.shape} does not fit the PSUM region {view.shape}")
    if s.functional:
        prod = mm.alloc.data.astype(np.float32).reshape(view.shape)
        if accumulate:
            write(view, read(view) + prod)
        else:
            write(view, prod)
    emit_fn(view)


def where(condition, x, y, *, dtype=None, mask=None) -> Tensor:
    tiles = [t for t in (condition, x, y) if isinstance(t, Tensor)]
    if not tiles:
        fail("nl.where needs at least one tile")
    shape = tiles[0].shape
    o = new_tile(shape, _out_dtype([x, y], dtype))
    if session().functional:
        c, a, b = (_val(t, shape) for t in (condition, x, y))
        write(o, np.where(np.asarray(c) != 0, a, b), mask)
    emit(VECTOR, _min_ii(2 * o.free_elems()), tiles, [o])
    return o


# -- reductions -----------------------------------------------------------------------------------------------------
def _axes(axis, ndim: int) -> tuple:
    if axis is None:
        fail("reductions need an explicit free axis (axis=1, [1], (1, 2), ...)")
    ax = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ax = tuple(int(a) + ndim if int(a) < 0 else int(a) for a in ax)
    if 0 in ax:
        fail("reduction over the partition dimension is not supported; reduce over free axes")
    if any(a >= ndim for a in ax):
        fail(f"reduction axis {ax} out of range for a tile of rank {ndim}")
    return ax


def reduce(fn, x, axis, *, dtype=None, mask=None, keepdims=False, negate=False, mean=False) -> Tensor:
    _onchip(x, "reduce", "x")
    ax = _axes(axis, x.ndim)
    shape = (
        tuple(1 if d in ax else n for d, n in enumerate(x.shape))
        if keepdims
        else tuple(n for d, n in enumerate(x.shape) if d not in ax)
    )
    o = new_tile(shape, _out_dtype([x], dtype))
    if session().functional:
        v = read(x, mask)
        if mask is not None and mask is not True:
            m = np.broadcast_to(mask, x.shape)
            ident = {np.add: 0.0, np.maximum: -np.inf, np.minimum: np.inf, np.multiply: 1.0}[fn]
            v = np.where(m, v, ident)
        r = fn.reduce(v, axis=ax, keepdims=keepdims) if fn is not np.add else v.sum(axis=ax, keepdims=keepdims)
        if mean:
            r = r / float(np.prod([x.shape[a] for a in ax]))
        if negate:
            r = -r
        write(o, r.reshape(o.shape))
    _, n = mask_count(mask, x.shape)
    half = fn in (np.add, np.maximum) and x.dtype == o.dtype == _dt.bfloat16
    emit(VECTOR, _min_ii(n / 2 if half else n), [x], [o])
    return o


def sum(x, axis, *, dtype=None, mask=None, keepdims=False):  # noqa: A001
    return reduce(np.add, x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def max(x, axis, *, dtype=None, mask=None, keepdims=False):  # noqa: A001
    return reduce(np.maximum, x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def min(x, axis, *, dtype=None, mask=None, keepdims=False):  # noqa: A001
    return reduce(np.minimum, x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def prod(x, axis, *, dtype=None, mask=None, keepdims=False):
    return reduce(np.multiply, x, axis, dtype=dtype, mask=mask, keepdims=keepdims)


def mean(x, axis, *, dtype=None, mask=None, keepdims=False):
    return reduce(np.add, x, axis, dtype=dtype or float32, mask=mask, keepdims=keepdims, mean=True)


def var(x, axis, *, dtype=None, mask=None, keepdims=False):
    m = mean(x, axis, keepdims=True)
    d = binary(np.subtract, x, m)
    return mean(binary(np.multiply, d, d), axis, dtype=dtype, keepdims=keepdims)


# -- matmul ---------------------------------------------------------------------------------------------------------
def matmul(x, y, *, transpose_x=False, mask=None, **kw) -> Tensor:
    """x @ y on TensorE (x is [K,M] already when transpose_x=True; else it is transposed on TensorE first)."""
    if not transpose_x:
        xt = transpose(x)
        x = copy(xt, dtype=x.dtype, engine=VECTOR)
    return _tensor_matmul(x, y)


def _tensor_matmul(stationary, moving, *, is_stationary_onezero=False, is_moving_onezero=False) -> Tensor:
    """stationary[K,M].T @ moving[K,N] -> PSUM [M,N] fp32 on TensorE (`nisa.nc_matmul`, `nl.matmul`)."""
    s = session()
    _need(stationary, "sbuf|psum", "nc_matmul", "stationary")
    _need(moving, "sbuf|psum", "nc_matmul", "moving")
    if stationary.ndim != 2 or moving.ndim != 2:
        fail(f"nc_matmul operands must be 2-D tiles, got {stationary.shape} and {moving.shape}")
    K, M = stationary.shape
    K2, N = moving.shape
    if K != K2:
        fail(f"nc_matmul contraction (partition) sizes differ: stationary {stationary.shape}, moving {moving.shape}")
    if K > 128:
        fail(f"Size of partition dimension {K} exceeds architecture limitation of 128")
    if M > tile_size.gemm_stationary_fmax:
        fail(f"nc_matmul stationary free size {M} exceeds gemm_stationary_fmax=128")
    if N > tile_size.gemm_moving_fmax:
        fail(f"nc_matmul moving free size {N} exceeds gemm_moving_fmax=512")
    out = new_tile((M, N), _dt.float32, "psum")
    if s.functional:
        a, b = read(stationary), read(moving)
        out.alloc.data[...] = a.T.astype(np.float32) @ b.astype(np.float32)
    cyc = _b.max(_b.min(64, M), N)
    fp32 = stationary.dtype == _dt.float32 or moving.dtype == _dt.float32
    if fp32:
        onezero = is_stationary_onezero or is_moving_onezero
        cyc *= s.cfg.fp32_matmul_factor // (2 if onezero else 1)
    stat_key = (stationary.alloc.acc, stationary.box)  # the object, not its id: ids of freed tiles are reused
    if s.tl.last_stationary != stat_key:
        cyc += s.cfg.mm_switch_cycles
        s.tl.last_stationary = stat_key
    s.tl.c["matmul_flops"] += 2 * K * M * N
    s.flush()
    out.pending = True

    def issue(target: Tensor = out) -> None:
        out.pending = False
        # TensorE reads only SBUF: an operand in PSUM (a transpose result, say) is copied there first
        ops = [evict(t) if t.buffer == "psum" else t for t in (stationary, moving)]
        emit_now(TENSOR, cyc, ops, [target])

    s.pending = issue
    s.pending_kind = "matmul"
    return out


# -- elementwise functions (each is also a valid `op=` for nisa calls) ------------------------------------------------
def _mk_binary(ufunc, name):
    def f(x, y, *, dtype=None, mask=None, **kw):
        return binary(ufunc, x, y, dtype=dtype, mask=mask)

    f.__name__ = name
    return f


add = _mk_binary(np.add, "add")
subtract = _mk_binary(np.subtract, "subtract")
multiply = _mk_binary(np.multiply, "multiply")
divide = _mk_binary(np.divide, "divide")
maximum = _mk_binary(np.maximum, "maximum")
minimum = _mk_binary(np.minimum, "minimum")
power = _mk_binary(np.power, "power")
fmod = _mk_binary(np.fmod, "fmod")
mod = _mk_binary(np.mod, "mod")
equal = _mk_binary(np.equal, "equal")
not_equal = _mk_binary(np.not_equal, "not_equal")
greater = _mk_binary(np.greater, "greater")
greater_equal = _mk_binary(np.greater_equal, "greater_equal")
less = _mk_binary(np.less, "less")
less_equal = _mk_binary(np.less_equal, "less_equal")
logical_and = _mk_binary(np.logical_and, "logical_and")
logical_or = _mk_binary(np.logical_or, "logical_or")
logical_xor = _mk_binary(np.logical_xor, "logical_xor")
bitwise_and = _mk_binary(np.bitwise_and, "bitwise_and")
bitwise_or = _mk_binary(np.bitwise_or, "bitwise_or")
bitwise_xor = _mk_binary(np.bitwise_xor, "bitwise_xor")
left_shift = _mk_binary(np.left_shift, "left_shift")
right_shift = _mk_binary(np.right_shift, "right_shift")


def _erf(v):
    import math

    return np.vectorize(math.erf, otypes=[np.float32])(v)


def _gelu(v):
    return 0.5 * v * (1.0 + _erf(v / np.sqrt(2.0)))


_UNARY_IMPL = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "rsqrt": lambda v: 1.0 / np.sqrt(v),
    "reciprocal": lambda v: 1.0 / v,
    "square": np.square,
    "abs": np.abs,
    "negative": np.negative,
    "sign": np.sign,
    "floor": np.floor,
    "ceil": np.ceil,
    "trunc": np.trunc,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "arctan": np.arctan,
    "erf": _erf,
    "relu": lambda v: np.maximum(v, 0.0),
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "gelu": _gelu,
    "gelu_apprx_tanh": lambda v: 0.5 * v * (1 + np.tanh(0.7978845608 * (v + 0.044715 * v**3))),
    "silu": lambda v: v / (1.0 + np.exp(-v)),
    "softplus": lambda v: np.log1p(np.exp(v)),
    "mish": lambda v: v * np.tanh(np.log1p(np.exp(v))),
    "copy": lambda v: v,
    "identity": lambda v: v,
}


def _mk_unary(name):
    def f(x, *, dtype=None, mask=None, **kw):
        return unary(f, x, dtype=dtype, mask=mask)

    f.__name__ = name
    return f


exp = _mk_unary("exp")
log = _mk_unary("log")
sqrt = _mk_unary("sqrt")
rsqrt = _mk_unary("rsqrt")
reciprocal = _mk_unary("reciprocal")
square = _mk_unary("square")
abs = _mk_unary("abs")  # noqa: A001
negative = _mk_unary("negative")
sign = _mk_unary("sign")
floor = _mk_unary("floor")
ceil = _mk_unary("ceil")
trunc = _mk_unary("trunc")
sin = _mk_unary("sin")
cos = _mk_unary("cos")
tan = _mk_unary("tan")
tanh = _mk_unary("tanh")
arctan = _mk_unary("arctan")
erf = _mk_unary("erf")
relu = _mk_unary("relu")
sigmoid = _mk_unary("sigmoid")
gelu = _mk_unary("gelu")
gelu_apprx_tanh = _mk_unary("gelu_apprx_tanh")
silu = _mk_unary("silu")
softplus = _mk_unary("softplus")
mish = _mk_unary("mish")
identity = _mk_unary("identity")

_UNARY_FN = {
    f: _UNARY_IMPL[f.__name__]
    for f in (
        exp,
        log,
        sqrt,
        rsqrt,
        reciprocal,
        square,
        abs,
        negative,
        sign,
        floor,
        ceil,
        trunc,
        sin,
        cos,
        tan,
        tanh,
        arctan,
        erf,
        relu,
        sigmoid,
        gelu,
        gelu_apprx_tanh,
        silu,
        softplus,
        mish,
        identity,
    )
}
_UNARY_FN.update(
    {
        np.exp: np.exp,
        np.log: np.log,
        np.sqrt: np.sqrt,
        np.tanh: np.tanh,
        np.square: np.square,
        np.abs: np.abs,
        np.negative: np.negative,
        np.reciprocal: lambda v: 1.0 / v,
    }
)
_UNARY_FN[copy] = _UNARY_IMPL["copy"]

_ALU = {
    add: np.add,
    subtract: np.subtract,
    multiply: np.multiply,
    divide: np.divide,
    maximum: np.maximum,
    minimum: np.minimum,
    power: np.power,
    fmod: np.fmod,
    mod: np.mod,
    equal: np.equal,
    not_equal: np.not_equal,
    greater: np.greater,
    greater_equal: np.greater_equal,
    less: np.less,
    less_equal: np.less_equal,
    logical_and: np.logical_and,
    logical_or: np.logical_or,
    logical_xor: np.logical_xor,
    bitwise_and: np.bitwise_and,
    bitwise_or: np.bitwise_or,
    bitwise_xor: np.bitwise_xor,
    left_shift: np.left_shift,
    right_shift: np.right_shift,
    max: np.maximum,
    min: np.minimum,
    sum: np.add,
    np.max: np.maximum,
    np.min: np.minimum,
    np.sum: np.add,
    np.amax: np.maximum,
    np.amin: np.minimum,
}
for _u in (
    np.add,
    np.subtract,
    np.multiply,
    np.divide,
    np.maximum,
    np.minimum,
    np.power,
    np.fmod,
    np.mod,
    np.equal,
    np.not_equal,
    np.greater,
    np.greater_equal,
    np.less,
    np.less_equal,
    np.logical_and,
    np.logical_or,
    np.logical_xor,
    np.bitwise_and,
    np.bitwise_or,
    np.bitwise_xor,
    np.left_shift,
    np.right_shift,
    np.true_divide,
):
    _ALU[_u] = _u


def alu(op):
    """The numpy ufunc for an ALU op given as an nl function or a numpy ufunc/function."""
    try:
        return _ALU[op]
    except (KeyError, TypeError):
        fail(f"unsupported ALU op {getattr(op, '__name__', op)!r}")


def activation_fn(op):
    try:
        return _UNARY_FN[op]
    except (KeyError, TypeError):
        fail(f"unsupported activation function {getattr(op, '__name__', op)!r}")


def static_cast(x, dtype, **kw):
    """A value conversion to `dtype` (a copy with a cast, on ScalarE like nl.copy)."""
    return copy(x, dtype=dtype)


# Short dtype names (NKI exports both spellings).
fp32, bf16, fp16, tf32, fp8_e4m3, fp8_e5m2 = float32, bfloat16, float16, tfloat32, float8_e4m3, float8_e5m2


def finfo(dtype):
    """Machine limits of a float dtype (bits, eps, max, min, tiny), bfloat16 and fp8 included (ml_dtypes)."""
    import ml_dtypes

    return ml_dtypes.finfo(_dt.as_dtype(dtype))


def nc(n) -> int:
    """nl.nc(n): n NeuronCores of a launch grid; trn1 runs a kernel on one, so it only multiplies the grid."""
    return int(n)


class spmd_dim(int):  # noqa: N801  (NKI name)
    """nl.spmd_dim(*dims): one grid dimension that is the product of its parts (nl.nc(2) x 4 -> 8 instances,
    run one after another on trn1's single NeuronCore)."""

    def __new__(cls, *dims):
        n = 1
        for d in dims:
            n *= int(d)
        return super().__new__(cls, n)


def loop_reduce(x, op, loop_indices, *, dtype=None, mask=None, **kw) -> Tensor:
    """`b = nl.loop_reduce(a, op, loop_indices=[i])`: b = op(a, b) across the iterations of the loop(s) over
    `loop_indices`, b starting at zeros (NKI: "the destination tile is also the rhs input to op"). One
    elementwise VectorE instruction per iteration; the running tile belongs to the calling line."""
    _onchip(x, "loop_reduce", "x")
    s = session()
    idx = [int(i) for i in (loop_indices if isinstance(loop_indices, (list, tuple)) else [loop_indices])]
    key = _caller_line()
    acc = s.loop_acc.get(key)
    if acc is None or not any(idx) or acc.shape != _tile_shape(x.shape):
        acc = zeros(_tile_shape(x.shape), dtype or x.dtype)
        s.loop_acc[key] = acc
    binary(op, x, acc, dtype=dtype, mask=mask, out=acc)
    return acc


def _caller_line():
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename in _rt._OURS:
        f = f.f_back
    return None if f is None else (f.f_code.co_filename, f.f_lineno)


def softmax(x, axis, *, dtype=None, mask=None, **kw):
    m = max(x, axis, keepdims=True)
    e = exp(binary(np.subtract, x, m))
    s = sum(e, axis, keepdims=True)
    return binary(np.divide, e, s, dtype=dtype)


_rt._nl = sys.modules[__name__]
