"""`GemminiSimulator`: compile a candidate against our gemmini.h, run it in the sandbox, check it, time it."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import time
from dataclasses import replace
from functools import lru_cache

import numpy as np

from .. import sandbox
from ..result import SimResult, within_roofline
from . import toolchain
from .build import CANDIDATE_FLAGS, COUNTER, PRELUDE, build_runtime, harness_binary
from .config import DEFAULT, FP32_4X4, GemminiConfig
from .kernels import KernelSpec, make_inputs, parse_kernel, reference

UNIT = "cycles"
_COMPILE_FAILED = 97
# No address-space randomization: DMA request splitting depends on addresses mod 64, and stack arrays move
# with ASLR, so cycles would not be reproducible without it.
_NO_ASLR = "setarch -R " if shutil.which("setarch") else ""
_AS = "as" if shutil.which("as") else "gcc -c -x assembler"
# Link flags of the candidate's shared object: its own calls bind to its own definitions, no lazy binding, and
# no DT_INIT/DT_FINI (ld would make a function named _init or _fini run at load time, before the seal).
_SO_FLAGS = ("-shared", "-Bsymbolic", "-z", "now", "-z", "relro", "-init=__gsim_none", "-fini=__gsim_none")
if shutil.which("ld"):
    _LD = "ld " + " ".join(_SO_FLAGS)
else:  # gcc's driver costs ~3 ms more
    _LD = "gcc -nostdlib -shared -Wl," + ",".join(_SO_FLAGS[1:])
# Candidate code may not reach the simulator's internals, files, processes or raw syscalls. This stops
# accidents and casual score hacks; the sandbox, not this check, is what protects the host.
_FORBIDDEN = re.compile(
    r"\b(gsim_\w*|__sanitizer\w*|__start_gsim\w*|__stop_gsim\w*|__etext|_end)\b|"
    r"\b(asm|__asm__|__asm|syscall|fopen|freopen|open|openat|fork|vfork|system|popen|"
    r"exec[lv]p?e?|dlopen|mprotect|mmap|_exit|kill|ptrace|unlink|remove|rename)\s*\("
)
# assumption: a single-issue in-order Rocket core retires at most one multiply-add per cycle. The kernel's MACs
# that no command of the timed trace executed were done by the CPU, and cost at least this much each: the
# floor that bounds a forged CPU instruction count (csrc/channel.inc).
CPU_CYCLES_PER_MAC_FLOOR = 1
_GCC_ERR = re.compile(r"solution\.c:(\d+):(?:\d+:)?\s*(?:fatal )?error:\s*(.*)")
# Only the rows the recurrences define are compared.
_CHECK_SLICE = {("tinympc-forward", "u"): slice(0, -1), ("tinympc-backward", "d"): slice(0, -1)}


def _config_for(spec: KernelSpec, config: GemminiConfig | None) -> GemminiConfig:
    if spec.fp32:
        return config if config is not None and config.fp32 else FP32_4X4
    if config is not None and not config.fp32:
        return config
    return DEFAULT


_VOID_FN = re.compile(r"^\s*void\s+(\w+)\s*\(", re.M)


def _entry_alias(code: str) -> str:
    """Autocomp only uses the body of the candidate's function, so some solutions are named `test`: when the
    code defines no `solution` but exactly one void function, that function is the entry point."""
    names = set(_VOID_FN.findall(_strip_comments(code)))
    if "solution" in names or len(names) != 1:
        return ""
    return f"#define {names.pop()} solution"


# What gemmini.h's macros call, as the candidate's object sees it: each name is mapped to the runtime's
# recording entry point (csrc/channel.inc), which reports the command to the accelerator process and then
# executes it. The harness exports these and the kernel's arrays, nothing else.
_API = {
    "gsim_mvin": "void gsim_rec_mvin(int, uintptr_t, uint64_t, int)",
    "gsim_mvout": "void gsim_rec_mvout(uintptr_t, uint64_t, int)",
    "gsim_preload": "void gsim_rec_preload(uint64_t, uint64_t, int)",
    "gsim_compute": "void gsim_rec_compute(int, uint64_t, uint64_t, int)",
    "gsim_config": "void gsim_rec_config(uint64_t, uint64_t, int)",
    "gsim_fence": "void gsim_rec_fence(int)",
    "gsim_flush": "void gsim_rec_flush(int, int)",
    "gsim_loop_ws": "void gsim_rec_loop_ws(long, long, long, long, long, long, uintptr_t, uintptr_t, uintptr_t, "
    "uintptr_t, size_t, size_t, size_t, size_t, int, int, int, int, int, int, int, int, int, int)",
    "gsim_loop_conv_ws": "void gsim_rec_loop_conv_ws(const long *, uintptr_t, uintptr_t, uintptr_t, uintptr_t, int)",
    "gsim_tiled_matmul_auto": "void gsim_rec_tiled_matmul_auto(size_t, size_t, size_t, const void *, const void *, "
    "const void *, void *, size_t, size_t, size_t, size_t, float, float, float, int, float, float, int, int, int, "
    "int, int, int, int, int, int)",
    "gsim_tiled_conv_auto": "void gsim_rec_tiled_conv_auto(const long *, const void *, const void *, const void *, "
    "void *, int, float, int, int, int)",
    "gsim_tiled_resadd_auto": "void gsim_rec_tiled_resadd_auto(size_t, size_t, float, float, float, const void *, "
    "const void *, void *, int, int, int)",
    "gsim_tiled_global_average_auto": "void gsim_rec_tiled_global_average_auto(const void *, void *, int, int, int, "
    "int, int)",
    "add_matrix": "void gsim_rec_add_matrix()",  # no prototype: a candidate may define its own with any types
    "negate_matrix": "void gsim_rec_negate_matrix()",
}
_REC = {name: re.match(r"void (\w+)", proto).group(1) for name, proto in _API.items()}
_EXPORTED = (*_REC.values(), "gsim_unsupported", "gsim_read_cycles", "gsim_counter")

# Poisoned after the headers, before the candidate's code: any later use of these identifiers is a compile error
# (gemmini.h's macros, defined earlier, may still expand to the runtime's names). Files, processes, raw system
# calls, code that runs before main() or outside the counted path, symbol aliases, and the runtime's own names.
_POISONED = " ".join(
    (
        "fopen fopen64 freopen fdopen open open64 openat openat2 creat creat64 tmpnam mkstemp syscall fork vfork "
        "clone clone3 system popen dlopen dlmopen dlsym dlvsym mmap mmap64 mremap mprotect munmap execl execle "
        "execlp execv execve execvp execvpe fexecve __builtin_fork __builtin_execl __builtin_execle __builtin_execlp "
        "__builtin_execv __builtin_execve __builtin_execvp posix_spawn posix_spawnp socket socketpair connect bind "
        "ptrace prctl seccomp _init _fini asm __asm __asm__ constructor __constructor__ destructor __destructor__ "
        "section __section__ ifunc __ifunc__ alias __alias__ weakref __weakref__ symver __symver__ "
        "no_sanitize_coverage __no_sanitize_coverage__ no_instrument_function __no_instrument_function__ "
        "__sanitizer_cov_trace_pc __start_gsim_state __stop_gsim_state __etext _end __gsim_none gsim_init gsim_reset "
        "gsim_seal gsim_stats gsim_finish gsim_harness gsim_set_entry gsim_set_lib gsim_attach_lib gsim_entry "
        "gsim_icount gsim_bcount gsim_config_ex gsim_config_ld gsim_config_st gsim_unsupported gsim_read_cycles gsim_counter "
        "gsim_f2b",
        *_REC.values(),  # not the names mapped to them: poisoning a macro would undefine it
    )
)


def solution_source(spec: KernelSpec, code: str) -> str:
    """The candidate's translation unit: headers, kernel macros, the arrays (defined in the harness), the
    poison list, then the code."""
    # gemmini.h and the C headers come first, precompiled, through `-include` (compile_script). Our lines are
    # named as such in diagnostics, so no message quotes one of them as a line of the candidate's code.
    lines = ['#line 1 "<harness prelude>"']
    lines += [f"#define {k} {v}" for k, v in spec.defines().items()]
    for a in spec.arrays:
        dims = "".join(f"[{s}]" for s in a.shape)
        lines.append(f"extern {a.ctype} {a.name}{dims} __attribute__((aligned(64)));")
    lines.append(f"{spec.signature()};")
    lines += [f"{proto};" for proto in _API.values()]
    lines += [f"#define {name} {rec}" for name, rec in _REC.items()]
    lines.append(f"#pragma GCC poison {_POISONED}")
    lines.append(_entry_alias(code))
    lines.append('#line 1 "solution.c"')
    lines.append(code)
    return "\n".join(lines) + "\n"


_HARNESS_T = (
    "typedef struct { int seeds, na; void **arr; const size_t *len; const int *is_out; const char *const *names;"
    " void (*call)(void *); } harness_t;\nint gsim_harness(const harness_t *);"
)


def harness_exports(spec: KernelSpec) -> tuple[str, ...]:
    """The dynamic symbols of the harness: the kernel's arrays and the entry points the candidate calls."""
    return tuple(a.name for a in spec.arrays) + _EXPORTED


