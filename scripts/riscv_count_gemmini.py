"""How many RISC-V instructions the CPU side of Autocomp's Exo GEMM files really executes, against the x86-64
instruction count the Gemmini simulator charges (where `riscv_instructions_per_100_x86` and
`cpu_abi_instructions_per_rocc` in simulators/gemmini/config.py come from).

python scripts/riscv_count_gemmini.py      (needs ../shared/third_party and `pip install unicorn==2.1.4`)

Each file is compiled by the pinned clang (zig cc) for rv64imafd at -O2 without unrolling, with the intrinsics
written as on the real gemmini.h (operands packed into two 64-bit words, one custom instruction), except that the
custom instruction is `add x0, rs1, rs2` (same operands, no effect) so an emulator can run it. The function is
run under unicorn and every executed instruction is counted. The x86 count and the command count come from an
ordinary simulator run. Printed: both counts per file, and the ratio a and per-command correction b of
riscv ~= a * (x86 - b * commands), fitted by least squares.
"""

import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from simulators.gemmini import GemminiSimulator, toolchain  # noqa: E402
from simulators.gemmini.calibration import exo_dir, kernel_of  # noqa: E402

# Autocomp's short names as the Exo files use them, expanded the way gemmini.h packs RoCC operands.
HEADER = r"""
#include <stdint.h>
#include <stdbool.h>
#define ROCC(rs1, rs2, funct) { asm volatile("add x0, %0, %1" :: "r"((uint64_t)(rs1)), "r"((uint64_t)(rs2))); }
#define WORD(a, c, r) (((uint64_t)(r) << 48) | ((uint64_t)(c) << 32) | (uint32_t)(a))
#define WEIGHT_STATIONARY 1
#define NO_ACTIVATION 0
#define mvin(d, s, c, r) ROCC(d, WORD(s, c, r), 2)
#define mvin2(d, s, c, r) ROCC(d, WORD(s, c, r), 1)
#define mvin3(d, s, c, r) ROCC(d, WORD(s, c, r), 14)
#define mvout(d, s, c, r) ROCC(d, WORD(s, c, r), 3)
#define preload(b, c, bc, br, cc, cr) ROCC(WORD(b, bc, br), WORD(c, cc, cr), 6)
#define compute_preloaded(a, d, ac, ar, dc, dr) ROCC(WORD(a, ac, ar), WORD(d, dc, dr), 4)
#define config_st(s) ROCC(2, s, 0)
#define config_ex(df, act, st, at, bt) ROCC(((uint64_t)(st) << 16) | ((df) << 2), 0, 0)
#define config_ld(s, sc, bs, id) ROCC(((uint64_t)(bs) << 16) | ((id) << 3) | 1, s, 0)
#define fence() asm volatile("fence")
"""
FLAGS = (
    "-target",
    "riscv64-freestanding-none",
    "-mcpu=generic_rv64+m+a+f+d",
    "-O2",
    "-fno-unroll-loops",
    "-fno-vectorize",
    "-fno-slp-vectorize",
    "-ffreestanding",
    "-nostdlib",
    "-static",
    "-std=gnu11",
    "-w",
    "-Wl,--entry=solution",
)
RET = 0x7F000000  # the return address: emulation stops there


def build(source: str, out: str) -> None:
    with open(out + ".c", "w") as f:
        f.write(HEADER + source)
    r = subprocess.run([str(toolchain.zig()), "cc", *FLAGS, out + ".c", "-o", out], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr)


def map_elf(uc, path: str) -> int:
    """Map the PT_LOAD segments of a static ELF64 into uc; return the entry point."""
    b = open(path, "rb").read()
    entry, phoff = struct.unpack_from("<QQ", b, 24)
    phentsize, phnum = struct.unpack_from("<HH", b, 54)
    for i in range(phnum):
        kind, _, off, vaddr, _, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", b, phoff + i * phentsize)
        if kind != 1:
            continue
        lo, hi = vaddr & ~0xFFF, (vaddr + memsz + 0xFFF) & ~0xFFF
        uc.mem_map(lo, hi - lo)
        uc.mem_write(vaddr, b[off : off + filesz])
    return entry


def riscv_count(path: str) -> int:
    from unicorn import UC_ARCH_RISCV, UC_HOOK_BLOCK, UC_MODE_RISCV64, Uc
    from unicorn.riscv_const import UC_RISCV_REG_A0, UC_RISCV_REG_RA, UC_RISCV_REG_SP

    uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV64)
    entry = map_elf(uc, path)
    uc.mem_map(0x70000000, 0x1000000)  # stack
    uc.mem_map(0x10000000, 0x10000000)  # the three matrices (never read by the CPU)
    uc.mem_map(RET, 0x1000)
    uc.reg_write(UC_RISCV_REG_SP, 0x70FF0000)
    uc.reg_write(UC_RISCV_REG_RA, RET)
    for i in range(3):
        uc.reg_write(UC_RISCV_REG_A0 + i, 0x10000000 + i * 0x2000000)
    n = [0]

    def block(_uc, _addr, size, _data):
        n[0] += size // 4  # no compressed instructions (no C extension)

    uc.hook_add(UC_HOOK_BLOCK, block)
    uc.emu_start(entry, RET)
    return n[0]


def main() -> int:
    try:
        import unicorn  # noqa: F401
    except ImportError:
        print("needs the unicorn emulator: pip install unicorn==2.1.4")
        return 2
    d = exo_dir()
    if d is None:
        print("../shared/third_party/autocomp/gemmini-exo is absent")
        return 2
    sim = GemminiSimulator()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in (0, 2, 3):
            for v in ("baseline", "opt"):
                src = (d / f"sol{p}_exo_{v}.c").read_text()
                build(src, os.path.join(tmp, f"s{p}{v}"))
                rv = riscv_count(os.path.join(tmp, f"s{p}{v}"))
                c = sim.run(src, kernel_of(p), seeds=(0,), timeout=600).counters
                cmds = sum(c[k] for k in ("n_mvin", "n_mvout", "n_preload", "n_compute", "n_config"))
                rows.append((f"sol{p}_exo_{v}", c["cpu_instructions"], cmds, rv))
    # least squares for rv = a*x - a*b*cmds
    sxx = sum(x * x for _, x, _, _ in rows)
    sxc = sum(x * c for _, x, c, _ in rows)
    scc = sum(c * c for _, _, c, _ in rows)
    sxr = sum(x * r for _, x, _, r in rows)
    scr = sum(c * r for _, _, c, r in rows)
    det = sxx * scc - sxc * sxc
    a = (sxr * scc - scr * sxc) / det
    ab = (sxr * sxc - scr * sxx) / det  # coefficient of cmds is -a*b
    b = ab / a
    print(f"{'file':18} {'x86 counted':>12} {'commands':>9} {'RISC-V':>9} {'fit':>9}")
    for name, x, c, r in rows:
        print(f"{name:18} {x:12,} {c:9,} {r:9,} {a * (x - b * c):9,.0f}")
    print(f"riscv ~= {a:.3f} * (x86 - {b:.2f} * commands)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
