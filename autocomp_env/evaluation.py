"""Evaluating candidate code: dispatch to the target's simulator, check correctness on several seeds, cache.

`Evaluator.evaluate(kernel, code) -> SimResult`. The simulator is the target's, one instance per process
(`autocomp_env.targets.simulator`), and so is the time limit (`Target.timeout_for`). The roofline is
checked once, by the simulator (`simulators.result.within_roofline`): a correct result never claims a
latency below the kernel's roofline.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autocomp_env import targets
from autocomp_env.cache import EvalCache, cache_key
from autocomp_env.core import Kernel
from simulators.result import SimError, SimResult

# Errors that depend on the machine's load, not on the code: never cached.
_TRANSIENT = ("timeout",)


_FINGERPRINTS: dict[str, str] = {}
_SOURCE_SUFFIXES = (".py", ".c", ".h", ".inc", ".cc", ".json", ".yaml")


def source_fingerprint(sim: Any) -> str:
    """sha256 of the source files of the simulator's package. Part of the cache key: a simulator edited
    without a version bump (as happens during development) must not be answered from stale entries."""
    module = type(sim).__module__
    if module not in _FINGERPRINTS:
        top = ".".join(module.split(".")[:2])  # e.g. simulators.gemmini
        mod = sys.modules.get(top) or importlib.import_module(top)
        h = hashlib.sha256()
        file = getattr(mod, "__file__", None)
        if file is not None:
            root = Path(file).parent
            paths = sorted(root.rglob("*")) if hasattr(mod, "__path__") else [Path(file)]
            for path in paths:
                if path.suffix in _SOURCE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                    h.update(str(path.relative_to(root)).encode())
                    h.update(path.read_bytes())
        _FINGERPRINTS[module] = h.hexdigest()[:16]
    return _FINGERPRINTS[module]


def _config_of(sim: Any) -> Any:
    config = getattr(sim, "config", None)
    return repr(config) if config is not None else None


class Evaluator:
    """Simulates candidates for any kernel, with an optional persistent `EvalCache` and a small memo.

    Counters: `evaluations` (simulator runs), `hits` (answered from cache or memo), `sim_seconds` (spent in
    simulators in this evaluator).
    """

    def __init__(self, cache: EvalCache | None = None, seeds: Sequence[int] = (0, 1), memo_size: int = 2048):
        if not seeds:
            raise ValueError("an evaluator needs at least one correctness seed")
        self.cache = cache
        self.seeds = tuple(int(s) for s in seeds)
        self.memo_size = memo_size
        self._memo: dict[str, SimResult] = {}
        self._lock = threading.Lock()
        self.evaluations = 0
        self.hits = 0
        self.sim_seconds = 0.0

    def __getstate__(self) -> dict[str, Any]:  # picklable (spawned vector-env workers, Ray)
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def key(self, kernel: Kernel, code: str) -> str:
        sim = targets.simulator(kernel.target)
        return cache_key(
            code=code,
            kernel=kernel.name,
            simulator=sim.version,
            source=source_fingerprint(sim),
            config=_config_of(sim),
            seeds=list(self.seeds),
        )

    def evaluate(self, kernel: Kernel, code: str) -> SimResult:
        """Simulate `code` on `kernel`: correctness on every seed, latency, counters. Never raises for bad code."""
        return self.evaluate_with_hit(kernel, code)[0]

    def evaluate_with_hit(self, kernel: Kernel, code: str, *, use_cache: bool = True) -> tuple[SimResult, bool]:
        """(result, whether it came from the cache or memo instead of a simulator run). `use_cache=False`
        simulates anyway and overwrites the cached entry."""
        if not isinstance(code, str):
            return SimResult.failure(
                kernel.unit, "compile_error", f"code must be a string, got {type(code).__name__}"
            ), False
        key = self.key(kernel, code)
        result = self._memo.get(key) if use_cache else None
        if result is None and use_cache and self.cache is not None:
            result = self.cache.get(key)
        if result is not None:
            self.hits += 1
            self._remember(key, result)
            return result, True
        result = self._simulate(kernel, code)
        transient = result.error is not None and (
            result.error.type in _TRANSIENT or "simulator_exception" in result.counters
        )
        if not transient:
            self._remember(key, result)
            if self.cache is not None:
                try:
                    self.cache.put(key, result)
                except OSError as e:  # a full or read-only disk costs the cache, not the evaluation
                    warnings.warn(f"evaluation cache {self.cache.dir} not written: {e}", RuntimeWarning, stacklevel=2)
        return result, False

    def _remember(self, key: str, result: SimResult) -> None:
        with self._lock:  # evaluators may be shared by envs in threads
            if len(self._memo) >= self.memo_size:
                self._memo.pop(next(iter(self._memo)), None)
            self._memo[key] = result

    def _simulate(self, kernel: Kernel, code: str) -> SimResult:
        target = targets.target(kernel.target)
        sim = targets.simulator(target.name)
        t0 = time.perf_counter()
        try:
            result = sim.run(code, kernel.name, seeds=self.seeds, timeout=target.timeout_for(kernel, len(self.seeds)))
        except Exception as e:  # a simulator bug must surface as data, not kill the rollout
            result = SimResult(
                False,
                None,
                kernel.unit,
                error=SimError("runtime_error", f"simulator raised {type(e).__name__}: {e}"),
                counters={"simulator_exception": 1},
            )
        self.evaluations += 1
        self.sim_seconds += max(result.sim_seconds, time.perf_counter() - t0)
        return result
