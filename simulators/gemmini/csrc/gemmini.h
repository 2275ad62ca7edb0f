/* gemmini.h for the autocomp-env Gemmini simulator.
 *
 * Same names and argument lists as gemmini-rocc-tests' include/gemmini.h, plus Autocomp's short names.
 * Every intrinsic is a macro that calls the simulator runtime (gsim_*) and passes __LINE__, so errors can
 * name the candidate's source line. Sizes come from gsim_params.h, generated from a GemminiConfig.
 */
#ifndef GSIM_GEMMINI_H
#define GSIM_GEMMINI_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gsim_params.h"

#define DIM GSIM_DIM
#define ADDR_LEN 32
#define BANK_NUM GSIM_SP_BANKS
#define BANK_ROWS (GSIM_SP_ROWS / GSIM_SP_BANKS)
#define ACC_ROWS GSIM_ACC_ROWS
#define MAX_BYTES 64
#define MAX_BLOCK_LEN GSIM_MAX_BLOCK_LEN
#define MAX_BLOCK_LEN_ACC GSIM_MAX_BLOCK_LEN_ACC

#if GSIM_FP32
typedef float elem_t;
typedef float acc_t;
typedef double full_t;
#define ELEM_T_IS_FLOAT 1
#define ACC_T_IS_FLOAT 1
#else
typedef int8_t elem_t;
typedef int32_t acc_t;
typedef int64_t full_t;
#define elem_t_max 127
#define elem_t_min (-128)
#define acc_t_max 2147483647
#define acc_t_min (-2147483647 - 1)
#endif
typedef float scale_t;
typedef uint32_t scale_t_bits;
typedef float acc_scale_t;
typedef uint32_t acc_scale_t_bits;
typedef float scale_acc_t;

#define MVIN_SCALE_IDENTITY 1.0f
#define ACC_SCALE_IDENTITY 1.0f
/* gemmini_params.h's element arithmetic, as the hardware does it (used by gemmini_testutils.h and test code) */
#ifndef ELEM_T_IS_FLOAT
#define ACC_SCALE(x, scale) \
  ({ float gsim_y_ = nearbyintf((float)(x) * (scale)); gsim_y_ > (float)INT32_MAX ? INT32_MAX : gsim_y_ < (float)INT32_MIN ? INT32_MIN : (acc_t)gsim_y_; })
#define MVIN_SCALE(x, scale) \
  ({ float gsim_y_ = nearbyintf((float)(x) * (scale)); gsim_y_ > 127.0f ? 127 : gsim_y_ < -128.0f ? -128 : (elem_t)gsim_y_; })
/* rounding right shift, half to even; a negative shift shifts left */
#define ROUNDING_RIGHT_SHIFT(x, shift) \
  ({ int64_t gsim_x_ = (int64_t)(x); int gsim_s_ = (int)(shift); int64_t gsim_q_ = gsim_s_ > 0 ? gsim_x_ >> gsim_s_ : gsim_x_ << -gsim_s_; \
     if (gsim_s_ > 0) { int64_t gsim_r_ = gsim_x_ - (gsim_q_ << gsim_s_), gsim_h_ = (int64_t)1 << (gsim_s_ - 1); \
       if (gsim_r_ > gsim_h_ || (gsim_r_ == gsim_h_ && (gsim_q_ & 1))) gsim_q_++; } gsim_q_; })
#else
#define ACC_SCALE(x, scale) ((x) * (scale))
#define MVIN_SCALE(x, scale) ((x) * (scale))
#define ROUNDING_RIGHT_SHIFT(x, shift) ((x) / (1 << (shift)))
#endif
#define row_align(blocks) __attribute__((aligned((blocks) * DIM * sizeof(elem_t))))
#define row_align_acc(blocks) __attribute__((aligned((blocks) * DIM * sizeof(acc_t))))

