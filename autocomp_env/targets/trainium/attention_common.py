"""What the Trainium attention families share (attention, sdattention): the knob machinery, the code
writer of the query loop, the softmax moves and faults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import schedule_comment
from autocomp_env.targets.trainium.common import P, TrainiumMovesFamily, inject_from, parse_plan_items
from autocomp_env.targets.trainium.menu import ITEM, MENU
from simulators.trainium.kernels import KernelSpec

OTHER_ITEM = ITEM["other methods not listed here"]


class AttentionFamily(TrainiumMovesFamily):
    """Shared machinery: knobs with ordered values, menu items that move knobs, random 'other methods'."""

    # menu item name -> [(knob, from value or None for any, to value, description)]
    MOVES: dict[str, list[tuple[str, Any, Any, str]]] = {}
    KNOBS: dict[str, list[Any]] = {}  # knob -> its values, the naive one first (kchunk, unroll: see knob_values)
    DIMS: tuple[str, str]  # the order of D and S in the kernel name
    SUFFIX: str | None  # dtype suffix of the kernel name
    DTYPE: str  # dtype of q, k, v and out
    FAULTS: list[tuple[str, str, str]] = []  # (regex, replacement, description) bugs of the emitted code

    def spec(self, parsed: KernelSpec) -> dict[str, Any]:
        dims = parsed.d
        if dims["D"] > P:
            raise ValueError(f"{self.name} head dim D={dims['D']} exceeds {P} partitions")
        if dims["S"] % P:
            raise ValueError(f"{self.name} S={dims['S']} must be a multiple of {P}")
        return {**dims, "dtype": self.DTYPE}

    def small_name(self, spec: dict[str, Any]) -> str:
        return f"trainium/{self.name}-{self._shape(dict(spec, S=min(spec['S'], 512)))}"

    def _shape(self, dims: dict[str, int]) -> str:
        return "x".join(str(dims[d]) for d in self.DIMS) + (f"-{self.SUFFIX}" if self.SUFFIX else "")

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        """Every knob at its first value; key chunks as large as S allows."""
        own = {k: v[0] for k, v in self.KNOBS.items() if k not in BOTH_KNOBS}
        return {**own, "kchunk": kchunks(kernel.spec["S"])[-1], **{k: v[0] for k, v in BOTH_KNOBS.items()}}

    def knob_values(self, kernel: Kernel, knob: str) -> list[Any]:
        if knob == "kchunk":
            return kchunks(kernel.spec["S"])
        if knob == "unroll":  # the unrolled tiles must divide the query tiles
            return [u for u in (1, 2, 4) if (kernel.spec["S"] // P) % u == 0]
        return self.KNOBS[knob]

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        if s.get("tgroup", 1) > 1 and (s["pv"] != "batched" or (kernel.spec["S"] // P) % s["tgroup"]):
            return False
        return all(s[k] in self.knob_values(kernel, k) for k in s)

    def _moves(self, kernel: Kernel, s: dict[str, Any], item: int, params: dict[str, Any]) -> list[tuple[dict, str]]:
        if not 0 <= item < len(MENU):
            return []
        s = self.complete(kernel, s)
        name = MENU[item]
        out: list[tuple[dict, str]] = []

        def add(desc: str, **kw: Any) -> None:
            t = dict(s)
            t.update(kw)
            if t != s and self.valid(kernel, t) and all(t != o for o, _ in out):
                out.append((t, desc))

        for knob, frm, to, desc in self.MOVES.get(name, []):
            if frm is None or s[knob] == frm:
                add(desc, **{knob: to})
        if name in (
            "loop tiling",
            "try new parameter values",
            "use free dimensions of at least 128 to amortize instruction overhead",
        ):
            want = params.get("tile_k") or params.get("tile_n") or params.get("block_k")
            for c in self.knob_values(kernel, "kchunk"):
                if want and c != want:
                    continue
                if name.startswith("use free") and c <= s["kchunk"]:
                    continue
                add(f"key chunk of the score matmuls: {s['kchunk']} -> {c}", kchunk=c)
        if name == "other methods not listed here" or name == "try new parameter values":
            for knob in ("evict", "tevict"):
                if knob in s:
                    for v in self.knob_values(kernel, knob):
                        add(f"{knob}: move the PSUM copies to the {v} engine", **{knob: v})
        if name == "other methods not listed here":
            for i in range(len(MENU)):
                if i != item and MENU[i] in self.MOVES:
                    out.extend(m for m in self._moves(kernel, s, i, {}) if all(m[0] != o for o, _ in out))
        return out

    def fit(self, kernel: Kernel, schedule: dict[str, Any]) -> dict[str, Any]:
        """`schedule` adapted to another shape (key chunk, unroll and transpose groups clamped to what S divides)."""
        s = dict(self.naive_schedule(kernel), **schedule)
        for knob in ("kchunk", "unroll"):
            vals = self.knob_values(kernel, knob)
            if s[knob] not in vals:
                s[knob] = max([v for v in vals if v <= s[knob]] or vals[:1])
        if not self.valid(kernel, s):
            s["tgroup"] = 1
        return s

    def emit(self, kernel: Kernel, schedule: dict[str, Any]) -> str:
        s = self.complete(kernel, schedule)
        L = [schedule_comment(s, "python"), "@nki.jit"]
        unrolled(L.append, self.write(s, L.append), s["unroll"])
        L.append("    return out")
        return "\n".join(L) + "\n"

    def write(self, s: dict[str, Any], w: Callable[[str], None]) -> list[str]:
        """Write the signature and setup of `solution` for schedule `s` with `w`; return the query-loop body:
        its stages separated by STAGE, `$` where the names of an unrolled query tile take their suffix."""
        raise NotImplementedError

    def inject_fault(self, kernel: Kernel, code: str, rng: np.random.Generator) -> tuple[str, str]:
        return inject_from(code, self.FAULTS, rng)

    def parse_plan(self, text: str) -> list[tuple[int, dict[str, Any]]]:
        allowed = set(self.MOVES) | {"loop tiling", "try new parameter values", item_name(OTHER_ITEM)}
        allowed.add("use free dimensions of at least 128 to amortize instruction overhead")
        return parse_plan_items(text, {ITEM[n] for n in allowed})


STAGE = "<stage>"  # separates the stages of the query-loop body (scores, softmax, P@V)


def unrolled(w, body: list[str], unroll: int) -> None:
    """Write the query-loop body for `unroll` query tiles, stage by stage (all tiles' scores, then all softmaxes,
    then all P@V), so the in-order engines can work on one tile while another waits. `$` marks the name suffix."""
    stages: list[list[str]] = [[]]
    for line in body:
        if line == STAGE:
            stages.append([])
        else:
            stages[-1].append(line)
    for stage in stages:
        for u in range(unroll):
            sfx = f"_{u}" if unroll > 1 else ""
            for line in stage:
                w("        " + line.replace("$", sfx).replace("UNROLL + U", f"UNROLL + {u}"))


def constants(w, s: dict[str, Any], q_note: str) -> None:
    """The tile-size constants at the top of `solution`."""
    w(f"    Q_TILE = 128  # {q_note}")
    w(f"    K_CHUNK = {s['kchunk']}  # keys per score matmul (moving free size)")
    w("    KEY_TILE = 128  # keys per P@V matmul (contraction on partitions)")
    if s["tgroup"] > 1:
        w(f"    TGROUP = {s['tgroup']}  # transposes per PSUM bank ({s['tgroup']} x 128 fp32 = 2 KiB)")
    if s["unroll"] > 1:
        w(
            f"    UNROLL = {s['unroll']}  # query tiles in flight per iteration, so one's softmax overlaps another's matmuls"
        )


def query_loop(w, unroll: int) -> list[str]:
    """Write the query loop header; return its body so far (the row offset `r0$` of the query tile)."""
    w(
        "    for i in nl.affine_range(S // (Q_TILE * UNROLL)):"
        if unroll > 1
        else "    for i in nl.affine_range(S // Q_TILE):"
    )
    return ["r0$ = (i * UNROLL + U) * Q_TILE" if unroll > 1 else "r0 = i * Q_TILE"]


def score_chunks(b, s: dict[str, Any], stationary: str, moving: str, row_dtype: str | None) -> str:
    """The score matmuls, one PSUM chunk of K_CHUNK keys at a time, copied into `row$` in `row_dtype` (None: the
    caller copies them). Returns the tensor whose row max is the softmax max."""
    if s["max"] == "chunk":
        b("cmax$ = nl.ndarray((nl.par_dim(Q_TILE), S // K_CHUNK), dtype=nl.float32, buffer=nl.sbuf)")
    b("for c in nl.affine_range(S // K_CHUNK):")
    b(f"    s_psum$ = nisa.nc_matmul(stationary={stationary}, moving={moving}[:, c * K_CHUNK:(c + 1) * K_CHUNK])")
    if s["max"] == "chunk":  # partial maxima while the scores stream out of PSUM
        b("    cmax$[:, c:c + 1] = nisa.tensor_reduce(np.max, s_psum$, axis=(1,), keepdims=True)")
    if row_dtype:
        ev = f"nisa.{s['evict']}_engine"
        b(f"    row$[:, c * K_CHUNK:(c + 1) * K_CHUNK] = nisa.tensor_copy(s_psum$, dtype={row_dtype}, engine={ev})")
    return "cmax$" if s["max"] == "chunk" else "row$"


def exp_sum(b, s: dict[str, Any], args: str, dtype: str) -> None:
    """e$ = exp(`args`) and its row sum (accumulated by the activation, or a separate reduce), then 1/sum."""
    if s["sum"] == "act":
        b("row_sum$ = nl.ndarray((nl.par_dim(Q_TILE), 1), dtype=nl.float32, buffer=nl.sbuf)")
        b(f"e$ = nisa.activation_reduce(np.exp, {args}, reduce_op=np.add, reduce_res=row_sum$, dtype={dtype})")
    else:
        b(f"e$ = nisa.activation(np.exp, {args}, dtype={dtype})")
        b("row_sum$ = nisa.tensor_reduce(np.add, e$, axis=(1,), keepdims=True, dtype=nl.float32)")
    b("inv_sum$ = nisa.reciprocal(row_sum$)")


def transposed(s: dict[str, Any], tile: str, dtype: str) -> str:
    """`tile` transposed on the Tensor engine and copied out of PSUM by the `tevict` engine."""
    return f"nisa.tensor_copy(nisa.nc_transpose({tile}), dtype={dtype}, engine=nisa.{s['tevict']}_engine)"


def pv_transposes_first(
    b, s: dict[str, Any], p: str, dtype: str, tile, v: str, vt=None, group_tile: tuple[str, str] | None = None
) -> None:
    """out tile = P @ V with every transpose of P done before the matmuls (pv "batched", or tgroup > 1: TGROUP
    transposes fill one PSUM bank and leave it by one copy). The transposed tiles are named `p`$; `tile(j)` is
    P's [Q_TILE, KEY_TILE] tile j; `v` holds the [KEY_TILE, D] tiles of V, unless `vt(j)` is given: then tile j of
    V is transposed here too. `group_tile` = (a line naming the key offset, the tile at it) replaces `tile` in
    the grouped loop."""
    grouped = s["tgroup"] > 1
    j = "jg * TGROUP + g" if grouped else "j"
    if grouped:
        b("# all transposes first: TGROUP of them fill one PSUM bank, evicted by one copy")
        shape = "S // (KEY_TILE * TGROUP), nl.par_dim(KEY_TILE), TGROUP * Q_TILE"
    else:
        b("# all transposes first, so the Tensor engine never waits on a copy between two matmuls")
        shape = "S // KEY_TILE, nl.par_dim(KEY_TILE), Q_TILE"
    b(f"{p}$ = nl.ndarray(({shape}), dtype={dtype}, buffer=nl.sbuf)")
    if vt:
        b(f"vT$ = nl.ndarray((S // KEY_TILE, nl.par_dim(KEY_TILE), D), dtype={dtype}, buffer=nl.sbuf)")
    if grouped:
        b("for jg in nl.affine_range(S // (KEY_TILE * TGROUP)):")
        b("    tp$ = nl.ndarray((nl.par_dim(KEY_TILE), TGROUP * Q_TILE), dtype=nl.float32, buffer=nl.psum)")
        b("    for g in nl.affine_range(TGROUP):")
        if group_tile:
            b(f"        {group_tile[0]}")
        b(
            f"        tp$[:, g * Q_TILE:(g + 1) * Q_TILE] = nisa.nc_transpose({group_tile[1] if group_tile else tile(f'({j})')})"
        )
        if vt:
            b(f"        vT$[{j}] = {vt(f'({j})')}")
        b(f"    {p}$[jg] = nisa.tensor_copy(tp$, dtype={dtype}, engine=nisa.{s['tevict']}_engine)")
    else:
        b("for j in nl.affine_range(S // KEY_TILE):")
        b(f"    {p}$[j] = {transposed(s, tile('j'), dtype)}")
        if vt:
            b(f"    vT$[j] = {vt('j')}")
    b("o_psum$ = nl.zeros((Q_TILE, D), dtype=nl.float32, buffer=nl.psum)")
    moving = f"vT$[{j}]" if vt else f"{v}[{j}]"
    if grouped:
        b("for jg in nl.affine_range(S // (KEY_TILE * TGROUP)):")
        b("    for g in nl.affine_range(TGROUP):")
        b(f"        o_psum$ += nisa.nc_matmul(stationary={p}$[jg, :, g * Q_TILE:(g + 1) * Q_TILE], moving={moving})")
    else:
        b("for j in nl.affine_range(S // KEY_TILE):")
        b(f"    o_psum$ += nisa.nc_matmul(stationary={p}$[j], moving={moving})")


def item_name(i: int) -> str:
    return MENU[i]


def kchunks(S: int) -> list[int]:
    return [c for c in (128, 256, 512) if S % c == 0]


PIPELINE_MOVES = {
    "loop unrolling": [
        ("unroll", 1, 2, "unroll the query loop by two: two independent query tiles per iteration"),
        ("unroll", 2, 4, "unroll the query loop by four"),
    ],
    "software pipelining": [
        ("pv", "interleaved", "batched", "batch the probability transposes ahead of the P@V matmuls"),
        ("unroll", 1, 2, "interleave two query tiles so one's softmax overlaps the other's matmuls"),
    ],
    "multi-buffer tiles with modular allocation": [
        ("unroll", 1, 2, "give two query tiles their own buffers so more iterations are in flight"),
    ],
    "use free dimensions of at least 128 to amortize instruction overhead": [
        ("tgroup", 1, 4, "transpose four key tiles into one PSUM bank and evict them with one copy of free size 512"),
    ],
    "coalesce small result tiles before a store": [
        ("tgroup", 1, 4, "coalesce four transposed tiles in one PSUM bank before copying them out"),
    ],
    "loop reordering and restructuring": [
        ("pv", "interleaved", "batched", "split the key loop: all transposes first, then all P@V matmuls"),
    ],
    "overlap data movement and compute": [
        ("unroll", 1, 2, "two query tiles per iteration, so the loads and softmax of one overlap the other"),
    ],
}


SUM_MOVES = {
    "software pipelining": [
        ("max", "row", "chunk", "take partial row maxima per PSUM chunk while the scores are produced"),
    ],
    "fuse operations": [("sum", "reduce", "act", "fuse the row sum into the exp activation's accumulator")],
    "fuse multiply-add with the activation in one activation instruction": [
        ("sum", "reduce", "act", "exp and row sum in one activation_reduce instruction"),
    ],
    "eliminate redundant computation": [
        ("sum", "reduce", "act", "drop the second pass over the probabilities: the exp accumulates the row sum"),
        ("max", "row", "chunk", "no second pass over the scores for the max: reduce each PSUM chunk as it is evicted"),
    ],
}


def merge_moves(*tables: dict) -> dict:
    out: dict = {}
    for t in tables:
        for k, v in t.items():
            out.setdefault(k, []).extend(v)
    return out


# The knobs both families have, each with its values in order (the naive value first).
BOTH_KNOBS = {
    "evict": ["vector", "scalar"],
    "tevict": ["vector", "scalar"],
    "sum": ["reduce", "act"],
    "unroll": [1, 2, 4],
    "pv": ["interleaved", "batched"],
    "tgroup": [1, 4],
    "max": ["row", "chunk"],
}


# Bugs of the softmax and P@V code that both families emit alike.
SOFTMAX_FAULTS = [
    (r"np\.max, (\w+), axis=\(1,\)", r"np.min, \1, axis=(1,)", "used the row minimum instead of the maximum"),
    (r"o_psum(\w*) \+= ", r"o_psum\1[...] = ", "overwrote the output accumulator instead of accumulating"),
    (
        r"nl\.affine_range\(S // KEY_TILE\)",
        "nl.affine_range(S // KEY_TILE - 1)",
        "wrong loop bound: last key tile skipped",
    ),
    (r"\(j \+ 1\) \* KEY_TILE\]", "(j + 1) * KEY_TILE + 1]", "off-by-one slice end on a key tile"),
    (r"np\.add, (\w+), axis=\(1,\)", r"np.max, \1, axis=(1,)", "normalized by the row maximum instead of the row sum"),
]


# --- attention -----------------------------------------------------------------------------------------------------
