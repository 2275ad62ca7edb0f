"""Hostile candidate NKI code on the Trainium target, through the real simulator and through the env.

Every case must end in a structured error (a type from ERROR_TYPES), leave no process or sandbox dir
behind, change nothing outside the sandbox, and (in the env) cost exactly the failure penalty while the
state stays put and the next step works normally. Some cases first escape the Python-level guard (the
static AST check) on purpose: the OS sandbox must still contain them, and since the candidate's process only
records NKI calls that the trusted side replays, nothing it does there can forge a latency or an output.
"""

from __future__ import annotations

import json
import os

import helpers
import pytest
from helpers import HOME_SECRET, OUTSIDE, assert_contained, assert_env_penalizes_and_goes_on, assert_error

import autocomp_env  # noqa: F401  (registers the envs)
from autocomp_env import targets
from simulators import sandbox, warm
from simulators.trainium import TrainiumSimulator, replay
from simulators.trainium import simulator as trn_sim
from simulators.trainium.kernels import parse_kernel
from simulators.trainium.nkisim.runtime import Alloc, Tensor

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
    # Names in `from X import` read module attributes: the builtins module, numpy's escape modules.
    "from_numpy_builtins": (
        "from numpy import __builtins__ as B\n" + _body("B['open']('x')", "return a_tensor"),
        GUARD,
    ),
    "from_numpy_ctypeslib": ("from numpy import ctypeslib\n" + _body("return a_tensor"), GUARD),
    # A class pattern reads attributes with no attribute node in the AST.
    "match_class_pattern": (
        HDR + GEN + "    match g:\n        case object(gi_frame=f):\n            pass\n" + COPY,
        GUARD,
    ),
    "match_class_globals": (
        HDR + "    match solution:\n        case object(__globals__=G):\n            pass\n" + COPY,
        GUARD,
    ),
    # A literal's bound .format, called later, walks attributes named in its fields.
    "format_bound_method": (HDR + GEN + "    f = '{0.gi_frame.f_back.f_locals}'.format\n    s = f(g)\n" + COPY, GUARD),
    "format_passed_along": (HDR + GEN + "    s = list(map('{0.gi_frame}'.format, [g]))\n" + COPY, GUARD),
    "str_format_unbound": (HDR + GEN + "    s = str.format('{0.gi_frame}', g)\n" + COPY, GUARD),
    # A kernel that simulates or benchmarks another kernel inside itself would compute in an uncharged session.
    "nested_simulate_kernel": (
        HDR + "    x = nki.simulate_kernel(nki.jit(lambda t: t), np.zeros((128, 512), np.float32))\n" + COPY,
        {"constraint_error"},
    ),
    "nested_benchmark": (
        HDR + "    b = nki.benchmark(solution)\n    b(a_tensor, g_tensor)\n" + COPY,
        {"constraint_error"},
    ),
    "nested_baremetal_on_numpy": (
        HDR + "    k = nki.baremetal(lambda t: nl.load(t))\n    k(np.zeros((128, 512), np.float32))\n" + COPY,
        {"constraint_error"},
    ),
    # numpy's module-level tables: np.sctypeDict maps dtype names to types (editing it retypes 'float32' arrays).
    # In the candidate's process that changes nothing the replay uses: the copy is judged as the wrong output it is.
    "edit_numpy_table": ("np.sctypeDict['float32'] = np.float16\n" + HDR + COPY, {"wrong_output"}),
    "clear_numpy_table": (HDR + "    np.typecodes.clear()\n" + COPY, {"wrong_output"}),
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


# -- behind the guard: the candidate's process only records; the replay decides ----------------------------------------
RMSNORM = open(os.path.join(os.path.dirname(trn_sim.__file__), "examples", "rmsnorm.py")).read()
UNGUARDED = "trn_unguarded:record"


class _Warm(warm.Warm):
    """A warm process running the candidate's side with the guard off and real builtins (tests/trn_unguarded.py),
    with test code added to the candidate's request (`extra`) and Landlock optionally off."""

    extra: dict = {}
    without: tuple = ()  # protections turned off (warm.Warm.call)

    def call(self, func, payload, body=b"", **kw):
        if func == UNGUARDED:
            payload = {**payload, **self.extra}
            kw["without"] = self.without
        return super().call(func, payload, body, **kw)


@pytest.fixture(scope="module")
def unguarded_warm():
    paths = [helpers.TESTS, trn_sim._SHIM, trn_sim._ROOT, *trn_sim._library_dirs()]
    w = _Warm(paths, "trn_unguarded:prepare", env=dict(trn_sim._BLAS))
    yield w
    w.close()


