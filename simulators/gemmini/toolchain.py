"""The pinned candidate compiler.

The CPU work of a candidate is charged per instruction of its compiled code, so the compiler that makes that
code is part of the cost model: with the host's gcc, another gcc version would give other cycles. Candidates
are therefore compiled by the clang inside the PyPI package `ziglang` at one fixed version, for the baseline
x86-64 CPU (no feature of the host's processor), against that package's own libc headers. The same source
gives the same object, and so the same cycles, on every machine. `TOOLCHAIN` names all of it and is part of
`GemminiSimulator.version`, hence of every evaluation cache key.

The runtime and the harness (our own code, whose cost is not charged per instruction) stay with the host's
gcc: their results do not depend on its version.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from pathlib import Path

ZIG_VERSION = "0.14.1"  # pinned in pyproject.toml; bundles clang 19.1.7
TARGET = ("-target", "x86_64-linux-gnu", "-mcpu=x86_64")
# -O2 as gemmini-rocc-tests builds its programs; no vectorization (Rocket has no vector unit) and no loop
# unrolling (gcc's -O2 does not unroll either), so loops cost what they would on the core. Every basic block
# is instrumented (no-prune), so the runtime can charge each executed block's instructions.
CFLAGS = (
    *TARGET,
    "-O2",
    "-g0",
    "-fno-vectorize",
    "-fno-slp-vectorize",
    "-fno-unroll-loops",
    "-std=gnu11",
    "-fno-strict-aliasing",
    "-w",
    "-Werror=implicit-function-declaration",
    "-ferror-limit=5",
)
CANDIDATE_FLAGS = CFLAGS + ("-fPIC", "-fsanitize-coverage=trace-pc,no-prune")
TOOLCHAIN = f"zig{ZIG_VERSION}-x86_64-O2"


@lru_cache(maxsize=1)
def zig() -> Path:
    """The zig binary of the installed `ziglang` package; a clear error if it is missing or not the pinned
    version (another version would compile candidates differently and so give other cycles)."""
    try:
        version = metadata.version("ziglang")
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            f"the Gemmini simulator compiles candidates with the PyPI package ziglang=={ZIG_VERSION}; "
            f"install it: pip install ziglang=={ZIG_VERSION}"
        ) from None
    if version != ZIG_VERSION:
        raise RuntimeError(
            f"ziglang {version} is installed but the Gemmini cost model is pinned to {ZIG_VERSION} "
            f"(cycle counts depend on the compiler): pip install ziglang=={ZIG_VERSION}"
        )
    import ziglang  # noqa: PLC0415 (only once the version is known to be right)

    path = Path(ziglang.__file__).parent / "zig"
    if not path.is_file():
        raise RuntimeError(f"ziglang is installed but {path} is missing")
    return path


def cc() -> str:
    """`zig cc` as a shell command prefix."""
    return f"{zig()} cc"
