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
import shutil
import signal
import sys
import tempfile
import threading
import time

from .. import sandbox, warm
from ..result import ERROR_TYPES, SimResult, within_roofline
from .config import TrainiumConfig
from .guard import scan
from .kernels import KernelSpec, parse_kernel

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_HERE = os.path.dirname(os.path.abspath(__file__))
_SHIM = os.path.join(_HERE, "shim")
# What runs where: the candidate's side in a confined child, the trusted side in a child with limits only.
RECORD = "simulators.trainium.runner:record"
REPLAY = "simulators.trainium.replay:replay"
PREPARE = "simulators.trainium.replay:prepare"
MAX_RECORD = 256 << 20  # bytes of call record a kernel may produce (the largest tutorial kernel needs ~4 MB)
_BLAS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The cold path (bubblewrap, no Landlock): a fresh interpreter runs the candidate's side under sandbox.run.
_COLD = (
    "import sys; sys.path[:0] = [sys.argv[1] + '/simulators/trainium/shim', sys.argv[1]] + sys.argv[2:]; "
    "from simulators.trainium import runner; sys.exit(runner.main())"
)


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    """Where this interpreter finds numpy and ml_dtypes (looked up once). The sandboxed interpreters start with -S
    (no site: ~20 ms less, and no .pth file of the environment runs) and get exactly these instead."""
    import importlib.util

    dirs: list[str] = []
    for name in ("numpy", "ml_dtypes"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            d = os.path.dirname(os.path.dirname(spec.origin))
            if d not in dirs:
                dirs.append(d)
    return tuple(dirs)


def read_paths() -> tuple[str, ...]:
    """What a confined candidate may read (under Landlock): the standard library, numpy's and ml_dtypes'
    directories and our package, for modules imported late. Not the home directory, /proc, /tmp or /etc."""
    return (os.path.dirname(os.__file__), *_library_dirs(), os.path.join(_ROOT, "simulators"))


_warm_lock = threading.Lock()
_warm_proc: list[warm.Warm] = []


def warm_process() -> warm.Warm:
    """The warm process of this host process (shared by every TrainiumSimulator), started on first use."""
    with _warm_lock:
        if not _warm_proc:
            _warm_proc.append(warm.Warm([_SHIM, _ROOT, *_library_dirs()], PREPARE, env=dict(_BLAS)))
        return _warm_proc[0]


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
    Results are cached in-process by (code hash, kernel, seed) and (code hash, kernel, config), unless
    `cache_results=False` (the env's evaluator caches results itself: one cache layer there).
    """

    version = "trn1-nki1-sim-0.4"

    def __init__(self, config: TrainiumConfig | None = None, *, cache_results: bool = True) -> None:
        self.config = config or TrainiumConfig()
        self.cache_results = cache_results
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
        if not self.cache_results:  # each run starts from nothing known
            self._seed_cache.clear()
            self._profile_cache.clear()
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
        result = SimResult(
            correct=True,
            latency=latency,
            unit=UNIT,
            utilization=self._utilization(spec, profile),
            counters=profile,
        )
        # The model cannot beat the roofline: a latency below it is tampering or a simulator bug.
        return within_roofline(result, self.roofline(spec.name), spec.name)

    def _utilization(self, spec: KernelSpec, p: dict) -> float:
        """MFU for matmul kernels; otherwise the fraction of the DMA/HBM ceiling used (MBU)."""
        return p.get("mfu") if spec.tensor_macs else p.get("mbu")

    def _sandboxed(self, code: str, spec: KernelSpec, seeds: list[int], timing: bool, timeout: float) -> dict:
        """Record the candidate's NKI calls in the sandbox, then replay them here on inputs from secret seeds drawn
        after the candidate's process is gone: the replay decides correctness and latency."""
        t0 = time.monotonic()
        w = warm_process()
        phases: dict = {}
        self.last_phases = phases
        tmp = tempfile.mkdtemp(prefix=f"autocomp-sbx-{os.getpid()}-")
        try:
            limits = sandbox.Limits(wall_seconds=timeout, cpu_seconds=int(max(1, timeout)), memory_bytes=6 << 30)
            payload = {"source": code, "kernel": spec.name, "config": self.config.to_dict()}
            if w.landlock(True) or not _cold_available():
                out = w.call(RECORD, payload, limits=limits, cwd=tmp, read_paths=read_paths(), max_result=MAX_RECORD)
                if out.returncode == warm.EXIT_UNISOLATED:  # the same policy as sandbox.run's namespace level
                    raise sandbox.SandboxUnavailable(
                        "this machine has neither Landlock nor bubblewrap and refuses the namespaces that hide your "
                        "home directory and other processes from model code. Install bubblewrap (apt-get install "
                        "bubblewrap), or set AUTOCOMP_SANDBOX=rlimits to run it anyway without that isolation."
                    )
                phases.update(record_wall_s=out.wall_seconds, sandbox_start_s=out.start_seconds)
                phases["record_cpu_s"] = out.cpu_seconds
                failed = _failure(out, timeout, "kernel")
                data = out.result
            else:
                out = sandbox.run(
                    [sys.executable, "-I", "-S", "-c", _COLD, _ROOT, *_library_dirs()],
                    files={"request.json": json.dumps(payload)},
                    limits=limits,
                    read_back=("record.bin",),
                    env=dict(_BLAS),
                )
                phases.update(record_wall_s=out.wall_seconds)
                failed = _failure(out, timeout, "kernel")
                data = out.files.get("record.bin", b"")
            phases["isolation"] = list(out.isolation)
            if w.cgroup and "cgroup-pids" not in out.isolation:  # the warm process's cgroup holds its children
                phases["isolation"].append("cgroup-pids")
            if failed:
                return failed
            status, _, record = data.partition(b"\n")
            try:
                status = json.loads(status)
            except ValueError:
                status = None
            if not isinstance(status, dict):
                return _err("runtime_error", "the kernel's process returned no status")
            if status.get("error"):  # the candidate's process reports it: only a known type, a number for a line
                e = status["error"] if isinstance(status["error"], dict) else {}
                kind = e.get("type") if e.get("type") in ERROR_TYPES else "runtime_error"
                line = e.get("line") if type(e.get("line")) is int else None
                return _err(kind, str(e.get("message"))[:4000], line)
            phases.update({k: v for k, v in status.items() if k.endswith("_s") and type(v) in (int, float)})
            # The secret seeds exist only from here on: the candidate's process (and everything it started) is dead.
            left = max(1.0, timeout - (time.monotonic() - t0))
            req = {
                "kernel": spec.name,
                "config": self.config.to_dict(),
                "seeds": {str(s): secrets.randbits(63) for s in seeds},
                "timing": timing,
            }
            rl = sandbox.Limits(wall_seconds=left, cpu_seconds=int(math.ceil(left)), memory_bytes=6 << 30)
            rep = w.call(REPLAY, req, record, limits=rl, confined=False)
            phases.update(replay_wall_s=rep.wall_seconds, replay_cpu_s=rep.cpu_seconds)
            failed = _failure(rep, timeout, "replay")
            if failed:
                return failed
            res = json.loads(rep.result)
            phases.update({k: v for k, v in (res.pop("times", None) or {}).items()})
            return res
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            phases["total_s"] = time.monotonic() - t0


def _cold_available() -> bool:
    """Without Landlock, bubblewrap's filesystem isolation beats a warm fork's: use it where it is installed."""
    return sandbox._BWRAP is not None and sandbox._mode() == "auto"


def _err(kind: str, message: str, line=None) -> dict:
    return {"error": {"type": kind, "message": message, "line": line}}


def _failure(out, timeout: float, what: str) -> dict | None:
    """The structured error for a sandboxed process that did not return a result, or None if it did."""
    files = getattr(out, "files", None)
    got = out.result if files is None else files.get("record.bin")
    if out.timed_out:
        return _err("timeout", f"the {what} did not finish within {timeout:g} s")
    if getattr(out, "result_truncated", False):
        return _err("output_limit", f"the kernel's call record exceeds {MAX_RECORD >> 20} MiB (too many NKI calls)")
    if out.output_truncated:
        return _err("output_limit", "the kernel printed too much")
    if got and out.returncode == 0:
        return None
    tail = ((out.output if files is None else out.stderr) or "")[-2000:]
    if "MemoryError" in tail:
        return _err("memory_limit", f"the {what} ran out of memory: {tail[-500:]}")
    if out.signal in (signal.SIGXCPU, signal.SIGKILL):
        return _err("timeout", f"the {what} exceeded its {timeout:g} s CPU budget")
    if out.signal is not None:
        return _err("runtime_error", f"the {what}'s process died with signal {out.signal}")
    return _err("runtime_error", f"the {what}'s process failed: {tail}")


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
