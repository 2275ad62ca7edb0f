"""Gemmini int8 matmul (`gemmini/matmul-{I}x{K}x{J}`): C = sat8(A·B) on the 16x16 weight-stationary array.

The schedule space of the offline code model. A schedule is a flat JSON dict:

| key | values | meaning |
|---|---|---|
| ti, tj, tk | divisors of I/16, J/16, K/16 | tile sizes in DIM blocks |
| order | "ij", "ji" | order of the outer tile loops (k tiles are always inside) |
| inner | "ijk", "kij", "kji" | order of the block loops inside one k tile |
| reuse | bool | keep the weights in the array across i (garbage preload + compute_accumulated); inner "kji" |
| resident | None, "A", "B" | keep the A row panel (order ij) or B column panel (order ji) in the scratchpad across the inner tile loop, loads guarded by `if` |
| dbuf | bool | alternate two scratchpad buffers, so the next loads overlap the current computes |
| acc_dbuf | bool | alternate the two accumulator banks between C tiles, so stores overlap the next tile |
| spread | bool | A in scratchpad banks 0-1 and B in banks 2-3 (no bank conflict), instead of packed together |
| mvin_cols, mvout_cols | 16, 32, 64 | columns per mvin / mvout (wide moves: fewer instructions, full DMA beats) |
| zero_init | bool | zero the accumulator with mvin3(0, ...) instead of overwriting on the first k |
| fence | "tile", "end" | fence after every C tile (naive) or once at the end |
| fuse_store | bool | mvout each C block right after its last compute, inside the compute loop |
| unroll | 1, 2, 4 | unroll factor of the innermost block loop |
| hw_loop | bool | hand each (i, j, k) tile to the `gemmini_loop_ws` hardware loop |

Every schedule that `valid` accepts emits correct code; `normalize` resets knobs that do not matter for the
rest of the schedule, so a transformation "changes" a schedule only when it changes the emitted program.
"""

from __future__ import annotations

import sys
from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import schedule_comment
from autocomp_env.targets.gemmini.common import (
    ACC_ROWS,
    DIM,
    GEMM_PLAN_PATTERNS,
    HALF_ACC,
    HALF_SPAD,
    INNER_ORDERS,
    SPAD_ROWS,
    WIDTHS,
    GemminiFamily,
    Writer,
    divisors,
    loop,
    plain,
    widen,
)
from autocomp_env.targets.gemmini.menu import (
    DBUF,
    FUSE,
    GEMM,
    GUARD_LOADS,
    HOIST,
    MIN_DATA,
    MIN_OVERHEAD,
    MORE_SPAD,
    OTHER,
    PIPELINE,
    REORDER,
    REORDER_COMP,
    SIMPLIFY,
    SPLIT,
    SPREAD,
    SUBSTITUTE,
    TILING,
    UNROLL,
)
from simulators.gemmini.kernels import KernelSpec


# --- schedules ---------------------------------------------------------------------------------
def blocks(kernel: Kernel) -> tuple[int, int, int]:
    s = kernel.spec
    return s["I"] // DIM, s["J"] // DIM, s["K"] // DIM


def naive_schedule(kernel: Kernel) -> dict[str, Any]:
    return {
        "ti": 1,
        "tj": 1,
        "tk": 1,
        "order": "ij",
        "inner": "ijk",
        "reuse": False,
        "resident": None,
        "dbuf": False,
        "acc_dbuf": False,
        "spread": False,
        "mvin_cols": 16,
        "mvout_cols": 16,
        "zero_init": True,
        "fence": "tile",
        "fuse_store": False,
        "unroll": 1,
        "hw_loop": False,
    }


def _a_rows(kernel: Kernel, s: dict[str, Any]) -> int:
    kb = blocks(kernel)[2]
    one = s["ti"] * (kb if s["resident"] == "A" else s["tk"]) * DIM
    return one * (2 if s["dbuf"] else 1)


def _b_rows(kernel: Kernel, s: dict[str, Any]) -> int:
    kb = blocks(kernel)[2]
    one = (kb if s["resident"] == "B" else s["tk"]) * s["tj"] * DIM
    return one * (2 if s["dbuf"] else 1)


