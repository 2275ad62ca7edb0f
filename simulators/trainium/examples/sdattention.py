# ruff: noqa: F821  (solution format: the harness supplies nki, nl, nisa, nt, np, math)
# Scaled dot-product attention softmax(q k^T / sqrt(d)) v, fp32 in, bf16 matmuls: per 128-query tile, scores for all
# keys in PSUM banks of 512, row softmax on VectorE/ScalarE, then P @ v with TensorE transposes of P.
@nki.jit
def solution(q_ref, k_ref, v_ref):
    S, D = q_ref.shape
    P = nl.tile_size.pmax
    FN = nl.tile_size.gemm_moving_fmax
    out = nl.ndarray((S, D), dtype=q_ref.dtype, buffer=nl.shared_hbm)
    scale = 1.0 / math.sqrt(D)
    kT = nl.ndarray((nl.par_dim(D), S), dtype=nl.bfloat16, buffer=nl.sbuf)
    v_sb = nl.ndarray((S // P, nl.par_dim(P), D), dtype=nl.bfloat16, buffer=nl.sbuf)
    for j in nl.affine_range(S // P):
        kT[:, j * P : (j + 1) * P] = nl.load_transpose2d(k_ref[j * P : (j + 1) * P, :], dtype=nl.bfloat16)
        v_sb[j] = nl.load(v_ref[j * P : (j + 1) * P, :], dtype=nl.bfloat16)
    for i in nl.affine_range(S // P):
        qT = nl.load_transpose2d(q_ref[i * P : (i + 1) * P, :], dtype=nl.bfloat16)
        scores = nl.ndarray((nl.par_dim(P), S), dtype=nl.float32, buffer=nl.sbuf)
        for j in nl.affine_range(S // FN):
            ps = nisa.nc_matmul(qT, kT[:, j * FN : (j + 1) * FN])
            scores[:, j * FN : (j + 1) * FN] = nisa.activation(op=nl.copy, data=ps, scale=scale)
        neg_max = nisa.tensor_reduce(np.max, scores, axis=(1,), negate=True, keepdims=True)
        probs = nisa.activation(op=nl.exp, data=scores, bias=neg_max, dtype=nl.bfloat16)
        total = nisa.tensor_reduce(np.add, probs, axis=(1,), keepdims=True, dtype=nl.float32)
        acc = nl.zeros((P, D), nl.float32, buffer=nl.psum)
        for j in nl.affine_range(S // P):
            pT = nisa.nc_transpose(probs[:, j * P : (j + 1) * P])
            pT_sb = nisa.tensor_copy(pT, dtype=nl.bfloat16)
            acc += nisa.nc_matmul(pT_sb, v_sb[j])
        o = nisa.tensor_scalar(acc, np.multiply, nisa.reciprocal(total), dtype=nl.float32)
        nl.store(out[i * P : (i + 1) * P, :], value=o)
    return out
