"""Hostile candidate NKI code on the Trainium target, through the real simulator and through the env.

Every case must end in a structured error (a type from ERROR_TYPES), leave no process or sandbox dir
behind, change nothing outside the sandbox, and (in the env) cost exactly the failure penalty while the
state stays put and the next step works normally. Some cases first escape the Python-level guard (the
static AST check) on purpose: the OS sandbox must still contain them.
"""

from __future__ import annotations

import json
import os

import helpers
import numpy as np
import pytest
from helpers import HOME_SECRET, OUTSIDE, assert_contained, assert_env_penalizes_and_goes_on, assert_error

import autocomp_env  # noqa: F401  (registers the envs)
from autocomp_env import targets
from simulators import sandbox
from simulators.trainium import TrainiumSimulator
from simulators.trainium import simulator as trn_sim
from simulators.trainium.kernels import parse_kernel

KERNEL = "trainium/rmsnorm-128x512"
TIMEOUT = 3.0  # hostile code only; honest code (with a schedule marker) gets the default
HDR = "@nki.jit\ndef solution(a_tensor, g_tensor):\n"
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
# A kernel whose output is its input: wrong for rmsnorm, so only a faked check could pass it.
COPY = (
    "    out = nl.ndarray(a_tensor.shape, dtype=a_tensor.dtype, buffer=nl.shared_hbm)\n"
    "    a = nl.load(a_tensor)\n"
    "    nl.store(out, value=a)\n"
    "    return out\n"
)
PATCH_ISCLOSE = "np.isclose = lambda a, b, **kw: np.ones(np.shape(a), bool)\n"
GEN = "    def gen():\n        yield 1\n    g = gen()\n"


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
    # Patching the numpy the runner checks with, or the functions the simulator computes timing with.
    "patch_isclose": (PATCH_ISCLOSE + HDR + COPY, GUARD),
    "patch_aliased": (HDR + "    m = np\n    m.prod = math.prod\n" + COPY, GUARD),
    "delete_attr": (HDR + "    del nl.load\n" + COPY, GUARD),
    # Frames of generators, coroutines and tracebacks lead to the runner's locals (nonce, spec) and builtins.
    "gen_frame": (
        HDR + "    def gen():\n        yield g.gi_frame.f_back.f_back.f_globals\n    g = gen()\n    next(g)\n" + COPY,
        GUARD,
    ),
    "gen_code": (HDR + GEN + "    c = g.gi_code.co_consts\n" + COPY, GUARD),
    "coroutine_frame": (HDR + "    async def co():\n        pass\n    f = co().cr_frame\n" + COPY, GUARD),
    "traceback_frame": (
        HDR
        + "    try:\n        1 / 0\n    except ZeroDivisionError as e:\n        t = e.with_traceback(None)\n"
        + COPY,
        GUARD,
    ),
    "tb_frame": (HDR + "    def f(t):\n        return t.tb_frame.f_builtins\n" + COPY, GUARD),
    "format_frame": (HDR + GEN + "    s = '{0.gi_frame.f_back.f_locals}'.format(g)\n" + COPY, GUARD),
    "format_indirect": (HDR + GEN + "    t = '{0.gi_frame}'\n    s = t.format(g)\n" + COPY, GUARD),
    # Standard modules that numpy imports, reachable as attributes: inspect gives frames, operator any attribute.
    # numpy's module-level tables: np.sctypeDict maps dtype names to types (editing it retypes 'float32' arrays).
    "edit_numpy_table": ("np.sctypeDict['float32'] = np.float16\n" + HDR + COPY, {"sandbox_violation"}),
    "clear_numpy_table": (HDR + "    np.typecodes.clear()\n" + COPY, {"sandbox_violation"}),
    "inspect_frame": (HDR + "    f = np.ma.core.inspect.currentframe()\n" + COPY, GUARD),
    "operator_getattr": (HDR + "    c = np.random.mtrand.operator.attrgetter('__class__')(())\n" + COPY, GUARD),
    "types_function": (HDR + "    t = nki.types.FunctionType\n" + COPY, GUARD),
    "np_load_pickle": (_body("np.load('solution.py', allow_pickle=True)", "return a_tensor"), {"runtime_error"}),
    "matlib_load_pickle": (
        _body("np.matlib.load('solution.py', allow_pickle=True)", "return a_tensor"),
        {"runtime_error"},
    ),
    "array_dump": (_body("np.zeros(2).dump('result.json')", "return a_tensor"), GUARD),
    "format_map": (HDR + GEN + "    s = '{g.gi_frame}'.format_map({'g': g})\n" + COPY, GUARD),
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


private_tmp, listener = helpers.private_tmp, helpers.listener  # fixtures


def _code(name: str, port: int) -> str:
    return HOSTILE[name][0].replace("PORT", str(port))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_simulator_contains_hostile_code(name, private_tmp, listener):
    r = TrainiumSimulator().run(_code(name, listener.getsockname()[1]), KERNEL, timeout=TIMEOUT)
    assert_error(name, r, HOSTILE[name][1])
    assert r.sim_seconds > 0  # the env's simulator-seconds budget counts failures too
    assert_contained(name, private_tmp, listener)


