"""Runs one candidate NKI kernel inside the sandbox: `python3 -I runner.py ROOT` in a temp dir holding
solution.py and request.json; writes result.json. Everything the candidate does happens in this process."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


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
    nonce = os.environ.pop("AUTOCOMP_RESULT_NONCE", "")  # proves result.json was written by us, not the kernel
    req = json.load(open("request.json"))
    with open("solution.py") as f:
        source = f.read()
    result = run(source, req)
    result["nonce"] = nonce
    with open("result.json", "w") as f:
        json.dump(result, f)
    return 0


def _err(kind: str, message: str, line=None) -> dict:
    return {"error": {"type": kind, "message": message[:4000], "line": line}}


def run(source: str, req: dict) -> dict:
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

    bad = scan(source)
    if bad:
        return _err(*bad)
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
    out: dict = {"seeds": {}}
    try:
        exec(code, ns)
        kern = ns.get("solution")
        if kern is None:
            kernels = [v for v in ns.values() if isinstance(v, Kernel)]
            if len(kernels) != 1:
                return _err("runtime_error", "no kernel found: define an @nki.jit function named `solution`")
            kern = kernels[0]
        func = getattr(kern, "func", kern)
        if not callable(func):
            return _err("runtime_error", "`solution` is not a function")
        profile = None
        for seed in req.get("functional_seeds", []):
            args = spec.inputs(seed)
            t0 = time.time()
            got, sess = run_kernel(func, args, cfg=cfg, functional=True)
            ok, msg = spec.check(got, spec.reference(args))
            out["seeds"][str(seed)] = {"ok": ok, "message": msg, "seconds": round(time.time() - t0, 3)}
            if profile is None:
                profile = _profile(sess)
            if not ok:
                out.update(_err("wrong_output", f"seed {seed}: {msg}"))
                out["profile"] = profile
                return out
        if req.get("timing") and profile is None:
            from simulators.trainium.nkisim.typing import Placeholder

            args = [Placeholder(*a) if isinstance(a, tuple) else a for a in spec.input_shapes()]
            t0, c0 = time.time(), time.process_time()
            _, sess = run_kernel(func, args, cfg=cfg, functional=False)
            profile = _profile(sess)
            profile["timing_seconds"] = round(time.time() - t0, 3)
            profile["timing_cpu_seconds"] = round(time.process_time() - c0, 3)
        out["profile"] = profile
        return out
    except ConstraintError as e:
        return _err("constraint_error", str(e), _line_of(e.__traceback__))
    except NkiError as e:
        return _err(e.type, str(e), _line_of(e.__traceback__))
    except MemoryError:
        return _err("memory_limit", "the kernel ran out of memory")
    except RecursionError as e:
        return _err("runtime_error", f"RecursionError: {e}", _line_of(e.__traceback__))
    except SystemExit as e:
        return _err("runtime_error", f"the kernel called exit({e.code})", _line_of(e.__traceback__))
    except Exception as e:  # noqa: BLE001  (any failure of candidate code is a structured error)
        return _err("runtime_error", f"{type(e).__name__}: {e}", _line_of(e.__traceback__))


def _profile(sess) -> dict:
    p = sess.tl.profile()
    p["sbuf_peak_partition_bytes"] = sess.peak["sbuf"]
    p["psum_peak_partition_bytes"] = sess.peak["psum"]
    p["spilled_allocations"] = sess.spilled_allocs
    return p


if __name__ == "__main__":
    sys.exit(main())
