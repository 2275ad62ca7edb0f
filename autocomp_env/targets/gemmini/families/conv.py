"""Gemmini int8 conv (`gemmini/conv-{N}x{P}x{Q}x{C}x{K}`): 3x3, stride 1, input pre-padded by 1, int32 bias.

output[n][p][q][k] = sat8(bias[k] + sum_{kr,kc,c} inp[n][p+kr][q+kc][c] * weights[kr][kc][c][k]), computed as
an implicit GEMM on the weight-stationary array: a block of up to 16 output pixels along q is the A operand
(one pixel per scratchpad row, 16 input channels per row), a 16x16 slice of the weights is B.

Schedule keys (JSON):

| key | values | meaning |
|---|---|---|
| tp, tq, tk | divisors of P, ceil(Q/16), K/16 | tile: output rows, 16-pixel blocks along q, output-channel blocks |
| order | "pk", "kp" | pixel tiles outside the output-channel tiles, or the reverse |
| window | bool | load the input window of a tile once and slide over it for the 9 taps (no im2col reloads) |
| in_resident | bool | with window and order pk: keep the window across output-channel tiles (`if (ko == 0)` loads) |
| w_resident | bool | with order kp: keep all weights of an output-channel tile across pixel tiles (guarded loads) |
| reuse | bool | keep the weights in the array across pixel blocks (garbage preload + compute_accumulated) |
| dbuf, acc_dbuf, spread | bool | double-buffered scratchpad loads, alternating accumulator banks, inputs/weights in separate banks |
| mvin_cols, mvout_cols | 16, 32, 64 | channels per window/weight mvin; output channels per mvout |
| fence | "tile", "end" | fence after every tile or once at the end |
| unroll | 1, 3 | unroll the kc tap loop |
| flat | bool | one loop over a tile's pixel blocks with precomputed row counts and the first block peeled (fewer branches on the CPU) |
"""

from __future__ import annotations