def harness_main_source(spec: KernelSpec) -> str:
    """The harness's own translation unit (no candidate macro can reach it): the arrays, and a main() that
    hands them to gsim_harness (csrc/channel.inc): it reads every seed's inputs, forks the candidate's
    process, replays its commands and writes the framed result. Run by hand (no GSIM_CHANNEL=1), it writes
    stats0.txt instead."""
    lines = ['#include "gemmini.h"', _HARNESS_T]
    for a in spec.arrays:
        dims = "".join(f"[{s}]" for s in a.shape)
        lines.append(f"{a.ctype} {a.name}{dims} __attribute__((aligned(64)));")
    lines.append(f"{spec.signature()};")
    names = [a.name for a in spec.arrays]
    outs = [int(a.role != "in") for a in spec.arrays]
    lines.append(f"static void call(void *entry) {{ ((typeof(solution) *)entry)({', '.join(names)}); }}")
    lines.append("int main(int argc, char **argv) {")
    lines.append(f"  void *arr[] = {{{', '.join(names)}}};")
    lines.append(f"  static const size_t len[] = {{{', '.join(f'sizeof {n}' for n in names)}}};")
    lines.append(f"  static const char *const nm[] = {{{', '.join(chr(34) + n + chr(34) for n in names)}}};")
    lines.append(f"  static const int is_out[] = {{{', '.join(map(str, outs))}}};")
    lines.append(f"  harness_t h = {{argc > 1 ? atoi(argv[1]) : 1, {len(names)}, arr, len, is_out, nm, call}};")
    lines.append("  return gsim_harness(&h);")
    lines.append("}")
    return "\n".join(lines) + "\n"


