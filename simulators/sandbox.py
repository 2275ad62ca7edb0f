"""The only way candidate code runs: a child process with limits, in a private temp dir.

`run(argv, files=...)` writes `files` into a fresh temporary directory, runs `argv` there in its own
session (process group) with resource limits and a stripped environment, kills the whole group when it
ends or times out, reads back what it asked for, and removes the directory.

What it guarantees and what it does not is documented in the README ("Sandbox").
"""

from __future__ import annotations

import itertools
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import isolation as _ns


class SandboxUnavailable(RuntimeError):
    """The machine allows neither bubblewrap nor namespaces that hide the home directories and other
    processes: model code is not run there unless the user opts in with AUTOCOMP_SANDBOX=rlimits."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 20.0
    cpu_seconds: int = 20
    memory_bytes: int = 2 << 30  # address space; Python + numpy need a generous one
    file_bytes: int = 64 << 20  # largest file the child may write (stdout/stderr are files too)
    open_files: int = 256
    max_processes: int = 64  # new processes (threads) allowed: pids cgroup, or RLIMIT_NPROC above the user's count
    output_bytes: int = 256 << 10  # how much of stdout/stderr is read back
    disk_bytes: int = 512 << 20  # all files in the run dir together (it lives on the host's disk)


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
    isolation: tuple[str, ...] = ()  # what applied: bwrap, netns, mountns, pidns, cgroup-pids, rlimits
    disk_exceeded: bool = False  # killed for writing more than Limits.disk_bytes (then signal is SIGXFSZ)

    @property
    def network_isolated(self) -> bool:
        return "bwrap" in self.isolation or "netns" in self.isolation

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _user_threads(uid: int) -> int:
    """Threads the user runs now: RLIMIT_NPROC counts all of them, not just the sandbox's."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                mine = False
                for line in f:
                    if line.startswith("Uid:"):
                        mine = int(line.split()[1]) == uid
                    elif line.startswith("Threads:"):
                        n += int(line.split()[1]) if mine else 0
                        break
        except (OSError, ValueError, IndexError):
            continue
    return n