class _ShortTimeout(TrainiumSimulator):
    def run(self, code, kernel, *, seeds=(0, 1), mode="auto", timeout=60.0):
        if "autocomp-schedule" not in code:
            timeout = TIMEOUT
        return super().run(code, kernel, seeds=seeds, mode=mode, timeout=timeout)


# The static cases are covered above; in the env, the ones that run code (and a guard case, as a sample).
# (The fork bomb is contained above; in the env, one timeout case is enough.)
ENV_CASES = [n for n in sorted(HOSTILE) if HOSTILE[n][1] != GUARD and n != "fork_bomb"] + ["import_os"]


def test_env_penalizes_hostile_code_and_goes_on(private_tmp, listener, monkeypatch):
    monkeypatch.setitem(targets._SIMULATORS, ("trainium", repr(None)), _ShortTimeout())
    port = listener.getsockname()[1]
    cases = [(n, _code(n, port), HOSTILE[n][1]) for n in ENV_CASES]
    assert_env_penalizes_and_goes_on("autocomp/Trainium-rmsnorm-v0", KERNEL, cases, private_tmp, listener)


# What the kernel's names lead to, attribute after attribute (as the guard lets it): only numpy, math and the NKI
# modules, never a frame, the builtins module, a banned builtin or another module. Runs in a plain child process
# (it imports the shim), walking our own modules: no candidate code.
REACH = """import builtins, json, sys, types
sys.path[:0] = [sys.argv[1] + "/simulators/trainium/shim", sys.argv[1]]
import math
import numpy as np
import neuronxcc.nki as nki, neuronxcc.nki.isa as nisa, neuronxcc.nki.language as nl, neuronxcc.nki.typing as nt
from simulators.trainium.guard import _BANNED_NAMES, _INTERNAL_ATTRS
bad = {id(getattr(builtins, n)): n for n in _BANNED_NAMES if hasattr(builtins, n)}
bad[id(builtins)] = "builtins"
bad[id(np.load)] = "np.load"  # unpickles: the runner replaces it in numpy's modules, no other path may lead to it
todo = [(k, v, None) for k, v in dict(nki=nki, nl=nl, nisa=nisa, nt=nt, np=np, math=math).items()]
todo += [("np." + n, getattr(np, n), np) for n in ("typing", "char", "rec", "strings", "dtypes", "exceptions", "matlib")]
seen, found = set(), []
while todo:
    path, obj, parent = todo.pop()
    if obj is np.load and isinstance(parent, types.ModuleType) and parent.__name__.split(".")[0] == "numpy":
        continue  # the runner replaces np.load in every numpy module that holds it
    if id(obj) in seen:
        continue
    seen.add(id(obj))
    if id(obj) in bad or isinstance(obj, (types.FrameType, types.CodeType, types.TracebackType)):
        found.append(path)
        continue
    if isinstance(obj, types.ModuleType) and obj.__name__.split(".")[0] not in ("numpy", "math", "neuronxcc", "simulators", "ml_dtypes"):
        found.append(path)
        continue
    if isinstance(obj, (int, float, str, bytes, np.ndarray, np.generic)) or obj is None:
        continue
    try:
        names = dir(obj)
    except Exception:
        continue
    for n in names:
        if not n.startswith("_") and n not in _INTERNAL_ATTRS:
            try:
                todo.append((path + "." + n, getattr(obj, n), obj))
            except Exception:
                pass
print(json.dumps({"found": found, "seen": len(seen)}))
"""


def test_kernel_names_reach_no_escape_by_attribute():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", REACH, trn_sim._ROOT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    d = json.loads(out.stdout)
    assert d["found"] == [] and d["seen"] > 1000, d["found"][:20]


# -- correctness is judged on the host -------------------------------------------------------------------------------
RMSNORM = open(os.path.join(os.path.dirname(trn_sim.__file__), "examples", "rmsnorm.py")).read()
# Runs the real runner with the static guard switched off (as if a kernel had found a way past it), plus `extra`
# (test code, standing for a runner the kernel took over), to show what still holds behind the guard.
BOOT = """import sys
root = sys.argv[1]
sys.path[:0] = [root + "/simulators/trainium/shim", root]
sys.path += sys.argv[2:]  # numpy's dirs: the runner runs with -S
from simulators.trainium import guard, runner
guard.scan = lambda source: None
{extra}
sys.exit(runner.main())
"""


def _unguarded(monkeypatch, extra: str = "") -> None:
    real = sandbox.run

    def run(argv, *, files=None, **kw):
        assert argv[1:4] == ["-I", "-S", trn_sim._RUNNER]
        files = {**(files or {}), "boot.py": BOOT.format(extra=extra)}
        return real([*argv[:3], "boot.py", *argv[4:]], files=files, **kw)

    monkeypatch.setattr(trn_sim.sandbox, "run", run)
    monkeypatch.setattr(trn_sim, "scan", lambda source: None)


def test_unguarded_harness_runs_honest_code(monkeypatch):
    _unguarded(monkeypatch)
    r = TrainiumSimulator().run(RMSNORM, KERNEL)
    assert r.correct and r.latency > 0, r.error


