"""Trainium `sdattention` family: `trainium/sdattention-{S}x{D}` (see `attention_common` for the knobs)."""

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

# --- sdattention ---------------------------------------------------------------------------------------------------
_SD_KNOBS = {
    "qload": ["dma_t", "pe_t"],
    "kload": ["dma_t", "pe_t"],
    "scale": ["q", "exp"],
    "sdtype": ["fp32", "bf16"],
    **BOTH_KNOBS,
}


SD_FAULTS = SOFTMAX_FAULTS + [
    (r"1\.0 / math\.sqrt\(D\)", "1.0 / D", "wrong softmax scale: 1/D instead of 1/sqrt(D)"),
    (r"(r0\w*):(r0\w*) \+ Q_TILE, :\]\)", r"\1 + 1:\2 + Q_TILE + 1, :])", "off-by-one query rows"),
    (r"nisa\.reciprocal\((\w+)\)", r"\1", "multiplied by the row sum instead of dividing by it"),
]


class TrainiumSDAttention(AttentionFamily):
    name = "sdattention"
    flagship = "trainium-tutorial:5"
    DIMS, SUFFIX, DTYPE = ("S", "D"), None, "float32"
    KNOBS = _SD_KNOBS
    FAULTS = SD_FAULTS
    MOVES = merge_moves(
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
        PIPELINE_MOVES,
        SUM_MOVES,
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
        constants(w, s, "query rows per tile")
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
        body = query_loop(w, s["unroll"])
        b = body.append
        if s["qload"] == "dma_t":
            b("qT$ = nl.load_transpose2d(q_ref[r0$:r0$ + Q_TILE, :], dtype=nl.bfloat16)  # [D, Q_TILE]")
        else:
            b("q_tile$ = nl.load(q_ref[r0$:r0$ + Q_TILE, :], dtype=nl.bfloat16)")
            b("qT$ = nl.copy(nisa.nc_transpose(q_tile$), dtype=nl.bfloat16)  # [D, Q_TILE]")
        if s["scale"] == "q":
            b("qT$ = nisa.tensor_scalar(qT$, np.multiply, softmax_scale, dtype=nl.bfloat16)")
        b(f"row$ = nl.ndarray((nl.par_dim(Q_TILE), S), dtype={sdt}, buffer=nl.sbuf)")
        mx = score_chunks(b, s, "qT$", "kT", sdt)
        b(STAGE)
        b(f"neg_max$ = nisa.tensor_reduce(np.max, {mx}, axis=(1,), negate=True, keepdims=True)")
        sc = "1.0"
        if s["scale"] == "exp":
            b("neg_max$ = nisa.tensor_scalar(neg_max$, np.multiply, softmax_scale)")
            sc = "softmax_scale"
        exp_sum(b, s, f"row$, bias=neg_max$, scale={sc}", "nl.bfloat16")
        b(STAGE)

        def etile(j: str) -> str:
            return f"e$[:, {j} * KEY_TILE:({j} + 1) * KEY_TILE]"

        if s["tgroup"] > 1 or s["pv"] == "batched":
            k0 = ("k0 = (jg * TGROUP + g) * KEY_TILE", "e$[:, k0:k0 + KEY_TILE]")
            pv_transposes_first(b, s, "eT", "nl.bfloat16", etile, "v_sb", group_tile=k0)
        else:
            b("o_psum$ = nl.zeros((Q_TILE, D), dtype=nl.float32, buffer=nl.psum)")
            b("for j in nl.affine_range(S // KEY_TILE):")
            b(f"    eT$ = {transposed(s, etile('j'), 'nl.bfloat16')}")
            b("    o_psum$ += nisa.nc_matmul(stationary=eT$, moving=v_sb[j])")
        b("o_sb$ = nisa.tensor_scalar(o_psum$, np.multiply, inv_sum$, dtype=q_ref.dtype)")
        b("nl.store(out[r0$:r0$ + Q_TILE, :], value=o_sb$)")
        return body


FAMILY = TrainiumSDAttention()
