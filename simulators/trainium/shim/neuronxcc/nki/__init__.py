"""`neuronxcc.nki`, implemented by simulators.trainium.nkisim (numpy functional model + trn1 timing model).

Kernels see curated module objects holding only the public NKI names, not the simulator's internals.
"""

import sys
import types

from simulators.trainium.nkisim import compiler, isa, language, typing
from simulators.trainium.nkisim.api import baremetal, benchmark, jit, profile, simulate_kernel

_INTERNAL = {
    "Alloc",
    "Tensor",
    "DynSlice",
    "access",
    "dma",
    "emit",
    "fail",
    "mask_count",
    "new_tile",
    "read",
    "scratch",
    "session",
    "write",
    "annotations",
    "np",
    "sys",
    "Enum",
    "nl",
    "dt",
    "binary",
    "unary",
    "reduce",
    "assign",
    "accumulate",
    "alu",
    "activation_fn",
    "SCALAR",
    "TENSOR",
    "VECTOR",
    "GPSIMD",
    "Placeholder",
}


def _public(mod, name: str) -> types.ModuleType:
    m = types.ModuleType(name, mod.__doc__)
    for k, v in vars(mod).items():
        if not k.startswith("_") and k not in _INTERNAL:
            setattr(m, k, v)
    return m


language = _public(language, __name__ + ".language")
isa = _public(isa, __name__ + ".isa")
typing = _public(typing, __name__ + ".typing")
compiler = _public(compiler, __name__ + ".compiler")
for _name, _mod in (("language", language), ("isa", isa), ("typing", typing), ("compiler", compiler)):
    sys.modules[f"{__name__}.{_name}"] = _mod

__all__ = ["jit", "baremetal", "benchmark", "profile", "simulate_kernel", "language", "isa", "typing", "compiler"]
