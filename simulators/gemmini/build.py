"""Build (once per config and source version) the runtime archive and the include directory candidates use.

The runtime and each kernel's harness are our own code, so they are compiled outside the sandbox into
`$AUTOCOMP_CACHE/gemmini/<key>/` (default `~/.cache/autocomp-env/`), together with a precompiled header of
everything a candidate's translation unit includes. A candidate compile is then one small translation unit
(most of a compile is parsing headers) linked with the cached harness object and `libgsim.a`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import toolchain
from .config import GemminiConfig

CSRC = Path(__file__).parent / "csrc"
_SOURCES = (
    "gemmini.h",
    "gemmini_testutils.h",
    "gemmini_counter.h",
    "runtime.c",
    "guard.inc",
    "loops.inc",
    "library.inc",
    "channel.inc",
    "count.c",
)
_BUILD_VERSION = b"6"  # bump when what build_runtime produces changes
# The harness (our code, host gcc). Candidates use toolchain.CANDIDATE_FLAGS with the pinned clang; the
# precompiled header is only used with exactly those. Candidate code becomes a shared object the harness
# loads, instrumented so that its CPU work is charged per basic block (gsim-count, csrc/count.c).
CFLAGS = ("-O1", "-std=gnu11", "-fno-strict-aliasing", "-w", "-Werror=implicit-function-declaration", "-fmax-errors=5")
CANDIDATE_FLAGS = toolchain.CANDIDATE_FLAGS
# Headers every candidate gets before its own code (gemmini.h first); candidates may include them again.
PRELUDE_HEADERS = (
    "assert.h",
    "float.h",
    "limits.h",
    "stdarg.h",
    "stdbool.h",
    "stddef.h",
    "stdint.h",
    "stdio.h",
    "stdlib.h",
    "string.h",
    "math.h",
)
PRELUDE = "gsim_prelude.h"
COUNTER = "gsim-count"  # the block counter (csrc/count.c), next to libgsim.a
# Names under which candidates may include the header (gemmini-rocc-tests layouts).
_HEADER_ALIASES = tuple(
    f"{d}{n}"
    for d in ("", "include/")
    for n in ("gemmini.h", "gemmini_testutils.h", "gemmini_counter.h", "gemmini_params.h")
)


def cache_root() -> Path:
    env = os.environ.get("AUTOCOMP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "autocomp-env"


def _source_hash() -> str:
    h = hashlib.sha256(_BUILD_VERSION + toolchain.TOOLCHAIN.encode())
    for name in _SOURCES:
        h.update((CSRC / name).read_bytes())
    return h.hexdigest()[:12]


def params_header(config: GemminiConfig) -> str:
    lines = ["/* generated from GemminiConfig; do not edit */", "#pragma once"]
    lines += [f"#define {k} {v}" for k, v in sorted(config.defines().items())]
    return "\n".join(lines) + "\n"


def build_runtime(config: GemminiConfig) -> Path:
    """Return the directory holding `include/` and `libgsim.a` for `config`, building it if needed."""
    out = cache_root() / "gemmini" / f"{config.key()}-{_source_hash()}"
    if (out / "libgsim.a").is_file():
        _precompile(out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
    try:
        inc = tmp / "include"
        for alias in _HEADER_ALIASES:
            (inc / alias).parent.mkdir(parents=True, exist_ok=True)
            name = Path(alias).name  # gemmini_params.h is gemmini.h (it holds the parameters here)
            shutil.copyfile(CSRC / (name if (CSRC / name).is_file() else "gemmini.h"), inc / alias)
        params = params_header(config)
        (inc / "gsim_params.h").write_text(params)
        (inc / "include" / "gsim_params.h").write_text(params)
        for name in _SOURCES[1:]:
            shutil.copyfile(CSRC / name, tmp / name)
        cmd = ["gcc", "-O3", "-std=gnu11", "-fno-strict-aliasing", "-I", str(inc), "-c", "runtime.c", "-o", "runtime.o"]
        subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, text=True)
        subprocess.run(["ar", "rcs", "libgsim.a", "runtime.o"], cwd=tmp, check=True, capture_output=True)
        count = ["gcc", "-O2", "count.c", "-o", COUNTER]
        subprocess.run(count, cwd=tmp, check=True, capture_output=True, text=True)
        prelude = ['#include "gemmini.h"'] + [f"#include <{h}>" for h in PRELUDE_HEADERS]
        (inc / PRELUDE).write_text("\n".join(prelude) + "\n")
        try:
            os.rename(tmp, out)
        except OSError:  # another process built it first
            shutil.rmtree(tmp, ignore_errors=True)
        _precompile(out)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building the Gemmini runtime failed:\n{e.stderr}") from e
    return out


def _precompile(out: Path) -> None:
    """The prelude's precompiled header, made where it stays: clang records the header's absolute path in
    it and uses it only when found next to the header the candidate's compile includes by that path."""
    inc = out / "include"
    if (inc / f"{PRELUDE}.pch").is_file():
        return
    part = inc / f".{os.getpid()}.pch"
    pch = [str(toolchain.zig()), "cc", *CANDIDATE_FLAGS, "-I", str(inc), "-x", "c-header", str(inc / PRELUDE)]
    subprocess.run([*pch, "-o", str(part)], cwd=inc, check=True, capture_output=True, text=True)
    os.replace(part, inc / f"{PRELUDE}.pch")  # atomic: a compile never sees half a header


def harness_binary(root: Path, source: str, exports: tuple[str, ...]) -> Path:
    """The harness program for `source` (trusted code: main, the kernel's arrays, the runtime), built once and
    cached in `root/harness/` by content. It loads the candidate's solution.so at run time, so an evaluation
    compiles only the candidate. It exports only `exports` (the arrays and the entry points gemmini.h's
    macros call) for the candidate to bind to; the rest of the runtime has no dynamic symbol."""
    key = hashlib.sha256("\n".join((source, *exports)).encode()).hexdigest()[:16]
    out = root / "harness" / key
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".h-", dir=out.parent))
    try:
        (tmp / "harness.c").write_text(source)
        (tmp / "exports.txt").write_text("{ " + " ".join(f"{name};" for name in exports) + " };\n")
        cmd = ["gcc", *CFLAGS, "-Wl,--dynamic-list=exports.txt", "-I", str(root / "include"), "harness.c"]
        cmd += [str(root / "libgsim.a"), "-Wl,--no-as-needed", "-lm", "-ldl", "-Wl,-z,relro,-z,now", "-o", "sim"]
        subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, text=True)
        os.replace(tmp / "sim", out)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"building the Gemmini harness failed:\n{e.stderr}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
