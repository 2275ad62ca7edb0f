"""What the Trainium families share: tile constants, plan reading and fault injection, and the Trainium
flavours of the two schedule engines (`TrainiumMovesFamily`, `TrainiumKnobFamily`)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from autocomp_env.schedules.knobs import KnobFamily
from autocomp_env.schedules.moves import MovesFamily
from autocomp_env.targets.trainium.menu import ITEM, MENU
from simulators.trainium.kernels import KernelSpec

P = 128  # partitions; also the stationary free size and the contraction tile

SBUF_BYTES = 176 * 1024  # usable SBUF bytes per partition (192 KiB minus 16 KiB reserved)


def divisors_pow2(n: int, limit: int) -> list[int]:
    """Powers of two that divide n, up to limit."""
    out, d = [], 1
    while d <= min(n, limit):
        if n % d == 0:
            out.append(d)
        d *= 2
    return out


# --- free-form plans of the moves families ----------------------------------------------------------------------
# (regex, menu item). Generous synonyms; the first match position decides the order of items in a plan.
SYNONYMS: list[tuple[str, str]] = [
    (
        r"reduce (the )?data movement|fewer (hbm )?(loads|transfers)|less (hbm )?traffic|minimi[sz]e data movement",
        "reduce data movement",
    ),
    (r"overlap|hide (the )?(dma|load|memory) latency", "overlap data movement and compute"),
    (r"\bcache\b|reuse", "cache reused data in local memory"),
    (r"\btil(e|ing)\b|block size|tiles_in_block|\bblock (m|n|k)\b|\bblocking\b", "loop tiling"),
    (
        r"reorder|interchange|swap (the )?loops|loop order|batch(ed)? (the )?transposes|transposes first|split the \w+ loop",
        "loop reordering and restructuring",
    ),
    (r"unroll|static_range", "loop unrolling"),
    (r"\bfus(e|ion|ing)\b|merge", "fuse operations"),
    (r"lower precision|bf16|bfloat16|half precision", "use lower precision"),
    (r"double[- ]buffer", "double buffering"),
    (r"software pipelin|pipelin", "software pipelining"),
    (r"\bhoist|once outside|outside the (\w+ )?loop|out of the (\w+ )?loop", "hoist redundant operations out of loops"),
    (r"redundant (computation|work)|recompute|recomputation", "eliminate redundant computation"),
    (r"simplif|remove unnecessary|dead code", "simplify or remove unnecessary code"),
    (r"parameter|retune|tune\b", "try new parameter values"),
    (
        r"rewrite the algorithm|reduce (the )?total work|normali[sz]e (at the end|late|after|the output)",
        "rewrite the algorithm to reduce total work",
    ),
    (r"contraction (axis|dim)", "map the contraction axis to the partition dimension"),
    (
        r"affine_range|sequential_range",
        "use affine_range instead of sequential_range where there are no loop-carried dependencies",
    ),
    (r"psum accumul|accumulat\w* .{0,40}\bin psum|keep .* in psum", "accumulate partial matmuls in PSUM"),
    (r"nc_matmul|nisa\.nc_matmul", "use nc_matmul with pre-transposed inputs"),
    (
        r"activation instruction|fuse .*(exp|activation)|fold .{0,40}into .{0,20}(exp|activation)|bias=",
        "fuse multiply-add with the activation in one activation instruction",
    ),
    (r"stationary", "make the matrix with the large free axis the stationary operand"),
    (r"32 ?kib|larger dma|bigger dma|dma (transfer )?size|coarser loads", "make DMA transfers at least 32 KiB"),
    (
        r"load_transpose2d|nc_transpose|dma transpose",
        "replace load_transpose2d with load plus nc_transpose when memory-bound",
    ),
    (r"resident|keep .* in sbuf|stay in sbuf", "keep reused data resident in SBUF"),
    (r"multi-?buffer|more buffers|triple buffer", "multi-buffer tiles with modular allocation"),
    (
        r"free dim(ension)?s? of at least|wider tiles|amortize",
        "use free dimensions of at least 128 to amortize instruction overhead",
    ),
    (r"coalesce|one store|single store|batch(ed)? stores?", "coalesce small result tiles before a store"),
    (r"scalar engine|vector engine|gpsimd|engine", "other methods not listed here"),
]

_SYN = [(re.compile(rx, re.I), ITEM[name]) for rx, name in SYNONYMS]

_AXIS = {"i": "m", "j": "n", "m": "m", "n": "n", "k": "k", "q": "q", "s": "q"}


def parse_numbers(text: str) -> dict[str, int]:
    """Axis sizes a plan names: 'tile J by 64', 'block m = 16', 'TILES_IN_BLOCK_K=8', 'tile_n 256',
    'block the K dimension by 8 tiles'."""
    out: dict[str, int] = {}
    pat = re.compile(
        r"(tiles_in_block_|block(?:[_ ]size)?[_ ]?|tile(?:[_ ]size)?[_ ]?)(?:in |of |along |the )?"
        r"([ijmnkqs])\b(?: dimension| dim| axis| loop)?\s*(?:by|to|=|of|:|as)?\s*(\d+)",
        re.I,
    )
    for m in pat.finditer(text):
        kind = "block" if m.group(1).lower().startswith(("block", "tiles_in")) else "tile"
        out[f"{kind}_{_AXIS[m.group(2).lower()]}"] = int(m.group(3))
    return out


def parse_plan_items(text: str, allowed: set[int]) -> list[tuple[int, dict[str, Any]]]:
    """Menu items named in `text` (only those in `allowed`), in order of appearance, with named sizes."""
    hits: dict[int, int] = {}
    for rx, item in _SYN:
        if item not in allowed:
            continue
        m = rx.search(text)
        if m and (item not in hits or m.start() < hits[item]):
            hits[item] = m.start()
    # A bare number next to an axis ("tile J by 64") is tiling even without the word "tiling".
    params = parse_numbers(text)
    if params and ITEM["loop tiling"] in allowed and ITEM["loop tiling"] not in hits:
        hits[ITEM["loop tiling"]] = 10**9
    items = sorted(hits, key=lambda i: hits[i])
    return [(i, dict(params) if i in (ITEM["loop tiling"], ITEM["try new parameter values"]) else {}) for i in items]


def inject_from(code: str, faults: list[tuple[str, str, str]], rng: np.random.Generator) -> tuple[str, str]:
    """Apply one of `faults` = [(regex, replacement, description)] that matches `code` (chosen by rng)."""
    body = code
    options = [(rx, rep, desc) for rx, rep, desc in faults if re.search(rx, body)]
    if not options:
        # Last resort: drop the final store, so the output stays unwritten.
        lines = body.splitlines()
        idx = [i for i, line in enumerate(lines) if "nl.store(" in line]
        if idx:
            i = idx[-1]
            lines[i] = re.sub(r"nl\.store\(", "pass  # nl.store(", lines[i], count=1)
            return "\n".join(lines) + "\n", "dropped the final store"
        if re.search(r"^\s+return \w+", body, re.M):
            return re.sub(r"^(\s+)return \w+", r"\1return None", body, count=1, flags=re.M), "returned nothing"
        return body + "\nraise RuntimeError('broken')\n", "broken code"
    rx, rep, desc = options[int(rng.integers(len(options)))]
    matches = list(re.finditer(rx, body))
    m = matches[int(rng.integers(len(matches)))]
    new = body[: m.start()] + m.expand(rep) + body[m.end() :]
    return new + ("\n" if not new.endswith("\n") else ""), desc


class TrainiumMovesFamily(MovesFamily):
    """A Trainium family of the moves engine (gemm, attention, sdattention)."""

    target = "trainium"
    menu = MENU
    lang = "python"


# Free-form plan phrases per menu item for the knob families, most specific first (the first that matches a
# clause wins).
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


# Bugs any of these kernels can get: a loop that stops one tile early, a store shifted by one row.
_COMMON_FAULTS: list[tuple[str, str, str]] = [
    (r"nl\.affine_range\(([2-9]|\d\d+)\)", r"nl.affine_range(\1 - 1)", "wrong loop bound: last tile skipped"),
    (r"nl\.store\((\w+)\[(\w+) \* 128:", r"nl.store(\1[\2 * 128 + 1:", "off-by-one row offset in the store"),
]


class TrainiumKnobFamily(KnobFamily):
    """A Trainium family of the knob engine. Subclasses set `name` and `small_dims` (the small training
    variant's shape) and may `check` the shape (ValueError when the family's code cannot handle it)."""

    target = "trainium"
    menu = MENU
    lang = "python"
    plan_patterns = _PLAN_RES
    common_faults = _COMMON_FAULTS
    try_params_item = ITEM["try new parameter values"]
    other_item = ITEM["other methods not listed here"]
    small_dims: tuple[int, ...] = ()

    def check(self, d: dict[str, int]) -> None:
        """Raise ValueError when the shape is outside what this family's code handles."""

    def spec(self, parsed: KernelSpec) -> dict[str, Any]:
        d = parsed.d
        self.check(d)
        return {**d, "dtype": "float32"}

    def small_name(self, spec: dict[str, Any]) -> str:
        return f"trainium/{self.name}-" + "x".join(map(str, self.small_dims))


def divisors(n: int, lo: int, hi: int | None = None) -> tuple[int, ...]:
    """Powers-of-two chunk sizes in [lo, hi] that divide n, plus n itself when n <= hi."""
    hi = n if hi is None else hi
    out = [c for c in (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384) if lo <= c <= hi and n % c == 0]
    if n <= hi and n not in out:
        out.append(n)
    return tuple(sorted(out))


def indent(lines: list[str], n: int) -> list[str]:
    return [" " * n + ln if ln else ln for ln in lines]


def check_channels(d: dict[str, int], family: str) -> None:
    if d["C"] % 128:
        raise ValueError(f"{family}: C={d['C']} channels must be a multiple of 128 (channels go on partitions)")


ANY = "any"
