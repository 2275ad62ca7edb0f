"""What the Gemmini families share: the 16x16 int8 machine, a C writer that folds loops that run once, the
GEMM menu's plan phrases and parameters, realistic faults, and `GemminiFamily` (baselines: the vendor
library in both forms and the family's expert schedule)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.schedules.space import ScheduleFamily
from autocomp_env.targets.gemmini.menu import (
    DBUF,
    FUSE,
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
from simulators.gemmini.vendor import vendor_code

# The default Gemmini (research/gemmini.md): a 16x16 array, 256 KiB scratchpad and 64 KiB accumulator in rows.
DIM = 16
SPAD_ROWS = 16384
ACC_ROWS = 1024
HALF_SPAD = SPAD_ROWS // 2
HALF_ACC = ACC_ROWS // 2
WIDTHS = (16, 32, 64)  # columns one mvin/mvout moves (up to 4 DIM-wide blocks)
INNER_ORDERS = ("ijk", "kij", "kji")


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


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


class Writer:
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


def loop(w: Writer, var: str, n: int, start: int = 0) -> None:
    w.loop(var, n, start)


def tidy(code: str) -> str:
    """Drop multiplications by one that the templates leave in index expressions: `(io * 1 + i)` -> `(io + i)`."""
    return re.sub(r"\((\w+) \* 1 \+ ", r"(\1 + ", code)


# --- transformations ---------------------------------------------------------------------------
def widen(put: Callable[..., None], s: dict[str, Any], kind: str, unit: str) -> None:
    """The "mvin_wide" or "mvout_wide" moves: `put` each width above the current one (`unit` names a column)."""
    key, verb, inst = ("mvin_cols", "load", "mvin") if kind == "mvin_wide" else ("mvout_cols", "store", "mvout")
    for wd in WIDTHS:
        if wd > s[key]:
            put(f"{verb} {wd} {unit} per {inst}", **{key: wd})


# --- plans -------------------------------------------------------------------------------------
GEMM_PLAN_PATTERNS: tuple[tuple[int, str], ...] = (
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


# --- faults ------------------------------------------------------------------------------------
def faults(code: str) -> list[tuple[str, str]]:
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
    found = faults(code)
    if not found:
        # Code we cannot parse: drop one statement, the crudest LLM slip.
        lines = code.splitlines(keepends=True)
        stmts = [i for i, ln in enumerate(lines) if ln.rstrip().endswith(");")]
        if not stmts:
            return code + "\n#error truncated output\n", "the answer was cut off"
        i = stmts[int(rng.integers(len(stmts)))]
        return "".join(lines[:i] + lines[i + 1 :]), "a statement is missing"
    buggy, desc = found[int(rng.integers(len(found)))]
    return buggy, desc


def plain(parsed: KernelSpec) -> None:
    """ValueError for the simulator's matmul variants (-at, -bt, -bias, -relu): no schedule space has them."""
    flags = [f for f, on in (("at", parsed.a_t), ("bt", parsed.b_t), ("bias", parsed.bias), ("relu", parsed.relu)) if on]
    if flags:
        raise ValueError(f"{parsed.name}: the {parsed.kind} family has no schedule space for -{'/-'.join(flags)}")


class GemminiFamily(ScheduleFamily):
    """A Gemmini family: C code, the GEMM menu's plan parameters, the vendor library as baseline."""

    target = "gemmini"
    lang = "c"

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        """The vendor library in both forms (the software path Autocomp's 5.6x is measured against, and the
        loop FSM) and our expert schedule."""
        return {
            "vendor": vendor_code(kernel.name, fsm=False),
            "vendor_fsm": vendor_code(kernel.name, fsm=True),
            "expert": self.emit(kernel, self.space.expert_schedule(kernel)),
        }

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        return tidy(self.space.emit(kernel, s))

    def plan_params(self, text: str) -> dict[str, Any]:
        return parse_params(text)

    def inject_fault(self, kernel: Kernel, code: str, rng: np.random.Generator) -> tuple[str, str]:
        return inject_fault(code, rng)
