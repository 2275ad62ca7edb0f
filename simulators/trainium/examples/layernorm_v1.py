# ruff: noqa: F821  (solution format: the harness supplies nki, nl, nisa, nt, np, math)
# LayerNorm v1: nl.mean / subtract / square / mean / rsqrt, then gamma and beta applied with partition broadcasting.
@nki.jit
def solution(input_tensor, epsilon, gamma_vector, beta_vector):
    R, Cn = input_tensor.shape
    out = nl.ndarray((R, Cn), dtype=input_tensor.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    gamma = nl.load(gamma_vector.reshape((1, Cn)))
    beta = nl.load(beta_vector.reshape((1, Cn)))
    ip = nl.arange(P)[:, None]
    jf = nl.arange(Cn)[None, :]
    for i in nl.affine_range(math.ceil(R / P)):
        x = nl.load(input_tensor[i * P + ip, jf], mask=(i * P + ip < R))
        mean = nl.mean(x, axis=[1])
        shifted = nl.subtract(x, mean)
        var = nl.mean(nl.square(shifted), axis=[1])
        rstd = nl.rsqrt(var + epsilon)
        normed = nl.multiply(shifted, rstd)
        scaled = nl.multiply(normed, gamma)
        y = nl.add(scaled, beta)
        nl.store(out[i * P + ip, jf], value=y, mask=(i * P + ip < R))
    return out