def _innermost_trip(s: dict[str, Any]) -> int:
    inner = s["inner"]
    last = inner[-1]
    n = {"i": s["ti"], "j": s["tj"], "k": s["tk"]}[last]
    return n - 1 if (s["reuse"] and last == "i") else n


def valid(kernel: Kernel, s: dict[str, Any]) -> bool:
    """Whether `s` emits a legal program for `kernel` (tiles divide the shape; buffers fit)."""
    ib, jb, kb = blocks(kernel)
    if ib % s["ti"] or jb % s["tj"] or kb % s["tk"]:
        return False
    if s["hw_loop"]:
        # gemmini_loop_ws double-buffers internally: each tile gets half the scratchpad and accumulator.
        return (s["ti"] * s["tk"] + s["tk"] * s["tj"]) * DIM <= HALF_SPAD and s["ti"] * s["tj"] * DIM <= HALF_ACC
    acc = s["ti"] * s["tj"] * DIM
    if acc > (HALF_ACC if s["acc_dbuf"] else ACC_ROWS):
        return False
    a, b = _a_rows(kernel, s), _b_rows(kernel, s)
    if s["spread"]:
        return a <= HALF_SPAD and b <= HALF_SPAD
    return a + b <= SPAD_ROWS


def _fits_width(w: int, *extents: int) -> bool:
    return all(e % w == 0 for e in extents)


def normalize(kernel: Kernel, s: dict[str, Any]) -> dict[str, Any]:
    """Reset knobs that cannot matter given the rest of `s` (so equal programs have equal schedules)."""
    s = dict(s)
    kb = blocks(kernel)[2]
    if s["hw_loop"]:
        # The loop FSM picks its own buffers, loop order, widths and weight reuse.
        for key in ("reuse", "dbuf", "acc_dbuf", "spread", "zero_init", "fuse_store"):
            s[key] = False
        s.update(inner="kji", resident=None, mvin_cols=16, mvout_cols=16, unroll=1)
        return s
    if s["inner"] != "kji" or s["ti"] == 1:
        s["reuse"] = False
    if (s["resident"] == "A" and s["order"] != "ij") or (s["resident"] == "B" and s["order"] != "ji"):
        s["resident"] = None
    if s["resident"] is not None and s["tk"] == kb:
        s["resident"] = None  # the k tile already is the whole panel
    a_ext = s["tk"] * DIM  # A is loaded one k tile at a time, resident or not
    b_ext = s["tj"] * DIM
    while s["mvin_cols"] > DIM and not _fits_width(s["mvin_cols"], a_ext, b_ext):
        s["mvin_cols"] //= 2
    if s["fuse_store"]:
        s["mvout_cols"] = DIM
    while s["mvout_cols"] > DIM and not _fits_width(s["mvout_cols"], s["tj"] * DIM):
        s["mvout_cols"] //= 2
    if _innermost_trip(s) % s["unroll"] or _innermost_trip(s) < s["unroll"]:
        s["unroll"] = 1
    ib, jb, _ = blocks(kernel)
    if s["ti"] == ib and s["tj"] == jb:
        s["acc_dbuf"] = False  # only one C tile: nothing to alternate with
    return s


def _plus(base: str, expr: str) -> str:
    return base if expr == "0" else f"{base} + {expr}"


def describe(s: dict[str, Any]) -> str:
    if s["hw_loop"]:
        return f"{s['ti']}x{s['tj']}x{s['tk']}-block tiles handed to the gemmini_loop_ws hardware loop, fence {'after every tile' if s['fence'] == 'tile' else 'once at the end'}"
    parts = [f"{s['ti']}x{s['tj']}x{s['tk']}-block tiles ({s['order']} outer, {s['inner']} inner)"]
    if s["reuse"]:
        parts.append("weights reused across i")
    if s["resident"]:
        parts.append(f"{s['resident']} panel resident")
    if s["dbuf"]:
        parts.append("double-buffered loads")
    if s["acc_dbuf"]:
        parts.append("alternating accumulator banks")
    if s["spread"]:
        parts.append("A and B in separate banks")
    parts.append(f"{s['mvin_cols']}-column mvins, {s['mvout_cols']}-column mvouts")
    return "; ".join(parts)


