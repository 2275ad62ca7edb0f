"""`GemminiConfig`: every size and timing parameter of the simulated Gemmini, with its source.

Sources (see /work/shared/research/gemmini.md): [G] ucb-bar/gemmini Configs.scala, [T] gemmini-rocc-tests
gemmini_params.h, (derived) = read from the RTL, (assumption) = no source, to calibrate.
A config turns into compile-time `#define`s for the C runtime; `key()` names its build cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GemminiConfig:
    # --- sizes ---------------------------------------------------------------------------
    dim: int = 16  # [G] defaultConfig meshRows*tileRows
    fp32: bool = False  # int8/int32 (default) or FP32 elements and accumulators ([G] FP32DefaultConfig)
    sp_rows: int = 16384  # 256 KiB / 16 B rows [G][T]
    sp_banks: int = 4  # [G][T]
    acc_rows: int = 1024  # 64 KiB / 64 B rows [G][T]
    acc_banks: int = 2  # [G]
    # [T] MAX_BLOCK_LEN(_ACC): DIM-column blocks per mvin; None = MAX_BYTES (64) / row bytes, i.e. 4 and 1
    max_block_len: int | None = None
    max_block_len_acc: int | None = None
    # --- timing ----------------------------------------------------------------------------
    rs_ld: int = 8  # reservation-station entries, load queue [G]
    rs_ex: int = 16  # execute queue [G]
    rs_st: int = 4  # store queue [G]
    front_queue: int = 4  # commands buffered before the CPU stalls [G] Controller.scala (2+2)
    # (assumption) the RoCC hand-off of one command, beyond the instructions that compute and pack its operands
    # (those are counted with the candidate's code; research §3.3 lumps both into 3 cycles)
    cpu_cycles_per_rocc: int = 1
    # Rocket's cycles per 100 RISC-V instructions. (assumption) single-issue and in order: about 1.25 with the
    # load-use and taken-branch bubbles of this kind of code
    cpu_centicycles_per_instruction: int = 125
    # RISC-V instructions per 100 instructions of the candidate's count (the pinned compiler's x86-64 code,
    # toolchain.py), beyond the intrinsics' call sequences: RISC-V spells out what x86 folds into addressing
    # modes and zero-extends 32-bit values in two shifts. (measured: scripts/riscv_count_gemmini.py, the same
    # clang for rv64imafd on Autocomp's six Exo GEMM files run under an emulator; least squares 1.07)
    riscv_instructions_per_100_x86: int = 107
    # x86 instructions of each intrinsic's call sequence that the real core does not execute, not charged: the
    # __LINE__ and id/flag arguments and the moves into the fixed argument registers (a RoCC instruction takes
    # its two operands from any register; the call itself stands for it). (measured with the ratio above: 4.1)
    cpu_abi_instructions_per_rocc: int = 4
    # per basic block when no disassembly is available
    cpu_cycles_per_block: int = 4
    # the software tiled_matmul path's CPU cost per command (loop, bounds and address math of gemmini.h's
    # sp_tiled_matmul_ws): (assumption, fitted to FireSim's measured SW-library/FSM speed ratio 0.16-0.17 on
    # Autocomp's Exo GEMMs 0, 2, 3; simulators/gemmini/calibration.py checks it within 10 %)
    lib_cycles_per_rocc: int = 45
    # (assumption) the library's CPU matmul (tiled_matmul_type CPU): two loads, a multiply, an add and the loop
    # branch per multiply-accumulate, RISC-V instructions each at cpu_centicycles_per_instruction
    cpu_instructions_per_mac: int = 5
    dma_beat_bytes: int = 16  # [G] dma_buswidth 128 bits
    dma_max_request_bytes: int = 64  # [G] dma_maxbytes
    dma_window: int = 16  # [G] max_in_flight_mem_reqs, reads and writes each
    mvins_in_flight: int = 2  # [G] LoadController nCmds
    mem_latency_rd: int = 40  # (assumption) round trip to the L2 [RC outerLatencyCycles]
    mem_latency_wr: int = 40  # (assumption)
    mvin_scale_cycles_per_row: int = 4  # [G] VectorScalarMultiplier with 4 units, non-identity scale only
    mesh_latency: int | None = None  # (derived) 2*DIM + 6 when None: first row fed to first row written
    max_matmuls_in_mesh: int = 5  # [G] MeshWithDelays max_simultaneous_matmuls
    reuse_rows_floor: int = 4  # [G] ExecuteController: total_rows floor when weights are reused
    bank_conflict_factor: int = 2  # (derived) same_bank alternation
    sp_single_ported: bool = True  # [G] sp_singleported: a row write and a read of one spad bank never share a cycle
    acc_read_latency: int = 10  # [G] acc_latency 2 + acc scale pipe 8
    sp_read_latency: int = 2  # (derived)
    mvin_complete_extra: int = 3  # (derived) last beat to SRAM write

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if isinstance(v, bool) or v is None:
                continue
            if not isinstance(v, int) or v < (
                0 if k.startswith(("mem_latency", "cpu_", "lib_", "mvin_complete", "sp_read", "acc_read")) else 1
            ):
                raise ValueError(f"GemminiConfig.{k} must be a positive integer, got {v!r}")
        if not 2 <= self.dim <= 64 or self.dim & (self.dim - 1):
            raise ValueError(f"GemminiConfig.dim must be a power of two in [2, 64], got {self.dim}")
        if self.sp_rows % self.sp_banks or self.acc_rows % self.acc_banks:
            raise ValueError("GemminiConfig: rows must divide evenly into banks")
        if max(self.rs_ld, self.rs_ex, self.rs_st, self.front_queue, self.dma_window, self.max_matmuls_in_mesh) > 64:
            raise ValueError("GemminiConfig: queue, window and mesh depths are limited to 64")

    @property
    def elem_bytes(self) -> int:
        return 4 if self.fp32 else 1

    @property
    def acc_bytes(self) -> int:
        return 4

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def defines(self) -> dict[str, int]:
        d = {f"GSIM_{k.upper()}": int(v) for k, v in asdict(self).items() if v is not None}
        d["GSIM_MAX_BLOCK_LEN"] = self.max_block_len or max(1, 64 // (self.dim * self.elem_bytes))
        d["GSIM_MAX_BLOCK_LEN_ACC"] = self.max_block_len_acc or max(1, 64 // (self.dim * self.acc_bytes))
        d["GSIM_MESH_LATENCY"] = self.mesh_latency if self.mesh_latency is not None else 2 * self.dim + 6
        return d


DEFAULT = GemminiConfig()
# [G] ConfigsFP.scala FP32DefaultConfig: 4x4 FP32, 256 KiB spad (16 B rows), 64 KiB acc in 1 bank (16 B rows).
FP32_4X4 = GemminiConfig(
    dim=4,
    fp32=True,
    sp_rows=16384,
    sp_banks=4,
    acc_rows=4096,
    acc_banks=1,
)
