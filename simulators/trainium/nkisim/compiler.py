"""`neuronxcc.nki.compiler` (ncc): direct allocation. `nl.ndarray(shape, dtype, buffer=ncc.sbuf.mod_alloc(...))`.

The simulator allocates every tile itself (liveness, rotating buffers in loops, spills: see the README), so an
allocator given as `buffer=` only says which memory the tensor lives in; addresses and tile counts are accepted
and checked for type, not used.
"""

from __future__ import annotations


class _Allocators:
    def __init__(self, buffer: str) -> None:
        self.buffer = buffer

    def alloc(self, *args, **kw) -> str:
        return self.buffer

    def mod_alloc(self, *, base_addr=0, base_partition=0, num_par_tiles=(), num_free_tiles=(), **kw) -> str:
        for v in (base_addr, base_partition):
            if not isinstance(v, int):
                raise TypeError(f"mod_alloc addresses are integers, got {v!r}")
        return self.buffer

    def auto_alloc(self, *args, **kw) -> str:
        return self.buffer


sbuf = _Allocators("sbuf")
psum = _Allocators("psum")
