"""What a model must know to write code for our Gemmini simulator (`simulators/gemmini`), in our own words.

Two configurations: the default 16x16 int8 array (matmul, conv) and the FP32 4x4 array (tinympc kernels).
"""

from __future__ import annotations

from autocomp_env.core import Kernel

_ISA = """\
# Target: Gemmini ({title})
Gemmini is a systolic-array matrix accelerator driven by a RISC-V CPU through custom instructions. The CPU
issues instructions; the accelerator executes them from three queues that run concurrently: LOAD (mvin,
config_ld), EXECUTE (preload, compute, config_ex) and STORE (mvout, config_st). Queues only wait on each other
where their scratchpad/accumulator row ranges overlap, so loads of the next tile can overlap compute on this one.

## Configuration
- Array: {dim}x{dim} processing elements, DIM = {dim}. Element type: {elem}. Accumulator type: {acc}.
- Scratchpad: {spad_rows} rows of DIM elements ({spad_kib} KiB, {banks} banks of {bank_rows} rows). A scratchpad
  address is just the row number (bits 31..30 clear).
- Accumulator: {acc_rows} rows of DIM {acc} elements ({acc_kib} KiB). An accumulator address has bit 31 set
  (0x80000000 | row); with bit 30 also set (0xC0000000 | row) writes add to the old value instead of
  overwriting it; bit 29 on a read returns the raw {acc} values (no scaling, no activation).
- GARBAGE_ADDR = 0xFFFFFFFF: as a source it reads zeros, as a destination it is not written.

## Instructions (call them as C functions inside `solution`)
- config_ex(dataflow, act, A_stride, A_transpose, B_transpose): dataflow WEIGHT_STATIONARY (WS) or
  OUTPUT_STATIONARY (OS); act NO_ACTIVATION or RELU; A_stride = scratchpad rows between consecutive A rows.
- config_ld(dram_stride_bytes, scale, spad_block_stride, id): row stride in DRAM (bytes) and scale
  (MVIN_SCALE_IDENTITY) for mvin (id 0), mvin2 (id 1) or mvin3 (id 2); spad_block_stride = rows between the
  DIM-column blocks of one wide mvin.
- config_st(dram_stride_bytes): DRAM row stride of mvout (an optional second argument is the output scale).
- mvin(dram_addr, local_addr, cols, rows) (and mvin2, mvin3 with their own config_ld): copy a rows x cols block
  from DRAM into the scratchpad or accumulator. rows <= DIM; cols <= {max_cols} ({max_cols_why}). Columns
  beyond DIM go to the next block, spad_block_stride rows further. dram_addr 0 writes zeros without memory
  traffic; a DRAM stride of 0 repeats one row (useful for a bias).
- preload(B_addr, C_addr, B_cols, B_rows, C_cols, C_rows): in WS, latches the weights B (zero-padded to
  DIM x DIM) for the next compute and says where its output C goes. B_addr = GARBAGE_ADDR keeps the weights
  already in the array.
- compute_preloaded(A_addr, D_addr, A_cols, A_rows, D_cols, D_rows): C = A*B + D with the weights just
  preloaded (D is a bias from the scratchpad, or GARBAGE_ADDR for none). compute_accumulated(...) does the same
  but reuses the weights that are already in the array (preload(GARBAGE_ADDR, C, ...) first). Every compute needs
  its own preload, which names its output C.
- mvout(dram_addr, local_addr, cols, rows): copy rows x cols from the scratchpad or accumulator to DRAM. From the
  accumulator the values are scaled, {mvout_rounding}, and the activation is applied, unless bit 29 is set.
- fence(): wait until every queued instruction has finished (including stores). A CPU read of data that an
  mvout wrote needs a fence first; fences stall the whole pipeline, so use as few as possible.
- The gemmini.h names work as well (gemmini_extended_mvin, gemmini_extended_preload, ...), including the
  hardware loop gemmini_loop_ws(I, J, K, pad_I, pad_J, pad_K, A, B, D, C, A_stride, B_stride, D_stride, C_stride,
  A_transpose, B_transpose, full_C, low_D, ex_accumulate, act, a_spad_id, b_spad_id, is_resadd), which runs a
  whole I x J x K block matmul (I, J, K counted in DIM tiles; strides in elements; NULL D for no bias) from
  the scratchpad and accumulator halves, issuing the mvins, preloads, computes and mvouts itself. Its mvin
  and mvout row strides come from the current config_ld (ids 0, 1, 2 for A, B, D) and config_st.

## Performance
- Peak: one DIM x DIM x DIM block per DIM cycles, i.e. DIM*DIM MACs per cycle. The roofline of a kernel is
  MACs / DIM^2 cycles.
- The DMA moves 16 bytes per cycle with a fixed latency per request; wide mvins (up to {max_cols} columns) need
  fewer instructions than DIM-wide ones. Reusing data already in the scratchpad saves DMA traffic.
- Reusing the preloaded weights (compute_accumulated) avoids refilling the array. Accumulating across K in the
  accumulator (bit 30) avoids moving partial sums out and back.
- Each instruction costs the CPU a few cycles to issue; config instructions drain the execute pipeline.
- Latency is measured in cycles of the whole solution() call.
"""

