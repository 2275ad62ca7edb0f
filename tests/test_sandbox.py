"""The sandbox is the only way candidate code runs: each hostile behaviour ends in a clean outcome."""

import os
import sys

import pytest

from simulators import sandbox

PY = sys.executable
FAST = sandbox.Limits(wall_seconds=5, cpu_seconds=5)


def test_runs_a_program_and_reads_back_files():
    o = sandbox.run([PY, "-c", "open('out.txt','w').write('hi'); print('ok')"], read_back=("out.txt",))
    assert o.ok and o.stdout == "ok\n" and o.files == {"out.txt": b"hi"}


def test_infinite_loop_times_out_and_leaves_nothing_behind(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # private: others run sandboxes concurrently
    o = sandbox.run([PY, "-c", "while True: pass"], limits=sandbox.Limits(wall_seconds=1, cpu_seconds=5))
    assert o.timed_out and o.returncode is None
    assert not list(tmp_path.iterdir())


def test_cpu_limit_kills_a_busy_child():
    o = sandbox.run([PY, "-c", "while True: pass"], limits=sandbox.Limits(wall_seconds=10, cpu_seconds=1))
    assert not o.ok and o.signal is not None


def test_forked_children_do_not_survive_the_run():
    code = "import os, time\nif os.fork() == 0:\n    time.sleep(30)\nelse:\n    print(os.getpid())"
    o = sandbox.run([PY, "-c", code], limits=FAST)
    assert o.ok
    out = os.popen("ps -eo args").read()
    assert "time.sleep(30)" not in out


def test_fork_bomb_is_bounded():
    o = sandbox.run(
        [PY, "-c", "import os\nwhile True: os.fork()"], limits=sandbox.Limits(wall_seconds=5, cpu_seconds=5)
    )
    assert not o.ok  # ends with an error (fork refused) or the timeout, never hangs the host


def test_memory_bomb_hits_the_limit():
    o = sandbox.run([PY, "-c", "x = bytearray(8 << 30)"], limits=sandbox.Limits(memory_bytes=1 << 30))
    assert not o.ok and "MemoryError" in o.stderr


def test_huge_output_is_truncated():
    o = sandbox.run([PY, "-c", "print('x' * (10 << 20))"], limits=sandbox.Limits(output_bytes=1000, file_bytes=1 << 20))
    assert len(o.stdout) <= 1000 and o.output_truncated


def test_environment_is_stripped(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    o = sandbox.run([PY, "-c", "import os; print(os.environ.get('OPENAI_API_KEY'))"])
    assert o.stdout.strip() == "None"


def test_with_bwrap_home_is_hidden_and_root_read_only():
    if "bwrap" not in sandbox.run(["true"]).isolation:
        pytest.skip("bubblewrap not installed or disabled: no filesystem isolation here")
    home = os.path.expanduser("~")
    code = f"import os\nprint(sorted(os.listdir({home!r})))\ntry:\n    open('/etc/pwned', 'w')\nexcept OSError as e:\n    print('denied', e.errno)"
    o = sandbox.run([PY, "-c", code])
    assert "denied" in o.stdout
    listed = o.stdout.splitlines()[0]
    for name in os.listdir(home):
        kept = (sys.prefix, sys.base_prefix, os.getcwd(), sandbox._cache_root())  # bound back read-only
        if not any(p.startswith(os.path.join(home, name)) for p in kept):
            assert repr(name) not in listed


def test_network_is_unreachable_when_isolated():
    code = "import socket\ns = socket.socket()\ns.settimeout(2)\nprint(s.connect_ex(('1.1.1.1', 80)))"
    o = sandbox.run([PY, "-c", code], limits=FAST)
    if not o.network_isolated:
        pytest.skip("this machine allows no network namespace")
    assert o.ok and o.stdout.strip() != "0"


def _no_bwrap(monkeypatch):
    monkeypatch.setattr(sandbox, "_BWRAP", None)


@pytest.mark.parametrize("level", ["auto", "no-bwrap"])
def test_children_that_leave_the_process_group_are_killed(level, monkeypatch):
    # setsid() escapes the process-group kill; the pids cgroup (or bubblewrap's pid namespace) still ends it.
    if level == "no-bwrap":
        _no_bwrap(monkeypatch)
    marker = f"setsid-{level}-{os.getpid()}"
    code = f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)  # {marker}\nprint('done')"
    o = sandbox.run([PY, "-c", code], limits=FAST)
    if "cgroup-pids" not in o.isolation and "bwrap" not in o.isolation:
        pytest.skip("neither a pids cgroup nor bubblewrap here: a setsid() child can outlive the run")
    assert o.ok and o.stdout == "done\n"
    assert marker not in os.popen("ps -eo args").read()


def test_fork_bomb_leaves_no_process_when_run_returns(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    marker = f"bomb-{os.getpid()}"
    o = sandbox.run([PY, "-c", f"import os\nwhile True: os.fork()  # {marker}"], limits=sandbox.Limits(wall_seconds=2))
    assert not o.ok
    assert marker not in os.popen("ps -eo args").read()
    assert not list(tmp_path.iterdir())


def test_without_bwrap_the_network_namespace_still_applies(monkeypatch):
    _no_bwrap(monkeypatch)
    code = "import socket\ns = socket.socket()\ns.settimeout(2)\nprint(s.connect_ex(('127.0.0.1', 22)), s.connect_ex(('1.1.1.1', 80)))"
    o = sandbox.run([PY, "-c", code], limits=FAST)
    if not o.network_isolated:
        pytest.skip("this machine allows no network namespace")
    assert "bwrap" not in o.isolation and o.ok and "0" not in o.stdout.split()


def test_read_only_paths_under_tmp_stay_visible(tmp_path):
    # e.g. AUTOCOMP_CACHE=/tmp/... in CI: the compiled runtime lives there, under bubblewrap's private /tmp.
    (tmp_path / "lib.txt").write_text("runtime")
    o = sandbox.run([PY, "-c", f"print(open({str(tmp_path / 'lib.txt')!r}).read())"], ro_paths=(str(tmp_path),))
    assert o.ok and o.stdout == "runtime\n"
    if "bwrap" in o.isolation:
        w = sandbox.run([PY, "-c", f"open({str(tmp_path / 'x')!r}, 'w')"], ro_paths=(str(tmp_path),))
        assert not w.ok and not (tmp_path / "x").exists()


def test_dirs_left_by_a_killed_process_are_swept(tmp_path, monkeypatch):
    import subprocess
    import tempfile

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"autocomp-sbx-{dead.pid}-abc"
    stale.mkdir()
    mine = tmp_path / f"autocomp-sbx-{os.getpid()}-keep"  # a live owner's dir is left alone
    mine.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert sandbox.run(["true"]).ok
    assert not stale.exists() and mine.exists()


NPROC_CHECK = """
import subprocess, sys
sys.path.insert(0, sys.argv[1])
from simulators import sandbox
sleepers = [subprocess.Popen(["sleep", "30"]) for _ in range(80)]  # more than Limits.max_processes
try:
    o = sandbox.run(["/bin/sh", "-c", "echo hi | cat"], limits=sandbox.Limits(wall_seconds=10))
    print(o.returncode, o.stdout.strip(), o.stderr.strip()[-200:])
finally:
    for p in sleepers:
        p.kill()
"""


def test_a_user_with_many_processes_can_still_run_sandboxes():
    # RLIMIT_NPROC counts every thread of the user: a fixed 64 broke every run (bubblewrap's clone included)
    # for a desktop user. Checked as an unprivileged user, since root is exempt from the limit.
    root = os.path.dirname(os.path.dirname(os.path.abspath(sandbox.__file__)))
    if os.getuid() == 0:
        import pwd

        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no unprivileged user to run as")

        def demote():
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
    else:
        demote = None
    import shutil
    import subprocess

    py = PY if demote is None else shutil.which("python3", path="/usr/bin:/bin")  # ours may sit in /root
    if py is None:
        pytest.skip("no system python3 for the unprivileged user")
    out = subprocess.run(
        [py, "-c", NPROC_CHECK, root],
        preexec_fn=demote,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": "/tmp"},
    )
    assert out.stdout.split()[:2] == ["0", "hi"], out.stdout + out.stderr


def test_many_files_are_capped_in_total(tmp_path, monkeypatch):
    import signal
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = "import itertools\nfor i in itertools.count():\n    open(f'f{i}', 'wb').write(bytes(8 << 20))"
    limits = sandbox.Limits(wall_seconds=20, file_bytes=16 << 20, disk_bytes=64 << 20)
    o = sandbox.run([PY, "-c", code], limits=limits)
    assert o.disk_exceeded and not o.timed_out and o.signal == signal.SIGXFSZ and not o.ok
    assert o.wall_seconds < 15 and not list(tmp_path.iterdir())


def _namespace_level(monkeypatch):
    monkeypatch.setattr(sandbox, "_BWRAP", None)
    if os.environ.get("AUTOCOMP_SANDBOX", "auto") != "auto":
        pytest.skip("AUTOCOMP_SANDBOX forces another level")


def test_without_bwrap_home_and_other_processes_are_hidden(tmp_path, monkeypatch):
    # The namespace level: an empty tmpfs over the home directories (the interpreter and the cache bound back
    # read-only), and a /proc of its own, so no other process's environment (API keys) is readable.
    _namespace_level(monkeypatch)
    home = os.path.realpath(os.path.expanduser("~"))
    secret = os.path.join(home, f"autocomp-ns-{os.getpid()}.txt")
    monkeypatch.setenv("AUTOCOMP_NS_SECRET", "sk-very-secret")
    with open(secret, "w") as f:
        f.write("home secret")
    code = (
        "import os\n"
        f"print('home', os.path.exists({secret!r}), sorted(os.listdir({home!r})))\n"
        "print('pids', sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
        f"print('parent', os.path.exists('/proc/{os.getpid()}'))\n"
        "try:\n    open('/proc/self/mounts').read(); print('proc ok')\nexcept OSError as e:\n    print('proc', e)\n"
    )
    try:
        o = sandbox.run([PY, "-c", code], limits=FAST)
    except sandbox.SandboxUnavailable:
        pytest.skip("no mount and pid namespaces on this machine")
    finally:
        os.unlink(secret)
    assert o.ok, o.stderr
    assert {"mountns", "pidns", "netns"} <= set(o.isolation)
    assert "home False" in o.stdout and "parent False" in o.stdout and "proc ok" in o.stdout
    assert "sk-very-secret" not in o.stdout
    listed = o.stdout.splitlines()[0]
    kept = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)), sandbox._cache_root()]
    for name in os.listdir(home):
        if not any(os.path.realpath(p).startswith(os.path.join(home, name)) for p in kept + [os.getcwd()]):
            assert repr(name) not in listed, name
    assert o.stdout.split("pids ")[1].splitlines()[0] in ("['1', '2']", "['1', '2', '3']")


def test_the_namespace_level_cannot_undo_its_mounts(monkeypatch):
    _namespace_level(monkeypatch)
    home = os.path.realpath(os.path.expanduser("~"))
    code = f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.umount2({home.encode()!r}, 2), ctypes.get_errno())"
    try:
        o = sandbox.run([PY, "-c", code], limits=FAST)
    except sandbox.SandboxUnavailable:
        pytest.skip("no mount and pid namespaces on this machine")
    assert o.ok and o.stdout.split()[0] == "-1", o.stdout  # no capability left to unmount


def test_a_machine_that_cannot_hide_home_refuses_unless_the_user_opts_in(monkeypatch):
    _namespace_level(monkeypatch)
    monkeypatch.setattr(sandbox._ns, "enter", lambda keep: {"netns"})  # as where only a network namespace works
    with pytest.raises(sandbox.SandboxUnavailable, match="AUTOCOMP_SANDBOX=rlimits"):
        sandbox.run(["true"], limits=FAST)
    monkeypatch.setenv("AUTOCOMP_SANDBOX", "rlimits")
    o = sandbox.run(["true"], limits=FAST)
    assert o.ok and "mountns" not in o.isolation
