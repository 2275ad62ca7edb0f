"""Property: random valid tiled-matmul programs match numpy bit for bit."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.gemmini import GemminiSimulator

SIM = GemminiSimulator()
SIG = "void solution(int8_t A[MAT_DIM_I][MAT_DIM_K], int8_t B[MAT_DIM_K][MAT_DIM_J], int8_t C[MAT_DIM_I][MAT_DIM_J])"
HEAD = """
  config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);
  config_st(MAT_DIM_J);
  config_ld(MAT_DIM_K, MVIN_SCALE_IDENTITY, DIM, 0);
  config_ld(MAT_DIM_J, MVIN_SCALE_IDENTITY, DIM, 1);
"""


def tile_program(order: str, a_sp: int, b_sp: int, acc: int, fence_each: bool) -> str:
    """One (i, j, k) step at a time, partial tiles at the edges, loops in `order`."""
    loops = {
        "i": "for (int i0 = 0; i0 < MAT_DIM_I; i0 += DIM) { int ni = MAT_DIM_I - i0 < DIM ? MAT_DIM_I - i0 : DIM;",
        "j": "for (int j0 = 0; j0 < MAT_DIM_J; j0 += DIM) { int nj = MAT_DIM_J - j0 < DIM ? MAT_DIM_J - j0 : DIM;",
    }
    body = f"""
      for (int k0 = 0; k0 < MAT_DIM_K; k0 += DIM) {{ int nk = MAT_DIM_K - k0 < DIM ? MAT_DIM_K - k0 : DIM;
        mvin(&A[i0][k0], {a_sp}, nk, ni);
        mvin2(&B[k0][j0], {b_sp}, nj, nk);
        preload({b_sp}, (1u << 31) | {acc} | (k0 ? (1u << 30) : 0), nj, nk, nj, ni);
        compute_preloaded({a_sp}, GARBAGE_ADDR, nk, ni, DIM, DIM);
      }}
      mvout(&C[i0][j0], (1u << 31) | {acc}, nj, ni);
      {"fence();" if fence_each else ""}
    """
    return SIG + " {" + HEAD + loops[order[0]] + loops[order[1]] + body + "}}\n  fence();\n}\n"


def reuse_program(ti: int, a_sp: int, b_sp: int) -> str:
    """k outer, weights reused over up to `ti` row tiles (preload GARBAGE + compute_accumulated), wide A mvins."""
    return (
        SIG
        + " {"
        + HEAD
        + f"""
  for (int i0 = 0; i0 < MAT_DIM_I; i0 += {ti} * DIM)
    for (int j0 = 0; j0 < MAT_DIM_J; j0 += DIM) {{
      int nj = MAT_DIM_J - j0 < DIM ? MAT_DIM_J - j0 : DIM;
      for (int k0 = 0; k0 < MAT_DIM_K; k0 += DIM) {{
        int nk = MAT_DIM_K - k0 < DIM ? MAT_DIM_K - k0 : DIM;
        mvin2(&B[k0][j0], {b_sp}, nj, nk);
        for (int t = 0; t < {ti} && i0 + t * DIM < MAT_DIM_I; t++) {{
          int i = i0 + t * DIM, ni = MAT_DIM_I - i < DIM ? MAT_DIM_I - i : DIM;
          mvin(&A[i][k0], {a_sp} + t * DIM, nk, ni);
          preload(t == 0 ? {b_sp} : GARBAGE_ADDR, ((1u << 31) | (t * DIM)) | (k0 ? (1u << 30) : 0), nj, nk, nj, ni);
          if (t == 0) {{ compute_preloaded({a_sp} + t * DIM, GARBAGE_ADDR, nk, ni, DIM, DIM); }}
          else {{ compute_accumulated({a_sp} + t * DIM, GARBAGE_ADDR, nk, ni, DIM, DIM); }}
        }}
      }}
      for (int t = 0; t < {ti} && i0 + t * DIM < MAT_DIM_I; t++) {{
        int i = i0 + t * DIM, ni = MAT_DIM_I - i < DIM ? MAT_DIM_I - i : DIM;
        mvout(&C[i][j0], (1u << 31) | (t * DIM), nj, ni);
      }}
    }}
  fence();
}}
"""
    )


def loop_ws_program(i_t: int, j_t: int, k_t: int) -> str:
    """gemmini_loop_ws over tiles of (i_t, j_t, k_t) DIM-blocks, K split across loops with ex_accumulate."""
    return (
        SIG
        + " {"
        + HEAD
        + f"""
  const int TI = (MAT_DIM_I + DIM - 1) / DIM, TJ = (MAT_DIM_J + DIM - 1) / DIM, TK = (MAT_DIM_K + DIM - 1) / DIM;
  for (int i0 = 0; i0 < TI; i0 += {i_t})
    for (int j0 = 0; j0 < TJ; j0 += {j_t})
      for (int k0 = 0; k0 < TK; k0 += {k_t}) {{
        int I = TI - i0 < {i_t} ? TI - i0 : {i_t}, J = TJ - j0 < {j_t} ? TJ - j0 : {j_t}, K = TK - k0 < {k_t} ? TK - k0 : {k_t};
        int pI = i0 + I == TI ? TI * DIM - MAT_DIM_I : 0, pJ = j0 + J == TJ ? TJ * DIM - MAT_DIM_J : 0;
        int pK = k0 + K == TK ? TK * DIM - MAT_DIM_K : 0;
        void *c = k0 + K == TK ? (void *)&C[i0 * DIM][j0 * DIM] : NULL;
        gemmini_loop_ws(I, J, K, pI, pJ, pK, &A[i0 * DIM][k0 * DIM], &B[k0 * DIM][j0 * DIM], NULL, c,
                        MAT_DIM_K, MAT_DIM_J, MAT_DIM_J, MAT_DIM_J, false, false, false, false, k0 > 0, 0, 0, 0, false);
      }}
  fence();
}}
"""
    )


program = st.one_of(
    st.builds(
        tile_program,
        st.sampled_from(["ij", "ji"]),
        st.integers(0, 2000),
        st.integers(4096, 16000),
        st.integers(0, 1000),
        st.booleans(),
    ),
    st.builds(reuse_program, st.integers(1, 4), st.integers(0, 1000), st.integers(8192, 16000)),
    st.builds(loop_ws_program, st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
)


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program, st.integers(1, 40), st.integers(1, 40), st.integers(1, 40), st.integers(0, 1000))
def test_random_tiled_programs_match_numpy(code, i, k, j, seed):
    r = SIM.run(code, f"gemmini/matmul-{i}x{k}x{j}", seeds=(seed,))
    assert r.correct, (r.error, code)
    assert r.latency >= i * k * j / 256
