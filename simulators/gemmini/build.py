"""Build (once per config and source version) the runtime archive and the include directory candidates use.

The runtime is our own code, so it is compiled outside the sandbox, at -O2, into
`$AUTOCOMP_CACHE/gemmini/<key>/` (default `~/.cache/autocomp-env/`). A candidate compile is then one small
translation unit linked against `libgsim.a`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .config import GemminiConfig

CSRC = Path(__file__).parent / "csrc"
_SOURCES = ("gemmini.h", "runtime.c", "guard.inc", "loops.inc", "library.inc")
# Names under which candidates may include the header (gemmini-rocc-tests layouts).
_HEADER_ALIASES = tuple(
    f"{d}{n}" for d in ("", "include/") for n in ("gemmini.h", "gemmini_testutils.h", "gemmini_params.h")
)


def cache_root() -> Path:
    env = os.environ.get("AUTOCOMP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "autocomp-env"


def _source_hash() -> str:
    h = hashlib.sha256()
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
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
    try:
        inc = tmp / "include"
        for alias in _HEADER_ALIASES:
            (inc / alias).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(CSRC / "gemmini.h", inc / alias)
        params = params_header(config)
        (inc / "gsim_params.h").write_text(params)
        (inc / "include" / "gsim_params.h").write_text(params)
        for name in ("runtime.c", "guard.inc", "loops.inc", "library.inc"):
            shutil.copyfile(CSRC / name, tmp / name)
        cmd = ["gcc", "-O3", "-std=gnu11", "-fno-strict-aliasing", "-I", str(inc), "-c", "runtime.c", "-o", "runtime.o"]
        subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, text=True)
        subprocess.run(["ar", "rcs", "libgsim.a", "runtime.o"], cwd=tmp, check=True, capture_output=True)
        try:
            os.rename(tmp, out)
        except OSError:  # another process built it first
            shutil.rmtree(tmp, ignore_errors=True)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building the Gemmini runtime failed:\n{e.stderr}") from e
    return out
