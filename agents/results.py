"""A crash-safe results store: one JSON record per finished job, appended to `results.jsonl` and fsynced.

A killed run loses nothing that finished; a torn last line (killed mid-write) is cut off on open, and a
rerun skips the keys already present. Summaries are written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # e.g. ENOSPC: the old file stays as it was, and no partial temp file is left behind
        tmp.unlink(missing_ok=True)
        raise


class ResultStore:
    def __init__(self, out_dir: str | Path, name: str = "results.jsonl"):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / name
        self._repair()

    def _repair(self) -> None:
        """Drop a partial last line left by a kill in the middle of a write."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line from an older crash: its job is simply rerun
        return out

    def finished_keys(self) -> set[str]:
        """Keys of jobs that finished successfully (failed ones are rerun on resume)."""
        return {r["key"] for r in self.records() if r.get("status") == "ok"}

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:  # e.g. ENOSPC: cut the partial line, or the next append would be glued to it
                os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)

    def write_summary(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) if not isinstance(obj, str) else obj)
        return path
