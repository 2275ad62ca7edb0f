"""`neuronxcc.nki.typing` (nt): shape/dtype placeholders for benchmarking without data."""

from __future__ import annotations

from . import dtypes as _dt


class Placeholder:
    """An HBM input known only by shape and dtype (nki.benchmark ignores input values)."""

    def __init__(self, shape, dtype) -> None:
        self.shape = tuple(int(x) for x in shape)
        self.dtype = _dt.as_dtype(dtype)

    def __repr__(self) -> str:
        return f"nt.tensor[{list(self.shape)}, {self.dtype}]"


class tensor:  # noqa: N801  (NKI name)
    def __class_getitem__(cls, item) -> Placeholder:
        shape, dtype = item
        return Placeholder(shape, dtype)


class mutable_tensor(tensor):  # noqa: N801
    pass
