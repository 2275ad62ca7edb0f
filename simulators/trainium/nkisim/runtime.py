"""Tensors, views, indexing, and the tracing session behind the NKI API.

A `Session` runs one kernel call. In functional mode every tensor holds a numpy array and every call computes;
in timing-only mode tensors hold no data and calls only emit instructions. Both modes emit the same
instructions, so both give the same latency.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import numpy as np

from ..config import TrainiumConfig
from . import dtypes as dt
from .timeline import DMA, Access, Timeline

PMAX = 128
SOLUTION_FILE = "solution.py"
_HERE = os.path.dirname(os.path.abspath(__file__))
# Source files of this package: allocation sites are the first frame outside them (the kernel's own line).
_OURS = frozenset(os.path.join(_HERE, f) for f in os.listdir(_HERE) if f.endswith(".py")) | {__file__}


class NkiError(Exception):
    """A structured failure of the kernel; `type` is one of simulators.result.ERROR_TYPES."""

    type = "runtime_error"


class ConstraintError(NkiError):
    type = "constraint_error"


def fail(msg: str) -> None:
    raise ConstraintError(msg)


class Session:
    def __init__(self, cfg: TrainiumConfig | None = None, functional: bool = True) -> None:
        self.cfg = cfg or TrainiumConfig()
        self.functional = functional
        self.tl = Timeline(self.cfg)
        self.loops: list[str] = []
        self.slots: dict = {}
        self.site_count: dict = {}
        self.line, self.line_k = None, 0  # the line of the last allocation in a loop, and how many in a row
        self.loop_acc: dict = {}  # nl.loop_reduce's running tiles, by calling line
        self.pending = None  # a traced nc_matmul / load not yet emitted (it may be retargeted by `+=` / `[...] =`)
        self.pending_kind = ""
        self.spmd_hbm: list = []  # HBM tensors allocated by SPMD instance 0, shared with the other instances
        self.spmd_next = 0
        self.onchip: list[tuple] = []  # (buffer, bytes per partition, Access) of every SBUF/PSUM allocation
        self.spill_seqs: frozenset = frozenset()
        self.rotations: list[tuple[int, int]] = []  # (allocation, the allocation whose buffer it reuses)
        self.no_rotate: frozenset = frozenset()
        self.peak = {"sbuf": 0, "psum": 0}
        self.spilled_allocs = 0

    def liveness(self) -> set:
        """Peak bytes per partition from live ranges (first to last instruction touching each allocation), and
        the allocations to spill so that neither SBUF nor PSUM exceeds its capacity (largest live ones first)."""
        spill: set = set()
        for buf, cap in (("sbuf", self.cfg.sbuf_partition_bytes), ("psum", self.cfg.psum_partition_bytes)):
            ev = []
            for seq, (b, nbytes, acc) in enumerate(self.onchip):
                if b == buf and acc.first >= 0:
                    ev.append((acc.first, 1, seq, nbytes))
                    ev.append((acc.lastidx + 1, 0, seq, nbytes))
            ev.sort()
            live: dict = {}
            cur = peak = 0
            for _, kind, seq, nbytes in ev:
                if kind == 0:
                    cur -= live.pop(seq, 0)
                    continue
                live[seq] = nbytes
                cur += nbytes
                peak = max(peak, cur)
                while cur > cap and live:
                    victim = max(live, key=live.get)
                    cur -= live.pop(victim)
                    spill.add(victim)
            self.peak[buf] = peak
        return spill

    # -- allocation ---------------------------------------------------------------------------------------------
    def site(self):
        f = sys._getframe(2)
        while f is not None and f.f_code.co_filename in _OURS:
            f = f.f_back
        if f is None:
            return None
        # Two allocating calls on one line (a transpose and its copy, say) are two sites: number the
        # allocations made in a row on the same line (the count restarts at every loop iteration). A replay of
        # the same calls from the same lines numbers them alike.
        line = (f.f_code.co_filename, f.f_lineno)
        if line == self.line:
            self.line_k += 1
        else:
            self.line, self.line_k = line, 0
        return (*line, self.line_k)

    def rotate(self, acc: Access, seq: int) -> None:
        """Give a tile allocated inside a loop its physical buffer: N rotating buffers (fewer in sequential loops)."""
        if not self.loops or self.loops[-1] == "static":
            return
        nbuf = self.cfg.affine_buffers if self.loops[-1] == "affine" else self.cfg.sequential_buffers
        site = self.site()
        n = self.site_count.get(site, 0)
        self.site_count[site] = n + 1
        key = (site, n % nbuf)
        prev = self.slots.get(key)
        self.slots[key] = (acc, seq)
        if prev is not None:
            self.rotations.append((seq, prev[1]))
            if seq not in self.no_rotate:
                acc.prev = prev[0]

    def overlapping_rotations(self) -> set:
        """Allocations that were given the buffer of one still live (used after their first use): the compiler
        would give them their own buffer, so the next trace does not rotate them (decided from this trace)."""
        bad = set()
        for seq, prev_seq in self.rotations:
            cur, prev = self.onchip[seq][2], self.onchip[prev_seq][2]
            if cur.first >= 0 and prev.lastidx >= cur.first:
                bad.add(seq)
        return bad

    def flush(self) -> None:
        while self.pending is not None:
            p, self.pending = self.pending, None
            p()


_current: Session | None = None


def session() -> Session:
    global _current
    if _current is None:
        _current = Session()
    return _current


@contextmanager
def use_session(s: Session):
    global _current
    old, _current = _current, s
    try:
        yield s
    finally:
        s.flush()
        _current = old


# ---------------------------------------------------------------------------------------------------------------
class Alloc:
    """One allocation in HBM, SBUF or PSUM."""

    __slots__ = ("buffer", "shape", "dtype", "data", "pdim", "acc", "pbytes", "spilled", "sess", "__weakref__")

    def __init__(self, buffer: str, shape: tuple, dtype, data=None, pdim: int = 0) -> None:
        s = _current or session()
        self.buffer = buffer
        self.shape = tuple(map(int, shape))
        self.dtype = dtype if type(dtype) is np.dtype else dt.as_dtype(dtype)
        self.pdim = pdim
        self.acc = Access()
        self.spilled = False
        self.sess = s
        self.pbytes = 0
        if buffer in ("sbuf", "psum"):
            if len(self.shape) < 2:
                fail(f"Insufficient rank: {buffer} tensors must be at least 2-D (partition + free), got {self.shape}")
            if self.shape[pdim] > PMAX:
                fail(f"Size of partition dimension {self.shape[pdim]} exceeds architecture limitation of {PMAX}")
            n = 1
            for i, x in enumerate(self.shape):
                if i != pdim:
                    n *= x
            self.pbytes = n * self.dtype.itemsize
            if buffer == "psum":
                tile = self.dtype.itemsize
                for x in self.shape[pdim + 1 :]:
                    tile *= x
                if tile > s.cfg.psum_bank_bytes:
                    fail(
                        f"PSUM tile free size {tile} bytes per partition exceeds the {s.cfg.psum_bank_bytes}-byte "
                        f"bank (at most {s.cfg.psum_bank_bytes // self.dtype.itemsize} {self.dtype} elements)"
                    )
            seq = len(s.onchip)
            s.onchip.append((buffer, self.pbytes, self.acc))
            self.spilled = seq in s.spill_seqs
            s.rotate(self.acc, seq)
        if data is None and s.functional:
            data = np.zeros(self.shape, self.dtype)
        self.data = data


class DynSlice:
    """nl.ds(start, size)."""

    __slots__ = ("start", "size")

    def __init__(self, start, size) -> None:
        self.start, self.size = int(start), int(size)


_FULL = slice(None)
_nl = None  # nkisim.language, set when it is imported (it imports this module)


class Tensor:
    """An NKI tensor or a view of one (a tile when its first dim is the partition dim)."""

    __slots__ = ("alloc", "key", "shape", "box", "adv", "oob", "fresh", "updated", "pending", "buffer", "__weakref__")
    __array_priority__ = 1000  # make numpy defer to our operators

    def __init__(self, alloc: Alloc, key=None, shape=None, box=None, adv=False, oob=False) -> None:
        self.alloc = alloc
        self.buffer = alloc.buffer  # "hbm" | "sbuf" | "psum"
        self.key = key  # None = the whole allocation; else a tuple, one entry per alloc dim
        self.shape = alloc.shape if shape is None else shape
        self.box = box if box is not None else tuple((0, n) for n in alloc.shape)
        self.adv = adv
        self.oob = oob
        self.fresh = False  # result of a compute op, not yet stored anywhere: assignment can retarget it
        self.updated = False
        self.pending = False

    # -- metadata -------------------------------------------------------------------------------------------------
    @property
    def dtype(self):
        return self.alloc.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def itemsize(self) -> int:
        return self.alloc.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Tensor({self.shape}, {self.dtype}, {self.buffer})"

    def __bool__(self):
        fail("a tensor's value is not known at trace time: control flow cannot depend on it")

    def elems(self) -> int:
        n = 1
        for x in self.shape:
            n *= x
        return n

    def free_elems(self) -> int:
        n = 1
        for x in self.shape[1:]:
            n *= x
        return n

    # -- indexing -------------------------------------------------------------------------------------------------
    def _norm_key(self) -> list:
        if self.key is None:
            return [slice(0, n, 1) for n in self.alloc.shape]
        return list(self.key)

    def __getitem__(self, idx) -> Tensor:
        if not isinstance(idx, tuple):
            idx = (idx,)
        if len(idx) == 0 or (len(idx) == 1 and idx[0] is Ellipsis):
            return self
        if self.adv:
            fail("indexing an already index-mapped tile is not supported; index the tensor once")
        if self.key is None and len(idx) == len(self.shape):
            fast = _basic_whole(self, idx)
            if fast is not None:
                return fast
        key = self._norm_key()
        kept = [d for d, k in enumerate(key) if isinstance(k, slice)]
        ell = [i for i, x in enumerate(idx) if x is Ellipsis]
        if ell:
            i = ell[0]
            idx = idx[:i] + (_FULL,) * (len(kept) - len(idx) + 1) + idx[i + 1 :]
        if len(idx) > len(kept):
            fail(f"too many indices ({len(idx)}) for a tensor of rank {len(kept)}")
        idx = idx + (_FULL,) * (len(kept) - len(idx))
        oob = False
        n_adv = 0
        for d, ix in zip(kept, idx, strict=True):
            r = range(key[d].start, key[d].stop, key[d].step)
            n = len(r)
            if isinstance(ix, Tensor):
                fail("indirect (tensor-valued) indexing is not supported by this simulator")
            if isinstance(ix, np.ndarray) and ix.ndim == 0:
                ix = int(ix)
            if isinstance(ix, (int, np.integer)):
                j = int(ix)
                if j < 0 or j >= n:
                    fail(f"index {j} is out of bounds for dimension {d} of size {n}")
                key[d] = r[j]
            elif isinstance(ix, (slice, DynSlice)):
                if isinstance(ix, DynSlice):
                    start, stop, step = ix.start, ix.start + ix.size, 1
                else:
                    start = 0 if ix.start is None else int(ix.start)
                    stop = n if ix.stop is None else int(ix.stop)
                    step = 1 if ix.step is None else int(ix.step)
                    start = start + n if start < 0 else start
                    stop = stop + n if stop < 0 else stop
                if step <= 0:
                    fail("slices must have a positive step")
                if n == 0:
                    start = stop = 0  # any slice of an empty dimension is empty (as the traced kernel sees it)
                if start < 0 or stop > n or start > stop:
                    fail(f"slice [{start}:{stop}] is out of bounds for dimension {d} of size {n}")
                sub = r[start:stop:step]
                key[d] = slice(sub.start, sub.start + len(sub) * sub.step, sub.step)
            elif isinstance(ix, np.ndarray) and ix.dtype.kind in "iu":
                n_adv += 1
                if ix.size and (int(ix.min()) < 0 or int(ix.max()) >= n):
                    oob = True
                key[d] = r.start + ix.astype(np.int64) * r.step
            elif ix is None:
                fail("None (newaxis) is not a valid tensor index in NKI")
            else:
                fail(f"unsupported index {ix!r}")
        if n_adv:
            if any(isinstance(k, slice) for k in key):
                fail("mixing basic (slice) and advanced (nl.arange) tensor indexing is not supported")
            arrs = [k for k in key if isinstance(k, np.ndarray)]
            shape = np.broadcast_shapes(*(a.shape for a in arrs))
            box = []
            for k, n in zip(key, self.alloc.shape, strict=True):
                if isinstance(k, np.ndarray):
                    lo, hi = (int(k.min()), int(k.max()) + 1) if k.size else (0, 0)
                    box.append((max(0, lo), min(n, max(hi, 0))))
                else:
                    box.append((k, k + 1))
            return Tensor(self.alloc, tuple(key), tuple(shape), tuple(box), adv=True, oob=oob)
        shape, box = [], []
        for k in key:
            if isinstance(k, slice):
                n = len(range(k.start, k.stop, k.step))
                shape.append(n)
                box.append((k.start, k.start + max(0, n - 1) * k.step + 1) if n else (k.start, k.start))
            else:
                box.append((k, k + 1))
        return Tensor(self.alloc, tuple(key), _column(self.alloc, key, shape), tuple(box))

    def np_key(self, mask=None):
        if self.key is None:
            return ()
        if not self.adv:
            return self.key
        if self.oob:
            arrs = [k for k in self.key if isinstance(k, np.ndarray)]
            full = np.broadcast_arrays(*arrs)
            bad = np.zeros(full[0].shape, bool)
            it = iter(full)
            for k, n in zip(self.key, self.alloc.shape, strict=True):
                if isinstance(k, np.ndarray):
                    a = next(it)
                    bad |= (a < 0) | (a >= n)
            if mask is not None and mask is not True:
                bad &= np.broadcast_to(mask, bad.shape)
            if bad.any():
                fail(f"tensor access out of bounds (shape {self.alloc.shape}); use mask= to skip those elements")
            return tuple(
                np.clip(k, 0, n - 1) if isinstance(k, np.ndarray) else k
                for k, n in zip(self.key, self.alloc.shape, strict=True)
            )
        return self.key

    def __setitem__(self, idx, value) -> None:
        view = self[idx]
        if isinstance(value, Tensor) and value.updated and value.alloc is view.alloc and value.box == view.box:
            value.updated = False  # the tail of `t[...] += x`: already written in place
            return
        _nl.assign(view, value)

    # -- tensor methods -------------------------------------------------------------------------------------------
    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(x) for x in shape)
        if self.key is not None:
            fail("reshape is only supported on whole tensors")
        if int(np.prod(shape)) != int(np.prod(self.shape)):
            fail(f"cannot reshape {self.shape} into {shape}")
        if self.buffer != "hbm" and (self.alloc.pdim != 0 or not shape or shape[0] != self.shape[0]):
            fail(f"an SBUF/PSUM tile reshapes its free dims only: {self.shape} -> {shape} changes the partition dim")
        a = Alloc.__new__(Alloc)
        a.buffer, a.shape, a.dtype, a.pdim, a.acc = self.buffer, shape, self.dtype, 0, self.alloc.acc
        a.spilled, a.sess, a.pbytes = False, self.alloc.sess, 0
        a.data = None if self.alloc.data is None else self.alloc.data.reshape(shape)
        # Same dependency tracker, but boxes live in different coordinates: see _Alias.
        t = _Alias(a)
        t.box = tuple((0, 1 << 62) for _ in shape)
        return t

    def broadcast_to(self, shape) -> Tensor:
        return _nl.broadcast_to(self, shape=shape)

    def astype(self, dtype) -> Tensor:
        return _nl.copy(self, dtype=dtype)

    def view(self, dtype) -> Tensor:
        fail("Tensor.view(dtype) is not supported by this simulator")

    def expand_dims(self, axis) -> Tensor:
        fail("Tensor.expand_dims is not supported by this simulator")

    def assert_shape(self, shape) -> Tensor:
        if tuple(shape) != tuple(self.shape):
            fail(f"shape assertion failed: {self.shape} != {tuple(shape)}")
        return self

    # -- operators ------------------------------------------------------------------------------------------------
    def _bin(self, other, op, reverse=False):
        nl = _nl
        if not isinstance(other, (Tensor, int, float, np.integer, np.floating)):
            return NotImplemented
        if isinstance(other, Tensor) and other.shape[0] != self.shape[0] and 1 in (other.shape[0], self.shape[0]):
            if len(other.shape) > 1 and len(self.shape) > 1:
                fail("partition-dim broadcasting is not supported by tile operators; use nl.add/nl.multiply")
        return nl.binary(op, other, self) if reverse else nl.binary(op, self, other)

    def __add__(self, o):
        return self._bin(o, np.add)

    def __radd__(self, o):
        return self._bin(o, np.add, True)

    def __sub__(self, o):
        return self._bin(o, np.subtract)

    def __rsub__(self, o):
        return self._bin(o, np.subtract, True)

    def __mul__(self, o):
        return self._bin(o, np.multiply)

    def __rmul__(self, o):
        return self._bin(o, np.multiply, True)

    def __truediv__(self, o):
        return self._bin(o, np.divide)

    def __rtruediv__(self, o):
        return self._bin(o, np.divide, True)

    def __neg__(self):
        return self._bin(-1.0, np.multiply)

    def __iadd__(self, o):
        return _nl.accumulate(self, o, np.add)

    def __isub__(self, o):
        return _nl.accumulate(self, o, np.subtract)

    def __imul__(self, o):
        return _nl.accumulate(self, o, np.multiply)

    def __itruediv__(self, o):
        return _nl.accumulate(self, o, np.divide)


def _basic_whole(t: Tensor, idx: tuple):
    """Fast path: ints and unit-step slices into a whole allocation (the common case); None if not applicable."""
    key, shape, box = [], [], []
    for ix, n in zip(idx, t.alloc.shape, strict=True):
        if type(ix) is int:
            if ix < 0 or ix >= n:
                return None
            key.append(ix)
            box.append((ix, ix + 1))
        elif type(ix) is slice and ix.step is None:
            a = 0 if ix.start is None else ix.start
            b = n if ix.stop is None else ix.stop
            if type(a) is not int or type(b) is not int or a < 0 or b > n or a > b:
                return None
            key.append(slice(a, b, 1))
            shape.append(b - a)
            box.append((a, b))
        else:
            return None
    return Tensor(t.alloc, tuple(key), _column(t.alloc, key, shape), tuple(box))


def _column(alloc: Alloc, key, shape: list) -> tuple:
    """Indexing one free element of an on-chip tile (`t[:, 7]`) keeps a [P, 1] tile, as in NKI."""
    if len(shape) == 1 and alloc.buffer != "hbm" and isinstance(key[alloc.pdim], slice):
        return (shape[0], 1)
    return tuple(shape)


class _Alias(Tensor):
    """A reshape (a free view): shares data and the dependency tracker with its base, boxes are whole-tensor."""

    __slots__ = ()

    def __getitem__(self, idx):
        t = Tensor.__getitem__(self, idx)
        return _alias_view(t)


def _alias_view(t: Tensor) -> Tensor:
    t.box = tuple((0, 1 << 62) for _ in t.box)  # conservative: any access through an alias overlaps any other
    return t


def partitions(t: Tensor) -> int:
    return t.shape[0] if t.shape else 1


def access(t: Tensor):
    """(tracker, box, buffer) for the timeline."""
    return (t.alloc.acc, t.box, t.buffer)


def read(t, mask=None):
    """Values of a tile as an array in compute precision (fp32 for floats)."""
    if not isinstance(t, Tensor):
        return t
    s = session()
    if t.pending:
        s.flush()
    if not s.functional:
        return None
    a = t.alloc.data
    if a is None:
        return None
    v = a[t.np_key(mask)]  # out-of-bounds positions (masked off) were clamped by np_key
    if np.ndim(v) != len(t.shape):
        v = np.reshape(v, t.shape)  # a [P, 1] column view of a wider tile
    return np.asarray(v, dt.compute_dtype(t.dtype))


def write(t: Tensor, values, mask=None) -> None:
    s = session()
    if not s.functional or values is None or t.alloc.data is None:
        return
    key = t.np_key(mask)
    v = np.broadcast_to(np.asarray(values), t.shape) if np.shape(values) != t.shape else np.asarray(values)
    v = v.astype(t.dtype, copy=False)
    data = t.alloc.data
    if not t.adv and len(t.shape) == 2 and t.shape[1] == 1 and t.key is not None:
        sub = data[key].shape  # a [P, 1] column view: numpy sees (P,)
        if sub != t.shape:
            v = v.reshape(sub)
            if mask is not None and mask is not True:
                mask = np.broadcast_to(np.asarray(mask, bool), t.shape).reshape(sub)
            t = Tensor(t.alloc, t.key, sub, t.box)
    if mask is None or mask is True or (not t.oob and np.all(mask)):
        data[key] = v
        return
    m = np.broadcast_to(np.asarray(mask, bool), t.shape)
    if not t.adv:
        sub = data[key]
        if isinstance(sub, np.ndarray):
            np.copyto(sub, v, where=m)
        elif m.all():
            data[key] = v
        return
    arrs = [np.broadcast_to(k, t.shape) if isinstance(k, np.ndarray) else k for k in key]
    sel = tuple(a[m] if isinstance(a, np.ndarray) else a for a in arrs)
    data[sel] = v[m]


def mask_count(mask, shape) -> tuple[int, int]:
    """(active partitions, max active elements per partition) of a mask over a tile of `shape`."""
    P = shape[0] if shape else 1
    N = 1
    for x in shape[1:]:
        N *= x
    if mask is None or mask is True:
        return P, N
    if mask is False:
        return 0, 0
    m = np.asarray(mask, bool)
    if m.ndim < len(shape):
        m = m.reshape((1,) * (len(shape) - m.ndim) + m.shape)
    factor = 1
    for d in range(1, len(shape)):
        if m.shape[d] == 1:
            factor *= shape[d]
    per = m.reshape(m.shape[0], -1).sum(1) * factor
    parts = int((per > 0).sum()) if m.shape[0] > 1 else (P if per[0] > 0 else 0)
    return parts, int(per.max()) if per.size else 0


def contiguous_chunk(t: Tensor) -> tuple[int, int]:
    """(chunk bytes, chunks per partition row) of the HBM side of a DMA, from the view's access pattern."""
    item = t.itemsize
    shape = t.alloc.shape
    if t.key is None:
        n = 1
        for x in shape[1:]:
            n *= x
        return n * item, 1
    if t.adv:
        last = t.key[-1]
        if isinstance(last, np.ndarray):
            row = last.reshape(-1, last.shape[-1])[0] if last.ndim else last
            if row.size > 1 and np.all(np.diff(row) == 1):
                run = row.size
                return run * item, max(1, t.free_elems() // run)
            if row.size == 1 and last.ndim and last.shape[-1] == 1:
                return item, max(1, t.free_elems())
        return item, max(1, t.free_elems())
    # basic: walk dims from the last; a run extends while dims are unit-stride and fully covered
    run = 1
    for d in range(len(shape) - 1, -1, -1):
        k = t.key[d]
        if isinstance(k, slice):
            n = len(range(k.start, k.stop, k.step))
            if k.step != 1:
                break
            run *= n
            if n < shape[d]:
                break
        # an int index keeps the run going only if it is on a leading dim of size... stop here
        else:
            break
    per_row = max(1, t.free_elems())
    run = max(1, min(run, per_row)) if t.ndim > 1 else max(1, run)
    return run * item, max(1, per_row // run)


def dma(src: Tensor, dst: Tensor, mask=None, transpose: bool = False) -> None:
    """Charge a DMA between src and dst (one of them in HBM, or both)."""
    s = session()
    s.flush()
    hbm_side = src if src.buffer == "hbm" else dst
    parts, n = mask_count(mask, dst.shape)
    if transpose:
        chunk, per_row = src.itemsize, n
        parts = dst.shape[0]
    else:
        chunk, per_row = contiguous_chunk(hbm_side)
        full = max(1, hbm_side.free_elems() if hbm_side.ndim > 1 else hbm_side.elems())
        if n < full and n:
            per_row = max(1, per_row * n // full)
    rows = parts if hbm_side.ndim > 1 else 1
    if hbm_side.ndim <= 1:
        per_row = max(1, per_row)
    nbytes = parts * n * dst.itemsize if dst.buffer != "hbm" else parts * n * src.itemsize
    c = s.tl.c
    hbm_bytes = 0
    if src.buffer == "hbm":
        c["hbm_read_bytes"] += nbytes
        hbm_bytes += nbytes
    else:
        c[f"{src.buffer}_read_bytes"] += nbytes
    if dst.buffer == "hbm":
        c["hbm_write_bytes"] += nbytes
        hbm_bytes += nbytes
    else:
        c[f"{dst.buffer}_write_bytes"] += nbytes
    if nbytes == 0:
        return
    s.tl.dma(rows, per_row, chunk, [access(src)], [access(dst)], hbm_bytes)
    if dst.alloc.spilled:
        spill(dst, save=True)


def spill(t: Tensor, save: bool) -> None:
    """Spill traffic for an over-capacity SBUF/PSUM allocation: save after a write, reload before a read."""
    s = session()
    nbytes = partitions(t) * t.free_elems() * t.itemsize
    s.tl.c["spill_save_bytes" if save else "spill_reload_bytes"] += nbytes
    s.tl.c["hbm_write_bytes" if save else "hbm_read_bytes"] += nbytes
    chunk = t.free_elems() * t.itemsize
    acc = [access(t)]
    if save:
        s.tl.dma(partitions(t), 1, chunk, acc, [], nbytes)
    else:
        s.tl.dma(partitions(t), 1, chunk, [], acc, nbytes)


def copy_engine(src: Tensor) -> str:
    """The engine the compiler gives a copy with no engine named ("selected based on the input tile", ISA
    tensor_copy): ScalarE for a PSUM source (the eviction engine, as Autocomp's annotated kernels show),
    else VectorE."""
    return "scalar" if src.buffer == "psum" else "vector"


def emit(engine: str, cycles: float, reads, writes) -> None:
    """Charge a compute instruction reading and writing tiles (scalars in `reads` are ignored).

    An instruction whose only output is a new tile is issued lazily, at the next NKI call: if that call is
    `view[...] = result`, the instruction writes straight into `view` (as the compiler allocates it) and waits for
    that buffer, so both spellings of the same kernel get the same timing."""
    s = session()
    s.flush()
    if any(t.elems() == 0 for t in writes):
        return  # an empty tile: the compiler emits no instruction
    if len(writes) == 1 and writes[0].fresh and writes[0].key is None:
        out = writes[0]
        out.pending = True

        def issue(target: Tensor = out) -> None:
            out.pending = False
            emit_now(engine, cycles, reads, [target])

        s.pending = issue
        s.pending_kind = "compute"
        return
    emit_now(engine, cycles, reads, writes)


def emit_now(engine: str, cycles: float, reads, writes) -> None:
    s = session()
    r = []
    c = s.tl.c
    for t in reads:
        if isinstance(t, Tensor):
            if t.alloc.spilled:
                spill(t, save=False)
            r.append(access(t))
            if t.buffer != "hbm":
                c[f"{t.buffer}_read_bytes"] += t.elems() * t.itemsize
    w = []
    for t in writes:
        w.append(access(t))
        c[f"{t.buffer}_write_bytes"] += t.elems() * t.itemsize
    s.tl.compute(engine, cycles, r, w)
    for t in writes:
        if t.alloc.spilled:
            spill(t, save=True)


def scratch(shape, dtype, buffer: str = "sbuf") -> Tensor:
    """A compiler temporary that only exists for timing (no data, no capacity accounting)."""
    a = Alloc.__new__(Alloc)
    a.buffer, a.shape, a.dtype, a.pdim, a.acc = buffer, tuple(shape), dt.as_dtype(dtype), 0, Access()
    a.spilled, a.sess, a.pbytes, a.data = False, session(), 0, None
    return Tensor(a)


def new_tile(shape, dtype, buffer: str = "sbuf") -> Tensor:
    shape = tuple(int(x) for x in shape)
    if buffer == "sbuf" and len(shape) == 1:
        shape = (shape[0], 1)  # a per-partition vector result is a [P,1] tile
    if shape and shape[0] > PMAX:
        fail(f"Size of partition dimension {shape[0]} exceeds architecture limitation of {PMAX}")
    t = Tensor(Alloc(buffer, shape, dtype))
    t.fresh = True
    return t


__all__ = ["DMA", "Tensor", "Alloc", "Session", "session", "use_session", "fail", "ConstraintError", "NkiError"]
