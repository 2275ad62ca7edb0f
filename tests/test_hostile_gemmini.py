"""Hostile candidate C code on the Gemmini target, through the real simulator and through the env.

Every case must end in a structured error (a type from ERROR_TYPES), leave no process or sandbox dir
behind, change nothing outside the sandbox, and (in the env) cost exactly the failure penalty while the
state stays put and the next step works normally.
"""

from __future__ import annotations

import platform
import sys

import helpers
import numpy as np
import pytest
from helpers import HOME_SECRET, OUTSIDE, assert_contained, assert_env_penalizes_and_goes_on, assert_error

import autocomp_env  # noqa: F401  (registers the envs)
from autocomp_env import targets
from simulators import sandbox
from simulators.gemmini import GemminiSimulator
from simulators.gemmini.kernels import case, parse_kernel
from simulators.gemmini.simulator import _expected, input_seed

KERNEL = "gemmini/matmul-16x16x16"
TIMEOUT = 2.0  # hostile code only; honest code (with a schedule marker) gets the default
SIG = "void solution(int8_t A[16][16], int8_t B[16][16], int8_t C[16][16]) {"
ALIAS_FOPEN = "FILE *(*op)(const char *, const char *) = fopen;"  # dodges the static fopen( check


def _seed0_output() -> str:
    _, ref = case(parse_kernel(KERNEL), 0)
    return ", ".join(str(int(v)) for v in ref["C"].ravel())


def _forge_stats(cycles: int) -> str:
    # Redirected the old harness's stats file (a macro after the code rewrote its snprintf) and wrote its own.
    return (
        "#include <stdio.h>\n#include <stdarg.h>\n"
        "static int sn2(char *b, size_t n, const char *f, ...) { va_list ap; va_start(ap, f);"
        " int r = vsnprintf(b, n, f[0] == 's' ? \"junk%d\" : f, ap); va_end(ap); return r; }\n"
        f'{SIG} {ALIAS_FOPEN} FILE *f = op("stats0.txt", "w"); fprintf(f, "cycles {cycles}\\n"); fclose(f);\n'
        "  for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) { int s = 0;"
        " for (int k = 0; k < 16; k++) s += A[i][k] * B[k][j]; C[i][j] = s > 127 ? 127 : s < -128 ? -128 : s; } }\n"
        "#define snprintf sn2\n"
    )