#define GARBAGE_ADDR ((uint32_t)0xFFFFFFFFu)
#define OUTPUT_STATIONARY 0
#define WEIGHT_STATIONARY 1
#define NO_ACTIVATION 0
#define RELU 1
#define LAYERNORM 2
#define IGELU 3
#define SOFTMAX 4
enum tiled_matmul_type_t { OS, WS, CPU };

/* Which form of tiled_matmul_auto / tiled_conv_auto the library uses: 1 = hand each tile to the loop FSM
 * (current gemmini.h), 0 = the older software path where the CPU issues every command. */
#ifndef GEMMINI_LIBRARY_FSM
#define GEMMINI_LIBRARY_FSM 1
#endif

/* ---- runtime entry points (implemented in runtime.c; not for candidate code) ---- */
void gsim_config_ex(int dataflow, int act, uint32_t sys_shift, float acc_scale, size_t C_stride,
                    size_t A_stride, int A_transpose, int B_transpose, int set_only_strides, int line);
void gsim_config_ld(size_t stride, float scale, int shrunk, int block_stride, int pixel_repeats, int id,
                    int line);
void gsim_config_st(size_t stride, int act, float scale, int pool_stride, int pool_size, int line);
/* operands packed as the RoCC words: [31:0] local address, [47:32] cols, [63:48] rows */
void gsim_mvin(int id, uintptr_t dram, uint64_t rs2, int line);
void gsim_mvout(uintptr_t dram, uint64_t rs2, int line);
void gsim_preload(uint64_t rs1, uint64_t rs2, int line);
void gsim_compute(int preloaded, uint64_t rs1, uint64_t rs2, int line);
void gsim_config(uint64_t rs1, uint64_t rs2, int line);
void gsim_fence(int line);
void gsim_flush(int skip, int line);
void gsim_unsupported(const char *what, int line);
uint32_t gsim_counter(int op, int index, int event, int line);
uint64_t gsim_read_cycles(void);
void gsim_loop_ws(long I, long J, long K, long pad_I, long pad_J, long pad_K, uintptr_t A, uintptr_t B,
                  uintptr_t D, uintptr_t C, size_t A_stride, size_t B_stride, size_t D_stride,
                  size_t C_stride, int A_transpose, int B_transpose, int full_C, int low_D,
                  int ex_accumulate, int act, int a_spad_id, int b_spad_id, int is_resadd, int line);
void gsim_loop_conv_ws(const long *p, uintptr_t weights, uintptr_t output, uintptr_t bias,
                       uintptr_t input, int line);
void gsim_tiled_matmul_auto(size_t dim_I, size_t dim_J, size_t dim_K, const void *A, const void *B,
                            const void *D, void *C, size_t stride_A, size_t stride_B, size_t stride_D,
                            size_t stride_C, float A_scale, float B_scale, float D_scale, int act,
                            float scale, float bert_scale, int repeating_bias, int transpose_A,
                            int transpose_B, int full_C, int low_D, int weightA, int type, int fsm,
                            int line);
void gsim_tiled_resadd_auto(size_t I, size_t J, float A_scale, float B_scale, float C_scale, const void *A,
                            const void *B, void *C, int relu, int type, int line);
void gsim_tiled_global_average_auto(const void *input, void *output, int batches, int channels, int dim, int type,
                                    int line);
void gsim_tiled_conv_auto(const long *p, const void *input, const void *weights, const void *bias,
                          void *output, int act, float scale, int type, int fsm, int line);

/* CPU helpers that Autocomp's TinyMPC harness provides (elementwise over rows x cols elem_t). Declared without
 * a prototype and defined weak in the runtime, so a candidate may define its own with any pointer types. */
void add_matrix();
void negate_matrix();

#define GSIM_U(x) ((uintptr_t)(x))
/* Like the real header, whose intrinsics end in rocc-software's ROCC_INSTRUCTION `{ asm volatile(...); }`,
 * every command is a brace block: `gemmini_config_ld(16) x = 1;` compiles, as it does there. */