import re
import sys
from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import schedule_comment
from autocomp_env.targets.gemmini.common import (
    DIM,
    GEMM_PLAN_PATTERNS,
    HALF_ACC,
    HALF_SPAD,
    WIDTHS,
    GemminiFamily,
    Writer,
    divisors,
    loop,
    parse_params,
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


def dims(kernel: Kernel) -> tuple[int, int, int, int, int]:
    s = kernel.spec
    return s["N"], s["P"], s["Q"], s["C"], s["K"]


def qblocks(kernel: Kernel) -> int:
    return -(-kernel.spec["Q"] // DIM)


def naive_schedule(kernel: Kernel) -> dict[str, Any]:
    return {
        "tp": 1,
        "tq": 1,
        "tk": 1,
        "order": "pk",
        "window": False,
        "in_resident": False,
        "w_resident": False,
        "reuse": False,
        "dbuf": False,
        "acc_dbuf": False,
        "spread": False,
        "mvin_cols": 16,
        "mvout_cols": 16,
        "fence": "tile",
        "unroll": 1,
        "flat": False,
    }


def _width(s: dict[str, Any]) -> int:
    """Scratchpad rows of one (input row, channel block) strip of the window: the tile's pixels plus the halo."""
    return s["tq"] * DIM + 2


def _in_rows(kernel: Kernel, s: dict[str, Any]) -> int:
    cb = kernel.spec["C"] // DIM
    one = (s["tp"] + 2) * cb * _width(s) if s["window"] else s["tp"] * s["tq"] * DIM
    return one * (2 if s["dbuf"] else 1)


def _w_rows(kernel: Kernel, s: dict[str, Any]) -> int:
    cb = kernel.spec["C"] // DIM
    one = (9 * cb if s["w_resident"] else 1) * s["tk"] * DIM
    return one * (2 if s["dbuf"] else 1)


def valid(kernel: Kernel, s: dict[str, Any]) -> bool:
    _, p, _, _, k = dims(kernel)
    if p % s["tp"] or qblocks(kernel) % s["tq"] or (k // DIM) % s["tk"]:
        return False
    if s["tp"] * s["tq"] * s["tk"] * DIM > (HALF_ACC if s["acc_dbuf"] else 2 * HALF_ACC):
        return False
    a, w = _in_rows(kernel, s), _w_rows(kernel, s)
    return (a <= HALF_SPAD and w <= HALF_SPAD) if s["spread"] else a + w <= 2 * HALF_SPAD


def normalize(kernel: Kernel, s: dict[str, Any]) -> dict[str, Any]:
    s = dict(s)
    n, p, _, c, k = dims(kernel)
    if not s["window"] or s["order"] != "pk" or s["tk"] == k // DIM:
        s["in_resident"] = False
    single_pixel_tile = n == 1 and s["tp"] == p and s["tq"] == qblocks(kernel)
    if s["order"] != "kp" or single_pixel_tile:
        s["w_resident"] = False
    if s["tp"] * s["tq"] == 1:
        s["reuse"] = False
    if not s["window"]:
        s["mvin_cols"] = min(s["mvin_cols"], max(w for w in WIDTHS if (s["tk"] * DIM) % w == 0))
    while s["mvin_cols"] > DIM and (c % s["mvin_cols"] or (s["tk"] * DIM) % s["mvin_cols"]):
        s["mvin_cols"] //= 2
    while s["mvout_cols"] > DIM and (s["tk"] * DIM) % s["mvout_cols"]:
        s["mvout_cols"] //= 2
    tiles = n * (p // s["tp"]) * (qblocks(kernel) // s["tq"]) * (k // DIM // s["tk"])
    if tiles == 1:
        s["acc_dbuf"] = False
    return s


def describe(s: dict[str, Any]) -> str:
    parts = [f"{s['tp']} rows x {s['tq']} pixel blocks x {s['tk']} channel blocks per tile ({s['order']} order)"]
    for key, text in (
        ("window", "input window loaded once per tile"),
        ("in_resident", "window kept across channel tiles"),
        ("w_resident", "weights kept across pixel tiles"),
        ("reuse", "weights reused across pixel blocks"),
        ("dbuf", "double-buffered loads"),
        ("acc_dbuf", "alternating accumulator banks"),
        ("spread", "inputs and weights in separate banks"),
    ):
        if s[key]:
            parts.append(text)
    parts.append(f"{s['mvin_cols']}-column mvins, {s['mvout_cols']}-column mvouts")
    return "; ".join(parts)


def emit(kernel: Kernel, s: dict[str, Any]) -> str:
    n_, p_, q_, c_, k_ = dims(kernel)
    cb_n, kb_n = c_ // DIM, k_ // DIM
    tp, tq, tk = s["tp"], s["tq"], s["tk"]
    po_n, qo_n, ko_n = p_ // tp, qblocks(kernel) // tq, kb_n // tk
    wd = _width(s)
    w = Writer()
    head = [
        f"void solution(int8_t inp[{n_}][{p_ + 2}][{q_ + 2}][{c_}], int8_t weights[3][3][{c_}][{k_}], "
        f"int32_t bias[1][{k_}], int8_t output[{n_}][{p_}][{q_}][{k_}]) {{",
        f"  {schedule_comment(s, 'c')}",
        f"  // {describe(s)}",
    ]
    w("config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);")
    w(f"config_st({k_});  // output pixels are {k_} bytes apart")
    w(f"config_ld({c_}, MVIN_SCALE_IDENTITY, {wd if s['window'] else DIM}, 0);  // input pixels are {c_} bytes apart")
    w(f"config_ld({k_}, MVIN_SCALE_IDENTITY, {DIM}, 1);  // weight rows are {k_} bytes apart")
    w(f"config_ld(0, MVIN_SCALE_IDENTITY, {DIM}, 2);  // stride 0: one bias row repeated down the accumulator")
    in_one = _in_rows(kernel, s) // (2 if s["dbuf"] else 1)
    w_one = _w_rows(kernel, s) // (2 if s["dbuf"] else 1)
    w_base = HALF_SPAD if s["spread"] else _in_rows(kernel, s)
    w("const uint32_t in_base = 0;")
    w(f"const uint32_t w_base = {w_base};")
    w("const uint32_t acc_base = 0x80000000;")
    w("const uint32_t ACC = 0x40000000;")
    if s["dbuf"]:
        w("int buf = 0;  // weight buffer (and input buffer without a window)")
        if s["window"]:
            w("int tbuf = 0;  // window buffer, alternating per pixel tile")
    if s["acc_dbuf"]:
        w("int cbuf = 0;")
    pix = [("n", n_), ("po", po_n), ("qo", qo_n)]
    loops = [*pix, ("ko", ko_n)] if s["order"] == "pk" else [("ko", ko_n), *pix]
    for var, cnt in loops:
        loop(w, var, cnt)
    w(f"const uint32_t c = acc_base{f' + cbuf * {HALF_ACC}' if s['acc_dbuf'] else ''};")
    w(f"const int q0 = qo * {tq * DIM};  // first output pixel of the tile along q")
    if s["flat"] and q_ % DIM:
        w(f"int rows_q[{tq}];  // pixels in each block of the tile (the last block of a row is short)")
        loop(w, "qb", tq)
        w(f"rows_q[qb] = {q_} - (q0 + qb * {DIM}) < {DIM} ? {q_} - (q0 + qb * {DIM}) : {DIM};")
        w.close()
    # Bias: overwrite the accumulator with the bias row, so every compute can accumulate.
    loop(w, "pr", tp)
    loop(w, "qb", tq)
    w(f"const int rows = {q_} - (q0 + qb * {DIM}) < {DIM} ? {q_} - (q0 + qb * {DIM}) : {DIM};")
    loop(w, "kb", tk)
    w(f"mvin3(&bias[0][(ko * {tk} + kb) * {DIM}], c + ((pr * {tq} + qb) * {tk} + kb) * {DIM}, {DIM}, rows);")
    w.close()
    w.close()
    w.close()
    mw = s["mvin_cols"]
    if s["window"]:
        tb = "tbuf" if s["dbuf"] else "0"
        w(
            f"const uint32_t win = in_base + {tb} * {in_one};  // {tp + 2} input rows x {cb_n} channel blocks x {wd} pixels"
        )
        if s["in_resident"]:
            w.open("if (ko == 0)")
        w(f"const int wcols = ({q_} - q0 < {tq * DIM} ? {q_} - q0 : {tq * DIM}) + 2;")
        loop(w, "r", tp + 2)
        w.loop("cb", cb_n, 0, mw // DIM)
        w.open(f"for (int x = 0; x < wcols; x += {DIM})")
        w(
            f"mvin(&inp[n][po * {tp} + r][q0 + x][cb * {DIM}], win + (r * {cb_n} + cb) * {wd} + x, {mw}, "
            f"wcols - x < {DIM} ? wcols - x : {DIM});"
        )
        w.close()
        w.close()
        w.close()
        if s["in_resident"]:
            w.close()
    # The reduction over the 9 taps and the input-channel blocks.
    loop(w, "kr", 3)
    kc_loop_unrolled = s["unroll"] == 3
    if not kc_loop_unrolled:
        loop(w, "kc", 3)
    loop(w, "cb", cb_n)
    kcs = ("0", "1", "2") if kc_loop_unrolled else ("kc",)
    for kc in kcs:
        if kc_loop_unrolled:  # each unrolled tap in its own scope: they declare the same names
            w.open()
        _emit_tap(w, kernel, s, kc, in_one, w_one)
        if kc_loop_unrolled:
            w.close()
    w.close()  # cb
    if not kc_loop_unrolled:
        w.close()
    w.close()  # kr
    # Store the tile.
    ow = s["mvout_cols"]
    loop(w, "pr", tp)
    loop(w, "qb", tq)
    w(f"const int rows = {q_} - (q0 + qb * {DIM}) < {DIM} ? {q_} - (q0 + qb * {DIM}) : {DIM};")
    w.loop("kb", tk, 0, ow // DIM)
    w(
        f"mvout(&output[n][po * {tp} + pr][q0 + qb * {DIM}][(ko * {tk} + kb) * {DIM}], "
        f"c + ((pr * {tq} + qb) * {tk} + kb) * {DIM}, {ow}, rows);"
    )
    w.close()
    w.close()
    w.close()
    if s["acc_dbuf"]:
        w("cbuf ^= 1;")
    if s["window"] and s["dbuf"] and not s["in_resident"]:
        w("tbuf ^= 1;")
    if s["fence"] == "tile":
        w("fence();")
    w.close()  # innermost tile loop
    if s["window"] and s["dbuf"] and s["in_resident"]:
        w("tbuf ^= 1;  // the next pixel tile's window goes to the other buffer")
    for _ in loops[:-1]:
        w.close()
    w("fence();")
    return "\n".join([*head, *w.lines, "}", ""])


def _emit_tap(w: Writer, kernel: Kernel, s: dict[str, Any], kc: str, in_one: int, w_one: int) -> None:
    """Loads (if needed) and computes for one (kr, kc, cb) step of the reduction."""
    q_ = kernel.spec["Q"]
    cb_n = kernel.spec["C"] // DIM
    tp, tq, tk = s["tp"], s["tq"], s["tk"]
    wd = _width(s)
    mw = s["mvin_cols"]
    if s["w_resident"]:
        wb = f"(ko % 2) * {w_one}" if s["dbuf"] else "0"
        w(f"const uint32_t wt = w_base + {wb} + ((kr * 3 + {kc}) * {cb_n} + cb) * {tk * DIM};")
        w.open("if (n == 0 && po == 0 && qo == 0)")
    else:
        wb = f"buf * {w_one}" if s["dbuf"] else "0"
        w(f"const uint32_t wt = w_base + {wb};" if wb != "0" else "const uint32_t wt = w_base;")
    wmw = min(mw, tk * DIM)
    w.loop("kb", tk, 0, wmw // DIM)
    w(f"mvin2(&weights[kr][{kc}][cb * {DIM}][(ko * {tk} + kb) * {DIM}], wt + kb * {DIM}, {wmw}, {DIM});")
    w.close()
    if s["w_resident"]:
        w.close()
    if not s["window"]:
        ab = f"buf * {in_one}" if s["dbuf"] else "0"
        w(f"const uint32_t a = in_base{f' + {ab}' if ab != '0' else ''};")
        loop(w, "pr", tp)
        loop(w, "qb", tq)
        w(f"const int rows = {q_} - (q0 + qb * {DIM}) < {DIM} ? {q_} - (q0 + qb * {DIM}) : {DIM};")
        w(
            f"mvin(&inp[n][po * {tp} + pr + kr][q0 + qb * {DIM} + {kc}][cb * {DIM}], "
            f"a + (pr * {tq} + qb) * {DIM}, {DIM}, rows);"
        )
        w.close()
        w.close()
        a_addr = f"a + (pr * {tq} + qb) * {DIM}"
    else:
        a_addr = f"win + ((pr + kr) * {cb_n} + cb) * {wd} + qb * {DIM} + {kc}"
    c_addr = f"c + ((pr * {tq} + qb) * {tk} + kb) * {DIM} | ACC"
    loop(w, "kb", tk)
    if s["flat"]:
        # One loop over the tile's pixel blocks, rows from the per-tile table, the first block peeled.
        rows = "rows_q[qb]" if q_ % DIM else str(DIM)
        first = 0
        if s["reuse"]:
            w.open()
            w("const int pr = 0, qb = 0;")
            w(f"preload(wt + kb * {DIM}, {c_addr}, {DIM}, {DIM}, {DIM}, {rows});")
            w(f"compute_preloaded({a_addr}, GARBAGE_ADDR, {DIM}, {rows}, {DIM}, {rows});")
            w.close()
            first = 1
        if tp * tq > first:
            _unrolled_blocks(w, s, first, tp * tq, tq)
            if s["reuse"]:
                w(f"preload(GARBAGE_ADDR, {c_addr}, {DIM}, {DIM}, {DIM}, {rows});")
                w(f"compute_accumulated({a_addr}, GARBAGE_ADDR, {DIM}, {rows}, {DIM}, {rows});")
            else:
                w(f"preload(wt + kb * {DIM}, {c_addr}, {DIM}, {DIM}, {DIM}, {rows});")
                w(f"compute_preloaded({a_addr}, GARBAGE_ADDR, {DIM}, {rows}, {DIM}, {rows});")
            w.close()
        w.close()
    else:
        loop(w, "pr", tp)
        loop(w, "qb", tq)
        w(f"const int rows = {q_} - (q0 + qb * {DIM}) < {DIM} ? {q_} - (q0 + qb * {DIM}) : {DIM};")
        if s["reuse"]:
            w.open("if (pr == 0 && qb == 0)")
            w(f"preload(wt + kb * {DIM}, {c_addr}, {DIM}, {DIM}, {DIM}, rows);")
            w(f"compute_preloaded({a_addr}, GARBAGE_ADDR, {DIM}, rows, {DIM}, rows);")
            w.close()
            w.open("else")
            w(f"preload(GARBAGE_ADDR, {c_addr}, {DIM}, {DIM}, {DIM}, rows);")
            w(f"compute_accumulated({a_addr}, GARBAGE_ADDR, {DIM}, rows, {DIM}, rows);")
            w.close()
        else:
            w(f"preload(wt + kb * {DIM}, {c_addr}, {DIM}, {DIM}, {DIM}, rows);")
            w(f"compute_preloaded({a_addr}, GARBAGE_ADDR, {DIM}, rows, {DIM}, rows);")
        w.close()
        w.close()
        w.close()
    if s["dbuf"] and not s["w_resident"] or s["dbuf"] and not s["window"]:
        w("buf ^= 1;")


def _unrolled_blocks(w: Writer, s: dict[str, Any], first: int, n: int, tq: int) -> None:
    """Open the flat loop over pixel blocks b = first .. n-1 (pr = b / tq, qb = b % tq)."""
    w.open(f"for (int b = {first}; b < {n}; b++)")
    w(f"const int pr = b / {tq}, qb = b % {tq};")


def moves(kernel: Kernel, s: dict[str, Any], kind: str) -> list[tuple[dict[str, Any], str]]:
    _, p, _, _, k = dims(kernel)
    out: list[tuple[dict[str, Any], str]] = []

    def put(desc: str, **changes: Any) -> None:
        out.append(({**s, **changes}, desc))

    if kind in ("tile", "tile_up", "tile_q"):
        dims_ = (
            (("tq", qblocks(kernel)),) if kind == "tile_q" else (("tp", p), ("tq", qblocks(kernel)), ("tk", k // DIM))
        )
        for key, cnt in dims_:
            for d in divisors(cnt):
                if d != s[key] and (kind != "tile_up" or d > s[key]):
                    put(f"tile {key[1:]} by {d}", **{key: d})
    elif kind == "order":
        put("swap pixel and channel tile loops", order="kp" if s["order"] == "pk" else "pk")
    elif kind == "window":
        put("load each tile's input window once and slide over it for the 9 taps", window=True)
    elif kind == "in_resident":
        put(
            "keep the input window across output-channel tiles, guarded by if (ko == 0)",
            window=True,
            order="pk",
            in_resident=True,
        )
    elif kind == "w_resident":
        put("keep the weights of an output-channel tile across pixel tiles, guarded by if", order="kp", w_resident=True)
    elif kind in ("reuse", "dbuf", "acc_dbuf", "spread"):
        put(f"turn on {kind}", **{kind: True})
    elif kind in ("mvin_wide", "mvout_wide"):
        widen(put, s, kind, "channels")
    elif kind == "fence_end":
        put("fence once at the end instead of after every tile", fence="end")
    elif kind == "unroll":
        put("unroll the kc tap loop", unroll=3)
    elif kind == "flat":
        if not s["flat"]:
            put("flatten the pixel-block loops, peel the first block and precompute the row counts", flat=True)
    else:
        raise ValueError(f"unknown move {kind!r}")
    return out


ITEM_MOVES: dict[int, tuple[str, ...]] = {
    TILING: ("tile",),
    REORDER: ("order",),
    SIMPLIFY: ("flat",),
    SPLIT: ("tile_q",),
    FUSE: ("window",),  # fuse the nine per-tap input loads into one window load
    REORDER_COMP: ("reuse",),
    UNROLL: ("unroll",),
    DBUF: ("dbuf", "acc_dbuf"),
    MORE_SPAD: ("tile_up", "window", "in_resident", "w_resident"),
    SPREAD: ("spread", "acc_dbuf"),
    GUARD_LOADS: ("in_resident", "w_resident"),
    HOIST: ("fence_end", "w_resident", "in_resident"),
    SUBSTITUTE: ("mvin_wide", "mvout_wide"),
    PIPELINE: ("dbuf", "acc_dbuf", "fence_end"),
    MIN_DATA: ("window", "in_resident", "w_resident", "tile_up"),
    MIN_OVERHEAD: ("unroll", "flat", "mvin_wide", "mvout_wide"),
}
ITEM_MOVES[OTHER] = tuple(dict.fromkeys(k for kinds in ITEM_MOVES.values() for k in kinds))


def plan_params(text: str) -> dict[str, Any]:
    p = parse_params(text)
    out: dict[str, Any] = {key: p[key] for key in ("mvin_cols", "mvout_cols") if key in p}
    t = text.lower()
    for key, pat in (("tp", r"rows?"), ("tq", r"(?:pixel|q)\w*"), ("tk", r"(?:output.)?channels?|k\b")):
        m = re.search(rf"\b(?:til\w*|block\w*)\s+(?:the\s+)?{pat}\D{{0,20}}?(\d+)", t)
        if m:
            out[key] = int(m.group(1))
    if "window" in t or "sliding" in t or "im2col" in t:
        out["window"] = True
    return out


class GemminiConv(GemminiFamily):
    space = sys.modules[__name__]
    name = "conv"
    menu = GEMM
    flagship = "gemmini-conv:0"
    item_moves = ITEM_MOVES
    item_patterns = GEMM_PLAN_PATTERNS
    choices = {
        "order": ("pk", "kp"),
        "fence": ("tile", "end"),
        "mvin_cols": WIDTHS,
        "mvout_cols": WIDTHS,
        "unroll": (1, 3),
    }

    def spec(self, parsed: KernelSpec) -> dict[str, Any]:
        n, p, q, c, k = parsed.dims
        if c % DIM or k % DIM:
            raise ValueError(f"conv channel counts C and K must be multiples of {DIM}, got {n}x{p}x{q}x{c}x{k}")
        return {"N": n, "P": p, "Q": q, "C": c, "K": k, "kernel": 3, "stride": 1, "padding": 1, "dtype": "int8"}

    def small_name(self, spec: dict[str, Any]) -> str:
        p, q, c, k = spec["P"], spec["Q"], spec["C"], spec["K"]
        return f"gemmini/conv-1x{min(p, 8)}x{min(q, 8)}x{min(c, 32)}x{min(k, 32)}"

    def plan_params(self, text: str) -> dict[str, Any]:
        return plan_params(text)


def expert_schedule(kernel: Kernel) -> dict[str, Any]:
    """Hand-tuned: a sliding input window kept across channel tiles, weight reuse, double buffering."""
    _, p, _, _, k = dims(kernel)
    base = {
        **naive_schedule(kernel),
        "window": True,
        "in_resident": True,
        "reuse": True,
        "dbuf": True,
        "acc_dbuf": True,
        "spread": True,
        "mvin_cols": 64,
        "mvout_cols": 64,
        "fence": "end",
        "flat": True,
    }
    best = None
    for tp in divisors(p):
        for tq in divisors(qblocks(kernel)):
            for tk in divisors(k // DIM):
                s = normalize(kernel, {**base, "tp": tp, "tq": tq, "tk": tk})
                if valid(kernel, s):
                    key = (tp * tq * tk, tp * tq)
                    if best is None or key > best[0]:
                        best = (key, s)
    if best is None:
        return naive_schedule(kernel)
    return best[1]


FAMILY = GemminiConv()
