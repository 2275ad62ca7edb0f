"""What a model must know to write NKI v1 kernels for our Trainium simulator (`simulators/trainium`), in our
own words. The simulator models one NeuronCore-v2 of a trn1 chip and the NKI v1 (`neuronxcc.nki`) API subset."""

from __future__ import annotations

from autocomp_env.core import Kernel

ISA = """\
# Target: AWS Trainium 1 (one NeuronCore-v2), programmed in NKI v1
A kernel is a Python function decorated with @nki.jit named `solution`. It receives HBM tensors, creates its
output with nl.ndarray(shape, dtype, buffer=nl.shared_hbm) and returns it. Work happens in three stages: load
tiles HBM -> SBUF, compute on SBUF/PSUM tiles, store SBUF -> HBM. The harness provides nki, nl
(neuronxcc.nki.language), nisa (neuronxcc.nki.isa), nt, np and math; no other imports are allowed.

## Memories
- HBM: off-chip, about 410 GB/s for one core. Only DMA (nl.load / nl.store / nisa.dma_copy) touches it.
- SBUF: 24 MiB on chip = 128 partitions x 192 KiB. A tile's first dimension is the partition dimension
  (at most 128 = nl.tile_size.pmax); the other dimensions are free dimensions.
- PSUM: 2 MiB = 128 partitions x 16 KiB, 8 banks of 2 KiB (512 fp32) per partition. Matmul results land here
  in fp32; a PSUM tile has at most 512 fp32 elements per partition (nl.tile_size.psum_fmax).
- Allocations beyond SBUF/PSUM capacity are not errors but spill to HBM, which costs DMA time.

## Engines (run concurrently, each in order; the compiler inserts the synchronisation)
- Tensor engine: 128x128 systolic array. nisa.nc_matmul(stationary[K,M], moving[K,N]) = stationary.T @ moving
  into PSUM fp32, with K <= 128 on the partition axis, M <= 128 (gemm_stationary_fmax), N <= 512
  (gemm_moving_fmax). nl.matmul(x, y, transpose_x=True) is the same with x = [K,M]. bf16 runs 4x faster than fp32.
  Accumulate over K with `acc[...] += nisa.nc_matmul(...)` into a PSUM tile from nl.zeros(..., buffer=nl.psum).
  nisa.nc_transpose transposes up to 128x128 on the Tensor engine.
- Vector engine: 128 lanes, about one element per lane per cycle: nl.add/subtract/multiply/maximum...,
  nisa.tensor_tensor, nisa.tensor_scalar, nisa.tensor_reduce, nl.sum/max/mean, nisa.bn_stats/bn_aggr
  (mean and variance in one pass), nisa.tensor_tensor_scan (a recurrence along the free axis), nl.copy.
- Scalar engine: 128 lanes; nisa.activation(op, data, bias=[P,1], scale=const or [P,1]) computes
  op(data*scale + bias) in one instruction, optionally add-reducing along the free axis (reduce_res);
  nl.exp, nl.rsqrt, nl.square and other unary functions.
- GpSimd: iota, affine_select, memset, partition reductions.
- DMA: 16 queues. Each transfer has a fixed cost, so move at least ~32 KiB per nl.load/nl.store (e.g. a
  [128, 512] fp32 tile); nl.load_transpose2d is much slower than nl.load plus nisa.nc_transpose.
- Every instruction has a fixed overhead (~64-100 engine cycles), so tiles with free size >= 128 (ideally 512)
  amortize it; tiny instructions are overhead-bound.

## Loops, indexing and masks
- nl.affine_range(n): iterations are independent (PSUM `+=` accumulation allowed); the simulator may overlap
  them across engines and multi-buffers tiles declared inside the loop. nl.sequential_range(n) (and Python
  range) carries dependencies. nl.static_range(n) unrolls.
- Index with slices (t[i*128:(i+1)*128, 0:512]), nl.ds(start, size), or nl.arange: a partition index is a column
  nl.arange(P)[:, None], a free index a row nl.arange(F)[None, :]. mask=(expr < n) skips out-of-range elements
  of ragged tiles; combine conditions with &.
- Python control flow may not depend on tensor values.
- dtypes: nl.float32, nl.bfloat16, nl.float16, nl.int32. Vector and Scalar engines compute in fp32.

## Performance
- Latency is the simulated time of one kernel call in microseconds, including a fixed launch overhead. The
  roofline is the larger of compute time at 92 TFLOPS bf16 (23 TFLOPS fp32) and HBM traffic at the HBM
  bandwidth, plus that overhead.
- Keep engines busy at the same time: overlap DMA with compute (tiles declared inside affine_range loops),
  reuse loaded data from SBUF instead of reloading, fuse elementwise work into one activation instruction.
"""

_SIGNATURES = {
    "rmsnorm": "solution(a_tensor[R,C] f32, g_tensor[C] f32) -> out[R,C] = a * rsqrt(mean(a^2, axis=1)) * g "
    "(no epsilon).",
    "layernorm": "solution(input_tensor[R,C] f32, epsilon: float, gamma_vector[C], beta_vector[C]) -> out[R,C] = "
    "(x - mean) * rsqrt(var + epsilon) * gamma + beta over axis 1.",
    "softmax": "solution(x[R,C] f32) -> softmax of x over axis 1.",
    "gemm": "solution(lhsT[K,M] bf16, rhs[K,N] bf16) -> result[M,N] bf16 = lhsT.T @ rhs (fp32 accumulation).",
    "mamba": "solution(delta[B,C,L], u[B,C,L], A[C,S], B[B,S,L], C[B,S,L]) -> out[B,C,L] f32: selective scan; for "
    "each state s: dA = exp(delta*A[:,s]), dBu = delta*B[s]*u, h = dA*h + dBu along L, out += C[s]*h.",
    "attention": "solution(q[D,S] bf16, k[D,S] bf16, v[D,S] bf16) -> out[S,D] = softmax(q.T @ k, axis=-1) @ v.T "
    "(no scaling, not causal).",
    "sdattention": "solution(q_ref[S,D], k_ref[S,D], v_ref[S,D]) f32 -> out[S,D] = softmax(q k.T * D**-0.5) v "
    "(bf16 compute allowed).",
    "conv1d": "solution(x[N,C,W] f32, w[C,F] f32) -> out[N,C,W-F+1]: depthwise valid cross-correlation along W.",
}

RULES = (
    "The new kernel must compute the same output as the original within the harness tolerance for every input.",
    "Keep `@nki.jit def solution(...)` with the same arguments, returning the output tensor created with "
    "nl.ndarray(..., buffer=nl.shared_hbm). Import nothing beyond neuronxcc.nki, numpy and math.",
    "The partition dimension comes first in every SBUF/PSUM tile and is at most 128; matmul operands have the "
    "contraction axis on the partitions (stationary free <= 128, moving free <= 512).",
    "Data moves HBM <-> SBUF only through load/store/dma_copy; copy a PSUM result to SBUF before storing it.",
    "Accumulate matmuls with `psum_tile[...] += nisa.nc_matmul(...)` into a tile created by "
    "nl.zeros(..., buffer=nl.psum) inside an affine_range loop.",
    "Tiles are at least 2-D; use masks for ragged edges, `&` (never `and`) to combine mask conditions, and no "
    "Python control flow that depends on tensor values.",
)


def isa_text(kernel: Kernel) -> str:
    return ISA


def signature_text(kernel: Kernel) -> str:
    return _SIGNATURES.get(kernel.family, "solution(...) with the arguments of the original kernel.")