# name -> (code, allowed error types)
HOSTILE: dict[str, tuple[str, set[str]]] = {
    "infinite_loop": (f"{SIG} for (;;) {{ }} }}", {"timeout"}),
    "fork_static": (f"#include <unistd.h>\n{SIG} while (1) fork(); }}", {"sandbox_violation"}),
    "fork_bomb": (
        f"#include <unistd.h>\n{SIG} pid_t (*f)(void) = fork; for (;;) f(); }}",
        {"sandbox_violation"},
    ),
    "memory_bomb": (
        "#include <stdlib.h>\n#include <string.h>\n"
        f"{SIG} for (int i = 0; i < 16; i++) {{ volatile char *p = malloc(1 << 30); p[i << 20] = i; C[0][i] = p[i << 20]; }} }}",
        {"memory_limit", "runtime_error"},
    ),
    "huge_output": (
        f'#include <stdio.h>\n{SIG} for (;;) fputs("{"x" * 70}\\n", stdout); }}',
        {"output_limit"},
    ),
    "disk_fill": (  # each file under the per-file cap, together over the run dir's cap
        f"#include <stdio.h>\n{SIG} {ALIAS_FOPEN} static char buf[1 << 20]; char name[32];"
        ' for (int i = 0;; i++) { snprintf(name, sizeof name, "f%d", i); FILE *f = op(name, "wb");'
        " for (int k = 0; k < 8; k++) fwrite(buf, 1, sizeof buf, f); fclose(f); } }",
        {"sandbox_violation"},  # fopen is a poisoned name
    ),
    "disk_fill_tmpfile": (  # no forbidden name: the system-call filter stops it
        f"#include <stdio.h>\n{SIG} static char buf[1 << 20];"
        " for (;;) { FILE *f = tmpfile(); for (int k = 0; k < 8; k++) fwrite(buf, 1, sizeof buf, f); } }",
        {"sandbox_violation"},
    ),
    "segfault": (f"{SIG} int8_t (*p)[16] = A - 100000000; C[0][0] = p[0][0]; }}", {"runtime_error"}),
    "abort": (f"#include <stdlib.h>\n{SIG} abort(); }}", {"runtime_error"}),
    "write_static": (f'#include <stdio.h>\n{SIG} fopen("{OUTSIDE[0]}", "w"); }}', {"sandbox_violation"}),
    "write_outside": (
        f"#include <stdio.h>\n{SIG} {ALIAS_FOPEN} for (int i = 0; i < 2; i++) {{"
        f' FILE *f = op(i ? "{OUTSIDE[1]}" : "{OUTSIDE[0]}", "w"); if (f) {{ fputs("pwned", f); fclose(f); }} }} }}',
        {"sandbox_violation"},
    ),
    "mkdir_outside": (
        f'#include <sys/stat.h>\n{SIG} mkdir("{OUTSIDE[0]}", 0700); }}',
        {"sandbox_violation"},
    ),
    "read_home": (
        f'#include <stdio.h>\n{SIG} {ALIAS_FOPEN} FILE *f = op("{HOME_SECRET}", "r"); char b[64] = "none";'
        ' if (f) fgets(b, 64, f); printf("got %s\\n", b); }',
        {"sandbox_violation"},
    ),
    "socket": (
        "#include <stdio.h>\n#include <sys/socket.h>\n#include <netinet/in.h>\n#include <arpa/inet.h>\n"
        f"{SIG} int s = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {{0}}; a.sin_family = AF_INET;"
        ' a.sin_port = htons(PORT); a.sin_addr.s_addr = inet_addr("127.0.0.1");'
        ' printf("connect %d\\n", connect(s, (struct sockaddr *)&a, sizeof a)); }',
        {"sandbox_violation"},
    ),
    "overwrite_inputs": (
        f"{SIG} for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) A[i][j] = B[i][j] = C[i][j] = 0; }}",
        {"wrong_output"},
    ),
    "seed0_only": (
        f"#include <string.h>\nstatic const int8_t K0[256] = {{{_seed0_output()}}};\n{SIG} memcpy(C, K0, 256); }}",
        {"wrong_output"},
    ),
    "forged_stats": (_forge_stats(5), {"sandbox_violation"}),
}


private_tmp, listener = helpers.private_tmp, helpers.listener  # fixtures


def _code(name: str, port: int) -> str:
    return HOSTILE[name][0].replace("htons(PORT)", f"htons({port})")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_simulator_contains_hostile_code(name, private_tmp, listener):
    r = GemminiSimulator().run(_code(name, listener.getsockname()[1]), KERNEL, timeout=TIMEOUT)
    assert_error(name, r, HOSTILE[name][1])
    assert_contained(name, private_tmp, listener)


def test_reference_output_never_enters_the_sandbox(monkeypatch):
    seen: list[dict] = []
    real = sandbox.run

    def spy(argv, **kw):
        seen.append(dict(kw.get("files") or {}))
        return real(argv, **kw)

    monkeypatch.setattr(sandbox, "run", spy)
    r = GemminiSimulator().run(_code("overwrite_inputs", 1), KERNEL, seeds=(0, 1), timeout=TIMEOUT)
    assert r.error is not None and r.error.type == "wrong_output"
    for seed in (0, 1):
        secret = input_seed(KERNEL, _code("overwrite_inputs", 1), seed)
        want = np.ascontiguousarray(_expected(parse_kernel(KERNEL), secret)["C"]).tobytes()
        for content in seen[0].values():
            blob = content.encode() if isinstance(content, str) else content
            assert want not in blob


class _ShortTimeout(GemminiSimulator):
    def run(self, code, kernel, *, seeds=(0, 1), timeout=30.0):
        if "autocomp-schedule" not in code:
            timeout = TIMEOUT
        return super().run(code, kernel, seeds=seeds, timeout=timeout)


def test_env_penalizes_hostile_code_and_goes_on(private_tmp, listener, monkeypatch):
    monkeypatch.setitem(targets._SIMULATORS, ("gemmini", repr(None)), _ShortTimeout())
    names = [n for n in sorted(HOSTILE) if n != "fork_bomb"]  # contained above; in the env, one timeout is enough
    port = listener.getsockname()[1]
    cases = [(n, _code(n, port), HOSTILE[n][1]) for n in names]
    assert_env_penalizes_and_goes_on("autocomp/Gemmini-matmul-v0", KERNEL, cases, private_tmp, listener)