def emit(kernel: Kernel, s: dict[str, Any]) -> str:
    I, K, J = kernel.spec["I"], kernel.spec["K"], kernel.spec["J"]  # noqa: E741
    ib, jb, kb = blocks(kernel)
    ti, tj, tk = s["ti"], s["tj"], s["tk"]
    io_n, jo_n, ko_n = ib // ti, jb // tj, kb // tk
    w = Writer()
    head = [
        f"void solution(int8_t A[{I}][{K}], int8_t B[{K}][{J}], int8_t C[{I}][{J}]) {{",
        f"  {schedule_comment(s, 'c')}",
        f"  // {describe(s)}",
    ]
    w("config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);")
    w(f"config_st({J});")
    w(f"config_ld({K}, MVIN_SCALE_IDENTITY, {DIM}, 0);  // A: rows {K} bytes apart")
    w(f"config_ld({J}, MVIN_SCALE_IDENTITY, {DIM}, 1);  // B: rows {J} bytes apart")
    if s["hw_loop"]:
        _emit_hw_loop(w, kernel, s)
        return "\n".join([*head, *w.lines, "}", ""])
    if s["zero_init"]:
        w(f"config_ld(0, MVIN_SCALE_IDENTITY, {DIM}, 2);  // zeros into the accumulator")
    a_one = _a_rows(kernel, s) // (2 if s["dbuf"] else 1)
    b_one = _b_rows(kernel, s) // (2 if s["dbuf"] else 1)
    b_base = HALF_SPAD if s["spread"] else _a_rows(kernel, s)
    w("const uint32_t a_base = 0;")
    w(f"const uint32_t b_base = {b_base};")
    w("const uint32_t acc_base = 0x80000000;")
    w("const uint32_t ACC = 0x40000000;  // accumulate instead of overwrite")
    if s["dbuf"]:  # the operand that is not resident alternates buffers every k step
        w("int buf = 0;")
    if s["acc_dbuf"]:
        w("int cbuf = 0;")

    outer = ("io", io_n), ("jo", jo_n)
    if s["order"] == "ji":
        outer = outer[::-1]
    for var, n in outer:
        loop(w, var, n)
    c_base = f"acc_base + cbuf * {HALF_ACC}" if s["acc_dbuf"] else "acc_base"
    w(f"const uint32_t c = {c_base};")
    if s["zero_init"]:
        loop(w, "i", ti)
        loop(w, "j", tj)
        w(f"mvin3(0, c + (i * {tj} + j) * {DIM}, {DIM}, {DIM});")
        w.close()
        w.close()
    loop(w, "ko", ko_n)
    # Where A and B live for this k tile.
    if s["resident"] == "A":
        abuf = f"(io % 2) * {a_one}" if s["dbuf"] else "0"
        w(f"const uint32_t a = {_plus('a_base', abuf)};  // the A row panel, loaded while jo == 0")
        a_addr = lambda i, k: f"a + ({i} * {kb} + ko * {tk} + {k}) * {DIM}"  # noqa: E731
    else:
        abuf = f"buf * {a_one}" if s["dbuf"] else "0"
        w(f"const uint32_t a = {_plus('a_base', abuf)};")
        a_addr = lambda i, k: f"a + ({i} * {tk} + {k}) * {DIM}"  # noqa: E731
    if s["resident"] == "B":
        bbuf = f"(jo % 2) * {b_one}" if s["dbuf"] else "0"
        w(f"const uint32_t b = {_plus('b_base', bbuf)};  // the B column panel, loaded while io == 0")
        b_addr = lambda k, j: f"b + ((ko * {tk} + {k}) * {tj} + {j}) * {DIM}"  # noqa: E731
    else:
        bbuf = f"buf * {b_one}" if s["dbuf"] else "0"
        w(f"const uint32_t b = {_plus('b_base', bbuf)};")
        b_addr = lambda k, j: f"b + ({k} * {tj} + {j}) * {DIM}"  # noqa: E731
    mw = s["mvin_cols"]
    # Loads of this k tile: A, then B; a resident panel only on the first pass of the loop it is kept across.
    a_src = f"A[(io * {ti} + i) * {DIM}][(ko * {tk} + k) * {DIM}]"
    b_src = f"B[(ko * {tk} + k) * {DIM}][(jo * {tj} + j) * {DIM}]"
    for panel, guard, r, nr, c, nc, inst, src, dst in (
        ("A", "jo", "i", ti, "k", tk, "mvin", a_src, a_addr("i", "k")),
        ("B", "io", "k", tk, "j", tj, "mvin2", b_src, b_addr("k", "j")),
    ):
        if s["resident"] == panel:
            w.open(f"if ({guard} == 0)")
        loop(w, r, nr)
        w.loop(c, nc, 0, mw // DIM)
        w(f"{inst}(&{src}, {dst}, {mw}, {DIM});")
        w.close()
        w.close()
        if s["resident"] == panel:
            w.close()
    _emit_compute(w, kernel, s, a_addr, b_addr)
    if s["dbuf"]:  # the operand that is not resident alternates buffers every k step
        w("buf ^= 1;")
    w.close()  # ko
    if not s["fuse_store"]:
        ow = s["mvout_cols"]
        loop(w, "i", ti)
        w.loop("j", tj, 0, ow // DIM)
        w(f"mvout(&C[(io * {ti} + i) * {DIM}][(jo * {tj} + j) * {DIM}], c + (i * {tj} + j) * {DIM}, {ow}, {DIM});")
        w.close()
        w.close()
    if s["acc_dbuf"]:
        w("cbuf ^= 1;")
    if s["fence"] == "tile":
        w("fence();")
    w.close()
    w.close()
    w("fence();")
    return "\n".join([*head, *w.lines, "}", ""])


def _emit_compute(w: Writer, kernel: Kernel, s: dict[str, Any], a_addr, b_addr) -> None:
    ti, tj, tk = s["ti"], s["tj"], s["tk"]
    n = {"i": ti, "j": tj, "k": tk}

    def acc(k: str) -> str:
        return "ACC" if s["zero_init"] else f"(ko * {tk} + {k} > 0 ? ACC : 0)"

    order = s["inner"]
    if s["reuse"]:
        # kji with i innermost: new weights at i == 0, then reuse them for i = 1 .. ti-1.
        loop(w, "k", tk)
        loop(w, "j", tj)
        w(f"preload({b_addr('k', 'j')}, c + j * {DIM} | {acc('k')}, {DIM}, {DIM}, {DIM}, {DIM});")
        w(f"compute_preloaded({a_addr('0', 'k')}, GARBAGE_ADDR, {DIM}, {DIM}, {DIM}, {DIM});")
        if s["fuse_store"]:
            _store_block(w, kernel, s, "0")
        _unrolled(w, "i", ti, s["unroll"], lambda i: _reuse_body(w, kernel, s, a_addr, acc("k"), i), start=1)
        w.close()
        w.close()
        return
    for var in order[:-1]:
        loop(w, var, n[var])
    last = order[-1]

    def body(v: str) -> None:
        idx = {"i": "i", "j": "j", "k": "k", last: v}
        i, j, k = idx["i"], idx["j"], idx["k"]
        w(f"preload({b_addr(k, j)}, c + ({i} * {tj} + {j}) * {DIM} | {acc(k)}, {DIM}, {DIM}, {DIM}, {DIM});")
        w(f"compute_preloaded({a_addr(i, k)}, GARBAGE_ADDR, {DIM}, {DIM}, {DIM}, {DIM});")
        if s["fuse_store"]:
            _store_block(w, kernel, s, i, j, k)

    _unrolled(w, last, n[last], s["unroll"], body)
    for _ in order[:-1]:
        w.close()


def _reuse_body(w: Writer, kernel: Kernel, s: dict[str, Any], a_addr, acc: str, i: str) -> None:
    w(f"preload(GARBAGE_ADDR, c + ({i} * {s['tj']} + j) * {DIM} | {acc}, {DIM}, {DIM}, {DIM}, {DIM});")
    w(f"compute_accumulated({a_addr(i, 'k')}, GARBAGE_ADDR, {DIM}, {DIM}, {DIM}, {DIM});")
    if s["fuse_store"]:
        _store_block(w, kernel, s, i)


def _store_block(w: Writer, kernel: Kernel, s: dict[str, Any], i: str, j: str = "j", k: str = "k") -> None:
    ko_n = blocks(kernel)[2] // s["tk"]
    tj, ti, tk = s["tj"], s["ti"], s["tk"]
    w(
        f"if (ko == {ko_n - 1} && {k} == {tk - 1}) "
        f"mvout(&C[(io * {ti} + {i}) * {DIM}][(jo * {tj} + {j}) * {DIM}], c + ({i} * {tj} + {j}) * {DIM}, {DIM}, {DIM});"
    )


def _unrolled(w: Writer, var: str, n: int, u: int, body, start: int = 0) -> None:
    if u == 1:
        loop(w, var, n, start)
        body(var)
        w.close()
        return
    w.loop(var, n, start, u)
    for d in range(u):
        body(var if d == 0 else f"({var} + {d})")
    w.close()


def _emit_hw_loop(w: Writer, kernel: Kernel, s: dict[str, Any]) -> None:
    K, J = kernel.spec["K"], kernel.spec["J"]
    ib, jb, kb = blocks(kernel)
    ti, tj, tk = s["ti"], s["tj"], s["tk"]
    outer = ("io", ib // ti), ("jo", jb // tj)
    if s["order"] == "ji":
        outer = outer[::-1]
    for var, n in outer:
        loop(w, var, n)
    ko_n = kb // tk
    loop(w, "ko", ko_n)
    w("// C is stored only by the last k tile; earlier ones leave partial sums in the accumulator.")
    w(f"int8_t *out = ko == {ko_n - 1} ? &C[io * {ti * DIM}][jo * {tj * DIM}] : NULL;")
    w(
        f"gemmini_loop_ws({ti}, {tj}, {tk}, 0, 0, 0, &A[io * {ti * DIM}][ko * {tk * DIM}], "
        f"&B[ko * {tk * DIM}][jo * {tj * DIM}], NULL, out, {K}, {J}, {J}, {J}, "
        f"false, false, false, false, ko > 0, NO_ACTIVATION, 0, 0, false);"
    )
    w.close()
    if s["fence"] == "tile":
        w("fence();")
    w.close()
    w.close()
    w("fence();")


def moves(kernel: Kernel, s: dict[str, Any], kind: str) -> list[tuple[dict[str, Any], str]]:
    """Candidate schedules one step of `kind` away from `s` (not yet validated or normalized)."""
    ib, jb, kb = blocks(kernel)
    out: list[tuple[dict[str, Any], str]] = []

    def put(desc: str, **changes: Any) -> None:
        out.append(({**s, **changes}, desc))

    if kind in ("tile", "tile_up", "tile_k"):
        dims = (("tk", kb),) if kind == "tile_k" else (("ti", ib), ("tj", jb), ("tk", kb))
        for key, n in dims:
            for d in divisors(n):
                if d != s[key] and (kind != "tile_up" or d > s[key]):
                    put(f"tile {key[1].upper()} by {d} blocks ({d * DIM} elements)", **{key: d})
    elif kind == "order":
        put("swap the outer tile loops", order="ji" if s["order"] == "ij" else "ij")
    elif kind == "inner":
        for o in INNER_ORDERS:
            if o != s["inner"]:
                put(f"reorder the block loops to {o}", inner=o)
    elif kind == "reuse":
        put("keep weights in the array across i (garbage preload + compute_accumulated)", inner="kji", reuse=True)
    elif kind == "resident":
        put("load the A row panel once per io and guard the loads with if (jo == 0)", resident="A", order="ij")
        put("load the B column panel once per jo and guard the loads with if (io == 0)", resident="B", order="ji")
    elif kind in ("dbuf", "acc_dbuf", "spread", "fuse_store"):
        text = {
            "dbuf": "double-buffer the A and B tiles in the scratchpad",
            "acc_dbuf": "alternate C tiles between the two accumulator banks",
            "spread": "place A and B in different scratchpad banks",
            "fuse_store": "move each mvout into the compute loop right after the block's last compute",
        }[kind]
        put(text, **{kind: True})
    elif kind in ("mvin_wide", "mvout_wide"):
        widen(put, s, kind, "columns")
    elif kind == "no_zero_init":
        put("drop the zeroing mvins: the first k overwrites the accumulator", zero_init=False)
    elif kind == "fence_end":
        put("fence once at the end instead of after every tile", fence="end")
    elif kind == "unroll":
        for u in (2, 4):
            if u != s["unroll"]:
                put(f"unroll the innermost block loop by {u}", unroll=u)
    elif kind == "hw_loop":
        hw = {**s, "hw_loop": True}
        if valid(kernel, hw):
            put("hand each tile to the gemmini_loop_ws hardware loop", hw_loop=True)
        else:  # the tile is too big for the loop's half-memories: offer the tiles that fit
            for ti in divisors(ib):
                for tj in divisors(jb):
                    for tk in divisors(kb):
                        t = {**hw, "ti": ti, "tj": tj, "tk": tk}
                        if valid(kernel, t):
                            out.append((t, f"gemmini_loop_ws on {ti}x{tj}x{tk}-block tiles"))
    else:
        raise ValueError(f"unknown move {kind!r}")
    return out


ITEM_MOVES: dict[int, tuple[str, ...]] = {
    TILING: ("tile",),
    REORDER: ("order", "inner"),
    SPLIT: ("tile_k",),
    FUSE: ("fuse_store",),
    SIMPLIFY: ("no_zero_init",),
    REORDER_COMP: ("inner", "reuse"),
    UNROLL: ("unroll",),
    DBUF: ("dbuf", "acc_dbuf"),
    MORE_SPAD: ("tile_up", "resident"),
    SPREAD: ("spread", "acc_dbuf"),
    GUARD_LOADS: ("resident",),
    HOIST: ("fence_end", "resident"),
    SUBSTITUTE: ("mvin_wide", "mvout_wide", "hw_loop", "no_zero_init"),
    PIPELINE: ("dbuf", "acc_dbuf", "fuse_store", "fence_end"),
    MIN_DATA: ("tile_up", "resident", "mvin_wide"),
    MIN_OVERHEAD: ("unroll", "mvin_wide", "mvout_wide", "hw_loop"),
}

ALL_MOVES = tuple(dict.fromkeys(k for kinds in ITEM_MOVES.values() for k in kinds))

ITEM_MOVES[OTHER] = ALL_MOVES


def expert_schedule(kernel: Kernel) -> dict[str, Any]:
    """Our hand-tuned schedule: the largest tiles the hardware loop accepts, one fence at the end."""
    ib, jb, kb = blocks(kernel)
    best = None
    for ti in divisors(ib):
        for tj in divisors(jb):
            for tk in divisors(kb):
                s = {**naive_schedule(kernel), "ti": ti, "tj": tj, "tk": tk, "hw_loop": True, "fence": "end"}
                if valid(kernel, s):
                    # Fewest loop calls, then the squarest C tile (most reuse of A and B per k step).
                    key = (ti * tj * tk, ti * tj, -abs(ti - tj))
                    if best is None or key > best[0]:
                        best = (key, s)
    assert best is not None
    return normalize(kernel, best[1])


class GemminiMatmul(GemminiFamily):
    space = sys.modules[__name__]
    name = "matmul"
    menu = GEMM
    flagship = "gemmini-exo:0"
    item_moves = ITEM_MOVES
    item_patterns = GEMM_PLAN_PATTERNS
    choices = {
        "order": ("ij", "ji"),
        "inner": INNER_ORDERS,
        "resident": (None, "A", "B"),
        "fence": ("tile", "end"),
        "mvin_cols": WIDTHS,
        "mvout_cols": WIDTHS,
        "unroll": (1, 2, 4),
    }

    def spec(self, parsed: KernelSpec) -> dict[str, Any]:
        plain(parsed)
        i, k, j = parsed.dims
        if i % DIM or k % DIM or j % DIM:
            raise ValueError(f"matmul dimensions must be multiples of {DIM}, got {i}x{k}x{j}")
        return {"I": i, "K": k, "J": j, "dtype": "int8"}

    def small_name(self, spec: dict[str, Any]) -> str:
        return f"gemmini/matmul-{min(spec['I'], 128)}x{min(spec['K'], 128)}x{min(spec['J'], 128)}"


FAMILY = GemminiMatmul()