#define GSIM_STMT(call) { call; }
#define GSIM_W(addr, cols, rows) (((uint64_t)(rows) << 48) | ((uint64_t)(cols) << 32) | (uint32_t)(addr))

/* ---- gemmini.h spellings ---- */
#define gemmini_extended_mvin(dram, local, cols, rows) GSIM_STMT(gsim_mvin(0, GSIM_U(dram), GSIM_W(local, cols, rows), __LINE__))
#define gemmini_extended_mvin2(dram, local, cols, rows) GSIM_STMT(gsim_mvin(1, GSIM_U(dram), GSIM_W(local, cols, rows), __LINE__))
#define gemmini_extended_mvin3(dram, local, cols, rows) GSIM_STMT(gsim_mvin(2, GSIM_U(dram), GSIM_W(local, cols, rows), __LINE__))
#define gemmini_mvin(dram, local) gemmini_extended_mvin(dram, local, DIM, DIM)
#define gemmini_block_mvin(dram, local, len) gemmini_extended_mvin(dram, local, (len) * DIM, DIM)
#define gemmini_extended_mvout(dram, local, cols, rows) GSIM_STMT(gsim_mvout(GSIM_U(dram), GSIM_W(local, cols, rows), __LINE__))
#define gemmini_mvout(dram, local) gemmini_extended_mvout(dram, local, DIM, DIM)
#define gemmini_extended_preload(BD, C, BD_cols, BD_rows, C_cols, C_rows) \
  GSIM_STMT(gsim_preload(GSIM_W(BD, BD_cols, BD_rows), GSIM_W(C, C_cols, C_rows), __LINE__))
#define gemmini_preload(BD, C) gemmini_extended_preload(BD, C, DIM, DIM, DIM, DIM)
#define gemmini_preload_zeros(C) gemmini_preload(GARBAGE_ADDR, C)
#define gemmini_extended_compute_preloaded(A, BD, A_cols, A_rows, BD_cols, BD_rows) \
  GSIM_STMT(gsim_compute(1, GSIM_W(A, A_cols, A_rows), GSIM_W(BD, BD_cols, BD_rows), __LINE__))
#define gemmini_extended_compute_accumulated(A, BD, A_cols, A_rows, BD_cols, BD_rows) \
  GSIM_STMT(gsim_compute(0, GSIM_W(A, A_cols, A_rows), GSIM_W(BD, BD_cols, BD_rows), __LINE__))
#define gemmini_compute_preloaded(A, BD) gemmini_extended_compute_preloaded(A, BD, DIM, DIM, DIM, DIM)
#define gemmini_compute_accumulated(A, BD) gemmini_extended_compute_accumulated(A, BD, DIM, DIM, DIM, DIM)

/* Configuration commands are packed into the CONFIG instruction's rs1/rs2 words (rs1[1:0]: 0 EX, 1 LD, 2 ST), as the
 * real gemmini.h does, so candidate code pays for the same packing. Field widths truncate as in hardware. */
static inline uint64_t gsim_f2b(float x) {
  union { float f; uint32_t b; } u;
  u.f = x;
  return u.b;
}
#define gemmini_extended3_config_ex(dataflow, act, sys_shift, acc_scale, C_stride, A_stride, A_transpose, B_transpose, set_only_strides) \
  GSIM_STMT(gsim_config((gsim_f2b(acc_scale) << 32) | ((uint64_t)((A_stride) & 0xFFFF) << 16) | ((uint64_t)((B_transpose) & 1) << 9) | \
              ((uint64_t)((A_transpose) & 1) << 8) | ((uint64_t)((set_only_strides) & 1) << 7) | ((uint64_t)((act) & 3) << 3) | \
              ((uint64_t)((dataflow) & 1) << 2), \
              ((uint64_t)((C_stride) & 0xFFFF) << 48) | (uint32_t)(sys_shift), __LINE__))
