"""Trainium attention families.

`attention`: `trainium/attention-{D}x{S}-bf16`, `solution(q[D,S], k[D,S], v[D,S]) -> out[S,D]`,
out = softmax(qᵀk, axis=-1) @ vᵀ. The starting code is the naive tutorial style: the scores and the
probabilities make a round trip through HBM scratch tensors, and k/v are reloaded and v re-transposed
for every query tile.

| key     | values              | meaning                                                           |
|---------|---------------------|-------------------------------------------------------------------|
| scores  | hbm, sbuf           | scores row block stored to HBM and reloaded, or kept in SBUF      |
| probs   | hbm, sbuf           | probabilities stored to HBM and reloaded per key tile, or kept    |
| kv      | per_query, resident | k and v loaded for every query tile, or once before the loop      |
| vt      | per_query, hoisted  | vᵀ tiles transposed inside the query loop, or once up front       |
| softmax | sub_exp, bias_exp   | subtract max then exp (two instructions), or exp with bias=-max   |
| norm    | probs, out          | divide the probabilities by the row sum, or the [128, D] output   |
| pdtype  | fp32, bf16          | dtype of the probabilities fed to the P@V matmul                  |
| kchunk  | 128, 256, 512       | moving free size of the qᵀk matmuls                                |
| evict   | vector, scalar      | engine of the PSUM -> SBUF score copies                           |
| tevict  | vector, scalar      | engine of the PSUM -> SBUF copies of transposed probabilities     |

`sdattention`: `trainium/sdattention-{S}x{D}`, `solution(q_ref[S,D], k_ref[S,D], v_ref[S,D]) -> out[S,D]`,
out = softmax(q kᵀ · D^-0.5) v, f32 in, bf16 compute. The starting code is the tutorial's fused kernel.

| key     | values              | meaning                                                           |
|---------|---------------------|-------------------------------------------------------------------|
| qload   | dma_t, pe_t         | qᵀ tiles by load_transpose2d, or load + nc_transpose on TensorE   |
| kload   | dma_t, pe_t         | the same for kᵀ (loaded once)                                     |
| scale   | q, exp              | multiply qᵀ by D^-0.5, or fold it into the exp's scale and bias   |
| sdtype  | fp32, bf16          | dtype of the SBUF copy of the scores                              |
| kchunk  | 128, 256, 512       | moving free size of the q kᵀ matmuls                              |
| evict   | vector, scalar      | engine of the PSUM -> SBUF score copies                           |
| tevict  | vector, scalar      | engine of the PSUM -> SBUF copies of the transposed probabilities |

Knobs of both families:

| key     | values              | meaning                                                           |
|---------|---------------------|-------------------------------------------------------------------|
| sum     | reduce, act         | row sum by tensor_reduce, or accumulated by the exp instruction   |
| max     | row, chunk          | row max over the SBUF scores, or partial maxima per PSUM chunk    |
| pv      | interleaved, batched| transpose, copy and matmul per key tile, or all transposes first |
| tgroup  | 1, 4                | transposes per PSUM bank (one eviction copy per bank)             |
| unroll  | 1, 2, 4             | query tiles per iteration, emitted stage by stage                 |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.families.base import register, schedule_comment
from autocomp_env.families.trainium_common import make_kernel
from autocomp_env.families.trainium_gemm import (
    ITEM,
    MovesFamily,
    P,
    inject_from,
    parse_dims,
    parse_plan_items,
)
from autocomp_env.menus import TRAINIUM

_OTHER = ITEM["other methods not listed here"]


class _ScheduleFamily(MovesFamily):
    """Shared machinery: knobs with ordered values, menu items that move knobs, random 'other methods'."""

    # menu item name -> [(knob, from value or None for any, to value, description)]
    MOVES: dict[str, list[tuple[str, Any, Any, str]]] = {}
    KNOBS: dict[str, list[Any]] = {}  # knob -> its values, the naive one first (kchunk, unroll: see knob_values)
    DIMS: tuple[str, str]  # the order of D and S in the kernel name
    SUFFIX: str | None  # dtype suffix of the kernel name
    DTYPE: str  # dtype of q, k, v and out
    FAULTS: list[tuple[str, str, str]] = []  # (regex, replacement, description) bugs of the emitted code

    def kernel(self, shape: str) -> Kernel:
        dims = dict(zip(self.DIMS, parse_dims(shape, 2, self.SUFFIX, self.name), strict=True))
        if dims["D"] > P:
            raise ValueError(f"{self.name} head dim D={dims['D']} exceeds {P} partitions")
        if dims["S"] % P:
            raise ValueError(f"{self.name} S={dims['S']} must be a multiple of {P}")
        name = f"trainium/{self.name}-{self._shape(dims)}"
        small = f"trainium/{self.name}-{self._shape(dict(dims, S=min(dims['S'], 512)))}"
        return make_kernel(name, self.name, {**dims, "dtype": self.DTYPE}, small)

    def _shape(self, dims: dict[str, int]) -> str:
        return "x".join(str(dims[d]) for d in self.DIMS) + (f"-{self.SUFFIX}" if self.SUFFIX else "")

    def small_shape(self, kernel: Kernel) -> str:
        return self._shape({d: min(kernel.spec[d], 512) if d == "S" else kernel.spec[d] for d in self.DIMS})

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        """Every knob at its first value; key chunks as large as S allows."""
        own = {k: v[0] for k, v in self.KNOBS.items() if k not in _BOTH_KNOBS}
        return {**own, "kchunk": _kchunks(kernel.spec["S"])[-1], **{k: v[0] for k, v in _BOTH_KNOBS.items()}}

    def knob_values(self, kernel: Kernel, knob: str) -> list[Any]:
        if knob == "kchunk":
            return _kchunks(kernel.spec["S"])
        if knob == "unroll":  # the unrolled tiles must divide the query tiles
            return [u for u in (1, 2, 4) if (kernel.spec["S"] // P) % u == 0]
        return self.KNOBS[knob]

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        if s.get("tgroup", 1) > 1 and (s["pv"] != "batched" or (kernel.spec["S"] // P) % s["tgroup"]):
            return False
        return all(s[k] in self.knob_values(kernel, k) for k in s)

    def _moves(self, kernel: Kernel, s: dict[str, Any], item: int, params: dict[str, Any]) -> list[tuple[dict, str]]:
        if not 0 <= item < len(TRAINIUM):
            return []
        s = self.complete(kernel, s)
        name = TRAINIUM[item]
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
            for i in range(len(TRAINIUM)):
                if i != item and TRAINIUM[i] in self.MOVES:
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
        _unrolled(L.append, self.write(s, L.append), s["unroll"])
        L.append("    return out")
        return "\n".join(L) + "\n"

    def write(self, s: dict[str, Any], w: Callable[[str], None]) -> list[str]:
        """Write the signature and setup of `solution` for schedule `s` with `w`; return the query-loop body:
        its stages separated by STAGE, `$` where the names of an unrolled query tile take their suffix."""
        raise NotImplementedError

    def inject_fault(self, kernel: Kernel, code: str, rng: np.random.Generator) -> tuple[str, str]:
        return inject_from(code, self.FAULTS, rng)

    def parse_plan(self, text: str) -> list[tuple[int, dict[str, Any]]]:
        allowed = set(self.MOVES) | {"loop tiling", "try new parameter values", _name(_OTHER)}
        allowed.add("use free dimensions of at least 128 to amortize instruction overhead")
        return parse_plan_items(text, {ITEM[n] for n in allowed})


STAGE = "<stage>"  # separates the stages of the query-loop body (scores, softmax, P@V)


def _unrolled(w, body: list[str], unroll: int) -> None:
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


def _constants(w, s: dict[str, Any], q_note: str) -> None:
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


def _query_loop(w, unroll: int) -> list[str]:
    """Write the query loop header; return its body so far (the row offset `r0$` of the query tile)."""
    w(
        "    for i in nl.affine_range(S // (Q_TILE * UNROLL)):"
        if unroll > 1
        else "    for i in nl.affine_range(S // Q_TILE):"
    )
    return ["r0$ = (i * UNROLL + U) * Q_TILE" if unroll > 1 else "r0 = i * Q_TILE"]


def _score_chunks(b, s: dict[str, Any], stationary: str, moving: str, row_dtype: str | None) -> str:
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


def _exp_sum(b, s: dict[str, Any], args: str, dtype: str) -> None:
    """e$ = exp(`args`) and its row sum (accumulated by the activation, or a separate reduce), then 1/sum."""
    if s["sum"] == "act":
        b("row_sum$ = nl.ndarray((nl.par_dim(Q_TILE), 1), dtype=nl.float32, buffer=nl.sbuf)")
        b(f"e$ = nisa.activation_reduce(np.exp, {args}, reduce_op=np.add, reduce_res=row_sum$, dtype={dtype})")
    else:
        b(f"e$ = nisa.activation(np.exp, {args}, dtype={dtype})")
        b("row_sum$ = nisa.tensor_reduce(np.add, e$, axis=(1,), keepdims=True, dtype=nl.float32)")
    b("inv_sum$ = nisa.reciprocal(row_sum$)")


def _transposed(s: dict[str, Any], tile: str, dtype: str) -> str:
    """`tile` transposed on the Tensor engine and copied out of PSUM by the `tevict` engine."""
    return f"nisa.tensor_copy(nisa.nc_transpose({tile}), dtype={dtype}, engine=nisa.{s['tevict']}_engine)"


def _pv_transposes_first(
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
        b(f"    {p}$[j] = {_transposed(s, tile('j'), dtype)}")
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


def _name(i: int) -> str:
    return TRAINIUM[i]


def _kchunks(S: int) -> list[int]:
    return [c for c in (128, 256, 512) if S % c == 0]


_PIPELINE_MOVES = {
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
_SUM_MOVES = {
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


def _merge_moves(*tables: dict) -> dict:
    out: dict = {}
    for t in tables:
        for k, v in t.items():
            out.setdefault(k, []).extend(v)
    return out


# The knobs both families have, each with its values in order (the naive value first).
_BOTH_KNOBS = {
    "evict": ["vector", "scalar"],
    "tevict": ["vector", "scalar"],
    "sum": ["reduce", "act"],
    "unroll": [1, 2, 4],
    "pv": ["interleaved", "batched"],
    "tgroup": [1, 4],
    "max": ["row", "chunk"],
}

# Bugs of the softmax and P@V code that both families emit alike.
_SOFTMAX_FAULTS = [
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
ATTN_FAULTS = _SOFTMAX_FAULTS + [
    (r"bias=(\w+)", r"bias=\1, scale=-1.0", "negated the exponent"),
    (r"(r0\w*):(r0\w*) \+ Q_TILE, :\]\)", r"\1:\2 + Q_TILE, 1:])", "dropped the first column of the row block"),
    (r"stationary=(\w+), moving=", r"stationary=\1[:, ::-1], moving=", "reversed the stationary operand"),
]

_ATTN_KNOBS = {
    "scores": ["hbm", "sbuf"],
    "probs": ["hbm", "sbuf"],
    "kv": ["per_query", "resident"],
    "vt": ["per_query", "hoisted"],
    "softmax": ["sub_exp", "bias_exp"],
    "norm": ["probs", "out"],
    "pdtype": ["fp32", "bf16"],
    **_BOTH_KNOBS,
}


class TrainiumAttention(_ScheduleFamily):
    name = "attention"
    DIMS, SUFFIX, DTYPE = ("D", "S"), "bf16", "bfloat16"
    KNOBS = _ATTN_KNOBS
    FAULTS = ATTN_FAULTS
    MOVES = _merge_moves(
        {
            "reduce data movement": [
                ("scores", "hbm", "sbuf", "keep the score row block in SBUF instead of a round trip through HBM"),
                ("probs", "hbm", "sbuf", "keep the probabilities in SBUF instead of a round trip through HBM"),
                ("kv", "per_query", "resident", "load k and v once instead of for every query tile"),
            ],
            "cache reused data in local memory": [
                ("kv", "per_query", "resident", "cache k and v in SBUF for all query tiles"),
                ("scores", "hbm", "sbuf", "cache the score row block in SBUF"),
            ],
            "keep reused data resident in SBUF": [
                ("kv", "per_query", "resident", "keep k and v resident in SBUF"),
                ("probs", "hbm", "sbuf", "keep the probabilities resident in SBUF"),
            ],
            "fuse operations": [
                ("scores", "hbm", "sbuf", "fuse the score matmuls with the softmax (no HBM scratch)"),
                ("probs", "hbm", "sbuf", "fuse the softmax with the P@V matmuls (no HBM scratch)"),
                ("softmax", "sub_exp", "bias_exp", "fuse the max subtraction into the exp"),
            ],
            "hoist redundant operations out of loops": [
                ("vt", "per_query", "hoisted", "transpose v once, outside the query loop"),
                ("kv", "per_query", "resident", "hoist the k and v loads out of the query loop"),
            ],
            "eliminate redundant computation": [
                ("vt", "per_query", "hoisted", "stop re-transposing v for every query tile"),
            ],
            "use lower precision": [("pdtype", "fp32", "bf16", "feed bf16 probabilities to the P@V matmul")],
            "rewrite the algorithm to reduce total work": [
                ("norm", "probs", "out", "normalize the [128, D] output instead of the [128, S] probabilities"),
            ],
            "fuse multiply-add with the activation in one activation instruction": [
                ("softmax", "sub_exp", "bias_exp", "exp(x - max) as one activation with bias=-max"),
            ],
            "use tensor_scalar broadcast instead of broadcast plus tensor_tensor": [
                ("norm", "probs", "out", "scale the output rows by 1/sum with one tensor_scalar"),
            ],
            "simplify or remove unnecessary code": [
                ("scores", "hbm", "sbuf", "drop the HBM scratch tensor for the scores"),
                ("probs", "hbm", "sbuf", "drop the HBM scratch tensor for the probabilities"),
            ],
            "overlap data movement and compute": [
                ("kv", "per_query", "resident", "load k and v up front so the query loop only computes"),
            ],
        },
        _PIPELINE_MOVES,
        _SUM_MOVES,
    )

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        s = self.naive_schedule(kernel)
        s.update(
            scores="sbuf", probs="sbuf", kv="resident", vt="hoisted", softmax="bias_exp", norm="out", pdtype="bf16"
        )
        s.update(sum="act", evict="scalar", tevict="scalar", unroll=2, pv="batched")
        s["tgroup"] = 4 if self.valid(kernel, dict(s, tgroup=4)) else 1
        return s

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        vendor = self.naive_schedule(kernel)
        vendor.update(scores="sbuf", probs="sbuf", pdtype="bf16")  # straightforward on-chip NKI softmax attention
        return {
            "vendor": self.emit(kernel, vendor),
            "expert": self.emit(kernel, self.expert_schedule(kernel)),
            "naive": self.starting_code(kernel),
        }

    def write(self, s: dict[str, Any], w: Callable[[str], None]) -> list[str]:
        pdt = "nl.bfloat16" if s["pdtype"] == "bf16" else "nl.float32"
        w("def solution(q, k, v):")
        w('    """out[S, D] = softmax(q.T @ k, axis=-1) @ v.T, non-causal, no scaling; bf16 in and out."""')
        w("    D, S = q.shape")
        _constants(w, s, "query rows per tile (partitions of the score tiles)")
        w("    out = nl.ndarray((S, D), dtype=q.dtype, buffer=nl.shared_hbm)")
        if s["scores"] == "hbm":
            w("    scores_hbm = nl.ndarray((S, S), dtype=nl.float32, buffer=nl.shared_hbm)  # scratch")
        if s["probs"] == "hbm":
            w(f"    probs_hbm = nl.ndarray((S, S), dtype={pdt}, buffer=nl.shared_hbm)  # scratch")
        if s["kv"] == "resident":
            w("    # k and v stay in SBUF for every query tile")
            w("    k_sb = nl.load(k)")
            w("    v_sb = nl.load(v)")
        if s["vt"] == "hoisted":
            w("    # v.T tiles [KEY_TILE keys, D], transposed once on the Tensor engine")
            w(f"    vT_sb = nl.ndarray((S // KEY_TILE, nl.par_dim(KEY_TILE), D), dtype={pdt}, buffer=nl.sbuf)")
            w("    for j in nl.affine_range(S // KEY_TILE):")
            src = (
                "v_sb[:, j * KEY_TILE:(j + 1) * KEY_TILE]"
                if s["kv"] == "resident"
                else "nl.load(v[:, j * KEY_TILE:(j + 1) * KEY_TILE])"
            )
            w(f"        vT_sb[j] = nl.copy(nisa.nc_transpose({src}), dtype={pdt})")
        w("")
        body = _query_loop(w, s["unroll"])
        b = body.append
        b("q_tile$ = nl.load(q[:, r0$:r0$ + Q_TILE])  # [D, Q_TILE]")
        kt = "k_sb"
        if s["kv"] == "per_query":
            b("k_sb$ = nl.load(k)")
            kt = "k_sb$"
            if s["vt"] == "per_query":
                b("v_sb$ = nl.load(v)")
        vs = "v_sb$" if s["kv"] == "per_query" else "v_sb"
        b("# scores of this query tile against all keys")
        if s["scores"] == "sbuf":
            b("row$ = nl.ndarray((nl.par_dim(Q_TILE), S), dtype=nl.float32, buffer=nl.sbuf)")
        mx = _score_chunks(b, s, "q_tile$", kt, "nl.float32" if s["scores"] == "sbuf" else None)
        if s["scores"] == "hbm":
            b(f"    s_sb$ = nisa.tensor_copy(s_psum$, dtype=nl.float32, engine=nisa.{s['evict']}_engine)")
            b("    nl.store(scores_hbm[r0$:r0$ + Q_TILE, c * K_CHUNK:(c + 1) * K_CHUNK], value=s_sb$)")
            b("row$ = nl.load(scores_hbm[r0$:r0$ + Q_TILE, :])")
        b(STAGE)
        b("# softmax along the free axis")
        if s["softmax"] == "sub_exp":
            b(f"row_max$ = nisa.tensor_reduce(np.max, {mx}, axis=(1,), keepdims=True)")
            b("shifted$ = nisa.tensor_scalar(row$, np.subtract, row_max$)")
            src, bias = "shifted$", ""
        else:
            b(f"neg_max$ = nisa.tensor_reduce(np.max, {mx}, axis=(1,), negate=True, keepdims=True)")
            src, bias = "row$", ", bias=neg_max$"
        edt = pdt if s["softmax"] == "bias_exp" else "nl.float32"
        _exp_sum(b, s, f"{src}{bias}", edt)
        if s["norm"] == "probs":
            b(f"probs$ = nisa.tensor_scalar(e$, np.multiply, inv_sum$, dtype={pdt})")
        elif edt == pdt:
            b("probs$ = e$  # normalized after the P@V matmul")
        else:
            b(f"probs$ = nl.copy(e$, dtype={pdt})  # normalized after the P@V matmul")
        if s["probs"] == "hbm":
            b("nl.store(probs_hbm[r0$:r0$ + Q_TILE, :], value=probs$)")
        b(STAGE)
        b("# out tile = probs @ v.T: the keys must sit on partitions, so transpose probability tiles")

        def ptile(j: str) -> str:
            if s["probs"] == "hbm":
                return f"nl.load(probs_hbm[r0$:r0$ + Q_TILE, {j} * KEY_TILE:({j} + 1) * KEY_TILE])"
            return f"probs$[:, {j} * KEY_TILE:({j} + 1) * KEY_TILE]"

        def vtile(j: str) -> str:
            return _transposed(s, f"{vs}[:, {j} * KEY_TILE:({j} + 1) * KEY_TILE]", pdt)

        if s["tgroup"] > 1 or s["pv"] == "batched":
            _pv_transposes_first(b, s, "pT", pdt, ptile, "vT_sb", vtile if s["vt"] == "per_query" else None)
        else:
            b("o_psum$ = nl.zeros((Q_TILE, D), dtype=nl.float32, buffer=nl.psum)")
            b("for j in nl.affine_range(S // KEY_TILE):")
            b(f"    pT$ = {_transposed(s, ptile('j'), pdt)}  # [KEY_TILE, Q_TILE]")
            b(f"    vT$ = {vtile('j')}" if s["vt"] == "per_query" else "    vT$ = vT_sb[j]")
            b("    o_psum$ += nisa.nc_matmul(stationary=pT$, moving=vT$)")
        if s["norm"] == "out":
            b("o_sb$ = nisa.tensor_scalar(o_psum$, np.multiply, inv_sum$, dtype=q.dtype)")
        else:
            b("o_sb$ = nl.copy(o_psum$, dtype=q.dtype)")
        b("nl.store(out[r0$:r0$ + Q_TILE, :], value=o_sb$)")
        return body


# --- sdattention ---------------------------------------------------------------------------------------------------
_SD_KNOBS = {
    "qload": ["dma_t", "pe_t"],
    "kload": ["dma_t", "pe_t"],
    "scale": ["q", "exp"],
    "sdtype": ["fp32", "bf16"],
    **_BOTH_KNOBS,
}

SD_FAULTS = _SOFTMAX_FAULTS + [
    (r"1\.0 / math\.sqrt\(D\)", "1.0 / D", "wrong softmax scale: 1/D instead of 1/sqrt(D)"),
    (r"(r0\w*):(r0\w*) \+ Q_TILE, :\]\)", r"\1 + 1:\2 + Q_TILE + 1, :])", "off-by-one query rows"),
    (r"nisa\.reciprocal\((\w+)\)", r"\1", "multiplied by the row sum instead of dividing by it"),
]


class TrainiumSDAttention(_ScheduleFamily):
    name = "sdattention"
    DIMS, SUFFIX, DTYPE = ("S", "D"), None, "float32"
    KNOBS = _SD_KNOBS
    FAULTS = SD_FAULTS
    MOVES = _merge_moves(
        {
            "replace load_transpose2d with load plus nc_transpose when memory-bound": [
                ("qload", "dma_t", "pe_t", "load q tiles and transpose them on the Tensor engine"),
                ("kload", "dma_t", "pe_t", "load k tiles and transpose them on the Tensor engine"),
            ],
            "reduce data movement": [
                ("qload", "dma_t", "pe_t", "replace the slow transposing DMA of q with a plain load"),
                ("kload", "dma_t", "pe_t", "replace the slow transposing DMA of k with a plain load"),
            ],
            "use the Tensor engine for cross-partition reductions and reshapes": [
                ("qload", "dma_t", "pe_t", "transpose q tiles on the Tensor engine"),
                ("kload", "dma_t", "pe_t", "transpose k tiles on the Tensor engine"),
            ],
            "fuse multiply-add with the activation in one activation instruction": [
                ("scale", "q", "exp", "fold the D^-0.5 scale into the exp's scale and bias"),
            ],
            "fuse operations": [("scale", "q", "exp", "fuse the softmax scale into the exp activation")],
            "eliminate redundant computation": [("scale", "q", "exp", "drop the separate multiply of q by the scale")],
            "use lower precision": [
                ("sdtype", "fp32", "bf16", "keep the SBUF scores in bf16 (halves the reduce cost)")
            ],
        },
        _PIPELINE_MOVES,
        _SUM_MOVES,
    )

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        s = self.naive_schedule(kernel)
        # q tiles keep the transposing DMA (it overlaps the Tensor engine); k is transposed once on TensorE.
        s.update(kload="pe_t", scale="exp", sdtype="bf16", evict="scalar", tevict="scalar", sum="act", unroll=2)
        s.update(pv="batched", kchunk=128)
        s["tgroup"] = 4 if self.valid(kernel, dict(s, tgroup=4)) else 1
        return s

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        return {
            "vendor": self.starting_code(kernel),  # the vendor tutorial's fused kernel
            "expert": self.emit(kernel, self.expert_schedule(kernel)),
            "naive": self.starting_code(kernel),
        }

    def write(self, s: dict[str, Any], w: Callable[[str], None]) -> list[str]:
        sdt = "nl.bfloat16" if s["sdtype"] == "bf16" else "nl.float32"
        w("def solution(q_ref, k_ref, v_ref):")
        w('    """out[S, D] = softmax(q @ k.T * D**-0.5) @ v: f32 in and out, bf16 matmuls, fp32 accumulation."""')
        w("    S, D = q_ref.shape")
        _constants(w, s, "query rows per tile")
        w("    softmax_scale = 1.0 / math.sqrt(D)")
        w("    out = nl.ndarray((S, D), dtype=q_ref.dtype, buffer=nl.shared_hbm)")
        w("")
        w("    # k.T [D, S] and v [S, D] in bf16 for the whole sequence")
        w("    kT = nl.ndarray((nl.par_dim(D), S), dtype=nl.bfloat16, buffer=nl.sbuf)")
        w("    v_sb = nl.ndarray((S // KEY_TILE, nl.par_dim(KEY_TILE), D), dtype=nl.bfloat16, buffer=nl.sbuf)")
        w("    for j in nl.affine_range(S // KEY_TILE):")
        if s["kload"] == "dma_t":
            w(
                "        kT[:, j * KEY_TILE:(j + 1) * KEY_TILE] = nl.load_transpose2d(k_ref[j * KEY_TILE:(j + 1) * KEY_TILE, :], dtype=nl.bfloat16)"
            )
        else:
            w("        k_tile = nl.load(k_ref[j * KEY_TILE:(j + 1) * KEY_TILE, :], dtype=nl.bfloat16)")
            w("        kT[:, j * KEY_TILE:(j + 1) * KEY_TILE] = nl.copy(nisa.nc_transpose(k_tile), dtype=nl.bfloat16)")
        w("        v_sb[j] = nl.load(v_ref[j * KEY_TILE:(j + 1) * KEY_TILE, :], dtype=nl.bfloat16)")
        w("")
        body = _query_loop(w, s["unroll"])
        b = body.append
        if s["qload"] == "dma_t":
            b("qT$ = nl.load_transpose2d(q_ref[r0$:r0$ + Q_TILE, :], dtype=nl.bfloat16)  # [D, Q_TILE]")
        else:
            b("q_tile$ = nl.load(q_ref[r0$:r0$ + Q_TILE, :], dtype=nl.bfloat16)")
            b("qT$ = nl.copy(nisa.nc_transpose(q_tile$), dtype=nl.bfloat16)  # [D, Q_TILE]")
        if s["scale"] == "q":
            b("qT$ = nisa.tensor_scalar(qT$, np.multiply, softmax_scale, dtype=nl.bfloat16)")
        b(f"row$ = nl.ndarray((nl.par_dim(Q_TILE), S), dtype={sdt}, buffer=nl.sbuf)")
        mx = _score_chunks(b, s, "qT$", "kT", sdt)
        b(STAGE)
        b(f"neg_max$ = nisa.tensor_reduce(np.max, {mx}, axis=(1,), negate=True, keepdims=True)")
        sc = "1.0"
        if s["scale"] == "exp":
            b("neg_max$ = nisa.tensor_scalar(neg_max$, np.multiply, softmax_scale)")
            sc = "softmax_scale"
        _exp_sum(b, s, f"row$, bias=neg_max$, scale={sc}", "nl.bfloat16")
        b(STAGE)

        def etile(j: str) -> str:
            return f"e$[:, {j} * KEY_TILE:({j} + 1) * KEY_TILE]"

        if s["tgroup"] > 1 or s["pv"] == "batched":
            k0 = ("k0 = (jg * TGROUP + g) * KEY_TILE", "e$[:, k0:k0 + KEY_TILE]")
            _pv_transposes_first(b, s, "eT", "nl.bfloat16", etile, "v_sb", group_tile=k0)
        else:
            b("o_psum$ = nl.zeros((Q_TILE, D), dtype=nl.float32, buffer=nl.psum)")
            b("for j in nl.affine_range(S // KEY_TILE):")
            b(f"    eT$ = {_transposed(s, etile('j'), 'nl.bfloat16')}")
            b("    o_psum$ += nisa.nc_matmul(stationary=eT$, moving=v_sb[j])")
        b("o_sb$ = nisa.tensor_scalar(o_psum$, np.multiply, inv_sum$, dtype=q_ref.dtype)")
        b("nl.store(out[r0$:r0$ + Q_TILE, :], value=o_sb$)")
        return body


register(TrainiumAttention())
register(TrainiumSDAttention())
