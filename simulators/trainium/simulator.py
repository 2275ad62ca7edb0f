"""`TrainiumSimulator`: run an NKI v1 kernel (as source text) on the trn1 model, through the sandbox."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import secrets
import signal
import sys
import time

from .. import sandbox
from ..result import SimResult
from .config import TrainiumConfig
from .guard import scan
from .kernels import KernelSpec, parse_kernel
from .runner import output_files

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """Where this interpreter finds numpy and ml_dtypes (looked up once). The runner starts with -S (no site:
    ~20 ms less per evaluation, and no .pth file of the environment runs) and gets exactly these instead."""
    import importlib.util

    dirs: list[str] = []
    for name in ("numpy", "ml_dtypes"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            d = os.path.dirname(os.path.dirname(spec.origin))
            if d not in dirs:
                dirs.append(d)
    return tuple(dirs)


UNIT = "us"
MODES = ("auto", "functional", "timing")


class TrainiumSimulator:
    """A functional + cycle-approximate trn1 NeuronCore-v2 simulator for NKI v1 kernels.

    `run(code, kernel)` executes the candidate (an `@nki.jit def solution(...)`, imports optional) in the
    sandbox; its raw outputs are compared with the reference here, in the host process, out of the kernel's
    reach. mode="auto": a functional check on each seed not yet checked for this code (real shapes, seeded
    inputs, numpy reference) plus the latency from the same trace; mode="timing": latency only, from a trace
    without data (`counters["checked"]` says whether correctness on `seeds` is known from the cache; if not,
    `correct` is True only in the sense "ran without error"); mode="functional": both, no caching.
    Results are cached in-process by (code hash, kernel, seed) and (code hash, kernel, config).
    """

    version = "trn1-nki1-sim-0.2"

    def __init__(self, config: TrainiumConfig | None = None) -> None:
        self.config = config or TrainiumConfig()
        self._seed_cache: dict[tuple, dict] = {}
        self._profile_cache: dict[tuple, dict] = {}

    # -- analytic figures -------------------------------------------------------------------------------------------
    def macs(self, kernel: str) -> int:
        return parse_kernel(kernel).macs

    def roofline(self, kernel: str) -> float:
        """Ideal latency in us: max(TensorE MACs at 92 TFLOPS bf16, minimum HBM bytes at the DMA/HBM ceiling)
        plus the launch overhead. Non-matmul work (VectorE/ScalarE) is not counted, so this is a lower bound."""
        spec = parse_kernel(kernel)
        cfg = self.config
        compute_ns = 2 * spec.tensor_macs / cfg.peak_flops * 1e9
        memory_ns = spec.hbm_bytes / cfg.dma_peak_bytes_per_ns
        return max(compute_ns, memory_ns) / 1000.0 + cfg.launch_overhead_us

    # -- simulation --------------------------------------------------------------------------------------------------
    def run(self, code: str, kernel: str, *, seeds=(0, 1), mode: str = "auto", timeout: float = 60.0) -> SimResult:
        """Simulate `code` on `kernel`; every result, failures included, carries the seconds this call took."""
        t0 = time.monotonic()
        r = self._run(code, kernel, seeds, mode, timeout)
        return dataclasses.replace(r, sim_seconds=time.monotonic() - t0)

    def _run(self, code: str, kernel: str, seeds, mode: str, timeout: float) -> SimResult:
        try:
            spec = parse_kernel(kernel)
        except ValueError as e:
            return SimResult.failure(UNIT, "invalid_kernel", str(e))
        if mode not in MODES:
            return SimResult.failure(UNIT, "invalid_kernel", f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(code, str):
            return SimResult.failure(UNIT, "compile_error", "code must be a string")
        bad = scan(code)
        if bad:
            return SimResult.failure(UNIT, bad[0], bad[1], line=bad[2])
        h = hashlib.sha256(code.encode()).hexdigest()
        cfg_key = json.dumps(self.config.to_dict(), sort_keys=True)
        seeds = tuple(int(s) for s in seeds)
        if mode == "timing":
            need_seeds: list[int] = []
        elif mode == "functional":
            need_seeds = list(seeds)
        else:
            need_seeds = [s for s in seeds if (h, spec.name, s) not in self._seed_cache]
        pkey = (h, spec.name, cfg_key)
        want_timing = pkey not in self._profile_cache or mode == "functional"
        if mode == "auto" and any(not self._seed_cache.get((h, spec.name, s), {"ok": True})["ok"] for s in seeds):
            need_seeds, want_timing = [], False  # known wrong on one seed: wrong, whatever the others give
        if need_seeds or want_timing:
            res = self._sandboxed(code, spec, need_seeds, want_timing, timeout)
            if "error" in res and res["error"] and res["error"]["type"] != "wrong_output":
                e = res["error"]
                return SimResult.failure(UNIT, e["type"], e["message"], line=e.get("line"))
            for s, r in res.get("seeds", {}).items():
                self._seed_cache[(h, spec.name, int(s))] = r
            if res.get("profile") is not None:
                self._profile_cache[pkey] = res["profile"]
            if res.get("error"):
                e = res["error"]
                return SimResult(False, None, UNIT, error=_sim_error(e), counters=res.get("profile") or {})
        checked = True
        for s in seeds:  # in timing mode, a correctness result already cached for this code still counts
            r = self._seed_cache.get((h, spec.name, s))
            if r is None:
                checked = False
            elif not r["ok"]:
                return SimResult.failure(UNIT, "wrong_output", f"seed {s}: {r['message']}")
        profile = dict(self._profile_cache[pkey])
        profile["checked"] = checked
        latency = profile.get("latency_us")
        if type(latency) not in (int, float):
            return SimResult.failure(UNIT, "sandbox_violation", f"the runner reported no latency ({latency!r})")
        floor = self.roofline(spec.name)
        # The model cannot beat the roofline: a latency below it is tampering or a simulator bug.
        if not math.isfinite(latency) or latency <= 0 or latency < floor * (1 - 1e-9):
            return SimResult.failure(
                UNIT, "beyond_roofline", f"simulated {latency:.3f} us is below the roofline {floor:.3f} us"
            )
        return SimResult(
            correct=True,
            latency=latency,
            unit=UNIT,
            utilization=self._utilization(spec, profile),
            counters=profile,
        )

    def _utilization(self, spec: KernelSpec, p: dict) -> float:
        """MFU for matmul kernels; otherwise the fraction of the DMA/HBM ceiling used (MBU)."""
        return p.get("mfu") if spec.tensor_macs else p.get("mbu")

    def _sandboxed(self, code: str, spec: KernelSpec, seeds: list[int], timing: bool, timeout: float) -> dict:
        req = {"kernel": spec.name, "functional_seeds": seeds, "timing": timing, "config": self.config.to_dict()}
        shape, _ = spec.output()
        most = int(_prod(shape)) * 8  # the widest dtype an output may come back in
        outs = tuple(n for s in seeds for n in output_files(s, most))
        nonce = secrets.token_hex(16)
        limits = sandbox.Limits(wall_seconds=timeout, cpu_seconds=int(max(1, timeout)), memory_bytes=6 << 30)
        out = sandbox.run(
            [sys.executable, "-I", "-S", _RUNNER, _ROOT, *_library_dirs()],
            files={"solution.py": code, "request.json": json.dumps(req)},
            limits=limits,
            read_back=("result.json", *outs),
            # one BLAS thread: the machine is shared, and threaded OpenBLAS on tiny tiles is ~50x slower
            env={
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                "AUTOCOMP_RESULT_NONCE": nonce,
            },
        )
        if out.timed_out:
            return {"error": {"type": "timeout", "message": f"the kernel did not finish within {timeout} s"}}
        if "result.json" not in out.files:
            tail = (out.stderr or "")[-2000:]
            if "MemoryError" in tail:
                return {"error": {"type": "memory_limit", "message": f"the kernel ran out of memory: {tail[-500:]}"}}
            if out.signal in (signal.SIGXCPU, signal.SIGKILL):
                return {"error": {"type": "timeout", "message": f"the kernel exceeded its {timeout} s CPU budget"}}
            if out.signal is not None:
                return {"error": {"type": "runtime_error", "message": f"the runner died with signal {out.signal}"}}
            return {"error": {"type": "runtime_error", "message": f"the runner failed: {tail}"}}
        try:
            res = json.loads(out.files["result.json"])
        except ValueError:
            res = {}
        if not isinstance(res, dict) or res.get("nonce") != nonce:
            return {"error": {"type": "sandbox_violation", "message": "result file not written by the runner"}}
        if res.get("error"):
            return res
        # Correctness is judged here, on the raw outputs, with the host's own inputs and reference.
        judged = {}
        for s in seeds:
            try:
                ok, msg = _judge(spec, s, (res.get("outputs") or {}).get(str(s)), out.files)
            except _Forged as e:
                return {"error": {"type": "sandbox_violation", "message": str(e)}}
            seconds = ((res.get("seeds") or {}).get(str(s)) or {}).get("seconds")
            judged[str(s)] = {"ok": ok, "message": msg, "seconds": seconds}
            if not ok:
                res["error"] = {"type": "wrong_output", "message": f"seed {s}: {msg}"}
                break
        res["seeds"] = judged
        return res


class _Forged(Exception):
    """The runner's output files do not match its record of them."""


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _judge(spec: KernelSpec, seed: int, rec, files: dict[str, bytes]) -> tuple[bool, str]:
    """(ok, message) for the output the runner sent for `seed`, against the reference computed here."""
    import numpy as np

    if not isinstance(rec, dict):
        raise _Forged(f"the runner sent no output for seed {seed}")
    kind = rec.get("kind")
    if kind == "none":
        return spec.check(None, None)
    if kind != "array":
        return False, f"the kernel returned a {str(kind)[:100]}, not an HBM tensor"
    want, _ = spec.output()
    try:
        dt = np.dtype(rec["dtype"])
        shape = tuple(int(d) for d in rec["shape"])
        nbytes = int(rec["nbytes"])
    except (KeyError, TypeError, ValueError) as e:
        raise _Forged(f"bad output record for seed {seed}: {e}") from None
    if not (dt.kind in "biuf" or dt.type.__module__.startswith("ml_dtypes")) or dt.itemsize > 8:
        return False, f"the kernel returned an array of {dt}, not of numbers"
    if shape != tuple(want):
        return False, f"output shape {shape} != expected {tuple(want)}"
    data = b"".join(files.get(n, b"") for n in output_files(seed, nbytes))
    if len(data) != nbytes or nbytes != _prod(shape) * dt.itemsize:
        raise _Forged(f"output of seed {seed}: {len(data)} bytes read back, the runner recorded {nbytes}")
    if hashlib.sha256(data).hexdigest() != rec.get("sha256"):
        raise _Forged(f"output of seed {seed} does not match the runner's hash")
    got = np.frombuffer(data, dtype=dt).reshape(shape)
    return spec.check(got, spec.reference(spec.inputs(seed)))