def _child_setup(
    limits: Limits, isolate: bool, flag_fd: int, cgroup: str | None, nproc: int, keep: tuple[str, ...]
) -> None:
    # Runs in the forked child before exec: join the pids cgroup, enter the namespaces, set rlimits.
    if cgroup:
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass
    got: set[str] = set()
    if isolate:
        try:
            got = _ns.enter(keep)
        except Exception:
            got = set()
    os.write(flag_fd, ",".join(sorted(got)).encode() or b"-")
    os.close(flag_fd)
    if isolate and _mode() == "auto" and not _NAMESPACE_LEVEL <= got:
        os._exit(125)  # the parent raises SandboxUnavailable
    cpu = max(1, int(limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    except (ValueError, OSError):
        pass


_NAMESPACE_LEVEL = {"netns", "mountns", "pidns"}  # what the default level needs without bubblewrap


_BWRAP = shutil.which("bwrap")
_PIDS_CGROUP_ROOT = "/sys/fs/cgroup/pids"  # cgroup v1 pids controller; v2 needs delegation we rarely have
_counter = itertools.count()


def _mode() -> str:
    """AUTOCOMP_SANDBOX=rlimits forces the weakest level (for debugging or to compare; the user's opt-in to
    run model code unisolated); =namespaces skips bubblewrap."""
    return os.environ.get("AUTOCOMP_SANDBOX", "auto")


def _keep_paths(ro_paths: tuple[str, ...]) -> set[str]:
    """What the child still needs from under a hidden home: the interpreter, our package, caches."""
    keep = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    keep.add(str(Path(__file__).resolve().parent.parent))
    keep.add(_cache_root())
    keep.update(ro_paths)
    return {k for k in keep if k}


def _bwrap_prefix(tmp: str, ro_paths: tuple[str, ...]) -> list[str]:
    # Read-only root, private /tmp holding only our temp dir, home directories hidden, no network, own pids.
    argv = [_BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    hidden = {p for p in (os.path.expanduser("~"), "/root", "/home") if os.path.isdir(p) and p != "/"}
    for h in sorted(hidden):
        argv += ["--tmpfs", h]
    for k in sorted(
        _keep_paths(ro_paths)
    ):  # bound back over the home tmpfs and the /tmp tmpfs (a cache in /tmp is common in CI)
        if k and os.path.exists(k) and any(k == h or k.startswith(h + "/") for h in hidden | {"/tmp"}):
            argv += ["--ro-bind", k, k]
    argv += ["--bind", tmp, tmp, "--unshare-all", "--die-with-parent", "--new-session", "--chdir", tmp, "--"]
    return argv


def _cache_root() -> str:
    return os.environ.get("AUTOCOMP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "autocomp-env")


def _make_pids_cgroup(limit: int) -> str | None:
    if not os.access(_PIDS_CGROUP_ROOT, os.W_OK):
        return None
    path = os.path.join(_PIDS_CGROUP_ROOT, f"autocomp-{os.getpid()}-{next(_counter)}")
    try:
        os.mkdir(path)
        with open(os.path.join(path, "pids.max"), "w") as f:
            f.write(str(limit))
        return path
    except OSError:
        return None


def _kill_cgroup(path: str | None) -> None:
    """SIGKILL everything in the cgroup until it is empty: this also catches children that left the process
    group with setsid(), and waits out a bubblewrap pid namespace that is being torn down."""
    if not path:
        return
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def _remove_cgroup(path: str | None) -> None:
    if not path:
        return
    for _ in range(50):  # the killed processes leave the cgroup asynchronously
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.01)


_swept: set[str] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_once() -> None:
    """Remove what runs of dead processes left (a SIGKILLed driver never reaches its `finally`): temp dirs
    named autocomp-sbx-<pid>-* and pids cgroups autocomp-<pid>-*, whose owner pid is gone. Once per temp root."""
    root = tempfile.gettempdir()
    if root in _swept:
        return
    _swept.add(root)
    for parent, prefix, remove in (
        (root, "autocomp-sbx-", lambda p: shutil.rmtree(p, ignore_errors=True)),
        (_PIDS_CGROUP_ROOT, "autocomp-", lambda p: (_kill_cgroup(p), _remove_cgroup(p))),
    ):
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            owner = name[len(prefix) :].split("-", 1)[0]
            if name.startswith(prefix) and owner.isdigit() and not _alive(int(owner)):
                remove(os.path.join(parent, name))


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
    ro_paths: tuple[str, ...] = (),
) -> Outcome:
    """Run `argv` in a fresh temp dir holding `files`; return its outcome. Never raises for child failures.

    `ro_paths`: paths outside the system directories that the child must read (e.g. a compiled runtime)."""
    _sweep_once()
    tmp = tempfile.mkdtemp(prefix=f"autocomp-sbx-{os.getpid()}-")
    start = time.monotonic()
    isolation = ["rlimits"]
    use_bwrap = _BWRAP is not None and _mode() == "auto"
    keep = tuple(sorted(_keep_paths(ro_paths) | {tmp}))
    cgroup = _make_pids_cgroup(limits.max_processes) if _mode() == "auto" else None
    # A fixed RLIMIT_NPROC of 64 would fail every run (even bubblewrap's own clone) for a user who already
    # runs more than 64 threads, as on any desktop; the limit is relative to what runs now. Root: not enforced.
    nproc = limits.max_processes + (_user_threads(os.getuid()) if os.getuid() != 0 else 0)
    if cgroup:
        isolation.append("cgroup-pids")
    if use_bwrap:
        argv = _bwrap_prefix(tmp, ro_paths) + list(argv)
        isolation.append("bwrap")
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
                preexec_fn=lambda: _child_setup(limits, isolate_net and not use_bwrap, wfd, cgroup, nproc, keep),
            )
        os.close(wfd)
        timed_out, disk_exceeded = _watch(proc, tmp, start + limits.wall_seconds, limits.disk_bytes)
        _kill_group(proc.pid)
        proc.wait()
        _kill_cgroup(cgroup)
        with os.fdopen(rfd, "rb") as flag:
            got = {t for t in flag.read(256).decode().split(",") if t in _NAMESPACE_LEVEL}
        isolation += sorted(got)
        if isolate_net and not use_bwrap and _mode() == "auto" and not _NAMESPACE_LEVEL <= got:
            raise SandboxUnavailable(
                "this machine allows neither bubblewrap nor user namespaces, so model code could read your home "
                "directory and other processes' environments. Install bubblewrap (apt-get install bubblewrap), or "
                "set AUTOCOMP_SANDBOX=rlimits to run it anyway without that isolation."
            )
        rc = proc.returncode
        sig = -rc if rc is not None and rc < 0 else None
        if use_bwrap and rc is not None and 128 < rc < 160:  # bwrap reports a child's death by signal n as 128+n
            sig = rc - 128
        if disk_exceeded:  # what the kernel sends for one file over RLIMIT_FSIZE; here, all of them together
            sig = signal.SIGXFSZ
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
            isolation=tuple(isolation),
            disk_exceeded=disk_exceeded,
        )
    finally:
        _remove_cgroup(cgroup)
        shutil.rmtree(tmp, ignore_errors=True)


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3+), so the wait wakes at once instead of
    polling; None where there is none (then Popen.wait polls with sleeps of up to 50 ms)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _watch(proc: subprocess.Popen, tmp: str, deadline: float, disk_bytes: int) -> tuple[bool, bool]:
    """Wait for the child; (timed out, wrote too much). RLIMIT_FSIZE caps each file, not how many there are."""
    fd = _pidfd(proc.pid)
    poller = select.poll()
    if fd is not None:
        poller.register(fd, select.POLLIN)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return True, False
            step = min(left, 0.25)
            if fd is not None:
                if poller.poll(step * 1000):  # poll, not select: descriptors above 1024 are fine
                    proc.wait()
                    return False, False
            else:
                try:
                    proc.wait(timeout=step)
                    return False, False
                except subprocess.TimeoutExpired:
                    pass
            if _dir_bytes(tmp) > disk_bytes:
                return False, True
    finally:
        if fd is not None:
            os.close(fd)


def _kill_group(pgid: int) -> None:
    # The candidate may have forked; its children share the process group we created.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
