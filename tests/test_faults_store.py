"""The results store under faults: a full disk, a torn write, and a benchmark killed with SIGKILL and rerun."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.results import ResultStore

ROOT = str(Path(__file__).resolve().parent.parent)


class _Disk:
    """A tiny filesystem: a 64 KiB tmpfs when we may mount one, else a byte budget enforced on writes."""

    def __init__(self, path: Path, monkeypatch):
        self.path = path
        path.mkdir()
        self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)]).returncode == 0
        if not self.mounted:
            self._budget = [64 << 10]
            real_write = os.write

            def write(fd, data):  # what a full disk does: a short write, then ENOSPC
                if self._budget[0] <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                n = real_write(fd, bytes(data[: self._budget[0]]))
                self._budget[0] -= n
                return n

            monkeypatch.setattr(os, "write", write)

    def reserve(self, nbytes: int = 16 << 10) -> None:
        """Take some space now, to give it back with `free`."""
        if self.mounted:
            (self.path / "reserve").write_bytes(b"\0" * nbytes)

    def fill(self) -> None:
        """Take every byte left."""
        if not self.mounted:
            self._budget[0] = 0
            return
        try:
            with open(self.path / "filler", "wb", buffering=0) as f:
                while True:
                    f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC

    def free(self) -> None:
        for name in ("reserve", "filler"):
            (self.path / name).unlink(missing_ok=True)
        if not self.mounted:
            self._budget[0] = 64 << 10

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.path)], check=True)


@pytest.fixture
def disk(tmp_path, monkeypatch):
    d = _Disk(tmp_path / "disk", monkeypatch)
    yield d
    d.close()


def _rec(i: int) -> dict:
    return {"key": f"job-{i}", "status": "ok", "result": {"pad": "x" * 700, "i": i}}


def test_appends_on_a_full_disk_fail_clearly_and_keep_every_earlier_record(disk):
    disk.reserve()
    store = ResultStore(disk.path / "out")
    written = 0
    with pytest.raises(OSError) as e:
        for i in range(1000):
            store.append(_rec(i))
            written += 1
    assert e.value.errno == errno.ENOSPC and 0 < written < 1000
    assert store.path.read_bytes().endswith(b"\n")  # the partial line was cut
    assert [r["result"]["i"] for r in store.records()] == list(range(written))
    with pytest.raises(OSError):
        store.append(_rec(written))  # still full: fails the same way, and cuts its partial line again
    disk.free()
    store.append(_rec(written))  # space again: the next record lands whole, not glued to a torn one
    assert [r["result"]["i"] for r in ResultStore(disk.path / "out").records()] == list(range(written + 1))


def test_a_summary_on_a_full_disk_leaves_the_old_one_and_no_temp_file(disk):
    store = ResultStore(disk.path / "out")
    path = store.write_summary("leaderboard.json", {"rows": [1, 2, 3]})
    disk.fill()
    with pytest.raises(OSError) as e:
        store.write_summary("leaderboard.json", {"rows": ["y" * 1000] * 100})
    assert e.value.errno == errno.ENOSPC
    assert json.loads(path.read_text()) == {"rows": [1, 2, 3]}
    assert sorted(p.name for p in store.dir.iterdir()) == ["leaderboard.json"]


def test_a_torn_last_line_is_cut_on_open(tmp_path):
    store = ResultStore(tmp_path)
    for i in range(3):
        store.append(_rec(i))
    with open(store.path, "ab") as f:
        f.write(b'{"key": "job-3", "stat')  # killed mid-write
    store = ResultStore(tmp_path)
    store.append(_rec(4))
    assert [r["result"]["i"] for r in store.records()] == [0, 1, 2, 4]


BENCH = (
    "import sys\n"
    "from agents.bench import run_bench\n"
    "run_bench('random', 'gemmini/matmul-16x16x16', budget=1, seeds=6, out_dir=sys.argv[1], progress=False)\n"
)


def _bench(out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BENCH, str(out)], cwd=ROOT, env=env, start_new_session=True, stderr=subprocess.PIPE
    )


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


def test_a_benchmark_killed_with_sigkill_resumes_without_loss_or_duplicates(tmp_path):
    out, tmp = tmp_path / "bench", tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), AUTOCOMP_CACHE=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    proc = _bench(out, env)
    deadline = time.monotonic() + 120
    while len(_lines(out / "results.jsonl")) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the benchmark finished before it could be killed"
    before = [ln for ln in _lines(out / "results.jsonl") if ln.endswith(b"\n")]
    assert 2 <= len(before) < 6
    assert not (out / "leaderboard.json").exists()

    rerun = _bench(out, env)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    after = _lines(out / "results.jsonl")
    assert after[: len(before)] == before  # finished results intact, byte for byte
    recs = [json.loads(ln) for ln in after]
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)) == 6 and all(r["status"] == "ok" for r in recs)
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["rows"][0]["episodes"] == 6
    assert not list(tmp.glob("autocomp-sbx-*")), "the killed run's sandbox dirs were not swept"