# Both configurations have the same scratchpad and the same accumulator size in bytes.
_MEMORIES = dict(spad_rows=16384, spad_kib=256, banks=4, bank_rows=4096, acc_kib=64)

_INT8 = dict(
    _MEMORIES,
    title="default 16x16 int8 configuration",
    dim=16,
    elem="int8 (elem_t)",
    acc="int32 (acc_t)",
    acc_rows=1024,
    max_cols=64,
    max_cols_why="4*DIM int8 columns into the scratchpad; 16 int32 columns into the accumulator",
    mvout_rounding="rounded to nearest even, saturated to int8",
)

_FP32 = dict(
    _MEMORIES,
    title="FP32 4x4 configuration (TinyMPC kernels)",
    dim=4,
    elem="float (elem_t, 4 bytes)",
    acc="float (acc_t, 4 bytes)",
    acc_rows=4096,
    max_cols=16,
    max_cols_why="64 bytes per row, i.e. 4*DIM floats",
    mvout_rounding="kept in float",
)

_SIGNATURES = {
    "matmul": "void solution(int8_t A[MAT_DIM_I][MAT_DIM_K], int8_t B[MAT_DIM_K][MAT_DIM_J], "
    "int8_t C[MAT_DIM_I][MAT_DIM_J]) computes C = A*B, saturated to int8 (scale 1, no activation).",
    "conv": "void solution(int8_t inp[N][P+2][Q+2][C], int8_t weights[3][3][C][K], int32_t bias[1][K], "
    "int8_t output[N][P][Q][K]): 3x3 convolution, stride 1, input already padded by 1, plus bias, saturated to int8.",
    "tinympc-matvec": "void solution(float Kinf[NX][NU], float x[NX][1], float d[NU][1], float u[NU][1]): "
    "u = -(Kinf^T x + d).",
    "tinympc-forward": "void solution(float Adyn[NX][NX], float Bdyn[NX][NU], float Kinf[NU][NX], "
    "float x[NHORIZON][NX][1], float d[NHORIZON][NU][1], float u[NHORIZON][NU][1]): for i = 0 .. NHORIZON-2: "
    "u[i] = -(Kinf x[i]) - d[i]; x[i+1] = Adyn x[i] + Bdyn u[i].",
    "tinympc-backward": "void solution(float Quu_inv[NU][NU], float AmBKt[NX][NX], float Kinf[NU][NX], "
    "float Bdyn[NX][NU], float p[NHORIZON][NX][1], float q[NHORIZON][NX][1], float r[NHORIZON][NU][1], "
    "float d[NHORIZON][NU][1]): for i = NHORIZON-2 down to 0: d[i] = Quu_inv^T (Bdyn^T p[i+1] + r[i]); "
    "p[i] = q[i] + AmBKt p[i+1] - Kinf^T r[i].",
}

RULES = (
    "The new code must compute exactly the same output as the original for every input (the harness compares "
    "bit for bit).",
    "All code stays inside the one function `void solution(...)` with the same signature; do not add #include "
    "lines or preprocessor directives (the harness supplies the headers and the size macros).",
    "Scratchpad and accumulator addresses must stay within their sizes; an out-of-range row is an error.",
    "When you change loops, fix every loop bound and every address computation that depends on them.",
    "When you make tiles larger, place the extra data elsewhere in the scratchpad (add the new loop indices to "
    "the address arithmetic), update preload/compute arguments to the new layout and move base addresses so "
    "tiles do not overlap.",
    "The CPU may only read data written by mvout after a fence().",
)


def is_fp32(kernel: Kernel) -> bool:
    return kernel.family.startswith("tinympc") or "tinympc" in kernel.name


def isa_text(kernel: Kernel) -> str:
    return _ISA.format(**(_FP32 if is_fp32(kernel) else _INT8))


def signature_text(kernel: Kernel) -> str:
    for key in sorted(_SIGNATURES, key=len, reverse=True):
        if key in kernel.name or key == kernel.family:
            return _SIGNATURES[key]
    return "void solution(...) with the signature of the original code."
