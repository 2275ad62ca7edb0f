"""A persistent, content-addressed cache of simulation results, safe across processes.

One JSON file per key (`<dir>/<key[:2]>/<key>.json`), written to a temp file and renamed into place, so
concurrent writers (Ray workers, vector-env subprocesses) never expose a half-written entry and the last
writer of an identical result wins harmlessly. Entries are data (JSON), never executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from simulators.result import SimResult


def default_cache_dir() -> Path:
    """`$AUTOCOMP_CACHE/eval`, else `~/.cache/autocomp-env/eval` (AUTOCOMP_CACHE is the root of every
    autocomp-env cache: the simulators keep their builds beside it)."""
    env = os.environ.get("AUTOCOMP_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "autocomp-env") / "eval"


def cache_key(**parts: Any) -> str:
    """sha256 of the parts as canonical JSON (e.g. code, kernel, simulator version, config, seeds)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


class EvalCache:
    """`get(key) -> SimResult | None`, `put(key, result)`. Counts `hits` and `misses` in this process."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.dir = Path(directory) if directory is not None else default_cache_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"cache keys are hex digests, got {key!r}")
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> SimResult | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
            result = SimResult.from_dict(data)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # A corrupt entry (disk full, foreign file) is a miss, not a crash; it gets overwritten.
            self.misses += 1
            return None
        self.hits += 1
        return result

    def put(self, key: str, result: SimResult) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(result.to_json())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*/*.json"))

    def __repr__(self) -> str:
        return f"EvalCache({str(self.dir)!r})"