def compile_script(root) -> str:
    """Shell commands that turn solution.c into solution.so (exit 97 with cc.txt on a compile error): compile
    with the pinned clang (toolchain.py) and the precompiled prelude to assembly, let gsim-count charge each
    basic block its length, assemble, and link a shared object that binds its own symbols (-Bsymbolic) and
    has no lazy bindings (-z now)."""
    flags = " ".join(CANDIDATE_FLAGS)
    fail = f" 2>> cc.txt || exit {_COMPILE_FAILED}; "
    # zig keeps a cache even for `cc -S`: in the working directory, so nothing outside it is written
    zig = f"ZIG_GLOBAL_CACHE_DIR=.zig ZIG_LOCAL_CACHE_DIR=.zig {toolchain.cc()}"
    return (
        f"{zig} -S {flags} -I {root}/include -include {root}/include/{PRELUDE} solution.c -o solution.s 2> cc.txt"
        f" || exit {_COMPILE_FAILED}; "
        f"{root}/{COUNTER} solution.s counted.s{fail}{_AS} counted.s -o solution.o{fail}"
        f"{_LD} solution.o -o solution.so{fail}"
    )


def input_seed(kernel: str, code: str, seed: int) -> int:
    """The seed the inputs of evaluation seed `seed` are drawn from: a hash of the kernel, the seed and the
    candidate's own code. The same code always meets the same inputs (so its timing is deterministic), but no
    code can carry the outputs for the inputs it will meet: they depend on its own text."""
    h = hashlib.sha256(f"autocomp-env gemmini inputs\0{kernel}\0{seed}\0".encode() + code.encode("utf-8", "replace"))
    return int.from_bytes(h.digest()[:16], "little")


