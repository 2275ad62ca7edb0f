/* gemmini_testutils.h for the autocomp-env Gemmini simulator: gemmini.h plus the CPU helpers that
 * gemmini-rocc-tests' programs use (same names and argument lists; our own code). They are ordinary CPU code
 * compiled with the candidate, so their instructions are charged like any other. */
#ifndef GSIM_GEMMINI_TESTUTILS_H
#define GSIM_GEMMINI_TESTUTILS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gemmini.h"
#include "gemmini_counter.h"

#define GSIM_TU static __attribute__((unused))

/* C = D + A.B over one DIM x DIM tile, with A and/or B transposed (full_t sums, elem_t or full_t bias) */
#define GSIM_MM(name, ct, dt, ai, bi)                                                \
  GSIM_TU void name(elem_t A[DIM][DIM], elem_t B[DIM][DIM], dt D[DIM][DIM], ct C[DIM][DIM]) { \
    for (size_t r = 0; r < DIM; r++)                                                 \
      for (size_t c = 0; c < DIM; c++) {                                             \
        full_t s = D[r][c];                                                          \
        for (size_t k = 0; k < DIM; k++) s += (full_t)A ai * B bi;                   \
        C[r][c] = (ct)s;                                                             \
      }                                                                              \
  }
GSIM_MM(matmul, full_t, elem_t, [r][k], [k][c])
GSIM_MM(matmul_short, elem_t, elem_t, [r][k], [k][c])
GSIM_MM(matmul_full, full_t, full_t, [r][k], [k][c])
GSIM_MM(matmul_A_transposed, full_t, elem_t, [k][r], [k][c])
GSIM_MM(matmul_short_A_transposed, elem_t, elem_t, [k][r], [k][c])
GSIM_MM(matmul_full_A_transposed, full_t, full_t, [k][r], [k][c])
GSIM_MM(matmul_B_transposed, full_t, elem_t, [r][k], [c][k])
GSIM_MM(matmul_short_B_transposed, elem_t, elem_t, [r][k], [c][k])
GSIM_MM(matmul_full_B_transposed, full_t, full_t, [r][k], [c][k])
GSIM_MM(matmul_AB_transposed, full_t, elem_t, [k][r], [c][k])
GSIM_MM(matmul_short_AB_transposed, elem_t, elem_t, [k][r], [c][k])
GSIM_MM(matmul_full_AB_transposed, full_t, full_t, [k][r], [c][k])
#undef GSIM_MM

GSIM_TU void matadd(full_t sum[DIM][DIM], full_t m1[DIM][DIM], full_t m2[DIM][DIM]) {
  for (size_t r = 0; r < DIM; r++)
    for (size_t c = 0; c < DIM; c++) sum[r][c] = m1[r][c] + m2[r][c];
}

GSIM_TU elem_t gsim_tu_sat(full_t x) {
#ifndef ELEM_T_IS_FLOAT
  return (elem_t)(x > elem_t_max ? elem_t_max : x < elem_t_min ? elem_t_min : x);
#else
  return (elem_t)x;
#endif
}

/* rounding right shift (half to even), then a saturating cast */
GSIM_TU void matshift(full_t full[DIM][DIM], elem_t out[DIM][DIM], int shift) {
  for (size_t r = 0; r < DIM; r++)
    for (size_t c = 0; c < DIM; c++) out[r][c] = gsim_tu_sat(ROUNDING_RIGHT_SHIFT(full[r][c], shift));
}

GSIM_TU void matscale(full_t full[DIM][DIM], elem_t out[DIM][DIM], acc_scale_t scale) {
  for (size_t r = 0; r < DIM; r++)
    for (size_t c = 0; c < DIM; c++) out[r][c] = gsim_tu_sat(ACC_SCALE(full[r][c], scale));
}

GSIM_TU void matrelu(elem_t in[DIM][DIM], elem_t out[DIM][DIM]) {
  for (size_t r = 0; r < DIM; r++)
    for (size_t c = 0; c < DIM; c++) out[r][c] = in[r][c] > 0 ? in[r][c] : 0;
}

GSIM_TU void matrelu6(elem_t in[DIM][DIM], elem_t out[DIM][DIM], int scale) {
  const int top = 6 * scale;
  for (size_t r = 0; r < DIM; r++)
    for (size_t c = 0; c < DIM; c++) {
      elem_t v = in[r][c] > 0 ? in[r][c] : 0;
      out[r][c] = v > top ? (elem_t)top : v;
    }
}

GSIM_TU void transpose(elem_t in[DIM][DIM], elem_t out[DIM][DIM]) {
  for (size_t r = 0; r < DIM; r++)
    for (size_t c = 0; c < DIM; c++) out[c][r] = in[r][c];
}

/* the tests' own generator: a 32-bit LCG (x = 1664525 x + 1013904223 from 777), the top 8 bits */
#define rand gsim_tu_rand
GSIM_TU int gsim_tu_rand(void) {
  static uint32_t x = 777;
  x = x * 1664525u + 1013904223u;
  return (int)(x >> 24);
}

GSIM_TU void printMatrix(elem_t m[DIM][DIM]) {
  for (size_t i = 0; i < DIM; i++) {
    for (size_t j = 0; j < DIM; j++) printf("%d ", (int)m[i][j]);
    printf("\n");
  }
}

GSIM_TU void printMatrixAcc(acc_t m[DIM][DIM]) {
  for (size_t i = 0; i < DIM; i++) {
    for (size_t j = 0; j < DIM; j++) printf("%d ", (int)m[i][j]);
    printf("\n");
  }
}

GSIM_TU int is_equal(elem_t x[DIM][DIM], elem_t y[DIM][DIM]) {
  for (size_t i = 0; i < DIM; i++)
    for (size_t j = 0; j < DIM; j++)
      if (x[i][j] != y[i][j]) return 0;
  return 1;
}

GSIM_TU int is_equal_transposed(elem_t x[DIM][DIM], elem_t y[DIM][DIM]) {
  for (size_t i = 0; i < DIM; i++)
    for (size_t j = 0; j < DIM; j++)
      if (x[i][j] != y[j][i]) return 0;
  return 1;
}

#define MAT_IS_EQUAL(dim_i, dim_j, x, y)                         \
  ({                                                             \
    int gsim_eq_ = 1;                                            \
    for (size_t gsim_i_ = 0; gsim_i_ < (dim_i) && gsim_eq_; gsim_i_++) \
      for (size_t gsim_j_ = 0; gsim_j_ < (dim_j); gsim_j_++)     \
        if ((x)[gsim_i_][gsim_j_] != (y)[gsim_i_][gsim_j_]) {    \
          gsim_eq_ = 0;                                          \
          break;                                                 \
        }                                                        \
    gsim_eq_;                                                    \
  })

#undef GSIM_TU
#endif