@pytest.fixture
def unguarded(unguarded_warm, monkeypatch):
    unguarded_warm.extra, unguarded_warm.without = {}, ()
    monkeypatch.setattr(trn_sim, "warm_process", lambda: unguarded_warm)
    monkeypatch.setattr(trn_sim, "RECORD", UNGUARDED)
    monkeypatch.setattr(trn_sim, "scan", lambda source: None)
    return unguarded_warm


@pytest.fixture(scope="module")
def honest() -> float:
    r = TrainiumSimulator().run(RMSNORM, KERNEL)
    assert r.correct, r.error
    return r.latency


def test_unguarded_harness_runs_honest_code(unguarded, honest):
    r = TrainiumSimulator().run(RMSNORM, KERNEL)
    assert r.correct and r.latency == honest, r.error


def test_real_builtins_and_patched_numpy_cannot_fake_correctness(unguarded):
    r = TrainiumSimulator().run(PATCH_ISCLOSE + HDR + COPY, KERNEL, timeout=TIMEOUT)
    assert not r.correct and r.error.type == "wrong_output" and "output mismatch" in r.error.message, r.error


# Replaces the latency the timeline reports with a figure above the roofline (11.9 us) and below the honest one.
PATCH_TIMELINE = (
    "import simulators.trainium.nkisim.timeline as T\n"
    "T.Timeline.latency_us = lambda self: 13.0\n"
    "T.Timeline.profile = lambda self, _p=T.Timeline.profile: {**_p(self), 'latency_us': 13.0}\n"
)


def test_replacing_the_timeline_in_the_candidates_process_changes_no_latency(unguarded, honest):
    r = TrainiumSimulator().run(PATCH_TIMELINE + RMSNORM, KERNEL)
    assert r.correct and r.latency == honest, (r.latency, honest, r.error)


def test_a_nested_simulation_unrefused_is_still_charged(unguarded, honest):
    # With the refusal undone (the real simulate_kernel back), the nested run happens in the candidate's process on
    # tensors without data, and every NKI call it makes is recorded like the kernel's own: the replay charges them.
    unguarded.extra = {
        "before": "import simulators.trainium.nkisim.api as A\n"
        "runner.prepare().mods['neuronxcc.nki'].simulate_kernel = A.simulate_kernel\n"
    }
    inner = RMSNORM.replace("def solution(", "def inner(")
    code = inner + HDR + "    return nki.simulate_kernel(inner, a_tensor, g_tensor)\n"
    r = TrainiumSimulator().run(code, KERNEL, timeout=TIMEOUT)
    assert r.correct and r.latency == honest, r.error


def _record_of(code: str, kernel: str = KERNEL) -> dict:
    """The candidate's record of `code` (made by the real runner in a warm process), as JSON and blob."""
    w = trn_sim.warm_process()
    out = w.call(trn_sim.RECORD, {"source": code, "kernel": kernel}, limits=sandbox.Limits(), cwd="/")
    status, _, data = out.result.partition(b"\n")
    assert "error" not in json.loads(status), status
    n = int.from_bytes(data[8:16], "little")
    return {"head": json.loads(data[16 : 16 + n]), "blob": data[16 + n :]}


def _encode(rec: dict) -> str:
    h = json.dumps(rec["head"]).encode()
    return (b"NKIREC1\n" + len(h).to_bytes(8, "little") + h + rec["blob"]).hex()


def _forge(name: str, rec: dict) -> None:
    """Edits an honest record of RMSNORM into a forged one."""
    entries = rec["head"]["entries"]
    first_tensor = next(e for e in entries if e[0] == "m")
    if name == "not_api":
        entries.insert(0, ["c", "numpy.save", 1, ["out", ["a", 0]], None, [], 0])
    elif name == "private_method":
        entries.append(["m", [first_tensor[1][0], "__init__"], 1, [], None, [], 0])
    elif name == "internal_attribute":
        entries.append(["g", [0, "alloc"], 1, [], None, [99], 0])
    elif name == "unknown_object":
        entries.append(["m", [12345, "reshape"], 1, [["t", [1]]], None, [], 0])
    elif name == "wrong_ids":
        entries[0][5] = [7, 8, 9]
    elif name == "no_store":
        rec["head"]["entries"] = [e for e in entries if e[1] != "language.store"]
    elif name == "return_input":
        rec["head"]["ret"] = ["r", 0]
    elif name == "return_constant":
        rec["head"]["ret"] = ["a", 0]
    elif name == "object_dtype":
        rec["head"]["arrays"][0][0] = "object"
    elif name == "array_outside":
        rec["head"]["arrays"][0][2] = 1 << 40
    elif name == "huge_tensor":
        entries.insert(
            0, ["c", "language.ndarray", 1, [["t", [1 << 40, 1 << 20]]], ["k", [["buffer", "hbm"]]], [999], 0]
        )
    elif name == "not_json":
        rec["head"] = "garbage"


