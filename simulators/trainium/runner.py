"""The candidate's side of an evaluation, run inside the sandbox: check the source, execute it, and record the NKI
calls its kernel makes on input tensors that hold no data (`nkisim.trace`). The record is all that leaves: this
process has no inputs, no reference, no clock that counts and no secret, so nothing the kernel does here can
change its reward. The trusted side (`replay.py`) replays the record on data of its own.

`prepare()` builds what every candidate needs (run once, in the warm process, before any candidate runs);
`record(request)` runs one candidate and returns a status line (JSON) followed by the record.
"""

from __future__ import annotations

import collections
import gc
import importlib
import json
import math
import sys
import time
import traceback
import types

import numpy as np

from simulators.trainium.config import TrainiumConfig
from simulators.trainium.guard import attribute_allowed, module_allowed, safe_builtins, scan
from simulators.trainium.kernels import parse_kernel
from simulators.trainium.nkisim import runtime, trace
from simulators.trainium.nkisim.api import _to_hbm
from simulators.trainium.nkisim.runtime import ConstraintError, NkiError, fail
from simulators.trainium.nkisim.typing import Placeholder

SHIM = "neuronxcc"


def api_modules() -> dict[str, types.ModuleType]:
    """The public NKI modules by short name ("language", "isa", "typing"), as the shim exports them."""
    return {
        name[len(SHIM) + 5 :]: mod
        for name, mod in sorted(sys.modules.items())
        if name.startswith(SHIM + ".nki.") and isinstance(mod, types.ModuleType)
    }


class _Kernel:
    """`@nki.jit` (or baremetal/benchmark) in the sandbox: the harness traces `func`; called from inside a kernel,
    a jit or baremetal kernel is inlined (its calls are recorded like the caller's), a benchmark is refused."""

    def __init__(self, func, kind: str) -> None:
        self.func = func
        self.kind = kind
        self.__name__ = getattr(func, "__name__", "kernel")
        self.__doc__ = getattr(func, "__doc__", None)

    def __getitem__(self, grid) -> _Kernel:
        return self  # an SPMD launch inside a kernel is inlined, as before

    def __call__(self, *args, **kwargs):
        if trace._active[0] is None:
            fail("kernels are run by the harness: a solution only defines them")
        if self.kind == "benchmark":
            fail("nki.benchmark / nki.profile cannot run inside a kernel")
        return self.func(*args, **kwargs)


def _decorator(kind: str):
    def deco(func=None, *args, **kw):
        if func is None or not callable(func):
            return lambda f: _Kernel(getattr(f, "func", f), kind)
        return _Kernel(getattr(func, "func", func), kind)

    deco.__name__ = kind
    return deco


def _simulate_kernel(*args, **kwargs):
    fail("nki.simulate_kernel cannot be called from kernel code: the harness runs the kernel")


class Prepared:
    """The modules a candidate sees (recording copies of the public API) and the names a record may use."""

    def __init__(self) -> None:
        raw = api_modules()
        self.names = trace.Names(raw)
        nki = types.ModuleType(SHIM + ".nki", sys.modules[SHIM + ".nki"].__doc__)
        for kind in ("jit", "baremetal", "benchmark"):
            setattr(nki, kind, _decorator(kind))
        nki.profile = _decorator("benchmark")
        nki.simulate_kernel = _simulate_kernel
        self.mods = {"numpy": np, "math": math, SHIM + ".nki": nki}
        for short, mod in raw.items():
            pub = trace.public_module(mod, short, self.names)
            setattr(nki, short, pub)
            self.mods[mod.__name__] = pub
        top = types.ModuleType(SHIM)
        top.nki = nki
        self.mods[SHIM] = top


_prepared: list[Prepared] = []


def prepare() -> Prepared:
    """Build the candidate's modules once; refuse np.load, which unpickles any file it is pointed at (code execution
    from a crafted file): kernels cannot reach its module by name, and here it and its re-exports are replaced."""
    if not _prepared:
        importlib.import_module(SHIM + ".nki")  # the shim: its directory is on the path where this runs
        for mod in [m for n, m in list(sys.modules.items()) if n.split(".")[0] == "numpy"]:
            if getattr(mod, "load", None) is np.load:  # numpy.matlib and others re-export it
                mod.load = _refuse_load
        np.load = _refuse_load
        _prepared.append(Prepared())
    return _prepared[0]


def _refuse_load(*args, **kwargs):
    raise PermissionError("numpy.load is not available to kernels")


