"""The sandbox is the only way candidate code runs: each hostile behaviour ends in a clean outcome."""

import glob
import os
import sys

import pytest

from simulators import sandbox

PY = sys.executable
FAST = sandbox.Limits(wall_seconds=5, cpu_seconds=5)


def _leftover_dirs():
    return set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), "autocomp-sbx-*")))


def test_runs_a_program_and_reads_back_files():
    o = sandbox.run([PY, "-c", "open('out.txt','w').write('hi'); print('ok')"], read_back=("out.txt",))
    assert o.ok and o.stdout == "ok\n" and o.files == {"out.txt": b"hi"}


def test_infinite_loop_times_out_and_leaves_nothing_behind():
    before = _leftover_dirs()
    o = sandbox.run([PY, "-c", "while True: pass"], limits=sandbox.Limits(wall_seconds=1, cpu_seconds=5))
    assert o.timed_out and o.returncode is None
    assert _leftover_dirs() <= before


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
        if not any(p.startswith(os.path.join(home, name)) for p in (sys.prefix, sys.base_prefix, os.getcwd())):
            assert repr(name) not in listed


def test_network_is_unreachable_when_isolated():
    code = "import socket\ns = socket.socket()\ns.settimeout(2)\nprint(s.connect_ex(('1.1.1.1', 80)))"
    o = sandbox.run([PY, "-c", code], limits=FAST)
    if not o.network_isolated:
        pytest.skip("this machine allows no network namespace")
    assert o.ok and o.stdout.strip() != "0"
