"""Trainium row-wise normalization families: `rmsnorm` and `layernorm` (NKI v1 kernels).

Rows go on partitions, 128 per tile (or 128*G with G rows per partition), columns on the free dim.
Also home of `KnobFamily`, the schedule machinery shared by the Trainium norm, softmax, mamba and conv1d
families: a schedule is a dict of knobs, each knob says which menu items may change it and in which
direction, so `applicable`, `apply` and "try new parameter values"/"other methods" follow from the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.families.base import Family, Transform, register, schedule_comment
from autocomp_env.families.trainium_common import ITEM, make_kernel, simulator  # noqa: F401  (simulator: imported from here)
from autocomp_env.menus import TRAINIUM

TRY_PARAMS = ITEM["try new parameter values"]
OTHER = ITEM["other methods not listed here"]


# ------------------------------------------------------------------------------------------------------
# Knob tables
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Knob:
    """One schedule dimension. `items` maps a menu item to the values it moves the knob toward: "any"
    (every other legal value), "up"/"down" (larger/smaller numbers), or one value / a tuple of values.
    Numeric knobs also answer "try new parameter values"; every knob answers "other methods"."""

    name: str
    label: str
    values: Callable[[Kernel], tuple]
    items: dict[int, Any]
    numeric: bool = False
    span: tuple[int, int] = (1, 1 << 30)  # numbers in a plan that can mean this knob


def _candidates(knob: Knob, kernel: Kernel, current: Any, selector: Any) -> list:
    legal = [v for v in knob.values(kernel) if v != current]
    if selector == "any":
        return legal
    if selector == "up":
        return [v for v in legal if v > current]
    if selector == "down":
        return [v for v in legal if v < current]
    wanted = selector if isinstance(selector, tuple) else (selector,)
    return [v for v in legal if v in wanted]


def _selectors(knob: Knob) -> dict[int, Any]:
    sel = dict(knob.items)
    if knob.numeric:
        sel.setdefault(TRY_PARAMS, "any")
    sel.setdefault(OTHER, "any")
    return sel


# Free-form plan phrases per menu item, most specific first (the first that matches a clause wins).
_PLAN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("use bn_stats/bn_aggr for mean and variance", r"bn_stats|bn_aggr|batch ?norm stat|welford"),
    (
        "use tensor_tensor_scan instead of sequential loops",
        r"tensor_tensor_scan|scan instruction|instead of (a )?sequential loop",
    ),
    (
        "fuse multiply-add with the activation in one activation instruction",
        r"activation.{0,40}(scale|bias)|(scale|bias).{0,40}activation|multiply-add|\bfma\b",
    ),
    (
        "use affine_range instead of sequential_range where there are no loop-carried dependencies",
        r"affine_range|affine range|parallel loop",
    ),
    ("use tensor_scalar broadcast instead of broadcast plus tensor_tensor", r"tensor_scalar|per-partition scalar"),
    ("multi-buffer tiles with modular allocation", r"multi[- ]?buffer|triple[- ]buffer|modular alloc|more buffers"),
    ("double buffering", r"double[- ]?buffer"),
    (
        "make DMA transfers at least 32 KiB",
        r"32 ?ki?b|larger dma|bigger dma|dma (transfer )?size|larger transfers|per dma|rows per partition|more rows per",
    ),
    ("coalesce small result tiles before a store", r"coalesce|batch (the )?stores|fewer stores"),
    (
        "exploit free-dimension flexible indexing for transposes, splits and pooling",
        r"flexible index|pack .*rows|reshape",
    ),
    ("use the Tensor engine for cross-partition reductions and reshapes", r"tensor ?engine|tensore|matmul"),
    ("use lower precision", r"bf16|bfloat16|lower precision|half precision|fp16"),
    ("hoist redundant operations out of loops", r"hoist|out of the loop|loop[- ]invariant"),
    ("keep reused data resident in SBUF", r"resident|keep .{0,40}in sbuf"),
    ("cache reused data in local memory", r"\bcache|reuse"),
    ("eliminate redundant computation", r"redundant|recomput|twice|reciprocal|instead of divid"),
    ("fuse operations", r"\bfus(e|ed|ing|ion)\b|combine|merge|(single|one|same) instruction|in one pass"),
    ("software pipelining", r"pipelin|gpsimd|scalar engine|vector engine|balance|engine"),
    ("overlap data movement and compute", r"overlap|hide .{0,20}(dma|latency|load)"),
    (
        "use free dimensions of at least 128 to amortize instruction overhead",
        r"amortiz|instruction overhead|free dim\w* of at least|larger free",
    ),
    ("loop unrolling", r"unroll"),
    ("loop reordering and restructuring", r"reorder|loop order|interchange|swap .{0,20}loops|restructur"),
    ("loop tiling", r"\btil(e|es|ed|ing)\b|chunk|block"),
    ("reduce data movement", r"data movement|fewer (loads|dma)|reload"),
    ("simplify or remove unnecessary code", r"simplif|unnecessary|clean ?up"),
    ("rewrite the algorithm to reduce total work", r"rewrite|algorithm|total work"),
    ("try new parameter values", r"parameter|tune|different (size|value)"),
    ("other methods not listed here", r"other method"),
)
_PLAN_RES = tuple((ITEM[name], re.compile(pat, re.I)) for name, pat in _PLAN_PATTERNS)


class KnobFamily(Family):
    """A Trainium family whose schedule space is a table of `Knob`s. Subclasses set `name`, `dims` and
    `small_dims`, and implement `check`, `knobs`, `naive_schedule`, `write` (code for a legal schedule),
    `vendor_schedule`/`expert_schedule`/`baselines` and `faults`; `valid` and `implied` when knobs interact.

    Shape errors in `kernel` are ValueErrors; schedules read back from code are made legal by `fit`, so a
    hand-edited or stale marker never crashes `emit`, `applicable` or `apply`."""

    target = "trainium"
    menu = TRAINIUM
    lang = "python"
    dims: tuple[str, ...] = ()
    small_dims: tuple[int, ...] = ()

    # --- kernels -------------------------------------------------------------------------------------
    def check(self, d: dict[str, int]) -> None:
        """Raise ValueError when the shape is outside what this family's code handles."""

    def kernel(self, shape: str) -> Kernel:
        parts = shape.split("x")
        if len(parts) != len(self.dims) or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"bad {self.name} shape {shape!r}: expected {'x'.join(self.dims)} with positive integers")
        d = dict(zip(self.dims, map(int, parts), strict=True))
        self.check(d)
        small = f"trainium/{self.name}-" + "x".join(map(str, self.small_dims))
        return make_kernel(f"trainium/{self.name}-{shape}", self.name, {**d, "dtype": "float32"}, small)

    def small_shape(self, kernel: Kernel) -> str:
        return "x".join(map(str, self.small_dims))

    # --- schedule space ------------------------------------------------------------------------------
    def knobs(self, kernel: Kernel | None) -> tuple[Knob, ...]:
        """The knob table. `kernel` is only read inside `Knob.values`, so `knobs(None)` lists the knobs."""
        raise NotImplementedError

    def valid(self, kernel: Kernel, schedule: dict[str, Any]) -> bool:
        """Cross-knob constraints; single-knob legality is in `Knob.values`."""
        return True

    def fit(self, kernel: Kernel, schedule: dict[str, Any]) -> dict[str, Any]:
        """`schedule` made legal for `kernel`: missing knobs take their naive value, numeric values that are
        not legal here (e.g. a flagship schedule carried to the small variant) the largest legal value below
        them, other unknown values the naive one; unknown keys are dropped."""
        naive = self.naive_schedule(kernel)
        out = {}
        for knob in self.knobs(kernel):
            legal = knob.values(kernel)
            v = schedule.get(knob.name, naive[knob.name])
            if v not in legal:
                num = knob.numeric and isinstance(v, (int, float)) and not isinstance(v, bool)
                below = [x for x in legal if num and x <= v]
                v = max(below) if below else (min(legal) if num else naive[knob.name])
            out[knob.name] = v
        return out if self.valid(kernel, out) else naive

    def emit(self, kernel: Kernel, schedule: dict[str, Any]) -> str:
        return self.write(kernel, self.fit(kernel, schedule))

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        """Readable NKI code for a legal schedule `s` (carrying it in a marker comment)."""
        raise NotImplementedError

    def _moves(self, kernel: Kernel, schedule: dict[str, Any], item: int) -> list[tuple[Knob, list]]:
        moves = []
        for knob in self.knobs(kernel):
            sel = _selectors(knob).get(item)
            if sel is None or knob.name not in schedule:
                continue
            vals = [
                v
                for v in _candidates(knob, kernel, schedule[knob.name], sel)
                if self.valid(kernel, self.implied(kernel, schedule, knob.name, v))
            ]
            if vals:
                moves.append((knob, vals))
        return moves

    def applicable(self, kernel: Kernel, schedule: dict[str, Any]) -> np.ndarray:
        schedule = self.fit(kernel, schedule)
        return np.array([bool(self._moves(kernel, schedule, i)) for i in range(len(self.menu))], dtype=bool)

    def apply(
        self, kernel: Kernel, schedule: dict[str, Any], item: int, params: dict[str, Any], rng: np.random.Generator
    ) -> Transform | None:
        schedule = self.fit(kernel, schedule)
        moves = self._moves(kernel, schedule, item)
        if not moves:
            return None
        named = [(k, v) for k, v in moves if k.name in params and params[k.name] in v]
        if named:
            knob, vals = named[0]
            value = params[knob.name]
        else:
            knob, vals = moves[int(rng.integers(len(moves)))]
            value = vals[int(rng.integers(len(vals)))]
        new = self.implied(kernel, schedule, knob.name, value)
        also = [f"{n} {schedule[n]} -> {new[n]}" for n in new if n != knob.name and new[n] != schedule[n]]
        extra = f" (which needs {', '.join(also)})" if also else ""
        return Transform(new, f"{knob.label}: {schedule[knob.name]} -> {value}{extra}")

    def implied(self, kernel: Kernel, schedule: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
        """The schedule after setting knob `name` to `value`, with the other knobs that this change needs
        adjusted too (e.g. TensorE taps need the input loaded once), so a move never strands the search."""
        return {**schedule, name: value}

    def parse_plan(self, text: str) -> list[tuple[int, dict[str, Any]]]:
        # Per clause, the first matching item that can change something in this family wins; if none can,
        # the first matching item (the code model then reports that it does not apply).
        relevant = {OTHER, TRY_PARAMS} | {i for knob in self.knobs(None) for i in knob.items}
        out: list[tuple[int, dict[str, Any]]] = []
        for clause in re.split(r"[.;,\n]|\band\b|\bthen\b", text):
            hits = [item for item, pat in _PLAN_RES if pat.search(clause)]
            if not hits:
                continue
            item = next((i for i in hits if i in relevant), hits[0])
            nums = [int(n) for n in re.findall(r"\b(\d+)\b", clause)]
            params = {}
            for kn in self.knobs(None):
                if item in _selectors(kn) and kn.name in self.number_params:
                    fits = [n for n in nums if kn.span[0] <= n <= kn.span[1]]
                    if fits:
                        params[kn.name] = fits[0]
            out.append((item, params))
        return out

    # Names of numeric knobs that a number in a plan clause may set (apply keeps it only if legal).
    number_params: tuple[str, ...] = ()

    # --- baselines: each family names its vendor and expert schedules -------------------------------
    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        raise NotImplementedError

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        raise NotImplementedError

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        return {
            "vendor": self.emit(kernel, self.vendor_schedule(kernel)),
            "expert": self.emit(kernel, self.expert_schedule(kernel)),
        }

    # --- faults --------------------------------------------------------------------------------------
    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        """(regex, replacement, description) bugs that break this family's code."""
        return []

    def inject_fault(self, kernel: Kernel, code: str, rng: np.random.Generator) -> tuple[str, str]:
        options = []
        for pat, repl, desc in self.faults(kernel) + _COMMON_FAULTS:
            hits = list(re.finditer(pat, code, re.M))
            options += [(m, repl, desc) for m in hits]
        if not options:
            return code.replace("return ", "return None  # ", 1), "returned nothing instead of the output tensor"
        m, repl, desc = options[int(rng.integers(len(options)))]
        return code[: m.start()] + m.expand(repl) + code[m.end() :], desc


# Bugs any of these kernels can get: a loop that stops one tile early, a store shifted by one row.
_COMMON_FAULTS: list[tuple[str, str, str]] = [
    (r"nl\.affine_range\(([2-9]|\d\d+)\)", r"nl.affine_range(\1 - 1)", "wrong loop bound: last tile skipped"),
    (r"nl\.store\((\w+)\[(\w+) \* 128:", r"nl.store(\1[\2 * 128 + 1:", "off-by-one row offset in the store"),
]


def divisors(n: int, lo: int, hi: int | None = None) -> tuple[int, ...]:
    """Powers-of-two chunk sizes in [lo, hi] that divide n, plus n itself when n <= hi."""
    hi = n if hi is None else hi
    out = [c for c in (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384) if lo <= c <= hi and n % c == 0]
    if n <= hi and n not in out:
        out.append(n)
    return tuple(sorted(out))


def indent(lines: list[str], n: int) -> list[str]:
    return [" " * n + ln if ln else ln for ln in lines]


# ------------------------------------------------------------------------------------------------------
# Shared pieces of the row-wise kernels (rmsnorm, layernorm, softmax): 128 rows per tile on partitions
# ------------------------------------------------------------------------------------------------------
def check_rows(d: dict[str, int], family: str) -> None:
    if d["R"] % 128:
        raise ValueError(f"{family}: R={d['R']} must be a multiple of 128 (one row per partition, 128 per tile)")
    if d["C"] % 128 and d["C"] > 512:
        raise ValueError(f"{family}: C={d['C']} must be a multiple of 128 when larger than 512")


def check_channels(d: dict[str, int], family: str) -> None:
    if d["C"] % 128:
        raise ValueError(f"{family}: C={d['C']} channels must be a multiple of 128 (channels go on partitions)")


def chunk_knob(items: dict[int, Any] | None = None) -> Knob:
    """Free-dim chunk of the row tile that one load / compute / store step handles."""
    return Knob(
        "fchunk",
        "free-dim chunk (columns per load/compute/store step)",
        lambda k: divisors(k.spec["C"], 256),
        items
        or {
            ITEM["loop tiling"]: ANY,
            ITEM["make DMA transfers at least 32 KiB"]: "up",
            ITEM["use free dimensions of at least 128 to amortize instruction overhead"]: "up",
            ITEM["overlap data movement and compute"]: "down",
            ITEM["software pipelining"]: "down",
        },
        numeric=True,
        span=(64, 1 << 20),
    )


def loop_knob() -> Knob:
    return Knob(
        "loop",
        "row-tile loop kind",
        lambda k: ("affine", "sequential"),
        {
            ITEM["use affine_range instead of sequential_range where there are no loop-carried dependencies"]: "affine",
            ITEM["loop reordering and restructuring"]: ANY,
            # tiles allocated in an affine_range body rotate through several buffers
            ITEM["double buffering"]: "affine",
            ITEM["multi-buffer tiles with modular allocation"]: "affine",
        },
    )


def group_knob() -> Knob:
    """Rows per partition in one DMA: G > 1 moves 128*G rows per load/store (partition p holds G adjacent rows)."""
    return Knob(
        "group",
        "rows per partition per DMA",
        lambda k: tuple(
            g for g in (1, 2, 4, 8) if k.spec["R"] % (128 * g) == 0 and (g == 1 or g * k.spec["C"] * 4 <= 32768)
        ),
        {
            ITEM["make DMA transfers at least 32 KiB"]: "up",
            ITEM["coalesce small result tiles before a store"]: "up",
            ITEM["exploit free-dimension flexible indexing for transposes, splits and pooling"]: "up",
            ITEM["reduce data movement"]: "up",
            ITEM["loop tiling"]: ANY,
        },
        numeric=True,
        span=(1, 16),
    )


def row_knobs() -> tuple[Knob, ...]:
    """The knobs every row-wise family ends with: free-dim chunk, rows per partition, loop kind."""
    return chunk_knob(), group_knob(), loop_knob()


def row_schedule(fchunk: int, **knobs: Any) -> dict[str, Any]:
    """A row-wise family's schedule: its own `knobs`, then chunks of `fchunk` columns, one row per partition
    and an affine row loop."""
    return {**knobs, "fchunk": fchunk, "group": 1, "loop": "affine"}


def rows_implied(kernel: Kernel, s: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    s = {**s, name: value}
    if name == "group" and value > 1:
        s["fchunk"] = kernel.spec["C"]
    if name == "fchunk" and value < kernel.spec["C"] and "group" in s:
        s["group"] = 1
    return s


def rows_valid(kernel: Kernel, s: dict[str, Any]) -> bool:
    # grouped rows keep whole rows per instruction (no free-dim chunking of a group)
    return s.get("group", 1) == 1 or s["fchunk"] == kernel.spec["C"]


def group_rows(body: list[str], s: dict[str, Any], R: int, C: int, src: str, dst: str) -> tuple[list[str], list[str]]:
    """Rewrite an unchunked one-tile body (a `X = nl.load(src[rows, :])` line and a
    `nl.store(dst[rows, :], value=Y)` line) to handle G rows per partition: one load and one store of
    [128, G*C] through reshaped HBM views, the body looped over the G row slices. Returns (setup, body)."""
    G = s["group"]
    rows = "i * 128:(i + 1) * 128"
    if G == 1:
        return [], body
    n = R // (128 * G)
    setup = [
        f"# partition p of row tile i holds rows (i * 128 + p) * {G} ... + {G - 1}: one DMA moves {G} rows per partition",
        f"{src}_rows = {src}.reshape(({n}, 128, {G * C}))",
        f"{dst}_rows = {dst}.reshape(({n}, 128, {G * C}))",
    ]
    out = []
    inner = []
    for ln in body:
        if ln.endswith(f" = nl.load({src}[{rows}, :])"):
            var = ln.split(" = ")[0]
            out += [
                f"grp_in = nl.load({src}_rows[i])",
                f"grp_out = nl.ndarray((128, {G * C}), dtype=nl.float32, buffer=nl.sbuf)",
                f"for r in nl.affine_range({G}):",
            ]
            inner.append(f"{var} = grp_in[:, r * {C}:(r + 1) * {C}]")
        elif ln.startswith(f"nl.store({dst}[{rows}, :], value="):
            val = ln.split("value=")[1].rstrip(")")
            inner.append(f"grp_out[:, r * {C}:(r + 1) * {C}] = {val}")
        else:
            inner.append(ln)
    out += indent(inner, 4)
    out.append(f"nl.store({dst}_rows[i], value=grp_out)")
    return setup, out


def hoist_knob(name: str, label: str) -> Knob:
    return Knob(
        name,
        label,
        lambda k: (False, True),
        {
            ITEM["hoist redundant operations out of loops"]: True,
            ITEM["cache reused data in local memory"]: True,
            ITEM["keep reused data resident in SBUF"]: True,
            ITEM["eliminate redundant computation"]: True,
            ITEM["reduce data movement"]: True,
        },
    )


ANY = "any"


class RowFamily(KnobFamily):
    """A row-wise family (`{name}-{R}x{C}`, 128 rows per tile) whose fchunk and group knobs interact as in
    `rows_valid` and `rows_implied`."""

    dims = ("R", "C")
    number_params = ("fchunk", "group")

    def check(self, d: dict[str, int]) -> None:
        check_rows(d, self.name)

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        return rows_valid(kernel, s)

    def implied(self, kernel: Kernel, s: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
        return rows_implied(kernel, s, name, value)


def row_loop(schedule: dict[str, Any], n: int) -> str:
    kind = "nl.affine_range" if schedule["loop"] == "affine" else "nl.sequential_range"
    return f"for i in {kind}({n}):"


def chunk_loop(nch: int) -> str:
    return f"for j in nl.affine_range({nch}):"


def row_kernel(head: list[str], body: list[str], s: dict[str, Any], R: int, C: int, src: str, dst: str) -> str:
    """The kernel's code: `head` (signature and setup), then the row-tile loop around the one-tile `body`
    (grouped by `group_rows`), `return dst` and the schedule marker."""
    setup, body = group_rows(body, s, R, C, src, dst)
    loop = "    " + row_loop(s, R // (128 * s["group"]))
    tail = [f"    return {dst}", "", schedule_comment(s, "python"), ""]
    return "\n".join(head + indent(setup, 4) + [loop] + indent(body, 8) + tail)


# ------------------------------------------------------------------------------------------------------
# RMSNorm
# ------------------------------------------------------------------------------------------------------
class RMSNorm(RowFamily):
    """`trainium/rmsnorm-{R}x{C}`: out = a * rsqrt(mean(a^2, axis=1)) * g (no epsilon)."""

    name = "rmsnorm"
    small_dims = (128, 512)

    def knobs(self, kernel: Kernel) -> tuple[Knob, ...]:
        return (
            hoist_knob("hoist_g", "broadcast gamma once outside the row loop"),
            Knob(
                "sumsq",
                "sum of squares",
                lambda k: ("square_sum", "act_reduce"),
                {ITEM["fuse operations"]: "act_reduce", ITEM["eliminate redundant computation"]: "act_reduce"},
            ),
            Knob(
                "rsqrt",
                "1/rms",
                lambda k: ("divide", "act_scale"),
                {
                    ITEM["fuse multiply-add with the activation in one activation instruction"]: "act_scale",
                    ITEM["simplify or remove unnecessary code"]: "act_scale",
                    ITEM["fuse operations"]: "act_scale",
                },
            ),
            Knob(
                "normalize",
                "scaling by 1/rms and gamma",
                lambda k: ("two_mult", "stt", "act_scale"),
                {
                    ITEM["fuse operations"]: "stt",
                    ITEM["use tensor_scalar broadcast instead of broadcast plus tensor_tensor"]: "stt",
                    ITEM["fuse multiply-add with the activation in one activation instruction"]: "act_scale",
                    ITEM["software pipelining"]: "act_scale",
                },
            ),
            *row_knobs(),
        )

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return row_schedule(kernel.spec["C"], hoist_g=False, sumsq="square_sum", rsqrt="divide", normalize="two_mult")

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        R, C = kernel.spec["R"], kernel.spec["C"]
        fc = s["fchunk"]
        nch = C // fc
        L = [
            "@nki.jit",
            "def solution(a_tensor, g_tensor):",
            f"    # RMSNorm of a [{R}, {C}] f32: out = a * rsqrt(mean(a^2, axis=1)) * g, 128 rows per tile.",
            f"    out_tensor = nl.ndarray(({R}, {C}), dtype=a_tensor.dtype, buffer=nl.shared_hbm)",
            f"    g_row = nl.load(g_tensor.reshape((1, {C})))",
        ]
        if s["hoist_g"]:
            L.append(f"    g_tile = g_row.broadcast_to((128, {C}))  # partition broadcast, once for all rows")
        body = []
        if not s["hoist_g"]:
            body.append(f"g_tile = g_row.broadcast_to((128, {C}))")
        rows = "i * 128:(i + 1) * 128"
        if nch == 1:
            body.append(f"a_tile = nl.load(a_tensor[{rows}, :])")
            body += self._sumsq(s, "a_tile", "ss")
        else:
            body += [
                f"a_tile = nl.ndarray((128, {C}), dtype=nl.float32, buffer=nl.sbuf)",
                f"partial = nl.ndarray((128, {nch}), dtype=nl.float32, buffer=nl.sbuf)",
                f"# load and reduce {nch} chunks of {fc} columns so the reduction starts before the row is in",
                chunk_loop(nch),
                f"    a_tile[:, j * {fc}:(j + 1) * {fc}] = nl.load(a_tensor[{rows}, j * {fc}:(j + 1) * {fc}])",
                *indent(self._sumsq(s, f"a_tile[:, j * {fc}:(j + 1) * {fc}]", "part"), 4),
                "    partial[:, j:j + 1] = part",
                "ss = nl.sum(partial, axis=[1], keepdims=True)",
            ]
        if s["rsqrt"] == "divide":
            body += [f"mean = ss / {C}", "rstd = nl.rsqrt(mean)"]
        else:
            body.append(f"rstd = nisa.activation(op=nl.rsqrt, data=ss, scale={1.0 / C!r})  # rsqrt(ss / C)")
        if nch == 1:
            body += self._normalize(s, "a_tile", "g_tile", "out_tile")
            body.append(f"nl.store(out_tensor[{rows}, :], value=out_tile)")
        else:
            cols = f"j * {fc}:(j + 1) * {fc}"
            body += [
                chunk_loop(nch),
                *indent(self._normalize(s, f"a_tile[:, {cols}]", f"g_tile[:, {cols}]", "out_tile"), 4),
                f"    nl.store(out_tensor[{rows}, {cols}], value=out_tile)",
            ]
        return row_kernel(L, body, s, R, C, "a_tensor", "out_tensor")

    @staticmethod
    def _sumsq(s: dict[str, Any], x: str, out: str) -> list[str]:
        if s["sumsq"] == "square_sum":
            return [f"sq = nl.square({x})", f"{out} = nl.sum(sq, axis=[1], keepdims=True)"]
        return [
            f"{out} = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)",
            f"sq = nisa.activation_reduce(op=nl.square, data={x}, reduce_op=nl.add, reduce_res={out})",
        ]

    @staticmethod
    def _normalize(s: dict[str, Any], x: str, g: str, out: str) -> list[str]:
        if s["normalize"] == "two_mult":
            return [f"{out} = nl.multiply({x}, rstd)", f"{out} = nl.multiply({out}, {g})"]
        if s["normalize"] == "stt":
            return [
                f"{out} = nisa.scalar_tensor_tensor(data={x}, op0=nl.multiply, operand0=rstd, "
                f"op1=nl.multiply, operand1={g})"
            ]
        return [
            f"scaled = nisa.activation(op=nl.copy, data={x}, scale=rstd)  # ScalarE, frees VectorE",
            f"{out} = nl.multiply(scaled, {g})",
        ]

    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {**self.naive_schedule(kernel), "hoist_g": True}

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        C = kernel.spec["C"]
        fchunk = 512 if C % 512 == 0 and C > 512 else C  # loads of 2 KiB per partition overlap the math
        return row_schedule(fchunk, hoist_g=True, sumsq="act_reduce", rsqrt="act_scale", normalize="stt")

    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        return [
            (r"mean = ss / (\d+)", r"mean = ss", "forgot to divide the sum of squares by C"),
            (r"scale=([0-9.e-]+)\)  # rsqrt", r"scale=1.0)  # rsqrt", "dropped the 1/C scale of the rsqrt"),
            (r"nl\.rsqrt\(mean\)", r"nl.sqrt(mean)", "used sqrt instead of rsqrt"),
            (r"operand1=g_tile(\[[^\]]*\])?\)", r"operand1=a_tile\1)", "multiplied by the input instead of gamma"),
            (r"reshape\(\(1, (\d+)\)\)\)", r"reshape((1, \1))[:, ::-1])", "gamma loaded reversed"),
        ]


register(RMSNorm())


# ------------------------------------------------------------------------------------------------------
# LayerNorm
# ------------------------------------------------------------------------------------------------------
class LayerNorm(RowFamily):
    """`trainium/layernorm-{R}x{C}`: out = (x - mean) * rsqrt(var + eps) * gamma + beta over axis 1."""

    name = "layernorm"
    small_dims = (256, 512)

    def knobs(self, kernel: Kernel) -> tuple[Knob, ...]:
        return (
            hoist_knob("hoist_gb", "broadcast gamma and beta once outside the row loop"),
            Knob(
                "stats",
                "mean and variance (two-pass; bn_stats/bn_aggr; row sums of x and x^2 on ScalarE)",
                lambda k: ("mean_var", "bn_stats", "scalar_sums"),
                {
                    ITEM["use bn_stats/bn_aggr for mean and variance"]: "bn_stats",
                    ITEM["rewrite the algorithm to reduce total work"]: ("bn_stats", "scalar_sums"),
                    ITEM["eliminate redundant computation"]: "bn_stats",
                    ITEM["software pipelining"]: "scalar_sums",
                    ITEM["fuse operations"]: "scalar_sums",
                },
            ),
            Knob(
                "apply",
                "normalize, scale and shift",
                lambda k: ("naive", "tensor_scalar", "act_fma", "stt"),
                {
                    ITEM["use tensor_scalar broadcast instead of broadcast plus tensor_tensor"]: "tensor_scalar",
                    ITEM["fuse multiply-add with the activation in one activation instruction"]: "act_fma",
                    ITEM["software pipelining"]: "act_fma",
                    ITEM["fuse operations"]: ("tensor_scalar", "stt"),
                },
            ),
            *row_knobs(),
        )

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return row_schedule(kernel.spec["C"], hoist_gb=False, stats="mean_var", apply="naive")

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        R, C = kernel.spec["R"], kernel.spec["C"]
        fc = s["fchunk"]
        nch = C // fc
        bnw = max(c for c in (128, 256, 512) if C % c == 0 and c <= fc) if C % 128 == 0 else C
        L = [
            "@nki.jit",
            "def solution(input_tensor, epsilon, gamma_vector, beta_vector):",
            f"    # LayerNorm of [{R}, {C}] f32 rows: (x - mean) * rsqrt(var + eps) * gamma + beta, 128 rows per tile.",
            f"    out_tensor = nl.ndarray(({R}, {C}), dtype=input_tensor.dtype, buffer=nl.shared_hbm)",
            f"    gamma_row = nl.load(gamma_vector.reshape((1, {C})))",
            f"    beta_row = nl.load(beta_vector.reshape((1, {C})))",
        ]
        bcast = [f"gamma_tile = gamma_row.broadcast_to((128, {C}))", f"beta_tile = beta_row.broadcast_to((128, {C}))"]
        if s["hoist_gb"]:
            L += indent(bcast, 4)
        body = [] if s["hoist_gb"] else list(bcast)
        rows = "i * 128:(i + 1) * 128"
        bn = s["stats"] == "bn_stats"
        sums = s["stats"] == "scalar_sums"
        if bn:
            body.append(f"stats = nl.ndarray((128, {6 * (C // bnw)}), dtype=nl.float32, buffer=nl.sbuf)")
        if sums and nch > 1:
            body += [
                f"sx_part = nl.ndarray((128, {nch}), dtype=nl.float32, buffer=nl.sbuf)",
                f"ssq_part = nl.ndarray((128, {nch}), dtype=nl.float32, buffer=nl.sbuf)",
            ]
        if nch == 1:
            body.append(f"x_tile = nl.load(input_tensor[{rows}, :])")
            if bn:
                body += [f"for b in nl.affine_range({C // bnw}):", *indent(self._bn("x_tile", "b", bnw), 4)]
            if sums:
                body += self._sums("x_tile", "sx", "ssq")
        else:
            cols = f"j * {fc}:(j + 1) * {fc}"
            body += [
                f"x_tile = nl.ndarray((128, {C}), dtype=nl.float32, buffer=nl.sbuf)",
                chunk_loop(nch),
                f"    x_tile[:, {cols}] = nl.load(input_tensor[{rows}, {cols}])",
            ]
            if bn:
                per = fc // bnw
                body += [
                    f"    for b in nl.affine_range({per}):",
                    *indent(self._bn("x_tile", f"j * {per} + b", bnw), 8),
                ]
            if sums:
                body += indent(self._sums(f"x_tile[:, {cols}]", "sx_j", "ssq_j"), 4)
                body += ["    sx_part[:, j:j + 1] = sx_j", "    ssq_part[:, j:j + 1] = ssq_j"]
                body += [
                    "sx = nl.sum(sx_part, axis=[1], keepdims=True)",
                    "ssq = nl.sum(ssq_part, axis=[1], keepdims=True)",
                ]
        if bn:
            body += ["mv = nisa.bn_aggr(stats)  # [128, 2]: mean, variance", "mean = mv[:, 0:1]", "var = mv[:, 1:2]"]
        elif sums:
            body += [
                "# var = E[x^2] - mean^2, from two ScalarE passes (VectorE is the busy engine here)",
                f"mean = nl.multiply(sx, {1.0 / C!r})",
                f"var = nl.subtract(nl.multiply(ssq, {1.0 / C!r}), nl.multiply(mean, mean))",
            ]
        else:
            body += [
                "mean = nl.mean(x_tile, axis=[1], keepdims=True)",
                "shifted = nl.subtract(x_tile, mean)",
                "var = nl.mean(nl.square(shifted), axis=[1], keepdims=True)",
            ]
        body.append("rstd = nl.rsqrt(var + epsilon)")
        if s["apply"] == "act_fma":
            body.append(
                "nbias = nisa.tensor_scalar(data=mean, op0=nl.multiply, operand0=-1.0, op1=nl.multiply, operand1=rstd)"
            )
        reuse = s["stats"] == "mean_var" and nch == 1
        if nch == 1:
            body += self._apply(s, "x_tile", "gamma_tile", "beta_tile", reuse)
            body.append(f"nl.store(out_tensor[{rows}, :], value=y)")
        else:
            cols = f"j * {fc}:(j + 1) * {fc}"
            body += [
                chunk_loop(nch),
                *indent(
                    self._apply(s, f"x_tile[:, {cols}]", f"gamma_tile[:, {cols}]", f"beta_tile[:, {cols}]", False), 4
                ),
                f"    nl.store(out_tensor[{rows}, {cols}], value=y)",
            ]
        return row_kernel(L, body, s, R, C, "input_tensor", "out_tensor")

    @staticmethod
    def _sums(x: str, sx: str, ssq: str) -> list[str]:
        return [
            f"{sx} = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)",
            f"{ssq} = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)",
            f"xc = nisa.activation_reduce(op=nl.copy, data={x}, reduce_op=nl.add, reduce_res={sx})  # row sums",
            f"xsq = nisa.activation_reduce(op=nl.square, data={x}, reduce_op=nl.add, reduce_res={ssq})",
        ]

    @staticmethod
    def _bn(x: str, k: str, w: int) -> list[str]:
        return [f"stats[:, ({k}) * 6:({k} + 1) * 6] = nisa.bn_stats({x}[:, ({k}) * {w}:({k} + 1) * {w}])"]

    @staticmethod
    def _apply(s: dict[str, Any], x: str, g: str, b: str, reuse_shifted: bool) -> list[str]:
        mode = s["apply"]
        if mode == "naive":
            first = [] if reuse_shifted else [f"shifted = nl.subtract({x}, mean)"]
            return [*first, "y = nl.multiply(shifted, rstd)", f"y = nl.multiply(y, {g})", f"y = nl.add(y, {b})"]
        if mode == "tensor_scalar":
            return [
                f"y = nisa.tensor_scalar(data={x}, op0=nl.subtract, operand0=mean, op1=nl.multiply, operand1=rstd)",
                f"y = nl.multiply(y, {g})",
                f"y = nl.add(y, {b})",
            ]
        if mode == "act_fma":
            return [
                f"y = nisa.activation(op=nl.copy, data={x}, scale=rstd, bias=nbias)  # ScalarE: (x - mean) * rstd",
                f"y = nl.multiply(y, {g})",
                f"y = nl.add(y, {b})",
            ]
        return [
            f"t = nisa.scalar_tensor_tensor(data={x}, op0=nl.subtract, operand0=mean, op1=nl.multiply, operand1={g})",
            f"y = nisa.scalar_tensor_tensor(data=t, op0=nl.multiply, operand0=rstd, op1=nl.add, operand1={b})",
        ]

    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {**self.naive_schedule(kernel), "hoist_gb": True}

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        # whole rows: at 8192 columns chunking only adds instructions
        return row_schedule(kernel.spec["C"], hoist_gb=True, stats="bn_stats", apply="stt")

    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        return [
            # (dropping epsilon is not a fault here: with unit-variance rows it changes the output by ~5e-6)
            (r"nl\.rsqrt\(var \+ epsilon\)", r"nl.rsqrt(mean + epsilon)", "took rsqrt of the mean, not the variance"),
            (r"var = nl\.mean\(nl\.square", r"var = nl.sum(nl.square", "summed instead of averaged the squares"),
            (r"nl\.rsqrt\(var \+ epsilon\)", r"nl.sqrt(var + epsilon)", "used sqrt instead of rsqrt"),
            (
                r"mean = mv\[:, 0:1\]\n(\s+)var = mv\[:, 1:2\]",
                r"mean = mv[:, 1:2]\n\1var = mv[:, 0:1]",
                "swapped mean and variance",
            ),
            (r"y = nl\.add\(y, (beta_tile[^)]*)\)", r"y = nl.subtract(y, \1)", "subtracted beta instead of adding it"),
            (r"op1=nl\.add, operand1=", r"op1=nl.subtract, operand1=", "subtracted beta instead of adding it"),
            (r"nl\.subtract\(x_tile, mean\)", r"nl.subtract(x_tile, rstd)", "centered by rstd instead of the mean"),
            (
                r"op0=nl\.subtract, operand0=mean",
                r"op0=nl.add, operand0=mean",
                "added the mean instead of subtracting it",
            ),
        ]


register(LayerNorm())
