"""Runs one candidate NKI kernel inside the sandbox: `python3 -I -S runner.py ROOT LIBDIR...` in a temp dir holding
solution.py and request.json; writes result.json (errors, the profile) and the kernel's raw outputs.
Everything the candidate does happens in this process, so nothing here judges correctness: the host compares
the outputs with its own reference (`TrainiumSimulator`), out of the candidate's reach."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
import types

CHUNK_BYTES = 32 << 20  # outputs are written in pieces below the sandbox's per-file limit
# Modules whose functions the simulator computes with: a kernel that rebinds one is refused after the run.
_WATCHED = ("numpy", "math", "ml_dtypes", "neuronxcc", "simulators", "json", "hashlib")


def output_files(seed: int, max_bytes: int) -> list[str]:
    """The file names an output of at most `max_bytes` bytes is written to (what the host reads back)."""
    return [f"out{seed}-{i}.bin" for i in range(max(1, -(-max_bytes // CHUNK_BYTES)))]


def _line_of(tb) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == "solution.py":
            line = lineno
    return line


def main() -> int:
    root = os.path.abspath(sys.argv[1])
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p) != here]
    sys.path[:0] = [os.path.join(root, "simulators", "trainium", "shim"), root]
    sys.path += [p for p in sys.argv[2:] if p not in sys.path]  # numpy's and ml_dtypes' dirs (run with -S)
    nonce = os.environ.pop("AUTOCOMP_RESULT_NONCE", "")  # proves result.json was written by us, not the kernel
    req = json.load(open("request.json"))
    with open("solution.py") as f:
        source = f.read()
    result, outputs = run(source, req)
    result["outputs"] = {str(seed): _write_output(seed, got) for seed, got in outputs.items()}
    result["nonce"] = nonce
    with open("result.json", "w") as f:
        json.dump(result, f)
    return 0


def _write_output(seed: int, got) -> dict:
    """Raw bytes of one output in CHUNK_BYTES files; the record says what they hold (and their hash, so the
    host knows the runner wrote them)."""
    import numpy as np

    if got is None:
        return {"kind": "none"}
    if type(got) is not np.ndarray:
        return {"kind": type(got).__name__}
    if got.dtype.hasobject or got.dtype.fields is not None:
        return {"kind": f"array of {got.dtype}"}
    data = np.ascontiguousarray(got).tobytes()
    names = output_files(seed, len(data))
    for i, name in enumerate(names):
        with open(name, "wb") as f:
            f.write(data[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES])
    return {
        "kind": "array",
        "dtype": got.dtype.name,
        "shape": list(got.shape),
        "nbytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _snapshot() -> dict:
    """The functions, classes and submodules of the watched modules, as objects (compared by identity), and a
    shallow copy of numpy's module-level tables (np.sctypeDict maps dtype names: editing it retypes arrays)."""
    snap = {}
    for name, mod in list(sys.modules.items()):
        if isinstance(mod, types.ModuleType) and name.split(".")[0] in _WATCHED:
            attrs, tables = {}, {}
            for k, v in vars(mod).items():
                if isinstance(v, types.ModuleType) or callable(v):
                    attrs[k] = v
                elif not k.startswith("__") and name.split(".")[0] != "simulators" and _table(v) is not None:
                    tables[k] = (v, _table(v))
            snap[name] = (mod, attrs, tables)
    return snap


def _table(v):
    """A comparable shallow copy of a mutable container (None for anything else)."""
    import numpy as np

    if type(v) is dict:
        return [x for kv in v.items() for x in kv]
    if type(v) in (list, set):
        return list(v)
    if type(v) is np.ndarray and v.dtype != object:
        return (v.shape, v.dtype, v.tobytes())
    return None


def _same(a, b) -> bool:
    if isinstance(a, tuple):  # an array's shape, dtype, bytes
        return a == b
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _altered(snap: dict) -> str | None:
    """The first watched module attribute the kernel rebound, deleted or edited, if any."""
    for name, (mod, attrs, tables) in snap.items():
        if sys.modules.get(name) is not mod:
            return name
        d = vars(mod)
        for k, v in attrs.items():
            if d.get(k) is not v:
                return f"{name}.{k}"
        for k, (v, copy) in tables.items():
            if d.get(k) is not v or not _same(_table(v), copy):
                return f"{name}.{k}"
    return None


def _refuse_load(*args, **kwargs):
    raise PermissionError("numpy.load is not available to kernels")


def _err(kind: str, message: str, line=None) -> dict:
    return {"error": {"type": kind, "message": message[:4000], "line": line}}