@lru_cache(maxsize=8)
def _inputs(spec: KernelSpec, secret: int) -> dict[str, np.ndarray]:
    inp = make_inputs(spec, secret)
    for v in inp.values():
        v.flags.writeable = False
    return inp


@lru_cache(maxsize=8)
def _expected(spec: KernelSpec, secret: int) -> dict[str, np.ndarray]:
    return reference(spec, _inputs(spec, secret))


def _strip_comments(code: str) -> str:
    code = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    code = re.sub(r"//[^\n]*", " ", code)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', code)


def _line_of(code: str, pos: int) -> int:
    return code.count("\n", 0, pos) + 1


class GemminiSimulator:
    """Functional + cycle-approximate Gemmini, running candidate C code in the sandbox.

    `config` applies to the int8 kernels (default: the 16x16 int8 Gemmini); TinyMPC kernels run on the FP32 4x4
    config unless `config` is itself an FP32 one. `run` never raises for bad code or bad kernel names: every
    failure is a `SimResult` with `correct=False` and a structured `error`. `version` keys result caches and
    changes whenever semantics or timing change. See simulators/gemmini/README.md.

    >>> sim = GemminiSimulator()
    >>> sim.roofline("gemmini/matmul-64x64x64")
    1024.0
    """

    version = f"gemmini-9+{toolchain.TOOLCHAIN}"  # the candidate compiler is part of the cost model

    def __init__(self, config: GemminiConfig | None = None):
        self.config = config

    def config_for(self, kernel: str) -> GemminiConfig:
        return _config_for(parse_kernel(kernel), self.config)

    def macs(self, kernel: str) -> int:
        return parse_kernel(kernel).macs

    def roofline(self, kernel: str) -> float:
        """Ideal cycles: MACs / DIM^2 for the config the kernel runs on."""
        spec = parse_kernel(kernel)
        dim = _config_for(spec, self.config).dim
        return spec.macs / float(dim * dim)

    def run(self, code: str, kernel: str, *, seeds=(0, 1), timeout: float = 30.0) -> SimResult:
        """Compile `code` (a C `solution` function) for `kernel`, run it on each seed, check and time it.

        Correct only if every seed's outputs match numpy bit for bit; cycles and counters come from the first
        seed. `timeout` (seconds) covers compilation and all seeds."""
        t0 = time.monotonic()
        try:
            spec = parse_kernel(kernel)
        except ValueError as e:
            return SimResult.failure(UNIT, "invalid_kernel", str(e))
        result = self._run(spec, code, tuple(seeds) or (0,), timeout)
        return replace(result, sim_seconds=time.monotonic() - t0)

    def _run(self, spec: KernelSpec, code: str, seeds: tuple[int, ...], timeout: float) -> SimResult:
        if not isinstance(code, str) or not code.strip():
            return SimResult.failure(UNIT, "compile_error", "empty candidate code")
        bare = _strip_comments(code)
        m = _FORBIDDEN.search(bare)
        if m:
            return SimResult.failure(
                UNIT,
                "sandbox_violation",
                f"candidate code may not use {m.group(1) or m.group(2) + '()'}",
                line=_line_of(bare, m.start()),
            )
        config = _config_for(spec, self.config)
        root = build_runtime(config)
        files: dict[str, bytes | str] = {"solution.c": solution_source(spec, code)}
        harness = harness_binary(root, harness_main_source(spec), harness_exports(spec))
        secrets = [input_seed(spec.name, code, s) for s in seeds]
        inputs = [_inputs(spec, x) for x in secrets]
        expected = [_expected(spec, x) for x in secrets]
        for si, inp in enumerate(inputs):
            for a in spec.arrays:
                files[f"in{si}_{a.name}.bin"] = np.ascontiguousarray(inp[a.name], dtype=a.dtype).tobytes()
        outs = [a for a in spec.arrays if a.role != "in"]
        script = f"{compile_script(root)}exec {_NO_ASLR}{harness} {len(seeds)}"
        limits = sandbox.Limits(wall_seconds=timeout, cpu_seconds=max(1, math.ceil(timeout)))
        out = sandbox.run(
            ["/bin/sh", "-c", script],
            files=files,
            limits=limits,
            read_back=("cc.txt", "nonce.txt", "result.bin"),
            ro_paths=(str(root), str(toolchain.zig().parent)),
            env={"GSIM_CHANNEL": "1"},
        )
        stdout = out.stdout[-4000:]
        if out.timed_out or out.signal in (24,):  # SIGXCPU: the CPU-time limit
            return SimResult.failure(UNIT, "timeout", f"no result within {timeout:g} s (compile + run)")
        if out.returncode == _COMPILE_FAILED:
            return _compile_error(out.files.get("cc.txt", b"").decode("utf-8", "replace"), code)
        if out.signal == 31:  # SIGSYS: the seccomp filter killed a forbidden system call
            return SimResult.failure(
                UNIT, "sandbox_violation", "the program made a forbidden system call (files, processes, sockets)"
            )
        kind, payload = _unframe(out.files.get("result.bin", b""), out.files.get("nonce.txt", b""))
        if kind == "error":
            parts = payload.decode("utf-8", "replace").split("\n", 3)
            etype, instr, line, msg = (parts + ["", "", "", ""])[:4]
            if etype == "compile_error":  # the load failed like a link would
                return _compile_error(msg, code)
            return SimResult(
                correct=False,
                latency=None,
                unit=UNIT,
                error=_sim_error(etype, msg.strip(), line, instr),
                stdout=stdout,
            )
        if out.signal == 25:  # SIGXFSZ: a file (stdout included) grew past the limit
            return SimResult.failure(UNIT, "output_limit", "the program wrote more output than allowed")
        if out.signal is not None:
            return SimResult.failure(UNIT, "runtime_error", f"the program was killed by signal {out.signal}")
        if out.returncode != 0:
            detail = out.stderr.strip()[-500:]
            return SimResult.failure(UNIT, "runtime_error", f"the program exited with status {out.returncode} {detail}")
        if kind != "ok":
            return SimResult.failure(
                UNIT, "runtime_error", "the program ended before the harness wrote its result (exit() in the code?)"
            )
        stats_len = int.from_bytes(payload[:8], "little")
        stats, pos = payload[8 : 8 + stats_len], 8 + stats_len
        if len(payload) != pos + len(seeds) * sum(a.size * a.dtype.itemsize for a in outs):
            return SimResult.failure(UNIT, "runtime_error", "the harness's result has the wrong size")
        counters = _parse_stats(stats)
        for si in range(len(seeds)):
            want = expected[si]
            for a in outs:
                n = a.size * a.dtype.itemsize
                got = np.frombuffer(payload[pos : pos + n], dtype=a.dtype).reshape(a.shape)
                pos += n
                msg = _compare(spec, a.name, got, want[a.name], seeds[si])
                if msg:
                    line = counters.get("uninit_line") if counters.get("uninit_reads") else None
                    err = _sim_error("wrong_output", msg + _uninit_note(counters), line, counters.get("uninit_instr"))
                    return SimResult(False, None, UNIT, error=err, stdout=stdout)
        cycles = float(counters.get("cycles", 0))
        cpu_macs = max(0, spec.macs - counters.get("macs_issued", 0))  # done by the CPU, whatever it claims
        if cycles < cpu_macs * CPU_CYCLES_PER_MAC_FLOOR:
            counters["cpu_mac_floor"] = cpu_macs * CPU_CYCLES_PER_MAC_FLOOR
            cycles = float(counters["cpu_mac_floor"])
        roof = spec.macs / float(config.dim**2)
        result = SimResult(
            correct=True,
            latency=cycles,
            unit=UNIT,
            utilization=roof / cycles if cycles else None,
            counters=counters,
            stdout=stdout,
        )
        return within_roofline(result, roof, spec.name)


