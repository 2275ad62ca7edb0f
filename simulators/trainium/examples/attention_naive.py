# ruff: noqa: F821  (solution format: the harness supplies nki, nl, nisa, nt, np, math)
# Attention, naive: every stage of softmax(q^T k) v^T is a separate pass through fp32 HBM scratch tensors
# (scores, shifted scores, exponentials, probabilities), then P @ v^T with TensorE transposes of P.
@nki.jit
def solution(q, k, v):
    D, S = q.shape
    P = nl.tile_size.pmax
    FN = nl.tile_size.gemm_moving_fmax
    out = nl.ndarray((S, D), dtype=q.dtype, buffer=nl.shared_hbm)
    scores = nl.ndarray((S, S), dtype=nl.float32, buffer=nl.shared_hbm)
    shifted = nl.ndarray((S, S), dtype=nl.float32, buffer=nl.shared_hbm)
    expd = nl.ndarray((S, S), dtype=nl.float32, buffer=nl.shared_hbm)
    probs = nl.ndarray((S, S), dtype=nl.float32, buffer=nl.shared_hbm)
    q_sb = nl.load(q)
    k_sb = nl.load(k)
    for i in nl.affine_range(S // P):
        for j in nl.affine_range(S // FN):
            ps = nisa.nc_matmul(q_sb[:, nl.ds(i * P, P)], k_sb[:, nl.ds(j * FN, FN)])
            sb = nl.copy(ps, dtype=nl.float32)
            nl.store(scores[i * P : (i + 1) * P, j * FN : (j + 1) * FN], value=sb)
    for i in nl.affine_range(S // P):
        row = nl.load(scores[i * P : (i + 1) * P, :])
        mx = nisa.tensor_reduce(np.max, row, axis=(1,), keepdims=True)
        sh = nisa.tensor_scalar(row, np.subtract, mx, engine=nisa.vector_engine)
        nl.store(shifted[i * P : (i + 1) * P, :], value=sh)
    for i in nl.affine_range(S // P):
        row = nl.load(shifted[i * P : (i + 1) * P, :])
        ex = nisa.activation(op=nl.exp, data=row)
        nl.store(expd[i * P : (i + 1) * P, :], value=ex)
    for i in nl.affine_range(S // P):
        row = nl.load(expd[i * P : (i + 1) * P, :])
        sm = nisa.tensor_reduce(np.add, row, axis=(1,), keepdims=True)
        rc = nisa.reciprocal(sm)
        pr = nisa.tensor_scalar(row, np.multiply, rc, engine=nisa.vector_engine)
        nl.store(probs[i * P : (i + 1) * P, :], value=pr)
    v_sb = nl.load(v)
    vT = nl.ndarray((S // P, nl.par_dim(P), D), dtype=nl.bfloat16, buffer=nl.sbuf)
    for j in nl.affine_range(S // P):
        vT[j] = nisa.tensor_copy(nisa.nc_transpose(v_sb[:, nl.ds(j * P, P)]), dtype=nl.bfloat16)
    for i in nl.affine_range(S // P):
        p_row = nl.load(probs[i * P : (i + 1) * P, :], dtype=nl.bfloat16)
        acc = nl.zeros((P, D), nl.float32, buffer=nl.psum)
        for j in nl.affine_range(S // P):
            pT = nisa.nc_transpose(p_row[:, nl.ds(j * P, P)])
            pT_sb = nisa.tensor_copy(pT, dtype=nl.bfloat16)
            acc += nisa.nc_matmul(pT_sb, vT[j])
        o = nisa.tensor_copy(acc, dtype=out.dtype)
        nl.store(out[i * P : (i + 1) * P, :], value=o)
    return out
