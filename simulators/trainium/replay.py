"""The trusted side of an evaluation: replay a candidate's record of NKI calls (`nkisim.trace`) on inputs drawn
here from secret seeds, compare the outputs with the reference, and time the same calls on the trn1 model.

The record comes from the sandbox and is checked like any untrusted data: it may only name public API functions,
methods and values, and every call is made by the API implementation on this process's own objects. No candidate
code runs here.
"""

from __future__ import annotations

import gc
import json
import time

import numpy as np

from simulators.trainium import runner
from simulators.trainium.config import TrainiumConfig
from simulators.trainium.kernels import KernelSpec, parse_kernel
from simulators.trainium.nkisim import trace
from simulators.trainium.nkisim.api import run_kernel
from simulators.trainium.nkisim.runtime import ConstraintError, NkiError, Tensor
from simulators.trainium.nkisim.typing import Placeholder
from simulators.trainium.runner import _line_of, api_modules

_names: list[trace.Names] = []


# A kernel run once in the warm process before any fork: what the first run initializes (numpy's and the API's
# lazy state, code paths) is then already there in every child instead of being redone by each.
_WARMUP = """
@nki.jit
def solution(a_tensor, g_tensor):
    out = nl.ndarray(a_tensor.shape, dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    g = nl.load(g_tensor.reshape((1, a_tensor.shape[1])))
    for i in nl.affine_range(1):
        a = nl.load(a_tensor[i * 128 : (i + 1) * 128, :])
        r = nl.rsqrt(nl.sum(nl.square(a), axis=[1]) / a_tensor.shape[1])
        t = nl.multiply(nl.multiply(a, r), g.broadcast_to((128, a_tensor.shape[1])))
        nl.store(out[i * 128 : (i + 1) * 128, :], value=t)
    return out
"""


def prepare() -> None:
    """What the warm process does before forking any child: build the candidate's modules and the record's names,
    run one small kernel through both sides, and freeze what exists so children share it untouched."""
    import gc

    runner.prepare()
    names()
    kernel = "trainium/rmsnorm-128x64"
    status, _, data = runner.record({"source": _WARMUP, "kernel": kernel}).partition(b"\n")
    gc.enable()  # record() turns it off for the child it normally runs in
    res = _replay({"kernel": kernel, "seeds": {"0": 0}, "timing": True}, data)
    if b"error" in status or res.get("error") or not res["seeds"]["0"]["ok"]:
        raise RuntimeError(f"the warm-up kernel failed: {status[:300]} {res.get('error')}")
    gc.collect()
    gc.freeze()


def names() -> trace.Names:
    if not _names:
        _names.append(trace.Names(api_modules()))
    return _names[0]


class _Kernel:
    """The record as a kernel function for run_kernel; remembers what the kernel returned (it must be an HBM
    tensor: a numpy array or a constant is no output of the kernel)."""

    def __init__(self, prog: trace.Program) -> None:
        self.prog = prog
        self.returned = None

    def __call__(self, *args):
        self.returned = self.prog(*args)
        return self.returned


def judge(spec: KernelSpec, returned, got, ref) -> tuple[bool, str]:
    """(ok, message) for one output: an HBM tensor of numbers of the expected shape, close to the reference."""
    if returned is None:
        return spec.check(None, ref)
    if not isinstance(returned, Tensor):
        return False, f"the kernel returned a {type(returned).__name__}, not an HBM tensor"
    if not isinstance(got, np.ndarray) or got.dtype.kind not in "biuf" and not trace._numeric_dtype(got.dtype):
        return False, "the kernel returned no array of numbers"
    return spec.check(got, ref)


def _profile(sess) -> dict:
    p = sess.tl.profile()
    p["sbuf_peak_partition_bytes"] = sess.peak["sbuf"]
    p["psum_peak_partition_bytes"] = sess.peak["psum"]
    p["spilled_allocations"] = sess.spilled_allocs
    return p


def _err(kind: str, message: str, line=None) -> dict:
    return {"error": {"type": kind, "message": message[:4000], "line": line}}


def replay(payload: dict, body: bytes) -> bytes:
    """payload: kernel, config, seeds (label -> secret seed), timing. Returns the result as JSON: per label
    {ok, message, seconds}, the profile, phase times, or an error."""
    out = _replay(payload, body)
    return json.dumps(out).encode()


def _replay(payload: dict, body: bytes) -> dict:
    t0 = time.perf_counter()
    spec = parse_kernel(payload["kernel"])
    cfg = TrainiumConfig.from_dict(payload.get("config") or {})
    res: dict = {"seeds": {}, "profile": None, "times": {}}
    try:
        prog = trace.Program(body, names())
        gc.freeze()  # the record's objects live until the end: collections need not walk them
        res["times"]["load_s"] = time.perf_counter() - t0
        kern = _Kernel(prog)
        for label, secret in payload.get("seeds", {}).items():
            t0 = time.perf_counter()
            inputs = spec.inputs(int(secret))
            got, sess = run_kernel(kern, inputs, cfg=cfg, functional=True)
            t1 = time.perf_counter()
            ok, msg = judge(spec, kern.returned, got, spec.reference(inputs))
            res["seeds"][label] = {"ok": ok, "message": msg, "seconds": round(t1 - t0, 4)}
            res["times"][f"replay_{label}_s"] = t1 - t0
            res["times"][f"check_{label}_s"] = time.perf_counter() - t1
            if res["profile"] is None:
                res["profile"] = _profile(sess)
            if not ok:
                res["error"] = {"type": "wrong_output", "message": f"seed {label}: {msg}"}
                return res
        if payload.get("timing") and res["profile"] is None:
            t0, c0 = time.perf_counter(), time.process_time()
            shapes = [Placeholder(*a) if isinstance(a, tuple) else a for a in spec.input_shapes()]
            _, sess = run_kernel(kern, shapes, cfg=cfg, functional=False)
            res["profile"] = _profile(sess)
            res["profile"]["timing_seconds"] = round(time.perf_counter() - t0, 3)
            res["profile"]["timing_cpu_seconds"] = round(time.process_time() - c0, 3)
            res["times"]["timing_s"] = time.perf_counter() - t0
    except trace.TraceError as e:
        return _err("sandbox_violation", f"the kernel's call record was refused: {e}", _line_of(e.__traceback__))
    except ConstraintError as e:
        return _err("constraint_error", str(e), _line_of(e.__traceback__))
    except NkiError as e:
        return _err(e.type, str(e), _line_of(e.__traceback__))
    except MemoryError:
        return _err("memory_limit", "the kernel ran out of memory")
    except RecursionError as e:
        return _err("runtime_error", f"RecursionError: {e}", _line_of(e.__traceback__))
    except Exception as e:  # noqa: BLE001  (a record that makes the API fail is the kernel's failure)
        return _err("runtime_error", f"{type(e).__name__}: {e}", _line_of(e.__traceback__))
    return res