def _sim_error(etype: str, msg: str, line: str | int | None = None, instr: str | int | None = None):
    from ..result import SimError

    def num(v):
        try:
            n = int(v)
        except (TypeError, ValueError):
            return None
        return n if n > 0 else None

    return SimError(etype or "runtime_error", msg, line=num(line), instruction=num(instr))


# clang names no identifier: it is the one under the caret of the quoted source line
_POISON_ERR = re.compile(
    r"(?:solution\.c:(\d+):\d+: )?[^\n]*attempt to use a poisoned identifier\n[^|\n]*\|([^\n]*)\n[^|\n]*\|( *)\^"
)


def _compile_error(text: str, code: str = "") -> SimResult:
    p = _POISON_ERR.search(text)
    if p:  # a forbidden name reached the compiler (through a macro, a header or a function pointer)
        line = int(p.group(1)) if p.group(1) else None
        name = re.match(r"\w*", p.group(2)[len(p.group(3)) :]).group(0) or "a forbidden name"
        return SimResult.failure(UNIT, "sandbox_violation", f"candidate code may not use {name}", line=line)
    m = _GCC_ERR.search(text)
    if m:
        return SimResult.failure(UNIT, "compile_error", text.strip()[-2000:], line=int(m.group(1)))
    u = re.search(r"undefined symbol: (\w+)", text)
    if u:  # the loader's message: the candidate uses a name nothing defines; the line is its last mention
        bare = _strip_comments(code)
        uses = [use.start() for use in re.finditer(rf"\b{re.escape(u.group(1))}\b", bare)]
        msg = f"undefined reference to `{u.group(1)}' (declared, never defined)"
        return SimResult.failure(UNIT, "compile_error", msg, line=_line_of(bare, uses[-1]) if uses else None)
    if "undefined reference" in text and "solution" in text:
        return SimResult.failure(UNIT, "compile_error", "no function `void solution(...)` is defined:\n" + text[-1500:])
    return SimResult.failure(UNIT, "compile_error", text.strip()[-2000:] or "compilation failed")


