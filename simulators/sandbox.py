"""The only way candidate code runs: a child process with limits, in a private temp dir.

`run(argv, files=...)` writes `files` into a fresh temporary directory, runs `argv` there in its own
session (process group) with resource limits and a stripped environment, kills the whole group when it
ends or times out, reads back what it asked for, and removes the directory.

What it guarantees and what it does not is documented in the README ("Sandbox").
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 20.0
    cpu_seconds: int = 20
    memory_bytes: int = 2 << 30  # address space; Python + numpy need a generous one
    file_bytes: int = 64 << 20  # largest file the child may write (stdout/stderr are files too)
    open_files: int = 256
    max_processes: int = 64  # RLIMIT_NPROC; not enforced by the kernel for root
    output_bytes: int = 256 << 10  # how much of stdout/stderr is read back


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None when killed by the timeout
    signal: int | None  # the signal that ended the process, if any
    stdout: str
    stderr: str
    timed_out: bool
    wall_seconds: float
    output_truncated: bool
    files: dict[str, bytes] = field(default_factory=dict)  # read back from the temp dir
    network_isolated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _try_unshare_net() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) == 0:
        return True
    # Unprivileged users can often get a network namespace inside a new user namespace.
    return libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0


def _child_setup(limits: Limits, isolate_net: bool, net_flag_fd: int) -> None:
    # Runs in the forked child before exec. Only async-signal-safe-ish work: rlimits and unshare.
    isolated = False
    if isolate_net:
        try:
            isolated = _try_unshare_net()
        except Exception:
            isolated = False
    os.write(net_flag_fd, b"1" if isolated else b"0")
    os.close(net_flag_fd)
    cpu = max(1, int(limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
    except (ValueError, OSError):
        pass


def _read_capped(path: str, cap: int) -> tuple[str, bool]:
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError:
        return "", False
    return data[:cap].decode("utf-8", "replace"), len(data) > cap


def run(
    argv: list[str],
    *,
    files: dict[str, bytes | str] | None = None,
    limits: Limits = Limits(),
    read_back: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    isolate_net: bool = True,
) -> Outcome:
    """Run `argv` in a fresh temp dir holding `files`; return its outcome. Never raises for child failures."""
    tmp = tempfile.mkdtemp(prefix="autocomp-sbx-")
    start = time.monotonic()
    try:
        for name, content in (files or {}).items():
            path = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
        # Only what the child needs: no API keys, no HOME, no user paths.
        child_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": tmp, "TMPDIR": tmp}
        child_env.update(env or {})
        out_path, err_path = os.path.join(tmp, ".stdout"), os.path.join(tmp, ".stderr")
        rfd, wfd = os.pipe()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=tmp,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
                pass_fds=(wfd,),
                preexec_fn=lambda: _child_setup(limits, isolate_net, wfd),
            )
        os.close(wfd)
        timed_out = False
        try:
            proc.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc.pid)
        proc.wait()
        with os.fdopen(rfd, "rb") as flag:
            network_isolated = flag.read(1) == b"1"
        rc = proc.returncode
        sig = -rc if rc is not None and rc < 0 else None
        stdout, t1 = _read_capped(out_path, limits.output_bytes)
        stderr, t2 = _read_capped(err_path, limits.output_bytes)
        got: dict[str, bytes] = {}
        for name in read_back:
            p = os.path.join(tmp, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    got[name] = f.read(limits.file_bytes)
        return Outcome(
            returncode=None if timed_out else rc,
            signal=sig,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            wall_seconds=time.monotonic() - start,
            output_truncated=t1 or t2,
            files=got,
            network_isolated=network_isolated,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    # The candidate may have forked; its children share the process group we created.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