# ---- tampering with the harness, the runtime or the result (follow-up to the reliability audit) ----
CPU_MATMUL = (
    "  for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) { int s = 0;"
    " for (int k = 0; k < 16; k++) s += A[i][k] * B[k][j]; C[i][j] = s > 127 ? 127 : s < -128 ? -128 : s; } }\n"
)
HEAD = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n" + SIG + "\n"
CAT = "#define CAT(a, b) a##b\n"


@pytest.fixture(scope="module")
def honest():
    r = GemminiSimulator().run(HEAD + CPU_MATMUL, KERNEL)
    assert r.correct and r.latency > 17, r.error
    return r


def test_gemmini_forged_stats_above_the_roofline_are_not_accepted(honest):
    # The audit's hack: fopen named without a call, stats0.txt rewritten during the seed-1 call.
    forge = 'FILE *(*op)(const char *, const char *) = fopen; FILE *f = op("stats0.txt", "w"); fprintf(f, "cycles 17\\n"); fclose(f);\n'
    r = GemminiSimulator().run(HEAD + forge + CPU_MATMUL, KERNEL)
    assert not r.correct, f"forged 17 cycles accepted (honest run: {honest.latency} cycles)"
    assert r.error.type == "sandbox_violation" and "fopen" in r.error.message


@pytest.mark.parametrize(
    "body",
    [
        'FILE *t = tmpfile(); if (t) fputs("cycles 17", t);',  # opens a file: no forbidden name, the filter kills it
        "__builtin_fork();",
        'system("true");',
    ],
)
def test_files_and_processes_are_refused_at_compile_or_run_time(body):
    r = GemminiSimulator().run(HEAD + body + "\n" + CPU_MATMUL, KERNEL, timeout=TIMEOUT)
    assert not r.correct and r.error.type == "sandbox_violation", r.error


def test_macros_after_the_code_cannot_rewrite_the_harness(honest):
    tail = (
        "#define snprintf(...) 0\n#define memcpy(a, b, n) (a)\n#define fwrite(...) 0\n#define main fake_main\n"
        "#define solution other\n#define exit(x) 0\n"
    )
    r = GemminiSimulator().run(HEAD + CPU_MATMUL + tail, KERNEL)
    assert r.correct and r.latency == honest.latency, r.error


def test_a_candidate_cannot_replace_functions_the_runtime_calls(honest):
    # A global fflush in the candidate would otherwise be what the harness calls after solution() returns.
    own = (
        "long write(int, const void *, unsigned long);\n"
        'int fflush(FILE *f) { (void)f; write(1, "interposed\\n", 11); return 0; }\n'
    )
    r = GemminiSimulator().run(own + HEAD + CPU_MATMUL, KERNEL)
    assert r.correct and r.latency == honest.latency, r.error
    assert "interposed" not in r.stdout


@pytest.mark.parametrize(
    "code",
    [
        HEAD + 'asm volatile("mov $60, %eax; xor %edi, %edi; syscall");\n' + CPU_MATMUL,
        CAT + HEAD + 'CAT(__as, m__)("mov $231, %eax; xor %edi, %edi; syscall");\n' + CPU_MATMUL,
        CAT
        + '__attribute__((CAT(constr, uctor))) static void early(void) { puts("before main"); }\n'
        + HEAD
        + CPU_MATMUL,
        CAT + 'static void (*early)(void) __attribute__((CAT(sec, tion)(".init_array"))) = 0;\n' + HEAD + CPU_MATMUL,
    ],
    ids=["asm", "asm_pasted", "constructor", "init_array"],
)
def test_inline_asm_and_code_before_main_are_refused(code):
    r = GemminiSimulator().run(code, KERNEL, timeout=TIMEOUT)
    assert not r.correct and r.error.type == "sandbox_violation", r.error