FORGED = {
    "not_api": {"sandbox_violation"},
    "private_method": {"sandbox_violation"},
    "internal_attribute": {"sandbox_violation"},
    "unknown_object": {"sandbox_violation"},
    "wrong_ids": {"sandbox_violation"},
    "no_store": {"wrong_output"},
    "return_input": {"wrong_output"},
    "return_constant": {"wrong_output"},
    "object_dtype": {"sandbox_violation"},
    "array_outside": {"sandbox_violation"},
    "huge_tensor": {"memory_limit", "constraint_error"},
    "not_json": {"sandbox_violation"},
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_a_forged_record_is_refused_or_replayed_for_what_it_does(unguarded, name, private_tmp, listener):
    rec = _record_of(RMSNORM)
    _forge(name, rec)
    unguarded.extra = {"forged": _encode(rec)}
    r = TrainiumSimulator().run(RMSNORM, KERNEL, timeout=20)
    assert_error(name, r, FORGED[name])
    assert_contained(name, private_tmp, listener)
    unguarded.extra = {}
    assert TrainiumSimulator().run(RMSNORM + "\n", KERNEL).correct  # the warm process still works


@pytest.mark.parametrize(
    "raw, kind",
    [
        (b'{"error": {"type": "correct", "message": "fine", "line": "3"}}\n', "runtime_error"),
        (b'{"error": {"type": "timeout", "message": "x"}}\n', "timeout"),
        (b"not json\n", "runtime_error"),
        (b"", "runtime_error"),
        (b'{"entries": 1}\n' + b"NKIREC1\n" + (1 << 60).to_bytes(8, "little"), "sandbox_violation"),
    ],
)
def test_the_candidates_status_line_is_checked(unguarded, raw, kind):
    unguarded.extra = {"raw": raw.hex()}
    r = TrainiumSimulator().run(RMSNORM, KERNEL, timeout=TIMEOUT)
    assert r.error is not None and r.error.type == kind and r.error.line is None, r.error


def test_an_error_in_the_replay_names_the_recorded_line(unguarded):
    # A call the replay refuses (not the candidate's process): its error carries the line the record gives.
    rec = _record_of(RMSNORM)
    rec["head"]["entries"].insert(0, ["c", "language.load", 77, [5], None, [999], 0])
    unguarded.extra = {"forged": _encode(rec)}
    r = TrainiumSimulator().run(RMSNORM, KERNEL, timeout=20)
    assert r.error.type == "constraint_error" and r.error.line == 77, r.error


# Computes the outputs of the public inputs of seeds 0 and 1 at trace time, and picks one per element by comparing
# the kernel's input with seed 0's: correct on both seeds when inputs are public, wrong on secret ones.
LOOKUP = """
@nki.jit
def solution(a_tensor, g_tensor):
    R, C = a_tensor.shape
    known = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        a = rng.random((R, C), dtype=np.float32)
        g = rng.random((C,), dtype=np.float32)
        known.append((a, (a / np.sqrt(np.mean(a * a, axis=1, keepdims=True)) * g).astype(np.float32)))
    a0 = nl.load(nl.shared_constant(known[0][0]))
    r0 = nl.load(nl.shared_constant(known[0][1]))
    r1 = nl.load(nl.shared_constant(known[1][1]))
    pick = nl.where(nl.equal(nl.load(a_tensor), a0), r0, r1)
    out = nl.ndarray((R, C), dtype=a_tensor.dtype, buffer=nl.shared_hbm)
    nl.store(out, value=pick)
    return out
"""


def test_inputs_of_every_seed_are_secret_so_a_lookup_fails():
    r = TrainiumSimulator().run(LOOKUP, "trainium/rmsnorm-128x64", seeds=(0, 1))
    assert r.error is not None and r.error.type == "wrong_output", r.error


def test_timing_is_deterministic_and_does_not_depend_on_the_inputs():
    # The record holds no data (the candidate never sees any), so the replayed timeline is a function of the code:
    # evaluations with different secret inputs, and a replay without data, give the same figures.
    runs = [TrainiumSimulator().run(RMSNORM, KERNEL) for _ in range(2)]
    timing = TrainiumSimulator().run(RMSNORM, KERNEL, mode="timing")
    assert all(r.correct for r in runs) and timing.error is None
    assert runs[0].latency == runs[1].latency == timing.latency
    drop = {"checked", "timing_seconds", "timing_cpu_seconds"}
    profiles = [{k: v for k, v in r.counters.items() if k not in drop} for r in (*runs, timing)]
    assert profiles[0] == profiles[1] == profiles[2]


# Run in the candidate's process with real builtins: every way at the warm process's memory, its signals and the
# host's secrets, each result collected and raised as the kernel's error message.
PROBE = """
import ctypes, errno, os
WARM, HOST = {warm}, {host}
libc = ctypes.CDLL(None, use_errno=True)
got = {{}}
def tryit(name, f):
    try:
        ok = f()
        got[name] = 'ok' if ok is True else errno.errorcode.get(ctypes.get_errno(), 'failed')
    except OSError as e:
        got[name] = errno.errorcode.get(e.errno, 'failed')
tryit('mem', lambda: open(f'/proc/{{WARM}}/mem', 'r+b').close() or True)
tryit('ptrace', lambda: libc.ptrace(16, WARM, None, None) == 0)
class iovec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
tryit('vm_write', lambda: libc.process_vm_writev(WARM, ctypes.byref(iovec(ctypes.addressof(buf), 8)), 1,
                                                  ctypes.byref(iovec(0x400000, 8)), 1, 0) == 8)
tryit('kill', lambda: os.kill(WARM, 0) or True)
tryit('host_environ', lambda: open(f'/proc/{{HOST}}/environ', 'rb').close() or True)
tryit('home', lambda: open({home!r}).close() or True)
tryit('write_tmp', lambda: open({outside!r}, 'w').close() or True)
raise RuntimeError('PROBE ' + repr(sorted(got.items())))
"""
DENIED = {"EPERM", "EACCES", "ESRCH", "ENOENT"}  # no permission, no such process (pid namespace) or file (hidden)


def _probe(w, target: int) -> dict:
    """Runs PROBE against process `target` in the candidate's process; what each attempt gave."""
    code = PROBE.format(warm=target, host=os.getpid(), home=HOME_SECRET, outside=OUTSIDE[0]) + RMSNORM
    r = TrainiumSimulator().run(code, KERNEL, timeout=TIMEOUT)
    assert r.error.type == "runtime_error" and "PROBE" in r.error.message, r.error
    return dict(eval(r.error.message.split("PROBE ", 1)[1]))


@pytest.mark.parametrize(
    "without",
    [
        (),  # Landlock and our namespaces
        ("landlock",),  # no Landlock: the sandbox's namespace level (isolation.enter) instead
        ("landlock", "mountns"),  # our namespaces only
        ("landlock", "mountns", "pidns"),  # a user namespace only
        ("landlock", "mountns", "pidns", "userns"),  # nothing but the warm process being non-dumpable (and nobody)
    ],
    ids=lambda w: "-".join(w) or "all",
)
def test_the_candidate_cannot_reach_the_warm_process(unguarded, private_tmp, without):
    w = unguarded
    w.without = without
    TrainiumSimulator().run(RMSNORM, KERNEL)  # started
    pid = w.pid()
    assert w.dumpable == 0
    got = _probe(w, pid)
    # Its memory is out of reach whatever is turned off: a user namespace gives the candidate no privilege over
    # processes outside, a pid namespace hides them, Landlock scopes ptrace, and without a user namespace the
    # candidate runs as nobody (if we are root) or as us: then the warm process's being non-dumpable protects it.
    assert {got["mem"], got["ptrace"], got["vm_write"]} <= DENIED, got
    # Signals: the pid namespace or Landlock's scope stop them; with neither, the same user may kill it (then the
    # host starts a new one: a lost evaluation, never a forged one).
    assert got["kill"] in DENIED or without == ("landlock", "mountns", "pidns"), got
    if without in ((), ("landlock",)):  # the default levels: the host's environment and the home directory hidden
        assert {got["host_environ"], got["home"]} <= DENIED, got
    if not without:  # and with Landlock, no write anywhere
        assert got["write_tmp"] in DENIED and not os.path.exists(OUTSIDE[0]), got
    assert w.pid() == pid and os.kill(pid, 0) is None  # the warm process is alive and the same
    assert TrainiumSimulator().run(RMSNORM + "\n\n", KERNEL).correct


# The control: a confined candidate, as nobody, opens the memory of its own dumpable child but not of a
# non-dumpable one. Being non-dumpable is what protects the warm process from a child of the same user.
CONTROL = """
import ctypes, errno, os, time
libc = ctypes.CDLL(None, use_errno=True)
res = {}
for dumpable in (1, 0):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        libc.prctl(4, dumpable, 0, 0, 0)
        os.write(w, b'x')
        time.sleep(10)
        os._exit(0)
    os.read(r, 1)
    try:
        open(f'/proc/{pid}/mem', 'rb').close()
        res[dumpable] = 'ok'
    except OSError as e:
        res[dumpable] = errno.errorcode[e.errno]
    os.kill(pid, 9)
    os.waitpid(pid, 0)
raise RuntimeError('PROBE ' + repr(sorted(res.items())))
"""


def test_non_dumpable_is_what_keeps_a_same_user_child_out(unguarded, private_tmp):
    unguarded.without = ("landlock", "mountns", "pidns", "userns")
    r = TrainiumSimulator().run(CONTROL + RMSNORM, KERNEL, timeout=TIMEOUT)
    assert r.error.type == "runtime_error" and "PROBE" in r.error.message, r.error
    got = dict(eval(r.error.message.split("PROBE ", 1)[1]))
    assert got[1] == "ok" and got[0] in DENIED, got


def test_a_machine_that_refuses_every_isolation_runs_no_model_code(monkeypatch, private_tmp, listener):
    # No Landlock, no bubblewrap, and the namespace level refused: the warm child exits before running anything,
    # and the evaluation is refused as sandbox.run refuses it (SandboxUnavailable, which names the opt-in).
    paths = [helpers.TESTS, trn_sim._SHIM, trn_sim._ROOT, *trn_sim._library_dirs()]
    w = _Warm(paths, "trn_unguarded:prepare_refused", env=dict(trn_sim._BLAS))
    w.without = ("landlock",)
    monkeypatch.setattr(trn_sim, "warm_process", lambda: w)
    monkeypatch.setattr(trn_sim, "RECORD", UNGUARDED)
    monkeypatch.setattr(trn_sim, "_cold_available", lambda: False)
    monkeypatch.setattr(trn_sim, "scan", lambda source: None)
    try:
        code = _code("escape_shell", listener.getsockname()[1])
        with pytest.raises(sandbox.SandboxUnavailable, match="AUTOCOMP_SANDBOX=rlimits"):
            TrainiumSimulator().run(code, KERNEL, timeout=TIMEOUT)
        assert_contained("escape_shell", private_tmp, listener)  # nothing of it ran
    finally:
        w.close()


@pytest.mark.skipif(sandbox._BWRAP is None, reason="bubblewrap is not installed")
def test_without_landlock_the_candidate_runs_cold_under_bubblewrap(monkeypatch, private_tmp, listener, honest):
    monkeypatch.setattr(warm.Warm, "landlock", lambda self, start=False: 0)
    sim = TrainiumSimulator()
    r = sim.run(RMSNORM, KERNEL)
    assert r.correct and r.latency == honest and "bwrap" in sim.last_phases["isolation"], r.error
    r = sim.run(_code("escape_shell", listener.getsockname()[1]), KERNEL, timeout=TIMEOUT)
    assert_error("escape_shell", r, HOSTILE["escape_shell"][1])
    assert_contained("escape_shell", private_tmp, listener)


def test_replay_judges_the_returned_tensor_against_its_own_reference():
    spec = parse_kernel("trainium/rmsnorm-128x64")
    args = spec.inputs(0)
    ref = spec.reference(args)
    out = Tensor(Alloc("hbm", ref.shape, ref.dtype, data=ref.copy()))
    assert replay.judge(spec, out, ref, ref) == (True, "")
    ok, msg = replay.judge(spec, out, args[0], ref)
    assert not ok and "output mismatch" in msg
    ok, msg = replay.judge(spec, ref, ref, ref)  # a numpy array is no output of the kernel
    assert not ok and "not an HBM tensor" in msg
    assert not replay.judge(spec, None, None, ref)[0]
    ok, msg = replay.judge(spec, out, ref[:64], ref)
    assert not ok and "shape" in msg


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
    assert wrong.error.type == "wrong_output" and wrong.sim_seconds > 0.005  # a sandboxed run, not a lookup
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
