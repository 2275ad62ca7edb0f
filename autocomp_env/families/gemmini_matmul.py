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

import re
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.families.base import Family, Transform, register, schedule_comment
from autocomp_env.menus import GEMMINI_GEMM

DIM = 16
SPAD_ROWS = 16384
ACC_ROWS = 1024
HALF_SPAD = SPAD_ROWS // 2
HALF_ACC = ACC_ROWS // 2
WIDTHS = (16, 32, 64)
INNER_ORDERS = ("ijk", "kij", "kji")

_sim = None


def simulator():
    """The shared Gemmini simulator (created on first use: it compiles its runtime)."""
    global _sim
    if _sim is None:
        from simulators.gemmini import GemminiSimulator

        _sim = GemminiSimulator()
    return _sim


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# --- menu items (indices into GEMMINI_GEMM) ---------------------------------------------------
TILING, REORDER, SPLIT, FUSE, SIMPLIFY, REORDER_COMP, UNROLL, DBUF, MORE_SPAD, SPREAD, GUARD_LOADS, HOIST = range(12)
SUBSTITUTE, PIPELINE, MIN_DATA, MIN_OVERHEAD, OTHER = range(12, 17)


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


# --- the emitter ---------------------------------------------------------------------------------
_RULES: tuple[tuple[str, Any], ...] = (  # constant folding for index expressions after a loop is elided
    (r"\b(\d+) \* (\d+)\b", lambda m: str(int(m.group(1)) * int(m.group(2)))),
    (r"\b0 \* \w+\b|\b\w+ \* 0\b(?![x\d])", "0"),
    (r"\((\d+) \+ (\d+)\)", lambda m: str(int(m.group(1)) + int(m.group(2)))),
    (r"\b(\w+) \* 1\b(?![x.\d])", r"\1"),
    (r" \+ 0\b(?![x.\d]| ?[*/%])", ""),
    (r"(?<=[(\[])0 \+ ", ""),
    (r"(?<![\w\]])(?<!if )\((\w+)\)", r"\1"),
    (r"\b(\d+) == (\d+)\b", lambda m: "true" if m.group(1) == m.group(2) else "false"),
    (r"\b(\d+) > (\d+)\b", lambda m: "true" if int(m.group(1)) > int(m.group(2)) else "false"),
    (r"\btrue && | && true\b", ""),
    (r"\(true \? (\w+) : \w+\)", r"\1"),
    (r"\(false \? \w+ : (\w+)\)", r"\1"),
    (r"\btrue \? ([^:;]+) : NULL", r"\1"),
    (r" \| 0\b(?![x\d])", ""),
)


def fold(text: str) -> str:
    """Fold the constant arithmetic a substituted loop index leaves behind (`(0 * 4 + k)` -> `k`)."""
    while True:
        new = text
        for pat, repl in _RULES:
            new = re.sub(pat, repl, new)
        if new == text:
            return text
        text = new