#define gemmini_extended_config_ex(dataflow, act, sys_shift, A_stride, A_transpose, B_transpose) \
  gemmini_extended3_config_ex(dataflow, act, sys_shift, ACC_SCALE_IDENTITY, 1, A_stride, A_transpose, B_transpose, 0)
#define gemmini_config_ex(dataflow, act, sys_shift) gemmini_extended_config_ex(dataflow, act, sys_shift, 1, 0, 0)

#define gemmini_extended5_config_ld(stride, scale, shrunk, block_stride, pixel_repeats, id) \
  GSIM_STMT(gsim_config((gsim_f2b(scale) << 32) | ((uint64_t)((block_stride) & 0xFFFF) << 16) | ((uint64_t)((pixel_repeats) & 0xFF) << 8) | \
              ((uint64_t)((id) & 3) << 3) | ((uint64_t)((shrunk) & 1) << 2) | 1, (uint64_t)(stride), __LINE__))
#define gemmini_extended4_config_ld(stride, scale, shrunk, block_stride, id) \
  gemmini_extended5_config_ld(stride, scale, shrunk, block_stride, 1, id)
#define gemmini_extended3_config_ld(stride, scale, shrunk, id) gemmini_extended4_config_ld(stride, scale, shrunk, DIM, id)
#define gemmini_extended2_config_ld(stride, scale, shrunk) gemmini_extended3_config_ld(stride, scale, shrunk, 0)
#define gemmini_extended_config_ld(stride, scale) gemmini_extended2_config_ld(stride, scale, false)
#define gemmini_config_ld(stride) gemmini_extended_config_ld(stride, MVIN_SCALE_IDENTITY)

#define gemmini_extended2_config_st(stride, act, scale, pool_stride, pool_size, pool_out_dim, porows, pocols, orows, ocols, upad, lpad) \
  GSIM_STMT(gsim_config(((uint64_t)((pool_size) & 3) << 6) | ((uint64_t)((pool_stride) & 3) << 4) | ((uint64_t)((act) & 3) << 2) | 2, \
              (gsim_f2b(scale) << 32) | (uint32_t)(stride), __LINE__))
#define gemmini_extended_config_st(stride, act, scale) gemmini_extended2_config_st(stride, act, scale, 0, 0, 0, 0, 0, 0, 0, 0, 0)
#define gemmini_config_st(stride) gemmini_extended_config_st(stride, NO_ACTIVATION, ACC_SCALE_IDENTITY)
#define gemmini_config_norm(...) GSIM_STMT(gsim_unsupported("gemmini_config_norm (I-BERT normalization)", __LINE__))
#define gemmini_flush(skip) GSIM_STMT(gsim_flush((skip), __LINE__))
#define gemmini_fence() gsim_fence(__LINE__) /* a plain `asm volatile("fence")` there: an expression */
#define read_cycles() gsim_read_cycles() /* the simulated CPU clock, as gemmini_testutils.h's read_cycles() */
/* Performance counters (event ids in gemmini_counter.h): 8 counters, each configured to one event */
#define counter_configure(index, event) ((void)gsim_counter(1, (int)(index), (int)(event), __LINE__))
#define counter_read(index) gsim_counter(0, (int)(index), 0, __LINE__)
#define counter_reset() ((void)gsim_counter(2, 0, 0, __LINE__))
#define counter_snapshot_take() ((void)gsim_counter(3, 0, 0, __LINE__))
#define counter_snapshot_reset() ((void)gsim_counter(4, 0, 0, __LINE__))

#define gemmini_loop_ws(I, J, K, pad_I, pad_J, pad_K, A, B, D, C, A_stride, B_stride, D_stride, C_stride, A_transpose, B_transpose, full_C, low_D, ex_accumulate, act, a_spad_id, b_spad_id, is_resadd) \
  GSIM_STMT(gsim_loop_ws((I), (J), (K), (pad_I), (pad_J), (pad_K), GSIM_U(A), GSIM_U(B), GSIM_U(D), GSIM_U(C), (A_stride), (B_stride), (D_stride), (C_stride), (A_transpose), (B_transpose), (full_C), (low_D), (ex_accumulate), (act), (a_spad_id), (b_spad_id), (is_resadd), __LINE__))