@pytest.mark.parametrize(
    "decl",
    [
        "extern unsigned long gsim_bb; gsim_bb = 0;",
        "extern unsigned long CAT(gsim, _bb); CAT(gsim, _bb) = 0;",
        "extern char CAT(__start_gsim, _state)[]; CAT(__start_gsim, _state)[0] = 0;",
        "extern long long t_cpu; t_cpu = 17;",  # static in the runtime: nothing to link to
    ],
    ids=["gsim_bb", "gsim_bb_pasted", "state_section", "static_state"],
)
def test_runtime_internals_are_out_of_reach(decl):
    r = GemminiSimulator().run(CAT + HEAD + decl + "\n" + CPU_MATMUL, KERNEL, timeout=TIMEOUT)
    assert not r.correct and r.error.type in ("sandbox_violation", "compile_error"), r.error


# A complete forgery: seed 0's output is kept; during seed 1 a frame with both outputs and 17 cycles goes into
# every file descriptor the program might hold. The nonce is its one missing piece: it is drawn after
# compilation and lives in no file or variable the candidate can open or name (the environment is tried).
FORGE_FRAME = """
  static int8_t first[16][16]; static int calls; if (calls++ == 0) { memcpy(first, C, 256); return; }
  const char *nonce = getenv("GSIM_CHANNEL"); char key[33] = "00000000000000000000000000000000";
  if (nonce && strlen(nonce) == 32) memcpy(key, nonce, 32);
  static unsigned char buf[4096]; size_t n = 0; const char *stats = "cycles 17\\n";
  unsigned long long sl = strlen(stats), body = 8 + sl + 2 * 256;
  memcpy(buf, "GSIM-OK\\n", 8); n = 8; memcpy(buf + n, key, 32); n += 32;
  for (int b = 0; b < 8; b++) buf[n++] = (unsigned char)(body >> (8 * b));
  for (int b = 0; b < 8; b++) buf[n++] = (unsigned char)(sl >> (8 * b));
  memcpy(buf + n, stats, sl); n += sl; memcpy(buf + n, first, 256); n += 256; memcpy(buf + n, C, 256); n += 256;
  memcpy(buf + n, key, 32); n += 32;
  for (int fd = 3; fd < 64; fd++) { ftruncate(fd, 0); pwrite(fd, buf, n, 0); }
"""


@pytest.mark.parametrize("leave", ["exit(0);", "return;"])
def test_a_forged_result_frame_is_not_accepted(leave, honest):
    code = (
        "long pwrite(int, const void *, unsigned long, long); int ftruncate(int, long);\n"
        + HEAD
        + CPU_MATMUL.replace(" } }\n", " } ")
        + FORGE_FRAME
        + leave
        + " }\n"
    )
    r = GemminiSimulator().run(code, KERNEL, timeout=TIMEOUT)
    if leave == "return;":  # the harness rewrites the result after solution() returns: the honest figure
        assert r.correct and r.latency > 17, r.error
    else:
        assert not r.correct and r.error.type == "runtime_error", r.error


def test_the_system_call_filter_is_reported():
    r = GemminiSimulator().run(HEAD + CPU_MATMUL, KERNEL)
    assert r.counters["seccomp"] in (0, 1)
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert r.counters["seccomp"] == 1


def test_a_claim_below_the_roofline_is_flagged(monkeypatch):
    # Whatever slips past the layers above, the host refuses fewer cycles than the ideal: a valid frame (the
    # harness's own format and nonce) with correct outputs and 5 cycles (the roofline of 16^3 is 16).
    nonce = "ab" * 16
    secrets = [input_seed(KERNEL, HEAD + CPU_MATMUL, s) for s in (0, 1)]
    outs = b"".join(np.ascontiguousarray(_expected(parse_kernel(KERNEL), x)["C"]).tobytes() for x in secrets)
    stats = b"cycles 5 \nmacs_issued 4096\n"
    payload = len(stats).to_bytes(8, "little") + stats + outs
    frame = b"GSIM-OK\n" + nonce.encode() + len(payload).to_bytes(8, "little") + payload + nonce.encode()
    fake = sandbox.Outcome(0, None, "", "", False, 0.1, False, files={"result.bin": frame, "nonce.txt": nonce.encode()})
    monkeypatch.setattr(sandbox, "run", lambda *a, **kw: fake)
    r = GemminiSimulator().run(HEAD + CPU_MATMUL, KERNEL)
    assert not r.correct and r.error.type == "beyond_roofline", r.error
    good = frame.replace(b"cycles 5 \n", b"cycles 50\n")  # same length: the frame stays valid
    files = {"result.bin": good, "nonce.txt": nonce.encode()}
    monkeypatch.setattr(
        sandbox, "run", lambda *a, **kw: sandbox.Outcome(0, None, "", "", False, 0.1, False, files=files)
    )
    assert GemminiSimulator().run(HEAD + CPU_MATMUL, KERNEL).latency == 50  # the same frame, above it: accepted


