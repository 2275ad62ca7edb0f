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

from autocomp_env.core import Kernel
from autocomp_env.targets.trainium.attention_common import (
    BOTH_KNOBS,
    PIPELINE_MOVES,
    SOFTMAX_FAULTS,
    STAGE,
    SUM_MOVES,
    AttentionFamily,
    constants,
    exp_sum,
    merge_moves,
    pv_transposes_first,
    query_loop,
    score_chunks,
    transposed,
)

ATTN_FAULTS = SOFTMAX_FAULTS + [
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
    **BOTH_KNOBS,
}


class TrainiumAttention(AttentionFamily):
    name = "attention"
    flagship = "trainium-tutorial:4"
    DIMS, SUFFIX, DTYPE = ("D", "S"), "bf16", "bfloat16"
    KNOBS = _ATTN_KNOBS
    FAULTS = ATTN_FAULTS
    MOVES = merge_moves(
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
        PIPELINE_MOVES,
        SUM_MOVES,
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
        constants(w, s, "query rows per tile (partitions of the score tiles)")
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
        body = query_loop(w, s["unroll"])
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
        mx = score_chunks(b, s, "q_tile$", kt, "nl.float32" if s["scores"] == "sbuf" else None)
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
        exp_sum(b, s, f"{src}{bias}", edt)
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
            return transposed(s, f"{vs}[:, {j} * KEY_TILE:({j} + 1) * KEY_TILE]", pdt)

        if s["tgroup"] > 1 or s["pv"] == "batched":
            pv_transposes_first(b, s, "pT", pdt, ptile, "vT_sb", vtile if s["vt"] == "per_query" else None)
        else:
            b("o_psum$ = nl.zeros((Q_TILE, D), dtype=nl.float32, buffer=nl.psum)")
            b("for j in nl.affine_range(S // KEY_TILE):")
            b(f"    pT$ = {transposed(s, ptile('j'), pdt)}  # [KEY_TILE, Q_TILE]")
            b(f"    vT$ = {vtile('j')}" if s["vt"] == "per_query" else "    vT$ = vT_sb[j]")
            b("    o_psum$ += nisa.nc_matmul(stationary=pT$, moving=vT$)")
        if s["norm"] == "out":
            b("o_sb$ = nisa.tensor_scalar(o_psum$, np.multiply, inv_sum$, dtype=q.dtype)")
        else:
            b("o_sb$ = nl.copy(o_psum$, dtype=q.dtype)")
        b("nl.store(out[r0$:r0$ + Q_TILE, :], value=o_sb$)")
        return body


FAMILY = TrainiumAttention()