#define gemmini_loop_conv_ws(batch_size, in_row_dim, in_col_dim, in_channels, out_channels, out_row_dim, out_col_dim, pool_out_row_dim, pool_out_col_dim, stride, padding, kernel_dim, kernel_dilation, pool_size, pool_stride, pool_padding, batches, porows, pocols, pochs, krows, kcols, kchs, lpad, rpad, upad, dpad, plpad, prpad, pupad, pdpad, orows, ocols, weights, output, bias, input, no_bias, no_pool, downsample, wrot180, input_dilated, activation, trans_output_1203, trans_weight_1203, trans_weight_0132, trans_input_3120, max_pixels_per_row, in_stride, weight_stride, out_stride, dw, a_spad_id, b_spad_id) \
  { \
    const long gsim_p_[] = {batch_size, in_row_dim, in_col_dim, in_channels, out_channels, out_row_dim, out_col_dim, pool_out_row_dim, pool_out_col_dim, stride, padding, kernel_dim, kernel_dilation, pool_size, pool_stride, pool_padding, batches, porows, pocols, pochs, krows, kcols, kchs, lpad, rpad, upad, dpad, plpad, prpad, pupad, pdpad, orows, ocols, no_bias, no_pool, downsample, wrot180, input_dilated, activation, trans_output_1203, trans_weight_1203, trans_weight_0132, trans_input_3120, max_pixels_per_row, in_stride, weight_stride, out_stride, dw, a_spad_id, b_spad_id}; \
    gsim_loop_conv_ws(gsim_p_, GSIM_U(weights), GSIM_U(output), GSIM_U(bias), GSIM_U(input), __LINE__); \
  }

/* The vendor library (real argument lists). */
#define tiled_matmul_auto(dim_I, dim_J, dim_K, A, B, D, C, stride_A, stride_B, stride_D, stride_C, A_scale_factor, B_scale_factor, D_scale_factor, act, scale, bert_scale, repeating_bias, transpose_A, transpose_B, full_C, low_D, weightA, tiled_matmul_type) \
  gsim_tiled_matmul_auto((dim_I), (dim_J), (dim_K), (A), (B), (D), (C), (stride_A), (stride_B), (stride_D), (stride_C), (A_scale_factor), (B_scale_factor), (D_scale_factor), (act), (scale), (bert_scale), (repeating_bias), (transpose_A), (transpose_B), (full_C), (low_D), (weightA), (tiled_matmul_type), GEMMINI_LIBRARY_FSM, __LINE__)

/* C = act(sat(A * A_scale + B * B_scale) * C_scale), elementwise on I x J int8 matrices of row stride J */
#define tiled_resadd_auto(I, J, A_scale, B_scale, C_scale, A, B, C, relu, matadd_type) \
  gsim_tiled_resadd_auto((I), (J), (A_scale), (B_scale), (C_scale), (A), (B), (C), (relu), (matadd_type), __LINE__)
/* output[b][c] = the mean of input[b][.][.][c] over dim x dim pixels, rounded half to even (int8) */
#define tiled_global_average_auto(input, output, batches, channels, dim, type) \
  gsim_tiled_global_average_auto((input), (output), (batches), (channels), (dim), (type), __LINE__)