def test_patched_numpy_in_the_runner_is_refused(monkeypatch):
    _unguarded(monkeypatch)
    r = TrainiumSimulator().run(PATCH_ISCLOSE + HDR + COPY, KERNEL, timeout=TIMEOUT)
    assert not r.correct and r.error.type == "sandbox_violation" and "numpy.isclose" in r.error.message


def test_patched_numpy_cannot_fake_correctness_even_unnoticed(monkeypatch):
    # Without the runner's module check too, the host still compares the raw output with its own reference.
    _unguarded(monkeypatch, "runner._altered = lambda snap: None")
    r = TrainiumSimulator().run(PATCH_ISCLOSE + HDR + COPY, KERNEL, timeout=TIMEOUT)
    assert not r.correct and r.error.type == "wrong_output" and "output mismatch" in r.error.message, r.error


@pytest.mark.parametrize(
    "latency, error",
    [("float('nan')", "beyond_roofline"), ("1e-3", "beyond_roofline"), ("'fast'", "sandbox_violation")],
)
def test_forged_latency_is_refused(monkeypatch, latency, error):
    _unguarded(monkeypatch, f"runner._profile = lambda sess: {{'latency_us': {latency}}}")
    r = TrainiumSimulator().run(RMSNORM, KERNEL)
    assert not r.correct and r.latency is None and r.error.type == error, r.error


def _record(arr: np.ndarray, seed: int = 0) -> tuple[dict, dict]:
    import hashlib

    data = arr.tobytes()
    rec = {"kind": "array", "dtype": arr.dtype.name, "shape": list(arr.shape), "nbytes": len(data)}
    rec["sha256"] = hashlib.sha256(data).hexdigest()
    return rec, {f"out{seed}-0.bin": data}


def test_host_judge_compares_raw_outputs_with_its_own_reference():
    spec = parse_kernel("trainium/rmsnorm-128x64")
    args = spec.inputs(0)
    good, files = _record(spec.reference(args))
    assert trn_sim._judge(spec, 0, good, files) == (True, "")
    ok, msg = trn_sim._judge(spec, 0, *_record(args[0]))  # output = input
    assert not ok and "output mismatch" in msg
    ok, msg = trn_sim._judge(spec, 0, *_record(spec.reference(args)[:64]))
    assert not ok and "shape" in msg
    assert not trn_sim._judge(spec, 0, {"kind": "none"}, {})[0]
    assert "tuple" in trn_sim._judge(spec, 0, {"kind": "tuple"}, {})[1]
    tampered = {k: b"\0" * len(v) for k, v in files.items()}
    for rec, got in (
        (good, tampered),
        (good, {}),
        ({**good, "nbytes": 4}, files),
        ({"kind": "array"}, files),
        (None, {}),
    ):
        with pytest.raises(trn_sim._Forged):
            trn_sim._judge(spec, 0, rec, got)


def test_latency_below_the_roofline_is_refused_on_the_cli_path(monkeypatch, tmp_path, capsys):
    path = tmp_path / "rmsnorm.py"
    path.write_text(RMSNORM)
    assert trn_sim.main([str(path), "--kernel", KERNEL, "--json"]) == 0
    honest = json.loads(capsys.readouterr().out)
    assert honest["error"] is None and honest["latency_us"] > 0
    monkeypatch.setattr(TrainiumSimulator, "roofline", lambda self, kernel: honest["latency_us"] * 2)
    assert trn_sim.main([str(path), "--kernel", KERNEL, "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["error"]["type"] == "beyond_roofline" and d["latency_us"] is None


# -- the simulator-seconds budget sees failures too ---------------------------------------------------------------------
def test_failures_report_their_simulator_time():
    sim = TrainiumSimulator()
    r = sim.run(HDR + "    while True:\n        pass\n", KERNEL, timeout=2)
    assert r.error.type == "timeout" and r.sim_seconds >= 2, r.sim_seconds
    wrong = sim.run(HDR + COPY, KERNEL)
    assert wrong.error.type == "wrong_output" and wrong.sim_seconds > 0.05  # a sandboxed run, not a lookup
    for code, kernel, kind in (
        (HDR + COPY, KERNEL, "wrong_output"),  # the cached failure
        (PATCH_ISCLOSE + HDR + COPY, KERNEL, "forbidden_import"),
        ("def (:", KERNEL, "compile_error"),
        (HDR + COPY, "trainium/nope-1", "invalid_kernel"),
    ):
        r = sim.run(code, kernel)
        assert r.error.type == kind and 0 < r.sim_seconds < wrong.sim_seconds, (kind, r.sim_seconds)


@pytest.mark.parametrize("name", ["np_load_pickle", "matlib_load_pickle"])
def test_numpy_load_is_refused_not_just_failing(name):
    # solution.py is no pickle, so an unpickling error would also be a runtime_error: check it is the refusal.
    r = TrainiumSimulator().run(HOSTILE[name][0], KERNEL, timeout=TIMEOUT)
    assert r.error.type == "runtime_error" and "numpy.load is not available" in r.error.message, r.error
