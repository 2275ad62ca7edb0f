"""Every parameter of the Trainium (trn1, NeuronCore-v2) timing model, each with its source.

Sources are keyed as in the research notes (`/work/shared/research/trainium.md`): ARCH = NKI architecture guide,
ISA = nki.isa "Estimated instruction cost" blocks, PERF = NKI performance guide, DMA1/DMA2 = DMA overview and
bandwidth guides. "assumption" marks numbers no document gives; they were fitted by
`scripts/calibrate_trainium.py` against published trn1 latencies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TrainiumConfig:
    # Engine clocks in GHz (ARCH engine table).
    f_tensor: float = 2.8
    f_vector: float = 1.12
    f_scalar: float = 1.4
    f_gpsimd: float = 1.4
    # Minimum initiation interval of Vector/Scalar/GpSimd instructions, engine cycles (ISA, every cost block).
    min_ii: int = 64
    # Result latency after an instruction's occupancy, engine cycles, seen by a dependent instruction.
    # ARCH "+100 cycles" static overhead (Vector); PERF measured a 264-cycle II for dependent tiny ScalarE ops
    # (= 64 + 200); the Scalar/Vector split and GpSimd/Tensor values are assumptions.
    pipe_tensor: int = 64  # ARCH MM_INIT_LATENCY
    pipe_vector: int = 100
    pipe_scalar: int = 200
    pipe_gpsimd: int = 150  # ISA GPSIMD_START
    # Cross-engine semaphore wait, ns (assumption: no document gives a number; ~64 consumer cycles).
    sync_ns: float = 50.0
    # Extra TensorE cycles when nc_matmul switches to a new stationary operand: LoadStationary not fully hidden
    # behind MultiplyMoving (assumption, calibrated on the optimized GEMM; ARCH says LS runs "in the background").
    mm_switch_cycles: int = 48
    # TensorE PE array is 128x128; a matmul costs max(min(64, N_stat), N_mov) cycles, x4 for fp32 (ISA nc_matmul).
    fp32_matmul_factor: int = 4
    # DMA: 16 engines per NeuronCore at 17 B/ns each (DMA1/DMA2 Trainium1 table), 8 partitions per transfer (ARCH).
    dma_engines: int = 16
    dma_bw_bytes_per_ns: float = 17.0
    dma_partitions_per_engine: int = 8
    # Per contiguous chunk overhead in bytes: time = (chunk + B0) / BW (assumption fitted to DMA2's curve:
    # "<256 B/partition severely overhead-bound, >=2 KiB approaches peak, >=4 KiB saturates").
    dma_chunk_overhead_bytes: float = 96.0
    # Fixed DMA latency added to completion, not occupancy (DMA2 "~1300 ns semaphore-to-start").
    dma_latency_ns: float = 1300.0
    # Whole-core HBM ceiling, bytes/ns (ARCH 820 GB/s per chip = 2 NCs; AccelOpt uses 410 GiB/s per NC).
    hbm_bw_bytes_per_ns: float = 410.0
    # Physical buffers given to a tile allocated inside an affine_range body (assumption, mirrors mod_alloc
    # multi-buffering in the direct-allocation guide, which suggests 2-4; 4 lets the naive GEMM's loads cover the
    # 1.3 us DMA latency, as its measured DMA-bound time implies); 1 inside sequential loops.
    affine_buffers: int = 4
    # Buffers for a tile allocated in a sequential_range body: the compiler "respects inter-loop dependency and
    # performs much more conservative loop-level optimizations" there (NKI sequential_range docs); the count is
    # an assumption (fitted to the attention trace, whose sequential loops stall on one reused PSUM tile).
    sequential_buffers: int = 2
    # NEFF launch + teardown seen by nc_latency, us (assumption; nki-samples rmsnorm_qkv <= 25 us bounds it).
    launch_overhead_us: float = 10.0
    # Capacities per partition, bytes (ARCH: SBUF 192 KiB minus 16 KiB reserved (DA); PSUM 16 KiB = 8 x 2 KiB banks).
    sbuf_partition_bytes: int = 176 * 1024
    psum_partition_bytes: int = 16 * 1024
    psum_bank_bytes: int = 2048
    # Peak TensorE throughput used for MFU, FLOP/s (ARCH: 92 TFLOPS bf16 on trn1).
    peak_flops: float = 92e12

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainiumConfig:
        names = {f.name for f in fields(TrainiumConfig)}
        bad = set(d) - names
        if bad:
            raise ValueError(f"unknown TrainiumConfig fields: {sorted(bad)}")
        return TrainiumConfig(**d)

    @property
    def dma_peak_bytes_per_ns(self) -> float:
        return min(self.dma_engines * self.dma_bw_bytes_per_ns, self.hbm_bw_bytes_per_ns)
