# ruff: noqa: F821  (solution format: the harness supplies nki, nl, nisa, nt, np, math)
# LayerNorm v2: mean and variance with bn_stats/bn_aggr, normalisation in one two-op tensor_scalar.
@nki.jit
def solution(input_tensor, epsilon, gamma_vector, beta_vector):
    R, Cn = input_tensor.shape
    out = nl.ndarray((R, Cn), dtype=input_tensor.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    F = nl.tile_size.bn_stats_fmax
    nchunks = math.ceil(Cn / F)
    gamma = nl.load(gamma_vector.reshape((1, Cn)))
    beta = nl.load(beta_vector.reshape((1, Cn)))
    ip = nl.arange(P)[:, None]
    jf = nl.arange(Cn)[None, :]
    for i in nl.affine_range(math.ceil(R / P)):
        x = nl.load(input_tensor[i * P + ip, jf], mask=(i * P + ip < R))
        stats = nl.ndarray((P, 6 * nchunks), dtype=nl.float32, buffer=nl.sbuf)
        for c in nl.affine_range(nchunks):
            w = min(F, Cn - c * F)
            stats[:, 6 * c : 6 * c + 6] = nisa.bn_stats(x[:, c * F : c * F + w])
        mv = nisa.bn_aggr(stats)
        rstd = nl.rsqrt(mv[:, 1:2] + epsilon)
        normed = nisa.tensor_scalar(x, op0=np.subtract, operand0=mv[:, 0:1], op1=np.multiply, operand1=rstd)
        scaled = nl.multiply(normed, gamma)
        y = nl.add(scaled, beta)
        nl.store(out[i * P + ip, jf], value=y, mask=(i * P + ip < R))
    return out