_READERS = (
    "a mvout",
    "a compute's A operand",
    "a compute's D operand",
    "a preload's B (weights)",
    "an accumulating write (C += ...)",
    "an accumulating mvin",
    "an OS preload's D",
)


def _uninit_note(counters: dict[str, int]) -> str:
    """Why an output can be wrong although every command was legal: it used memory nothing wrote."""
    if not counters.get("uninit_reads"):
        return ""
    mem = "accumulator" if counters.get("uninit_mem") else "scratchpad"
    what = counters.get("uninit_what", -1)
    who = _READERS[what] if 0 <= what < len(_READERS) else "a command"
    line = counters.get("uninit_line")
    return (
        f"; the code read uninitialized {mem} rows (first: row {counters.get('uninit_row')}, by {who}"
        f"{f' at line {line}' if line else ''}; {counters['uninit_reads']} such reads): the scratchpad and "
        "accumulator start with garbage, as on hardware, so zero or write rows before reading or accumulating "
        "into them (e.g. mvin from address 0, or a first preload without the accumulate bit)"
    )


def _compare(spec: KernelSpec, name: str, got: np.ndarray, want: np.ndarray, seed: int) -> str | None:
    sl = _CHECK_SLICE.get((spec.kind, name), slice(None))
    g, w = got[sl], want[sl]
    if spec.fp32:
        bad = ~((g == w) | (np.isnan(g) & np.isnan(w)))
    else:
        bad = g != w
    if not bad.any():
        return None
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    where = "".join(f"[{i}]" for i in idx)
    return (
        f"{name}{where} = {g[idx]!r} but the reference is {w[idx]!r} "
        f"({int(bad.sum())} of {bad.size} elements differ, seed {seed})"
    )


def _unframe(raw: bytes, nonce: bytes) -> tuple[str, bytes]:
    """("ok" | "error", payload) from the harness's framed result.bin, or ("", b"") when it is missing or not
    framed with this run's nonce (the candidate wrote it, or exited before the harness could)."""
    if len(nonce) != 32:
        return "", b""
    head = 8 + len(nonce) + 8
    if len(raw) < head + len(nonce) or raw[8 : 8 + len(nonce)] != nonce or not raw.endswith(nonce):
        return "", b""
    n = int.from_bytes(raw[8 + len(nonce) : head], "little")
    if len(raw) != head + n + len(nonce):
        return "", b""
    kind = {b"GSIM-OK\n": "ok", b"GSIM-ER\n": "error"}.get(raw[:8], "")
    return kind, raw[head : head + n]


def _parse_stats(raw: bytes) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(" ")
        if k and v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out
