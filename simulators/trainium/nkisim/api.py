"""`neuronxcc.nki` entry points: jit, baremetal, benchmark, simulate_kernel, profile."""

from __future__ import annotations

import numpy as np

from ..config import TrainiumConfig
from . import language as nl
from . import runtime as _rt
from .runtime import Alloc, Session, Tensor, fail, use_session
from .typing import Placeholder


def _to_hbm(x, functional: bool):
    if isinstance(x, Placeholder):
        return Tensor(Alloc("hbm", x.shape, x.dtype, data=None))
    if isinstance(x, np.ndarray):
        data = np.array(x, copy=True) if functional else None
        return Tensor(Alloc("hbm", x.shape, x.dtype, data=data))
    return x


def _from_hbm(r):
    if isinstance(r, Tensor):
        if r.buffer != "hbm":
            fail("a kernel must return HBM tensors (nl.ndarray(..., buffer=nl.shared_hbm))")
        d = r.alloc.data
        return None if d is None else np.array(d[r.np_key()] if r.key is not None else d)
    if isinstance(r, (tuple, list)):
        return type(r)(_from_hbm(x) for x in r)
    return r


def run_kernel(func, args, kwargs=None, *, cfg: TrainiumConfig | None = None, functional: bool = True, grid=()):
    """Run `func` on numpy arrays / placeholders in a fresh session: (outputs, session).

    If live SBUF/PSUM data exceeds capacity, or a tile was rotated into the buffer of one still live, the kernel
    is traced a second time (without data) with those allocations spilled / given their own buffers, and that
    trace's timeline replaces the first one.
    """
    out, s = _run_once(func, args, kwargs, cfg, functional, grid, frozenset(), frozenset())
    spills = s.liveness()
    shared = s.overlapping_rotations()
    if spills or shared:
        shapes = [Placeholder(a.shape, a.dtype) if isinstance(a, np.ndarray) else a for a in args]
        kws = {k: Placeholder(v.shape, v.dtype) if isinstance(v, np.ndarray) else v for k, v in (kwargs or {}).items()}
        _, s2 = _run_once(func, shapes, kws, cfg, False, grid, frozenset(spills), frozenset(shared))
        s.tl = s2.tl
        s.spilled_allocs = len(spills)
    return out, s


def _run_once(func, args, kwargs, cfg, functional: bool, grid, spill_seqs: frozenset, no_rotate: frozenset):
    if any(isinstance(a, Placeholder) for a in args):
        functional = False
    s = Session(cfg, functional)
    s.spill_seqs = spill_seqs
    s.no_rotate = no_rotate
    with use_session(s):
        targs = [_to_hbm(a, functional) for a in args]
        tkw = {k: _to_hbm(v, functional) for k, v in (kwargs or {}).items()}
        n = int(np.prod(grid)) if grid else 1
        nl._grid[0] = tuple(int(g) for g in grid)
        out = None
        for pid in range(n):  # SPMD instances run one after another on one NeuronCore (trn1)
            nl._program[0] = pid
            s.spmd_next = 0
            out = func(*targs, **tkw)
        nl._program[0] = 0
        nl._grid[0] = ()
        s.flush()
        return _from_hbm(out), s


class Kernel:
    """An @nki.jit kernel. Calling it with numpy arrays runs it (like baremetal) and returns numpy outputs."""

    def __init__(self, func, mode: str = "auto", grid=(), functional: bool = True) -> None:
        self.func = func
        self.__name__ = getattr(func, "__name__", "kernel")
        self.__doc__ = getattr(func, "__doc__", None)
        self.mode = mode
        self.grid = grid
        self.functional = functional
        self.last_session: Session | None = None

    def __getitem__(self, grid):
        g = grid if isinstance(grid, tuple) else (grid,)
        return Kernel(self.func, self.mode, g, self.functional)

    def __call__(self, *args, **kwargs):
        outer = _current_session()
        if outer is not None and any(isinstance(a, Tensor) for a in args):
            return self.func(*args, **kwargs)  # a kernel called from inside another kernel: just inline it
        cfg = outer.cfg if outer is not None else None
        functional = self.functional if outer is None else outer.functional and self.functional
        out, s = run_kernel(self.func, args, kwargs, cfg=cfg, functional=functional, grid=self.grid)
        self.last_session = s
        if outer is not None:
            outer.last_inner = s
        return out


def _current_session():
    return _rt._current


def jit(func=None, mode: str = "auto", **kw):
    if func is None:
        return lambda f: Kernel(f, mode)
    return Kernel(func, mode)


def baremetal(kernel=None, **kw):
    if kernel is None:
        return lambda f: Kernel(getattr(f, "func", f), "baremetal")
    return Kernel(getattr(kernel, "func", kernel), "baremetal")


class _Latency:
    def __init__(self, us: float) -> None:
        self.us = us

    def get_latency_percentile(self, p=50) -> float:
        return self.us  # the model is deterministic: every percentile is the same


class _BenchResult:
    def __init__(self, us: float) -> None:
        self.nc_latency = _Latency(us)


class BenchKernel(Kernel):
    """nki.benchmark: times the kernel (timing-only; outputs are undefined, as on hardware)."""

    def __call__(self, *args, **kwargs):
        outer = _current_session()
        cfg = outer.cfg if outer is not None else None
        _, s = run_kernel(self.func, args, kwargs, cfg=cfg, functional=False, grid=self.grid)
        self.last_session = s
        if outer is not None:
            outer.last_inner = s
        self.benchmark_result = _BenchResult(s.tl.latency_us())
        return None


def benchmark(kernel=None, warmup: int = 10, iters: int = 100, **kw):
    if kernel is None:
        return lambda f: BenchKernel(getattr(f, "func", f), "benchmark")
    return BenchKernel(getattr(kernel, "func", kernel), "benchmark")


profile = benchmark


def simulate_kernel(kernel, *args, **kwargs):
    func = getattr(kernel, "func", kernel)
    out, _ = run_kernel(func, args, kwargs, cfg=_session_cfg(), functional=True, grid=getattr(kernel, "grid", ()))
    return out


def _session_cfg():
    s = _current_session()
    return s.cfg if s is not None else None


__all__ = [
    "jit",
    "baremetal",
    "benchmark",
    "profile",
    "simulate_kernel",
    "Kernel",
    "run_kernel",
]