def test_ordinary_library_calls_work_under_the_filter(honest):
    # The filter refuses munmap/mprotect/rt_sigaction with EPERM (glibc copes) and allows what malloc, stdio,
    # qsort and libm need: a solution using them is still correct, and its printf output comes back.
    code = (
        "#include <signal.h>\n#include <math.h>\n"
        "static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }\n"
        + HEAD
        + " int *big = malloc(8 << 20); for (int i = 0; i < 1000; i++) big[i] = 1000 - i;"
        " qsort(big, 1000, sizeof *big, cmp); int first = big[0]; void *r = realloc(big, 64 << 20); free(r);"
        ' signal(SIGALRM, SIG_IGN); printf("%d %.3f\\n", first, sqrt(2.0));\n' + CPU_MATMUL
    )
    r = GemminiSimulator().run(code, KERNEL)
    assert r.correct and r.counters["seccomp"] in (0, 1), r.error
    assert "1 1.414" in r.stdout


# ---- issue 14: what decides the reward is out of the candidate's reach ----
def _harness_symbols() -> dict[str, int]:
    """Addresses in the 16^3 harness (no ASLR: the candidate could read the same from the binary)."""
    import subprocess

    from simulators.gemmini.build import build_runtime, harness_binary
    from simulators.gemmini.config import DEFAULT
    from simulators.gemmini.simulator import harness_exports, harness_main_source

    spec = parse_kernel(KERNEL)
    exe = harness_binary(build_runtime(DEFAULT), harness_main_source(spec), harness_exports(spec))
    out = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    return {f[2]: int(f[0], 16) for f in (line.split() for line in out.splitlines()) if len(f) == 3}


def test_calling_the_runtime_reset_by_address_changes_nothing(honest):
    # gsim_reset is no dynamic symbol any more, but without ASLR its address is a fixed offset from a function
    # the candidate may name (add_matrix maps to gsim_rec_add_matrix). Before, calling it after the work
    # zeroed the clocks; now it resets the candidate's own copy of the model, not the accelerator's.
    sym = _harness_symbols()
    off = sym["gsim_reset"] - sym["gsim_rec_add_matrix"]
    tail = (
        f"  {{ void (*f)() = add_matrix; void (*reset)(void) = (void (*)(void))((char *)f + ({off})); reset(); }} }}\n"
    )
    r = GemminiSimulator().run(HEAD + CPU_MATMUL.replace(" } }\n", " } ") + tail, KERNEL)
    assert r.correct and r.latency >= honest.latency, r.error


def test_rewriting_the_runtime_counters_in_memory_changes_nothing(honest):
    # The candidate's process still holds a copy of the model (it executes the commands); its clocks and
    # statistics are at fixed addresses. Overwritten at the end, they are not what the host is told.
    sym = _harness_symbols()
    d_cpu, d_a = sym["t_cpu"] - sym["A"], sym["ctr"] - sym["A"]
    tail = f"  {{ char *a = (char *)A; *(long long *)(a + ({d_cpu})) = 17; memset(a + ({d_a}), 0, 64); }} }}\n"
    r = GemminiSimulator().run(HEAD + CPU_MATMUL.replace(" } }\n", " } ") + tail, KERNEL)
    assert r.correct and honest.latency <= r.latency <= honest.latency + 20, r.error  # the tail's own instructions