class _Writer:
    """Indented C lines. A loop that runs once is not written: its index becomes a constant in the body."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []  # [depth, text]
        self.depth = 1
        self.stack: list[tuple[str, int, int] | None] = []  # None: a real block; else (var, first row, depth)
        self.subs: dict[str, str] = {}

    def __call__(self, text: str) -> None:
        if self.subs:
            for var, value in self.subs.items():
                text = re.sub(rf"\b{var}\b", value, text)
            text = fold(text)
            if text.startswith("if (true) "):
                text = text[len("if (true) ") :]
            elif text.startswith("if (false) ") and text.endswith(";"):
                return  # a statement that can never run
        self.rows.append([self.depth, text])

    @property
    def lines(self) -> list[str]:
        return ["  " * depth + text for depth, text in self.rows]

    def open(self, text: str = "") -> None:
        self(f"{text} {{" if text else "{")
        if self.rows[-1][1] == "if (true) {":
            self.rows[-1][1] = "{"
        self.stack.append(None)
        self.depth += 1

    def loop(self, var: str, n: int, start: int = 0, step: int = 1) -> None:
        if start < n <= start + step:  # runs once: substitute the index instead
            self.stack.append((var, len(self.rows), self.depth))
            self.subs[var] = str(start)
            return
        inc = f"{var}++" if step == 1 else f"{var} += {step}"
        self.open(f"for (int {var} = {start}; {var} < {n}; {inc})")

    def close(self) -> None:
        top = self.stack.pop()
        if top is None:
            self.depth -= 1
            self("}")
            return
        var, first, depth = top
        del self.subs[var]
        body = self.rows[first:]
        if any(d == depth and re.match(r"(const |int |float |uint32_t )", s) for d, s in body):
            # The body declares names: keep it in its own scope so a sibling block can reuse them.
            for row in body:
                row[0] += 1
            self.rows.insert(first, [depth, "{"])
            self.rows.append([depth, "}"])


def _loop(w: _Writer, var: str, n: int, start: int = 0) -> None:
    w.loop(var, n, start)


def _plus(base: str, expr: str) -> str:
    return base if expr == "0" else f"{base} + {expr}"


def tidy(code: str) -> str:
    """Drop multiplications by one that the templates leave in index expressions: `(io * 1 + i)` -> `(io + i)`."""
    return re.sub(r"\((\w+) \* 1 \+ ", r"(\1 + ", code)


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
    w = _Writer()
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
        _loop(w, var, n)
    c_base = f"acc_base + cbuf * {HALF_ACC}" if s["acc_dbuf"] else "acc_base"
    w(f"const uint32_t c = {c_base};")
    if s["zero_init"]:
        _loop(w, "i", ti)
        _loop(w, "j", tj)
        w(f"mvin3(0, c + (i * {tj} + j) * {DIM}, {DIM}, {DIM});")
        w.close()
        w.close()
    _loop(w, "ko", ko_n)
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
        _loop(w, r, nr)
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
        _loop(w, "i", ti)
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


def _emit_compute(w: _Writer, kernel: Kernel, s: dict[str, Any], a_addr, b_addr) -> None:
    ti, tj, tk = s["ti"], s["tj"], s["tk"]
    n = {"i": ti, "j": tj, "k": tk}

    def acc(k: str) -> str:
        return "ACC" if s["zero_init"] else f"(ko * {tk} + {k} > 0 ? ACC : 0)"

    order = s["inner"]
    if s["reuse"]:
        # kji with i innermost: new weights at i == 0, then reuse them for i = 1 .. ti-1.
        _loop(w, "k", tk)
        _loop(w, "j", tj)
        w(f"preload({b_addr('k', 'j')}, c + j * {DIM} | {acc('k')}, {DIM}, {DIM}, {DIM}, {DIM});")
        w(f"compute_preloaded({a_addr('0', 'k')}, GARBAGE_ADDR, {DIM}, {DIM}, {DIM}, {DIM});")
        if s["fuse_store"]:
            _store_block(w, kernel, s, "0")
        _unrolled(w, "i", ti, s["unroll"], lambda i: _reuse_body(w, kernel, s, a_addr, acc("k"), i), start=1)
        w.close()
        w.close()
        return
    for var in order[:-1]:
        _loop(w, var, n[var])
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


def _reuse_body(w: _Writer, kernel: Kernel, s: dict[str, Any], a_addr, acc: str, i: str) -> None:
    w(f"preload(GARBAGE_ADDR, c + ({i} * {s['tj']} + j) * {DIM} | {acc}, {DIM}, {DIM}, {DIM}, {DIM});")
    w(f"compute_accumulated({a_addr(i, 'k')}, GARBAGE_ADDR, {DIM}, {DIM}, {DIM}, {DIM});")
    if s["fuse_store"]:
        _store_block(w, kernel, s, i)


def _store_block(w: _Writer, kernel: Kernel, s: dict[str, Any], i: str, j: str = "j", k: str = "k") -> None:
    ko_n = blocks(kernel)[2] // s["tk"]
    tj, ti, tk = s["tj"], s["ti"], s["tk"]
    w(
        f"if (ko == {ko_n - 1} && {k} == {tk - 1}) "
        f"mvout(&C[(io * {ti} + {i}) * {DIM}][(jo * {tj} + {j}) * {DIM}], c + ({i} * {tj} + {j}) * {DIM}, {DIM}, {DIM});"
    )


def _unrolled(w: _Writer, var: str, n: int, u: int, body, start: int = 0) -> None:
    if u == 1:
        _loop(w, var, n, start)
        body(var)
        w.close()
        return
    w.loop(var, n, start, u)
    for d in range(u):
        body(var if d == 0 else f"({var} + {d})")
    w.close()


def _emit_hw_loop(w: _Writer, kernel: Kernel, s: dict[str, Any]) -> None:
    K, J = kernel.spec["K"], kernel.spec["J"]
    ib, jb, kb = blocks(kernel)
    ti, tj, tk = s["ti"], s["tj"], s["tk"]
    outer = ("io", ib // ti), ("jo", jb // tj)
    if s["order"] == "ji":
        outer = outer[::-1]
    for var, n in outer:
        _loop(w, var, n)
    ko_n = kb // tk
    _loop(w, "ko", ko_n)
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


# --- transformations ---------------------------------------------------------------------------
def widen(put: Callable[..., None], s: dict[str, Any], kind: str, unit: str) -> None:
    """The "mvin_wide" or "mvout_wide" moves: `put` each width above the current one (`unit` names a column)."""
    key, verb, inst = ("mvin_cols", "load", "mvin") if kind == "mvin_wide" else ("mvout_cols", "store", "mvout")
    for wd in WIDTHS:
        if wd > s[key]:
            put(f"{verb} {wd} {unit} per {inst}", **{key: wd})


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


def candidates(
    kernel: Kernel, s: dict[str, Any], kinds: tuple[str, ...], moves, valid_fn, normalize_fn
) -> list[tuple[dict[str, Any], str]]:
    """Distinct valid schedules one move of `kinds` can reach from `s` (generic over families)."""
    cur = normalize_fn(kernel, s)
    seen: set[str] = set()
    out = []
    for kind in kinds:
        for new, desc in moves(kernel, cur, kind):
            if not valid_fn(kernel, new):
                continue
            new = normalize_fn(kernel, new)
            key = repr(sorted(new.items()))
            if new != cur and key not in seen:
                seen.add(key)
                out.append((new, desc))
    return out


def pick(cands: list[tuple[dict[str, Any], str]], params: dict[str, Any], rng: np.random.Generator) -> Transform | None:
    """One of `cands`: those matching most of the values a plan named, else any, drawn from `rng`."""
    if not cands:
        return None
    wanted = {k: v for k, v in params.items() if k in cands[0][0]}
    if wanted:
        score = [sum(new.get(k) == v for k, v in wanted.items()) for new, _ in cands]
        best = max(score)
        if best > 0:
            cands = [c for c, sc in zip(cands, score, strict=True) if sc == best]
    new, desc = cands[int(rng.integers(len(cands)))]
    return Transform(new, desc)


# --- plans -------------------------------------------------------------------------------------
_ITEM_PATTERNS: tuple[tuple[int, str], ...] = (
    (TILING, r"\btil(e|es|ing|ed)\b|tile sizes?|block sizes?|\btile_?[ijk]\b|\bt[ijk]\s*="),
    (REORDER, r"reorder(ing)? (the )?loops|loop (order|reordering|interchange)|interchange|swap (the )?(outer )?loops"),
    (SPLIT, r"\bsplit"),
    (FUSE, r"\bfus(e|ing|ion)\b"),
    (SIMPLIFY, r"simplif|propagat|constant fold|zero(ing)? (mvin|init)"),
    (
        REORDER_COMP,
        r"reorder(ing)? (the )?(comput|blocks|operations)|(weight|weights) reuse|reuse (the )?weights|compute_accumulated",
    ),
    (UNROLL, r"unroll"),
    (DBUF, r"double.?buffer|ping.?pong|two buffers"),
    (MORE_SPAD, r"more data|larger tiles?|bigger tiles?|increase (data )?reuse|more outer loop"),
    (SPREAD, r"spread|separate banks|bank conflicts?|different banks"),
    (
        GUARD_LOADS,
        r"if statements?|redundant loads|guard|load (it |them )?once|resident|stays? in the scratchpad|keep \w+ in (the )?scratchpad",
    ),
    (
        HOIST,
        r"hoist|out of (the )?loops?|fence (only )?(once )?at the end|remove (the )?(per.tile )?fences?|fewer fences",
    ),
    (
        SUBSTITUTE,
        r"substitut|loop_ws|hardware loop|wider? (mvins?|mvouts?|loads|stores)|\d+.col\w* (per )?(mvin|mvout)"
        r"|faster equivalent|equivalent faster",
    ),
    (PIPELINE, r"pipelin|overlap"),
    (MIN_DATA, r"data movement|fewer loads|reduce (the )?(loads|traffic)"),
    (MIN_OVERHEAD, r"loop overhead|fewer instructions"),
    (OTHER, r"other methods?"),
)


def parse_params(text: str) -> dict[str, Any]:
    """Parameter values a plan names (tile sizes in blocks, widths, unroll factors, ...)."""
    t = text.lower()
    p: dict[str, Any] = {}
    tile_dim = (
        r"\b(?:til\w*|block\w*)(?:\s+sizes?)?(?:\s+(?:of|for|along|in))?\s+(?:the\s+)?(?:dimension\s+)?([ijk])\b"
        r"|\b([ijk])(?:\s+dimension)?(?:'s)?\s+til\w*"
    )
    for m in re.finditer(tile_dim, t):
        rest = t[m.end() : m.end() + 40]
        num = re.search(r"\bto\s+(\d+)", rest) or re.search(r"^\D{0,24}?(\d+)", rest)
        if num:  # "from 1 to 4" means 4; numbers of at least DIM are elements, smaller ones blocks
            n = int(num.group(1))
            p["t" + (m.group(1) or m.group(2))] = n // DIM if n >= DIM and n % DIM == 0 else n
    for m in re.finditer(r"\b(?:tile_?|t)([ijk])\s*[=:]\s*(\d+)", t):
        p["t" + m.group(1)] = int(m.group(2))
    if m := re.search(r"unroll\w*\D{0,24}?(\d+)", t):
        p["unroll"] = int(m.group(1))
    if m := re.search(r"(\d+)[- ]col(umn)?s?\s*(per\s*)?mvin|mvins?\D{0,24}?(\d+)[- ]col", t):
        p["mvin_cols"] = int(m.group(1) or m.group(4))
    if m := re.search(r"(\d+)[- ]col(umn)?s?\s*(per\s*)?mvout|mvouts?\D{0,24}?(\d+)[- ]col", t):
        p["mvout_cols"] = int(m.group(1) or m.group(4))
    if re.search(r"\b(keep|resident|reuse)\b[^.]{0,20}\ba\b|\ba (row )?panel|\ba\b[^.]{0,12}resident", t):
        p["resident"] = "A"
    elif re.search(r"\b(keep|resident|reuse)\b[^.]{0,20}\bb\b|\bb (column )?panel|\bb\b[^.]{0,12}resident", t):
        p["resident"] = "B"
    if re.search(r"\bj(o)? (loop )?outer|\bji\b", t):
        p["order"] = "ji"
    elif re.search(r"\bi(o)? (loop )?outer|\bij\b", t):
        p["order"] = "ij"
    for o in INNER_ORDERS:
        if re.search(rf"\b{o}\b", t):
            p["inner"] = o
    return p


def parse_plan(text: str, patterns=None, params_fn=None) -> list[tuple[int, dict[str, Any]]]:
    """Menu items a plan names (ordered by where they appear), each with the parameters the plan names."""
    t = text.lower()
    hits: list[tuple[int, int]] = []
    for item, pat in patterns or _ITEM_PATTERNS:
        m = re.search(pat, t)
        if m:
            hits.append((m.start(), item))
    params = (params_fn or parse_params)(text)
    return [(item, dict(params)) for _, item in sorted(hits)]


# --- faults ------------------------------------------------------------------------------------
def _faults(code: str) -> list[tuple[str, str]]:
    """Every realistic bug we can plant in `code`: (buggy code, description)."""
    out: list[tuple[str, str]] = []
    move = re.compile(r"\b(mvin2?|mvout)\((&\w+(?:\[[^\]]*\])+), ([^,]+),")
    for m in move.finditer(code):
        buggy = code[: m.end(3)] + " + 1" + code[m.end(3) :]
        out.append((buggy, f"off-by-one local address in {m.group(1)}"))
    for m in re.finditer(r"\b(mvin2?)\(([^;]*), (\d+)\);", code):
        if int(m.group(3)) > 1:
            buggy = code[: m.start(3)] + str(int(m.group(3)) - 1) + code[m.end(3) :]
            out.append((buggy, f"{m.group(1)} moves one row too few"))
    for m in re.finditer(r"\bconfig_ld\((\d+),", code):
        if int(m.group(1)) > DIM:
            buggy = code[: m.start(1)] + str(int(m.group(1)) - DIM) + code[m.end(1) :]
            out.append((buggy, "wrong DRAM row stride in config_ld"))
    for m in re.finditer(r"for \(int (\w+) = (\d+); \1 < (\d+);", code):
        if int(m.group(3)) - int(m.group(2)) >= 2:
            buggy = code[: m.start(3)] + str(int(m.group(3)) - 1) + code[m.end(3) :]
            out.append((buggy, f"loop over {m.group(1)} stops one iteration early"))
    for m in re.finditer(r" \| ACC\b| \? ACC : 0", code):
        repl = "" if m.group(0).startswith(" |") else " ? 0 : 0"
        out.append((code[: m.start()] + repl + code[m.end() :], "drops the accumulate bit: partial sums overwritten"))
    for m in re.finditer(r"\bcompute_preloaded\(", code):
        buggy = code[: m.start()] + "compute_accumulated(" + code[m.end() :]
        out.append((buggy, "compute_accumulated where new weights were preloaded"))
    for m in re.finditer(r"^[ \t]*(?:if \([^\n]*\) )?mvout\([^\n]*\n", code, re.M):
        out.append((code[: m.start()] + code[m.end() :], "a mvout of the result is missing"))
    for m in re.finditer(r"\bconfig_ld\(\d+, (-)1\.0f,", code):
        out.append((code[: m.start(1)] + code[m.end(1) :], "lost the minus sign of a negating mvin scale"))
    for m in re.finditer(r"\bgemmini_loop_ws\((\d+), (\d+), (\d+),", code):
        buggy = code[: m.start(3)] + str(int(m.group(3)) + 1) + code[m.end(3) :]
        out.append((buggy, "wrong K bound passed to gemmini_loop_ws"))
    out.extend(_library_faults(code))
    return out


_LIBRARY_ARGS = {  # argument positions a slip can corrupt: dimensions and row strides
    "tiled_matmul_auto": {0: "I", 1: "J", 2: "K", 7: "A stride", 8: "B stride", 10: "C stride"},
    "tiled_conv_auto": {0: "batch", 1: "input rows", 2: "input columns", 3: "input channels", 4: "output channels"},
}


def _library_faults(code: str) -> list[tuple[str, str]]:
    """Off-by-one arguments in calls of the vendor library."""
    out = []
    for m in re.finditer(r"\b(tiled_matmul_auto|tiled_conv_auto)\(", code):
        spans, depth, start = [], 0, m.end()
        for pos in range(m.end(), len(code)):
            ch = code[pos]
            if ch in "([":
                depth += 1
            elif ch in ")]" and depth:
                depth -= 1
            elif ch in ",)" and depth == 0:
                spans.append((start, pos))
                start = pos + 1
                if ch == ")":
                    break
        for idx, what in _LIBRARY_ARGS[m.group(1)].items():
            if idx < len(spans):
                a, b = spans[idx]
                arg = code[a:b].strip()
                out.append((code[:a] + f" ({arg}) - 1" + code[b:], f"off-by-one {what} passed to {m.group(1)}"))
    return out


def inject_fault(code: str, rng: np.random.Generator) -> tuple[str, str]:
    faults = _faults(code)
    if not faults:
        # Code we cannot parse: drop one statement, the crudest LLM slip.
        lines = code.splitlines(keepends=True)
        stmts = [i for i, ln in enumerate(lines) if ln.rstrip().endswith(");")]
        if not stmts:
            return code + "\n#error truncated output\n", "the answer was cut off"
        i = stmts[int(rng.integers(len(stmts)))]
        return "".join(lines[:i] + lines[i + 1 :]), "a statement is missing"
    buggy, desc = faults[int(rng.integers(len(faults)))]
    return buggy, desc


# --- the family --------------------------------------------------------------------------------
def parse_dims(shape: str, n: int, what: str) -> tuple[int, ...]:
    parts = shape.split("x")
    if len(parts) != n or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"bad {what} shape {shape!r}: expected {n} positive integers joined by 'x'")
    return tuple(int(p) for p in parts)


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


class ScheduleFamily(Family):
    """A family whose code is emitted from a schedule dict. Its schedule space is the functions of the module
    `space`: naive_schedule, valid, normalize, moves, emit (the code writer) and expert_schedule."""

    space: ClassVar[ModuleType]
    item_moves: dict[int, tuple[str, ...]] = {}
    item_patterns: tuple[tuple[int, str], ...] = ()
    choices: dict[str, tuple[Any, ...]] = {}  # the allowed values of enumerated keys

    def gemmini_kernel(self, name: str, spec: dict[str, Any], small: str) -> Kernel:
        """The Kernel record of `name`: MACs and roofline come from the simulator."""
        sim = simulator()
        return Kernel(
            name=name,
            target=self.target,
            family=self.name,
            spec=spec,
            macs=int(sim.macs(name)),
            roofline=float(sim.roofline(name)),
            unit="cycles",
            small=small,
        )

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        """The vendor library in both forms (the software path Autocomp's 5.6x is measured against, and the
        loop FSM) and our expert schedule."""
        from simulators.gemmini import vendor_code

        return {
            "vendor": vendor_code(kernel.name, fsm=False),
            "vendor_fsm": vendor_code(kernel.name, fsm=True),
            "expert": self.emit(kernel, self.space.expert_schedule(kernel)),
        }

    # Hooks: the module functions of the family.
    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return self.space.naive_schedule(kernel)

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        return self.space.valid(kernel, s)

    def normalize(self, kernel: Kernel, s: dict[str, Any]) -> dict[str, Any]:
        return self.space.normalize(kernel, s)

    def moves(self, kernel: Kernel, s: dict[str, Any], kind: str) -> list[tuple[dict[str, Any], str]]:
        return self.space.moves(kernel, s, kind)

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        return self.space.emit(kernel, s)

    def plan_params(self, text: str) -> dict[str, Any]:
        return parse_params(text)

    # Generic machinery.
    def full(self, kernel: Kernel, schedule: dict[str, Any]) -> dict[str, Any] | None:
        """`schedule` completed with the naive values, or None if it is not a legal schedule of this family
        (unknown keys, wrong value types, or values `valid` rejects: e.g. a marker an LLM edited by hand)."""
        naive = self.naive_schedule(kernel)
        if not isinstance(schedule, dict) or not set(schedule) <= set(naive):
            return None
        s = {**naive, **schedule}
        for key, value in s.items():
            ref = naive[key]
            if isinstance(ref, bool) or isinstance(value, bool):
                ok = isinstance(value, bool) and isinstance(ref, bool)
            elif isinstance(ref, int):
                ok = isinstance(value, int) and value >= 0
            else:  # strings and optional strings
                ok = value is None or isinstance(value, str)
            if not ok or (key in self.choices and value not in self.choices[key]):
                return None
        try:
            return s if self.valid(kernel, s) and self.normalize(kernel, s) is not None else None
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None

    def candidates(self, kernel: Kernel, schedule: dict[str, Any], item: int) -> list[tuple[dict[str, Any], str]]:
        s = self.full(kernel, schedule)
        if s is None:
            return []
        kinds = self.item_moves.get(item, ())
        return candidates(kernel, s, kinds, self.moves, self.valid, self.normalize)

    def emit(self, kernel: Kernel, schedule: dict[str, Any]) -> str:
        s = self.full(kernel, schedule)
        if s is None:
            raise ValueError(f"not a valid {self.target}/{self.name} schedule for {kernel.name}: {schedule}")
        return tidy(self.write(kernel, self.normalize(kernel, s)))

    def applicable(self, kernel: Kernel, schedule: dict[str, Any]) -> np.ndarray:
        return np.array([bool(self.candidates(kernel, schedule, i)) for i in range(len(self.menu))])

    def apply(
        self, kernel: Kernel, schedule: dict[str, Any], item: int, params: dict[str, Any], rng: np.random.Generator
    ) -> Transform | None:
        cands = self.candidates(kernel, schedule, item)
        if not cands:
            return None
        cur = self.normalize(kernel, self.full(kernel, schedule))
        # A plan that names several values this item can change (both tile sizes, say) gets all of them at once.
        movable = {k for new, _ in cands for k in new if new[k] != cur[k]}
        wanted = {k: v for k, v in params.items() if k in movable}
        if len(wanted) > 1:
            direct = self.full(kernel, {**cur, **wanted})
            if direct is not None and self.normalize(kernel, direct) != cur:
                text = ", ".join(f"{k} = {v}" for k, v in sorted(wanted.items()))
                return Transform(self.normalize(kernel, direct), f"set {text}")
        return pick(cands, params, rng)

    def parse_plan(self, text: str) -> list[tuple[int, dict[str, Any]]]:
        return parse_plan(text, self.item_patterns, self.plan_params)

    def inject_fault(self, kernel: Kernel, code: str, rng: np.random.Generator) -> tuple[str, str]:
        return inject_fault(code, rng)


class GemminiMatmul(ScheduleFamily):
    space = sys.modules[__name__]
    target = "gemmini"
    name = "matmul"
    menu = GEMMINI_GEMM
    lang = "c"
    item_moves = ITEM_MOVES
    item_patterns = _ITEM_PATTERNS
    choices = {
        "order": ("ij", "ji"),
        "inner": INNER_ORDERS,
        "resident": (None, "A", "B"),
        "fence": ("tile", "end"),
        "mvin_cols": WIDTHS,
        "mvout_cols": WIDTHS,
        "unroll": (1, 2, 4),
    }

    def kernel(self, shape: str) -> Kernel:
        i, k, j = parse_dims(shape, 3, "matmul I x K x J")
        if i % DIM or k % DIM or j % DIM:
            raise ValueError(f"matmul dimensions must be multiples of {DIM}, got {shape!r}")
        name = f"gemmini/matmul-{i}x{k}x{j}"
        small = f"gemmini/matmul-{self.small_shape_of(i, k, j)}"
        return self.gemmini_kernel(name, {"I": i, "K": k, "J": j, "dtype": "int8"}, small)

    @staticmethod
    def small_shape_of(i: int, k: int, j: int) -> str:
        return f"{min(i, 128)}x{min(k, 128)}x{min(j, 128)}"

    def small_shape(self, kernel: Kernel) -> str:
        s = kernel.spec
        return self.small_shape_of(s["I"], s["K"], s["J"])


FAMILY = register(GemminiMatmul())
