"""Hostile candidate NKI code on the Trainium target, through the real simulator and through the env.

Every case must end in a structured error (a type from ERROR_TYPES), leave no process or sandbox dir
behind, change nothing outside the sandbox, and (in the env) cost exactly the failure penalty while the
state stays put and the next step works normally. Some cases first escape the Python-level guard (the
static AST check) on purpose: the OS sandbox must still contain them.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid

import gymnasium as gym
import numpy as np
import pytest

import autocomp_env  # noqa: F401  (registers the envs)
from autocomp_env import evaluation
from autocomp_env.codemodel import OfflineCodeModel
from autocomp_env.core import Generation
from simulators.result import ERROR_TYPES
from simulators.trainium import TrainiumSimulator

KERNEL = "trainium/rmsnorm-128x512"
TIMEOUT = 3.0  # hostile code only; honest code (with a schedule marker) gets the default
HDR = "@nki.jit\ndef solution(a_tensor, g_tensor):\n"
TAG = uuid.uuid4().hex[:12]
SECRET = f"secret-{TAG}"
HOME_SECRET = os.path.join(os.path.expanduser("~"), f"autocomp-hostile-{TAG}.txt")
OUTSIDE = (f"/tmp/autocomp-pwned-{TAG}", os.path.join(os.path.expanduser("~"), f"autocomp-pwned-{TAG}"))
# Reaches the real `os` module's globals through object.__subclasses__ with computed attribute names,
# which the AST check cannot see. Cases that use it test the OS sandbox behind the guard.
ESCAPE = (
    "def _os():\n"
    "    base = getattr(getattr((), '__cla' + 'ss__'), '__ba' + 'se__')\n"
    "    for c in getattr(base, '__subcla' + 'sses__')():\n"
    "        if c.__name__ == '_wrap_close':\n"
    "            return getattr(getattr(c, '__init__'), '__glo' + 'bals__')\n"
)
LIBC = "np.ctypeslib.ctypes.CDLL(None)"  # native calls without `import ctypes`
GUARD = {"forbidden_import"}  # what a stricter guard would answer instead


def _body(*lines: str) -> str:
    return HDR + "".join(f"    {ln}\n" for ln in lines)


# name -> (code, allowed error types)
HOSTILE: dict[str, tuple[str, set[str]]] = {
    "infinite_loop": (_body("while True:", "    pass"), {"timeout"}),
    "fork_bomb": (_body(f"libc = {LIBC}", "while True:", "    libc.fork()"), {"timeout", "runtime_error"} | GUARD),
    "memory_bomb": (_body("x = np.ones((1 << 31,), np.float64)", "return x"), {"memory_limit"}),
    "huge_output": (_body("print('x' * (100 << 20))", "return a_tensor"), {"output_limit", "runtime_error"}),
    "segfault": (_body("np.ctypeslib.ctypes.string_at(8)", "return a_tensor"), {"runtime_error"} | GUARD),
    "abort": (_body(f"{LIBC}.abort()", "return a_tensor"), {"runtime_error"} | GUARD),
    "import_os": ("import os\n" + _body("os.system('id')", "return a_tensor"), GUARD),
    "import_subprocess": ("import subprocess\n" + _body("return a_tensor"), GUARD),
    "import_ctypes": ("import ctypes\n" + _body("return a_tensor"), GUARD),
    "from_import": ("from os import system\n" + _body("return a_tensor"), GUARD),
    "relative_import": ("from . import runner\n" + _body("return a_tensor"), GUARD),
    "dunder_import": (_body("__import__('os').system('id')", "return a_tensor"), GUARD),
    "open": (_body(f"print(open({HOME_SECRET!r}).read())", "return a_tensor"), GUARD),
    "eval": (_body("eval(\"__import__('os')\")", "return a_tensor"), GUARD),
    "exec": (_body("exec('import os')", "return a_tensor"), GUARD),
    "builtins": (_body("__builtins__['open']('x')", "return a_tensor"), GUARD),
    "subclasses": (_body("().__class__.__bases__[0].__subclasses__()", "return a_tensor"), GUARD),
    "globals": (_body("globals()['np'] = None", "return a_tensor"), GUARD),
    "write_outside": (
        _body(*(f"np.savetxt({p!r}, np.zeros(2))" for p in OUTSIDE), "return a_tensor"),
        {"runtime_error", "wrong_output"} | GUARD,  # the home dir is a throwaway tmpfs under bubblewrap
    ),
    "read_home": (
        _body(f"print(np.loadtxt({HOME_SECRET!r}, dtype=str))", "return a_tensor"),
        {"runtime_error"} | GUARD,
    ),
    "escape_shell": (
        ESCAPE + _body(f"_os()['system']('touch {OUTSIDE[1]}; cat {HOME_SECRET}')", "return a_tensor"),
        {"wrong_output"} | GUARD,
    ),
    "escape_socket": (
        ESCAPE
        + _body(
            "imp = getattr(_os()['sys'].modules['builtins'], '__imp' + 'ort__')",
            "s = imp('socket').socket()",
            "s.settimeout(1)",
            "s.connect(('127.0.0.1', PORT))",
            "return a_tensor",
        ),
        {"runtime_error"} | GUARD,
    ),
}


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Sandbox dirs go to a private root, so leftovers are ours alone (others run tests on this machine)."""
    root = tmp_path / "sbx"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    with open(HOME_SECRET, "w") as f:
        f.write(SECRET)
    yield root
    os.unlink(HOME_SECRET)
    for p in OUTSIDE:
        if os.path.exists(p):
            os.unlink(p)


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.setblocking(False)
    yield s
    s.close()