def test_a_memory_scan_finds_no_nonce_and_no_result_frame():
    # Every writable segment of every object in the candidate's process (dl_iterate_phdr), searched for the
    # 32 hex digits of a nonce and for the frame's tags: the nonce and the frame live in the other process.
    scan = r"""
typedef struct { uint32_t p_type, p_flags; uint64_t p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align; } Elf64_Phdr;
enum { PT_LOAD = 1, PF_W = 2 };
struct info { uint64_t addr; const char *name; const Elf64_Phdr *phdr; uint16_t phnum; };
int dl_iterate_phdr(int (*)(struct info *, size_t, void *), void *);
static int found;
static int visit(struct info *info, size_t size, void *arg) {
  (void)size; (void)arg;
  for (int i = 0; i < info->phnum; i++) {
    const Elf64_Phdr *ph = &info->phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    const unsigned char *p = (const unsigned char *)(info->addr + ph->p_vaddr);
    int run = 0;
    for (size_t k = 0; k < ph->p_memsz; k++) {
      int hex = (p[k] >= '0' && p[k] <= '9') || (p[k] >= 'a' && p[k] <= 'f');
      run = hex ? run + 1 : 0;
      if (run == 32) found++;
      if (k + 7 < ph->p_memsz && memcmp(p + k, "GSIM-OK", 7) == 0) found += 1000;
    }
  }
  return 0;
}
"""
    code = "#include <string.h>\n" + scan + HEAD + ' dl_iterate_phdr(visit, 0); printf("found %d\\n", found);\n'
    r = GemminiSimulator().run(code + CPU_MATMUL, KERNEL)
    assert r.correct and "found 0" in r.stdout, (r.error, r.stdout)


MARKER = "static volatile unsigned long long marker[1] = {1};\n"


def _counter_offset(code: str) -> int:
    """Where the candidate's instruction counter sits, in words from `marker` (the attacker compiles its code
    once and reads the offset, as we do here)."""
    import subprocess
    import tempfile

    from simulators.gemmini.build import build_runtime
    from simulators.gemmini.config import DEFAULT
    from simulators.gemmini.simulator import compile_script, solution_source

    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/solution.c", "w").write(solution_source(parse_kernel(KERNEL), code))
        subprocess.run(["/bin/sh", "-c", compile_script(build_runtime(DEFAULT))], cwd=d, check=True)
        out = subprocess.run(["nm", f"{d}/solution.so"], capture_output=True, text=True, check=True).stdout
    sym = {f[2]: int(f[0], 16) for f in (line.split() for line in out.splitlines()) if len(f) == 3}
    return (sym["gsim_icount"] - sym["marker"]) // 8


def _forge(code: str, where: str, stmt: str) -> str:
    probe = code.replace(where, where.replace("@", "marker[0] = 0;"), 1)
    off = _counter_offset(probe)
    return code.replace(where, where.replace("@", stmt.format(ic=off, bc=off + 1)), 1)


def test_a_forged_instruction_count_only_makes_cpu_work_free(honest):
    # The CPU instruction counter lives in the candidate's own object (it must be counted where the code
    # runs). Put back to its value at the start (0), the CPU matmul is reported as free; the kernel's MACs
    # that no Gemmini command executed still cost a cycle each, so the forgery is bounded.
    code = _forge(MARKER + HEAD + CPU_MATMUL.replace(" } }\n", " } @ }\n"), "@", "marker[{ic}] = 0; marker[{bc}] = 0;")
    r = GemminiSimulator().run(code, KERNEL)
    assert r.correct, r.error
    assert r.latency < honest.latency  # the forgery took effect...
    assert r.latency >= 16 * 16 * 16 and r.counters["cpu_mac_floor"] == 16 * 16 * 16  # ...and is bounded


def test_a_counter_that_goes_backwards_is_refused():
    # after a command stamped with the work so far (the fence), a count below that stamp
    code = _forge(MARKER + HEAD + CPU_MATMUL.replace(" } }\n", " } fence(); @ }\n"), "@", "marker[{ic}] = 0;")
    r = GemminiSimulator().run(code, KERNEL)
    assert not r.correct and r.error.type == "sandbox_violation" and "backwards" in r.error.message, r.error


def test_a_function_named_like_the_init_symbol_is_refused():
    # ld is told -init=__gsim_none so that no function becomes DT_INIT; one named so would.
    code = CAT + '#include <stdio.h>\nvoid CAT(__gsim, _none)(void) { puts("before the seal"); }\n' + HEAD + CPU_MATMUL
    r = GemminiSimulator().run(code, KERNEL, timeout=TIMEOUT)
    assert not r.correct and r.error.type == "sandbox_violation", r.error
    assert "before the seal" not in r.stdout


