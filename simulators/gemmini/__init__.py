"""The Gemmini simulator: candidate C code (gemmini.h intrinsics or Autocomp's short names) compiled against
our runtime, checked bit-exactly against numpy, timed by a cycle-approximate model of the 16x16 int8 (default)
or 4x4 FP32 Gemmini.
"""

from .cli import main
from .config import DEFAULT, FP32_4X4, GemminiConfig
from .kernels import KernelSpec, parse_kernel
from .simulator import GemminiSimulator
from .vendor import vendor_code

__all__ = [
    "DEFAULT",
    "FP32_4X4",
    "GemminiConfig",
    "GemminiSimulator",
    "KernelSpec",
    "main",
    "parse_kernel",
    "vendor_code",
]