class _Untimed:
    """The timeline's stand-in here: nothing is timed in the candidate's process (the replay times what it records),
    so scheduling is skipped. Every method does nothing and returns 0; counters are only added to."""

    def __init__(self) -> None:
        self.c = collections.defaultdict(int)

    def __getattr__(self, name: str):
        return _nothing


def _nothing(*args, **kwargs) -> float:
    return 0.0


def _line_of(tb) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == trace.SOLUTION:
            line = lineno
    return line


def _error(kind: str, message: str, line=None) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message[:4000], "line": line}}).encode() + b"\n"


def record(payload: dict, body: bytes = b"") -> bytes:
    """Run one candidate (payload: source, kernel, config): a status line, then the record of its NKI calls."""
    p = prepare()
    t0 = time.perf_counter()
    source = payload["source"]
    bad = scan(source)
    if bad:
        return _error(*bad)
    mods = p.mods

    def importer(name, globals=None, locals=None, fromlist=(), level=0):
        if level or not module_allowed(name) or name not in mods:
            raise ImportError(f"import of {name!r} is not allowed")
        for a in fromlist or ():
            if a != "*" and not attribute_allowed(a):
                raise ImportError(f"importing {a!r} from {name} is not allowed")
        return mods[name] if fromlist else mods[name.split(".")[0]]

    nl = mods[SHIM + ".nki.language"]
    ns = {
        "__builtins__": safe_builtins(importer),
        "__name__": "solution",
        "nki": mods[SHIM + ".nki"],
        "nl": nl,
        "nisa": mods[SHIM + ".nki.isa"],
        "nt": mods[SHIM + ".nki.typing"],
        "np": np,
        "math": math,
        "par_dim": nl.par_dim,
        "range": nl.sequential_range,  # the NKI compiler turns Python range() into sequential_range
    }
    spec = parse_kernel(payload["kernel"])
    cfg = TrainiumConfig.from_dict(payload.get("config") or {})
    shapes = [Placeholder(*a) if isinstance(a, tuple) else a for a in spec.input_shapes()]
    gc.disable()  # objects are released by reference counts only: a loop's end is recorded where the kernel left it
    times = {"guard_s": time.perf_counter() - t0}
    try:
        t0 = time.perf_counter()
        code = compile(source, trace.SOLUTION, "exec")
        exec(code, ns)
        # The entry point: `solution`, else `test` (Autocomp's kernel files), else the only @nki.jit kernel.
        kern = ns.get("solution")
        if kern is None and isinstance(ns.get("test"), _Kernel):
            kern = ns["test"]
        if kern is None:
            kernels = [v for v in ns.values() if isinstance(v, _Kernel)]
            if len(kernels) != 1:
                return _error("runtime_error", "no kernel found: define an @nki.jit function named `solution`")
            kern = kernels[0]
        func = kern.func if isinstance(kern, _Kernel) else kern
        if not callable(func):
            return _error("runtime_error", "`solution` is not a function")
        times["exec_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sess = runtime.Session(cfg, functional=False)
        sess.tl = _Untimed()
        with runtime.use_session(sess), trace.Recorder(p.names) as rec:
            args = [rec.param(_to_hbm(a, False)) for a in shapes]
            rec.finish(func(*args))
        times["trace_s"] = time.perf_counter() - t0
    except ConstraintError as e:
        return _error("constraint_error", str(e), _line_of(e.__traceback__))
    except NkiError as e:
        return _error(e.type, str(e), _line_of(e.__traceback__))
    except MemoryError:
        return _error("memory_limit", "the kernel ran out of memory")
    except RecursionError as e:
        return _error("runtime_error", f"RecursionError: {e}", _line_of(e.__traceback__))
    except SyntaxError as e:
        return _error("compile_error", f"SyntaxError: {e.msg}", e.lineno)
    except SystemExit as e:
        return _error("runtime_error", f"the kernel called exit({e.code})", _line_of(e.__traceback__))
    except Exception as e:  # noqa: BLE001  (any failure of candidate code is a structured error)
        return _error("runtime_error", f"{type(e).__name__}: {e}", _line_of(e.__traceback__))
    t0 = time.perf_counter()
    data = rec.dumps()
    times["encode_s"] = time.perf_counter() - t0
    status = {"entries": len(rec.entries), "objects": rec.n, "record_bytes": len(data), **times}
    return json.dumps(status).encode() + b"\n" + data


def main() -> int:
    """The cold path (a fresh interpreter under sandbox.run): request.json in, record.bin out."""
    with open("request.json") as f:
        payload = json.load(f)
    out = record(payload)
    with open("record.bin", "wb") as f:
        f.write(out)
    return 0