@pytest.mark.parametrize(
    "pre",
    [
        'void __gsim_none(void) { FILE *f = fopen("ran", "w"); if (f) fclose(f); }\n',
        '__attribute__((constructor)) static void early(void) { FILE *f = fopen("ran", "w"); if (f) fclose(f); }\n',
        'static void early(void) { FILE *f = fopen("ran", "w"); if (f) fclose(f); }\n'
        '__attribute__((used, section(".init_array"))) static void (*ctor)(void) = early;\n',
    ],
    ids=["init_symbol", "constructor", "init_array"],
)
def test_the_linked_object_is_checked_before_it_is_loaded(pre, tmp_path):
    # Straight into solution.c, without the prelude and its poison: the ELF check refuses the object before
    # dlopen, so nothing of it ran.
    import subprocess

    from simulators.gemmini.build import build_runtime, harness_binary
    from simulators.gemmini.config import DEFAULT
    from simulators.gemmini.simulator import compile_script, harness_exports, harness_main_source

    spec = parse_kernel(KERNEL)
    root = build_runtime(DEFAULT)
    (tmp_path / "solution.c").write_text("#include <stdint.h>\n#include <stdio.h>\n" + pre + SIG + CPU_MATMUL)
    for a in spec.arrays:
        (tmp_path / f"in0_{a.name}.bin").write_bytes(case(spec, 0)[0][a.name].tobytes())
    subprocess.run(["/bin/sh", "-c", compile_script(root)], cwd=tmp_path, check=True)
    harness = harness_binary(root, harness_main_source(spec), harness_exports(spec))
    p = subprocess.run([str(harness), "1"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert p.returncode != 0 and not (tmp_path / "ran").exists()
    assert (tmp_path / "gsim_error.txt").read_text().startswith("sandbox_violation")


@pytest.mark.parametrize(
    "call",
    [
        'int __open_2(const char *, int); int fd = __open_2("/etc/hostname", 0); printf("fd %d\\n", fd);',
        '#include <wordexp.h>\n wordexp_t w; printf("%d\\n", wordexp("$(id)", &w, 0));',
    ],
    ids=["__open_2", "wordexp"],
)
def test_unpoisoned_libc_helpers_are_stopped_by_the_filter(call):
    head, _, stmt = call.rpartition("\n")
    code = head + "\n" + HEAD + " " + stmt + "\n" + CPU_MATMUL
    r = GemminiSimulator().run(code, KERNEL, timeout=TIMEOUT)
    assert not r.correct and r.error.type == "sandbox_violation", (r.error, r.stdout)


def test_cold_code_is_charged_its_real_length(honest):
    # At -O2 a cold function goes to .text.unlikely; its blocks used to cost 4 instructions each.
    cold = (
        '#pragma GCC optimize("O2")\n__attribute__((cold, noinline)) static void mm(int8_t A[16][16], int8_t B[16][16],'
        " int8_t C[16][16]) {\n" + CPU_MATMUL + SIG + " mm(A, B, C); }\n"
    )
    r = GemminiSimulator().run(cold, KERNEL)
    assert r.correct, r.error
    blocks, insns = r.counters["cpu_basic_blocks"], r.counters["cpu_instructions"]
    assert insns > 4 * blocks and r.latency > honest.latency / 4, r.counters


def test_inputs_are_secret_per_code_and_fixed_for_a_given_code():
    spec = parse_kernel(KERNEL)
    a, b = input_seed(KERNEL, HEAD + CPU_MATMUL, 0), input_seed(KERNEL, HEAD + CPU_MATMUL + "\n", 0)
    assert a != b and a == input_seed(KERNEL, HEAD + CPU_MATMUL, 0)
    from simulators.gemmini.simulator import _inputs

    public = case(spec, 0)[0]["A"]
    assert not np.array_equal(_inputs(spec, a)["A"], public) and not np.array_equal(
        _inputs(spec, a)["A"], _inputs(spec, b)["A"]
    )
    r1, r2 = (GemminiSimulator().run(HEAD + CPU_MATMUL, KERNEL) for _ in range(2))
    assert r1.correct and r1.latency == r2.latency and r1.counters == r2.counters
