# ruff: noqa: F821  (solution format: the harness supplies nki, nl, nisa, nt, np, math)
# Depthwise 1-D convolution (valid cross-correlation), naive: channels on partitions, one multiply-add per filter tap.
@nki.jit
def solution(x, w):
    N, Cn, W = x.shape
    F = w.shape[1]
    Wo = W - F + 1
    out = nl.ndarray((N, Cn, Wo), dtype=x.dtype, buffer=nl.shared_hbm)
    P = nl.tile_size.pmax
    for c in nl.affine_range(Cn // P):
        w_sb = nl.load(w[c * P : (c + 1) * P, :])
        for n in nl.affine_range(N):
            x_sb = nl.load(x[n, c * P : (c + 1) * P, :])
            acc = nl.zeros((P, Wo), dtype=nl.float32, buffer=nl.sbuf)
            for f in nl.static_range(F):
                acc += nisa.tensor_scalar(x_sb[:, f : f + Wo], np.multiply, w_sb[:, f : f + 1])
            nl.store(out[n, c * P : (c + 1) * P, :], value=acc)
    return out
