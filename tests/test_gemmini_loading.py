"""The candidate as a shared object: what it defines stays its own, and nothing of it runs before the seal."""

from __future__ import annotations

import subprocess

from simulators.gemmini import GemminiSimulator, parse_kernel
from simulators.gemmini.build import build_runtime, harness_binary
from simulators.gemmini.config import DEFAULT
from simulators.gemmini.kernels import case
from simulators.gemmini.simulator import compile_script, harness_exports, harness_main_source

KERNEL = "gemmini/matmul-16x16x16"
SIG = "void solution(int8_t A[16][16], int8_t B[16][16], int8_t C[16][16]) {"
CPU_MATMUL = (
    SIG + "\n  for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) { int s = 0;\n"
    "    for (int k = 0; k < 16; k++) s += A[i][k] * B[k][j];\n"
    "    C[i][j] = s > 127 ? 127 : s < -128 ? -128 : s; }\n}\n"
)


def test_a_function_named_init_is_refused():
    code = '#include <stdio.h>\nvoid _init(void) { puts("before the seal"); }\n' + CPU_MATMUL
    r = GemminiSimulator().run(code, KERNEL)
    assert not r.correct and r.error.type == "sandbox_violation" and "_init" in r.error.message
    assert "before the seal" not in r.stdout


def test_the_shared_object_has_no_load_time_entry_even_without_the_poison(tmp_path):
    # Written straight into solution.c (no prelude, no poison): ld must still not make _init a DT_INIT.
    spec = parse_kernel(KERNEL)
    root = build_runtime(DEFAULT)
    src = (
        "#include <stdint.h>\n#include <stdio.h>\n"
        'void _init(void) { FILE *f = fopen("init_ran", "w"); if (f) fclose(f); }\n'
        'void _fini(void) { FILE *f = fopen("fini_ran", "w"); if (f) fclose(f); }\n' + CPU_MATMUL
    )
    (tmp_path / "solution.c").write_text(src)
    for a in spec.arrays:
        (tmp_path / f"in0_{a.name}.bin").write_bytes(case(spec, 0)[0][a.name].tobytes())
    subprocess.run(["/bin/sh", "-c", compile_script(root)], cwd=tmp_path, check=True)
    harness = harness_binary(root, harness_main_source(spec), harness_exports(spec))
    subprocess.run([str(harness), "1"], cwd=tmp_path, check=True, env={"PATH": "/usr/bin:/bin"})
    assert (tmp_path / "stats0.txt").exists()
    assert not (tmp_path / "init_ran").exists() and not (tmp_path / "fini_ran").exists()


def test_what_the_candidate_defines_does_not_replace_the_harness_functions():
    # A memcpy that zeroes: the harness copies inputs and outputs with memcpy, so if this one replaced libc's
    # for the harness, the result would be wrong.
    bad_memcpy = (
        "#include <stddef.h>\n"
        "void *memcpy(void *d, const void *s, size_t n) { unsigned char *p = d; (void)s;\n"
        "  for (size_t i = 0; i < n; i++) p[i] = 0; return d; }\n"
    )
    r = GemminiSimulator().run(bad_memcpy + CPU_MATMUL, KERNEL)
    assert r.correct, r.error