def _code(name: str, port: int) -> str:
    return HOSTILE[name][0].replace("PORT", str(port))


def _procs_under(root) -> list[str]:
    """Live processes whose working directory or command line is inside `root`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(root)) or str(root) in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def _assert_contained(name: str, root, listener) -> None:
    assert not list(root.glob("autocomp-sbx-*")), "sandbox dir left behind"
    assert not _procs_under(root), "process left behind"
    for p in OUTSIDE:
        assert not os.path.exists(p), f"{name} wrote {p}"
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


def _assert_error(name: str, result) -> None:
    assert not result.correct and result.latency is None
    assert result.error is not None and result.error.type in ERROR_TYPES
    assert result.error.type in HOSTILE[name][1], (name, result.error)
    assert SECRET not in result.stdout + result.error.message


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_simulator_contains_hostile_code(name, private_tmp, listener):
    r = TrainiumSimulator().run(_code(name, listener.getsockname()[1]), KERNEL, timeout=TIMEOUT)
    _assert_error(name, r)
    _assert_contained(name, private_tmp, listener)


class _Scripted:
    """Returns the queued codes, then behaves like the offline model."""

    name = "scripted"

    def __init__(self, codes: list[str]):
        self.codes = list(codes)
        self.offline = OfflineCodeModel()

    def implement(self, kernel, code, plan, feedback, rng):
        if self.codes:
            return Generation(code=self.codes.pop(0), model=self.name)
        return self.offline.implement(kernel, code, plan, feedback, rng)

    def propose_plans(self, *a, **kw):
        return self.offline.propose_plans(*a, **kw)


class _ShortTimeout(TrainiumSimulator):
    def run(self, code, kernel, *, seeds=(0, 1), mode="auto", timeout=60.0):
        if "autocomp-schedule" not in code:
            timeout = TIMEOUT
        return super().run(code, kernel, seeds=seeds, mode=mode, timeout=timeout)


# The static cases are covered above; in the env, the ones that run code (and a guard case, as a sample).
# (The fork bomb is contained above; in the env, one timeout case is enough.)
ENV_CASES = [n for n in sorted(HOSTILE) if HOSTILE[n][1] != GUARD and n != "fork_bomb"] + ["import_os"]


def test_env_penalizes_hostile_code_and_goes_on(private_tmp, listener, monkeypatch):
    monkeypatch.setitem(evaluation._INSTANCES, "trainium", _ShortTimeout())
    port = listener.getsockname()[1]
    env = gym.make(
        "autocomp/Trainium-rmsnorm-v0",
        kernel=KERNEL,
        code_model=_Scripted([_code(n, port) for n in ENV_CASES]),
        cache_dir="",
        max_steps=len(ENV_CASES) + 5,
    )
    env.reset(seed=0)
    start_code, start_latency = env.unwrapped.code, env.unwrapped.latency
    penalty = env.unwrapped.failure_penalty
    for name in ENV_CASES:
        _, reward, terminated, truncated, info = env.step(0)
        assert reward == -penalty and np.isfinite(reward), name
        assert info["error_type"] in HOSTILE[name][1], (name, info["error_type"], info["error_message"])
        assert env.unwrapped.code == start_code and env.unwrapped.latency == start_latency
        assert not terminated and not truncated
        _assert_contained(name, private_tmp, listener)
    _, reward, _, _, info = env.step(0)  # the offline model again: a normal, correct step
    assert info["correct"] and info["error_type"] is None and np.isfinite(reward)
    env.close()