def run(source: str, req: dict) -> tuple[dict, dict]:
    """(result, outputs by seed). The result holds an error or the profile; outputs are whatever the kernel
    returned for each functional seed (numpy arrays when it worked), judged by the host."""
    import math

    import neuronxcc.nki as nki
    import neuronxcc.nki.isa as nisa
    import neuronxcc.nki.language as nl
    import neuronxcc.nki.typing as nt
    import numpy as np

    from simulators.trainium.config import TrainiumConfig
    from simulators.trainium.guard import module_allowed, safe_builtins, scan
    from simulators.trainium.kernels import parse_kernel
    from simulators.trainium.nkisim.api import Kernel, run_kernel
    from simulators.trainium.nkisim.runtime import ConstraintError, NkiError
    from simulators.trainium.nkisim.typing import Placeholder

    outputs: dict = {}
    bad = scan(source)
    if bad:
        return _err(*bad), outputs
    code = compile(source, "solution.py", "exec")
    mods = {"neuronxcc": sys.modules["neuronxcc"], "neuronxcc.nki": nki, "numpy": np, "math": math}

    def importer(name, globals=None, locals=None, fromlist=(), level=0):
        if level or not module_allowed(name):
            raise ImportError(f"import of {name!r} is not allowed")
        __import__(name)
        if fromlist:
            return sys.modules[name]
        return mods.get(name.split(".")[0], sys.modules[name.split(".")[0]])

    ns = {
        "__builtins__": safe_builtins(importer),
        "__name__": "solution",
        "nki": nki,
        "nl": nl,
        "nisa": nisa,
        "nt": nt,
        "np": np,
        "math": math,
        "par_dim": nl.par_dim,
    }
    ns["range"] = nl.sequential_range  # the NKI compiler turns Python range() into sequential_range
    spec = parse_kernel(req["kernel"])
    cfg = TrainiumConfig.from_dict(req.get("config") or {})
    # Inputs are made before any candidate code runs, so nothing it does at import time can shape them.
    inputs = {int(seed): spec.inputs(int(seed)) for seed in req.get("functional_seeds", [])}
    shapes = [Placeholder(*a) if isinstance(a, tuple) else a for a in spec.input_shapes()]
    # np.load unpickles any file it is pointed at (allow_pickle=True): code execution from a crafted file. Kernels
    # cannot reach its module by name; np.load and its re-exports are replaced here, before the snapshot.
    for mod in [m for n, m in sys.modules.items() if n.split(".")[0] == "numpy"]:
        if getattr(mod, "load", None) is np.load:  # numpy.matlib and others re-export it
            mod.load = _refuse_load
    np.load = _refuse_load
    snap = _snapshot()
    out: dict = {"seeds": {}}
    try:
        exec(code, ns)
        # The entry point: `solution`, else `test` (Autocomp's kernel files), else the only @nki.jit kernel.
        kern = ns.get("solution")
        if kern is None and isinstance(ns.get("test"), Kernel):
            kern = ns["test"]
        if kern is None:
            kernels = [v for v in ns.values() if isinstance(v, Kernel)]
            if len(kernels) != 1:
                return _err("runtime_error", "no kernel found: define an @nki.jit function named `solution`"), {}
            kern = kernels[0]
        func = getattr(kern, "func", kern)
        if not callable(func):
            return _err("runtime_error", "`solution` is not a function"), {}
        profile = None
        for seed, args in inputs.items():
            t0 = time.time()
            got, sess = run_kernel(func, args, cfg=cfg, functional=True)
            outputs[seed] = got
            out["seeds"][str(seed)] = {"seconds": round(time.time() - t0, 3)}
            if profile is None:
                profile = _profile(sess)
        if req.get("timing") and profile is None:
            t0, c0 = time.time(), time.process_time()
            _, sess = run_kernel(func, shapes, cfg=cfg, functional=False)
            profile = _profile(sess)
            profile["timing_seconds"] = round(time.time() - t0, 3)
            profile["timing_cpu_seconds"] = round(time.process_time() - c0, 3)
        out["profile"] = profile
    except ConstraintError as e:
        return _err("constraint_error", str(e), _line_of(e.__traceback__)), {}
    except NkiError as e:
        return _err(e.type, str(e), _line_of(e.__traceback__)), {}
    except MemoryError:
        return _err("memory_limit", "the kernel ran out of memory"), {}
    except RecursionError as e:
        return _err("runtime_error", f"RecursionError: {e}", _line_of(e.__traceback__)), {}
    except SystemExit as e:
        return _err("runtime_error", f"the kernel called exit({e.code})", _line_of(e.__traceback__)), {}
    except Exception as e:  # noqa: BLE001  (any failure of candidate code is a structured error)
        return _err("runtime_error", f"{type(e).__name__}: {e}", _line_of(e.__traceback__)), {}
    changed = _altered(snap)
    if changed:
        return _err("sandbox_violation", f"the kernel altered {changed}: modules are read-only"), {}
    return out, outputs


def _profile(sess) -> dict:
    p = sess.tl.profile()
    p["sbuf_peak_partition_bytes"] = sess.peak["sbuf"]
    p["psum_peak_partition_bytes"] = sess.peak["psum"]
    p["spilled_allocations"] = sess.spilled_allocs
    return p


if __name__ == "__main__":
    sys.exit(main())