#define tiled_conv_auto(batch_size, in_row_dim, in_col_dim, in_channels, out_channels, out_row_dim, out_col_dim, stride, input_dilation, kernel_dilation, padding, kernel_dim, wrot180, trans_output_1203, trans_input_3120, trans_weight_1203, trans_weight_0132, input, weights, bias, output, act, scale, pool_size, pool_stride, pool_padding, tiled_conv_type) \
  do { \
    const long gsim_c_[] = {batch_size, in_row_dim, in_col_dim, in_channels, out_channels, out_row_dim, out_col_dim, stride, input_dilation, kernel_dilation, padding, kernel_dim, wrot180, trans_output_1203, trans_input_3120, trans_weight_1203, trans_weight_0132, pool_size, pool_stride, pool_padding}; \
    gsim_tiled_conv_auto(gsim_c_, (input), (weights), (bias), (output), (act), (scale), (tiled_conv_type), GEMMINI_LIBRARY_FSM, __LINE__); \
  } while (0)

/* ---- Autocomp's short names ---- */
#define GSIM_NARG_(_1, _2, _3, _4, _5, N, ...) N
#define GSIM_PICK_(name, ...) GSIM_CAT_(name, GSIM_NARG_(__VA_ARGS__, 5, 4, 3, 2, 1, 0))
#define GSIM_CAT_(a, b) GSIM_CAT2_(a, b)
#define GSIM_CAT2_(a, b) a##b

#define config_ex(...) GSIM_PICK_(gsim_cex_, __VA_ARGS__)(__VA_ARGS__)
#define gsim_cex_1(df) gemmini_extended_config_ex(df, NO_ACTIVATION, 0, 1, 0, 0)
#define gsim_cex_2(df, act) gemmini_extended_config_ex(df, act, 0, 1, 0, 0)
#define gsim_cex_3(df, act, A_stride) gemmini_extended_config_ex(df, act, 0, A_stride, 0, 0)
#define gsim_cex_4(df, act, A_stride, A_t) gemmini_extended_config_ex(df, act, 0, A_stride, A_t, 0)
#define gsim_cex_5(df, act, A_stride, A_t, B_t) gemmini_extended_config_ex(df, act, 0, A_stride, A_t, B_t)

#define config_ld(...) GSIM_PICK_(gsim_cld_, __VA_ARGS__)(__VA_ARGS__)
#define gsim_cld_1(stride) gemmini_extended4_config_ld(stride, MVIN_SCALE_IDENTITY, false, DIM, 0)
#define gsim_cld_2(stride, scale) gemmini_extended4_config_ld(stride, scale, false, DIM, 0)
#define gsim_cld_3(stride, scale, id) gemmini_extended4_config_ld(stride, scale, false, DIM, id)
#define gsim_cld_4(stride, scale, block_stride, id) gemmini_extended4_config_ld(stride, scale, false, block_stride, id)

#define config_st(...) GSIM_PICK_(gsim_cst_, __VA_ARGS__)(__VA_ARGS__)
#define gsim_cst_1(stride) gemmini_extended_config_st(stride, NO_ACTIVATION, ACC_SCALE_IDENTITY)
#define gsim_cst_2(stride, scale) gemmini_extended_config_st(stride, NO_ACTIVATION, scale)
#define gsim_cst_3(stride, act, scale) gemmini_extended_config_st(stride, act, scale)

#define mvin(dram, local, cols, rows) gemmini_extended_mvin(dram, local, cols, rows)
#define mvin2(dram, local, cols, rows) gemmini_extended_mvin2(dram, local, cols, rows)
#define mvin3(dram, local, cols, rows) gemmini_extended_mvin3(dram, local, cols, rows)
#define mvout(dram, local, cols, rows) gemmini_extended_mvout(dram, local, cols, rows)
#define preload(B, C, B_cols, B_rows, C_cols, C_rows) gemmini_extended_preload(B, C, B_cols, B_rows, C_cols, C_rows)
#define compute_preloaded(A, D, A_cols, A_rows, D_cols, D_rows) gemmini_extended_compute_preloaded(A, D, A_cols, A_rows, D_cols, D_rows)
#define compute_accumulated(A, D, A_cols, A_rows, D_cols, D_rows) gemmini_extended_compute_accumulated(A, D, A_cols, A_rows, D_cols, D_rows)
#define fence() gemmini_fence()
#define flush() gemmini_flush(0)

#endif
