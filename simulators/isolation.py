"""The namespace level of the sandbox, without bubblewrap: run in the forked child before exec.

`enter(keep)` puts the child into new mount, network and pid namespaces (inside a new user namespace when it
is not root), hides the home directories behind empty tmpfs mounts (binding back, read-only, the paths in
`keep` that lie under them: the interpreter, our package, the caches), mounts a fresh /proc (so no other
process, and no other process's environment, is visible), and drops every capability, so the mounts cannot
be undone. The pid namespace needs a process to be its init: the child forks twice, and the first
process mirrors how the program ended (its exit status, or the same signal).

Returns the protections that applied ("netns", "mountns", "pidns"); on a machine that refuses namespaces it
returns what it got (possibly nothing) and the caller decides. Only async-signal-safe-ish work: libc calls
through ctypes, no Python-level fork (another thread of the parent may hold Python's locks).
"""

from __future__ import annotations

import ctypes
import os
import signal

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUSER = 0x00020000, 0x40000000, 0x20000000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24


def hidden_dirs() -> list[str]:
    """What the namespace level hides: the user's home, /root and /home."""
    dirs = {os.path.realpath(p) for p in (os.path.expanduser("~"), "/root", "/home")}
    return sorted(p for p in dirs if p != "/" and os.path.isdir(p))


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _unshare(libc) -> bool:
    """New mount, network and pid namespaces; as an unprivileged user, inside a new user namespace."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID
    if libc.unshare(flags) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | flags) != 0:
        return False
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    except OSError:
        return False
    return True


def _close_others(keep: int) -> None:
    """The helper processes hold no descriptor but their status pipe: in particular not the one through which
    subprocess learns that the program was executed (they never execute anything)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)


def _mirror(libc, pid: int, status_r: int) -> None:
    """The first process, outside the pid namespace: wait, then end as the program did."""
    _close_others(status_r)
    try:
        _, st = os.waitpid(pid, 0)
        data = os.read(status_r, 32)
        if data:
            st = int(data)
        if os.WIFSIGNALED(st):
            sig = os.WTERMSIG(st)
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            os.kill(os.getpid(), sig)
        os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 1)
    finally:
        os._exit(1)  # never back into the caller: this process must not run the program too


def _init(pid: int, status_w: int) -> None:
    """pid 1 of the namespace: reap everything until the program ends, report its status, end (which kills
    whatever it left behind: a pid namespace dies with its init)."""
    _close_others(status_w)
    try:
        while True:
            p, st = os.waitpid(-1, 0)
            if p == pid:
                os.write(status_w, str(st).encode())
                break
    finally:
        os._exit(0)


def _hide(libc, keep: tuple[str, ...]) -> bool:
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    hidden = hidden_dirs()
    under = [
        k for k in sorted(set(keep)) if k and os.path.exists(k) and any(k == h or k.startswith(h + "/") for h in hidden)
    ]
    fds = {k: os.open(k, os.O_PATH | os.O_CLOEXEC) for k in under}
    for h in hidden:
        if libc.mount(b"tmpfs", h.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=64k") != 0:
            return False
    for k in under:  # parents first (sorted), so a nested path is bound over its parent's bind
        if os.path.isdir(f"/proc/self/fd/{fds[k]}"):
            os.makedirs(k, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(k), exist_ok=True)
            open(k, "a").close()
        src = f"/proc/self/fd/{fds[k]}".encode()
        if libc.mount(src, k.encode(), None, MS_BIND | MS_REC, None) != 0:
            return False
        libc.mount(None, k.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    for fd in fds.values():
        os.close(fd)
    return True


def _drop_capabilities(libc) -> None:
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all empty (two 32-bit halves each)
    libc.capset(header, data)


def enter(keep: tuple[str, ...]) -> set[str]:
    libc = ctypes.CDLL(None, use_errno=True)
    if not _unshare(libc):
        # as before: a network namespace alone, where that is all the machine allows
        ok = libc.unshare(CLONE_NEWNET) == 0 or libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
        return {"netns"} if ok else set()
    status_r, status_w = os.pipe()
    pid = libc.fork()
    if pid < 0:
        os._exit(127)
    if pid > 0:
        os.close(status_w)
        _mirror(libc, pid, status_r)
    os.close(status_r)
    got = {"netns"}
    if _hide(libc, keep):
        got.add("mountns")
    if libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0:
        got.add("pidns")
    pid = libc.fork()
    if pid < 0:
        os._exit(127)
    if pid > 0:
        _init(pid, status_w)
    os.close(status_w)
    _drop_capabilities(libc)
    return got