def _sim_error(e: dict):
    from ..result import SimError

    return SimError(e["type"], e["message"], e.get("line"))


def main(argv: list[str] | None = None) -> int:
    """`autocomp-env sim trainium FILE.py --kernel NAME [--json]`."""
    ap = argparse.ArgumentParser(prog="autocomp-env sim trainium", description=main.__doc__)
    ap.add_argument("file")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--mode", default="auto", choices=MODES)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args(argv)
    with open(a.file) as f:
        code = f.read()
    seeds = tuple(int(s) for s in a.seeds.split(",") if s.strip())
    r = TrainiumSimulator().run(code, a.kernel, seeds=seeds, mode=a.mode, timeout=a.timeout)
    if a.json:
        err = None if r.error is None else {"type": r.error.type, "message": r.error.message, "line": r.error.line}
        print(
            json.dumps(
                {"correct": r.correct, "latency_us": r.latency, "error": err, "profile": r.counters}, sort_keys=True
            )
        )
    else:
        if r.error:
            where = f" (line {r.error.line})" if r.error.line else ""
            print(f"{r.error.type}{where}: {r.error.message}")
        else:
            print(f"correct={r.correct} latency={r.latency:.2f} us utilization={r.utilization:.3f}")
            for k in sorted(r.counters):
                print(f"  {k}: {r.counters[k]}")
    return 0 if r.correct else 1
