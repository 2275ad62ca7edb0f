"""Trainium GEMM family: `trainium/gemm-{M}x{K}x{N}-bf16`, result[M, N] = lhsT[K, M].T @ rhs[K, N].

The schedule space follows the nki-samples matmul tutorial progression (tiled -> hoisted loads ->
block-free-dimension -> fully blocked with SBUF accumulation), as knobs of one emitter:

| key      | values                          | meaning                                                        |
|----------|---------------------------------|----------------------------------------------------------------|
| tn       | 128, 256, 512                   | moving free size of one matmul (N columns per PSUM tile)       |
| bm, bn   | powers of two                   | tiles per block in M (128 rows each) and N (tn columns each)   |
| bk       | divisor of K/128                | K tiles per block; K/128 means the whole K in one block        |
| loads    | inner, block, outer             | operands loaded inside the k loop, once per block, or the      |
|          |                                 | outer-loop operand kept resident over the inner block loop     |
| order    | mn, nm                          | which block loop is outer                                      |
| acc      | sbuf, psum                      | with several K blocks: fp32 SBUF accumulator, or PSUM tiles    |
|          |                                 | that stay live across K blocks                                 |
| mm       | matmul, nc_matmul               | nl.matmul(transpose_x=True) or nisa.nc_matmul                  |
| evict    | copy, vector, scalar            | PSUM/SBUF -> bf16 copy: nl.copy or tensor_copy on an engine    |
| loop     | affine, sequential              | kind of the block loops                                        |
| coalesce | bool                            | stage a block of results in SBUF and store it with one DMA     |
| alloc    | loop, hoisted                   | operand blocks allocated in their loop (rotating buffers), or  |
|          |                                 | once at the top (a single buffer: loads wait for the matmuls)  |
| stat     | lhsT, rhs                       | stationary operand; with rhs the kernel computes result.T tiles |
|          |                                 | (tn then tiles M) and transposes them back (only tn, bm, bn)   |
| inner    | nk, kn                          | bn loop outside the k loop, or inside it (the stationary tile  |
|          |                                 | then serves the whole N block: fewer LoadStationary switches)  |
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import Transform, schedule_comment
from autocomp_env.targets.trainium.common import (
    SBUF_BYTES,
    P,
    TrainiumMovesFamily,
    divisors_pow2,
    inject_from,
    parse_plan_items,
)
from autocomp_env.targets.trainium.menu import MENU
from simulators.trainium.kernels import KernelSpec

GEMM_FAULTS = [
    (
        r"nl\.affine_range\((\w+) // (BLOCK_K|TILE_K)\)",
        r"nl.affine_range(\1 // \2 - 1)",
        "wrong loop bound: last K block skipped",
    ),
    (
        r"(\w+) \+= (nl\.matmul|nisa\.nc_matmul)",
        r"\1[...] = \2",
        "overwrote the PSUM accumulator instead of accumulating",
    ),
    (r"transpose_x=True", "transpose_x=False", "lost transpose_x: lhsT multiplied as if it were not transposed"),
    (r"\(m \+ 1\) \* BLOCK_M\]", "(m + 1) * BLOCK_M + 1]", "off-by-one slice end on the M block"),
    (r"(kt|k) \* TILE_K:", r"\1 * TILE_K + 1:", "off-by-one start address of a K tile"),
    (
        r"stationary=(\w+(\[[^\]]*\])?), moving=(\w+(\[[^\]]*\])?)",
        r"stationary=\3, moving=\1",
        "swapped stationary and moving operands",
    ),
    (
        r"for bk in nl\.affine_range\(TILES_IN_BLOCK_K\)",
        "for bk in nl.affine_range(TILES_IN_BLOCK_K - 1)",
        "wrong loop bound: the last K tile of every block is skipped",
    ),
]


class TrainiumGemm(TrainiumMovesFamily):
    name = "gemm"
    flagship = "trainium-tutorial:2"

    def spec(self, parsed: KernelSpec) -> dict[str, Any]:
        d = parsed.d
        for axis in ("M", "K", "N"):
            if d[axis] % P:
                raise ValueError(f"gemm {axis}={d[axis]} is not a multiple of {P}; this family tiles by {P}")
        return {"M": d["M"], "K": d["K"], "N": d["N"], "dtype": "bfloat16"}

    def small_name(self, spec: dict[str, Any]) -> str:
        return f"trainium/gemm-{min(spec['M'], 256)}x{min(spec['K'], 512)}x{min(spec['N'], 512)}-bf16"

    # --- schedules -------------------------------------------------------------------------------------------
    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        # The "tiled" tutorial kernel: every tile loaded inside the k loop, one PSUM tile per output tile.
        return {
            "tn": min(512, self._tn_choices(kernel)[-1]),
            "bm": 1,
            "bn": 1,
            "bk": kernel.spec["K"] // P,
            "loads": "inner",
            "order": "mn",
            "acc": "sbuf",
            "mm": "matmul",
            "evict": "copy",
            "loop": "affine",
            "coalesce": False,
            "inner": "nk",
            "alloc": "loop",
            "stat": "lhsT",
        }

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        M, K, N = kernel.spec["M"], kernel.spec["K"], kernel.spec["N"]
        tn = self._tn_choices(kernel)[-1]
        s = self.naive_schedule(kernel)
        s.update(tn=tn, loads="block", order="nm", evict="scalar", coalesce=True, inner="kn")
        s["bm"] = max(d for d in divisors_pow2(M // P, 16))
        s["bn"] = max(d for d in divisors_pow2(N // tn, 2))
        s["bk"] = max(d for d in divisors_pow2(K // P, 8))
        while self.sbuf_bytes(kernel, s) > SBUF_BYTES and s["bm"] > 1:
            s["bm"] //= 2
        return s

    def _tn_choices(self, kernel: Kernel) -> list[int]:
        return [t for t in (128, 256, 512) if kernel.spec["N"] % t == 0]

    def sbuf_bytes(self, kernel: Kernel, s: dict[str, Any]) -> int:
        """Per-partition SBUF bytes the schedule keeps live (an estimate for pruning): every tile is declared
        inside an affine_range loop, so it gets two rotating buffers."""
        kt = kernel.spec["K"] // P
        outer = "m" if s["order"] == "mn" else "n"
        if s["loads"] == "inner":
            lhs, rhs = P * 2, s["tn"] * 2
        else:
            lhs_k = kt if s["loads"] == "outer" and outer == "m" else s["bk"]
            rhs_k = kt if s["loads"] == "outer" and outer == "n" else s["bk"]
            lhs, rhs = lhs_k * s["bm"] * P * 2, rhs_k * s["bn"] * s["tn"] * 2
        kblocks = kt // s["bk"]
        acc = s["bm"] * s["bn"] * s["tn"] * 4 if kblocks > 1 and s["acc"] == "sbuf" else 0
        out = s["bm"] * s["bn"] * s["tn"] * 2 if s["coalesce"] or kblocks > 1 else s["tn"] * 2
        return 2 * (lhs + rhs + acc + out)

    def psum_ok(self, s: dict[str, Any]) -> bool:
        return s["bm"] * s["bn"] * s["tn"] * 4 <= 8 * 2048  # 8 banks of 2 KiB per partition

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        M, K, N = kernel.spec["M"], kernel.spec["K"], kernel.spec["N"]
        if s.get("stat") == "rhs":  # tn tiles M (moving), N is tiled by 128 (stationary); all of K per block
            if s["tn"] not in (128, 256, 512) or M % s["tn"] or (M // s["tn"]) % s["bm"] or (N // P) % s["bn"]:
                return False
            return 2 * (K // P) * (s["bm"] * s["tn"] + s["bn"] * P) * 2 <= SBUF_BYTES
        if s["tn"] not in self._tn_choices(kernel):
            return False
        if (M // P) % s["bm"] or (N // s["tn"]) % s["bn"] or (K // P) % s["bk"]:
            return False
        if s["acc"] == "psum" and K // P // s["bk"] > 1 and not self.psum_ok(s):
            return False
        if s["inner"] == "kn" and s["bn"] * s["tn"] * 4 > 8 * 2048:
            return False
        return self.sbuf_bytes(kernel, s) <= SBUF_BYTES

    def fit(self, kernel: Kernel, schedule: dict[str, Any]) -> dict[str, Any]:
        """`schedule` adapted to another shape: block sizes clamped to what `kernel` divides (schedule reuse)."""
        s = dict(self.naive_schedule(kernel), **schedule)
        M, K, N = kernel.spec["M"], kernel.spec["K"], kernel.spec["N"]
        if s["stat"] == "rhs":
            s["tn"] = max(t for t in (128, 256, 512) if M % t == 0 and t <= max(s["tn"], 128))
            s["bm"] = max(d for d in divisors_pow2(M // s["tn"], s["bm"]))
            s["bn"] = max(d for d in divisors_pow2(N // P, s["bn"]))
            while not self.valid(kernel, s) and s["bm"] * s["bn"] > 1:
                key = "bm" if s["bm"] >= s["bn"] else "bn"
                s[key] //= 2
            return s
        if s["tn"] not in self._tn_choices(kernel):
            s["tn"] = self._tn_choices(kernel)[-1]
        s["bm"] = max(d for d in divisors_pow2(M // P, s["bm"]))
        s["bn"] = max(d for d in divisors_pow2(N // s["tn"], s["bn"]))
        s["bk"] = max(d for d in divisors_pow2(K // P, s["bk"])) if (K // P) % s["bk"] else s["bk"]
        while not self.valid(kernel, s) and s["bm"] * s["bn"] > 1:
            key = "bm" if s["bm"] >= s["bn"] else "bn"
            s[key] //= 2
        return s

    # --- emitter ---------------------------------------------------------------------------------------------
    def emit(self, kernel: Kernel, schedule: dict[str, Any]) -> str:
        s = self.complete(kernel, schedule)
        if s["stat"] == "rhs":
            return self._emit_rhs_stationary(s)
        K = kernel.spec["K"]
        kblocks = K // P // s["bk"]
        psum_acc = kblocks > 1 and s["acc"] == "psum"
        sbuf_acc = kblocks > 1 and not psum_acc
        loop_fn = "nl.affine_range" if s["loop"] == "affine" else "nl.sequential_range"
        outer, inner = ("m", "n") if s["order"] == "mn" else ("n", "m")
        L: list[str] = []
        w = L.append
        w(schedule_comment(s, "python"))
        w("@nki.jit")
        w("def solution(lhsT, rhs):")
        w('    """result[M, N] = lhsT.T @ rhs: bf16 in and out, fp32 accumulation in PSUM."""')
        w("    K, M = lhsT.shape")
        w("    _, N = rhs.shape")
        w(f"    TILE_M = {P}  # stationary free size (nl.tile_size.gemm_stationary_fmax)")
        w(f"    TILE_K = {P}  # contraction runs over the partition dimension")
        w(f"    TILE_N = {s['tn']}  # moving free size (at most nl.tile_size.gemm_moving_fmax)")
        w(f"    TILES_IN_BLOCK_M = {s['bm']}")
        w(f"    TILES_IN_BLOCK_N = {s['bn']}")
        w(f"    TILES_IN_BLOCK_K = {s['bk']}")
        w("    BLOCK_M = TILE_M * TILES_IN_BLOCK_M")
        w("    BLOCK_N = TILE_N * TILES_IN_BLOCK_N")
        w("    BLOCK_K = TILE_K * TILES_IN_BLOCK_K")
        w("    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)")
        hoisted = s["alloc"] == "hoisted" and s["loads"] != "inner"
        if hoisted:
            w("    # operand blocks allocated once and reused by every iteration")
            for op in ("m", "n"):
                whole = s["loads"] == "outer" and op == outer
                name = "lhsT" if op == "m" else "rhs"
                w(f"    {name}_block = {self._block_decl(op, 'K // TILE_K' if whole else 'TILES_IN_BLOCK_K')}")
        w("")
        ind = "    "
        if s["loads"] == "outer":
            w(
                f"{ind}# The {'lhsT' if outer == 'm' else 'rhs'} block of one outer iteration stays resident over all of K."
            )
        w(f"{ind}for {outer} in {loop_fn}({outer.upper()} // BLOCK_{outer.upper()}):")
        ind += "    "
        if s["loads"] == "outer":
            self._emit_block_load(w, ind, outer, "kt", "K // TILE_K", whole_k=True, declare=not hoisted)
        w(f"{ind}for {inner} in {loop_fn}({inner.upper()} // BLOCK_{inner.upper()}):")
        ind += "    "
        if sbuf_acc:
            w(f"{ind}# fp32 partial sums of the output block, accumulated over the K blocks")
            w(f"{ind}acc = nl.zeros((TILES_IN_BLOCK_M, nl.par_dim(TILE_M), BLOCK_N), dtype=nl.float32, buffer=nl.sbuf)")
        if psum_acc:
            w(f"{ind}# one PSUM tile per output tile, live across the K blocks")
            w(
                f"{ind}res_psum = nl.zeros((TILES_IN_BLOCK_M * TILES_IN_BLOCK_N, nl.par_dim(TILE_M), TILE_N), dtype=nl.float32, buffer=nl.psum)"
            )
        if s["coalesce"] and kblocks == 1:
            w(
                f"{ind}out_block = nl.ndarray((TILES_IN_BLOCK_M, nl.par_dim(TILE_M), BLOCK_N), dtype=lhsT.dtype, buffer=nl.sbuf)"
            )
        if kblocks > 1:
            w(f"{ind}for kb in {loop_fn}(K // BLOCK_K):")
            ind += "    "
        kexpr = "kb * TILES_IN_BLOCK_K + bk" if kblocks > 1 else "bk"
        if s["loads"] != "inner":
            for op in ("m", "n"):
                if s["loads"] == "outer" and op == outer:
                    continue
                self._emit_block_load(
                    w, ind, op, "bk", "TILES_IN_BLOCK_K", whole_k=False, kexpr=kexpr, declare=not hoisted
                )
        m0 = "m * BLOCK_M + bm * TILE_M"
        n0 = "n * BLOCK_N + bn * TILE_N"
        k0 = f"({kexpr}) * TILE_K" if kblocks > 1 else "bk * TILE_K"
        reuse = s["inner"] == "kn"  # bk outside bn: one stationary tile serves TILES_IN_BLOCK_N matmuls
        w(f"{ind}for bm in nl.affine_range(TILES_IN_BLOCK_M):")
        if psum_acc:
            ps = "res_psum[bm * TILES_IN_BLOCK_N + bn]"
        elif reuse:
            ps = "res_psum[bn]"
            w(
                f"{ind}    res_psum = nl.zeros((TILES_IN_BLOCK_N, nl.par_dim(TILE_M), TILE_N), dtype=nl.float32, buffer=nl.psum)"
            )
        else:
            ps = "res_psum"
        if reuse:
            w(f"{ind}    for bk in nl.affine_range(TILES_IN_BLOCK_K):")
            if s["loads"] == "inner":
                w(f"{ind}        lhsT_tile = nl.load(lhsT[{k0}:{k0} + TILE_K, {m0}:{m0} + TILE_M])")
            w(f"{ind}        for bn in nl.affine_range(TILES_IN_BLOCK_N):")
            ind3 = ind + "            "
            if s["loads"] == "inner":
                w(f"{ind3}rhs_tile = nl.load(rhs[{k0}:{k0} + TILE_K, {n0}:{n0} + TILE_N])")
        else:
            w(f"{ind}    for bn in nl.affine_range(TILES_IN_BLOCK_N):")
            if not psum_acc:
                w(f"{ind}        res_psum = nl.zeros((TILE_M, TILE_N), dtype=nl.float32, buffer=nl.psum)")
            w(f"{ind}        for bk in nl.affine_range(TILES_IN_BLOCK_K):")
            ind3 = ind + "            "
            if s["loads"] == "inner":
                w(f"{ind3}lhsT_tile = nl.load(lhsT[{k0}:{k0} + TILE_K, {m0}:{m0} + TILE_M])")
                w(f"{ind3}rhs_tile = nl.load(rhs[{k0}:{k0} + TILE_K, {n0}:{n0} + TILE_N])")
        if s["loads"] == "inner":
            lt, rt = "lhsT_tile", "rhs_tile"
        else:
            lsel = kexpr if s["loads"] == "outer" and outer == "m" else "bk"  # the resident block spans all of K
            rsel = kexpr if s["loads"] == "outer" and outer == "n" else "bk"
            lt = f"lhsT_block[{lsel}, :, bm * TILE_M:(bm + 1) * TILE_M]"
            rt = f"rhs_block[{rsel}, :, bn * TILE_N:(bn + 1) * TILE_N]"
        if s["mm"] == "matmul":
            w(f"{ind3}{ps} += nl.matmul({lt}, {rt}, transpose_x=True)")
        else:
            w(f"{ind3}{ps} += nisa.nc_matmul(stationary={lt}, moving={rt})")
        ind2 = ind + "        "
        if reuse and not psum_acc:
            w(f"{ind}    for bn in nl.affine_range(TILES_IN_BLOCK_N):")
        if sbuf_acc:
            w(
                f"{ind2}acc[bm, :, bn * TILE_N:(bn + 1) * TILE_N] = nl.add(acc[bm, :, bn * TILE_N:(bn + 1) * TILE_N], {ps})"
            )
        elif not psum_acc:
            if s["coalesce"]:
                w(f"{ind2}out_block[bm, :, bn * TILE_N:(bn + 1) * TILE_N] = {self._evict(s, ps)}")
            else:
                w(f"{ind2}res_sb = {self._evict(s, ps)}")
                w(f"{ind2}nl.store(result[{m0}:{m0} + TILE_M, {n0}:{n0} + TILE_N], value=res_sb)")
        if kblocks > 1:
            ind = ind[:-4]
        if psum_acc:
            w(f"{ind}for bm in nl.affine_range(TILES_IN_BLOCK_M):")
            w(f"{ind}    for bn in nl.affine_range(TILES_IN_BLOCK_N):")
            w(f"{ind}        res_sb = {self._evict(s, 'res_psum[bm * TILES_IN_BLOCK_N + bn]')}")
            w(f"{ind}        nl.store(result[{m0}:{m0} + TILE_M, {n0}:{n0} + TILE_N], value=res_sb)")
        if sbuf_acc or (s["coalesce"] and kblocks == 1):
            w(f"{ind}# one store per row of tiles: TILE_M partitions x BLOCK_N columns")
            w(f"{ind}for bm in nl.affine_range(TILES_IN_BLOCK_M):")
            if sbuf_acc:
                w(f"{ind}    res_sb = {self._evict(s, 'acc[bm]')}")
            else:
                w(f"{ind}    res_sb = out_block[bm]")
            w(f"{ind}    nl.store(result[{m0}:{m0} + TILE_M, n * BLOCK_N:(n + 1) * BLOCK_N], value=res_sb)")
        w("    return result")
        return "\n".join(L) + "\n"

    @staticmethod
    def _emit_rhs_stationary(s: dict[str, Any]) -> str:
        """result.T tiles with rhs as the stationary operand, transposed back to result on the Tensor engine."""
        L = [
            schedule_comment(s, "python"),
            "@nki.jit",
            "def solution(lhsT, rhs):",
            '    """result[M, N] = lhsT.T @ rhs, computed as result.T = rhs.T @ lhsT with rhs stationary; bf16 in/out."""',
            "    K, M = lhsT.shape",
            "    _, N = rhs.shape",
            "    TILE_K = 128  # contraction runs over the partition dimension",
            "    TILE_N = 128  # stationary free size: result columns per matmul",
            f"    TILE_M = {s['tn']}  # moving free size: result rows per matmul",
            f"    TILES_IN_BLOCK_M = {s['bm']}",
            f"    TILES_IN_BLOCK_N = {s['bn']}",
            "    BLOCK_M = TILE_M * TILES_IN_BLOCK_M",
            "    BLOCK_N = TILE_N * TILES_IN_BLOCK_N",
            "    result = nl.ndarray((M, N), dtype=lhsT.dtype, buffer=nl.shared_hbm)",
            "",
            "    for m in nl.affine_range(M // BLOCK_M):",
            "        for n in nl.affine_range(N // BLOCK_N):",
            "            lhsT_block = nl.ndarray((K // TILE_K, nl.par_dim(TILE_K), BLOCK_M), dtype=lhsT.dtype, buffer=nl.sbuf)",
            "            rhs_block = nl.ndarray((K // TILE_K, nl.par_dim(TILE_K), BLOCK_N), dtype=rhs.dtype, buffer=nl.sbuf)",
            "            for kt in nl.affine_range(K // TILE_K):",
            "                lhsT_block[kt] = nl.load(lhsT[kt * TILE_K:(kt + 1) * TILE_K, m * BLOCK_M:(m + 1) * BLOCK_M])",
            "                rhs_block[kt] = nl.load(rhs[kt * TILE_K:(kt + 1) * TILE_K, n * BLOCK_N:(n + 1) * BLOCK_N])",
            "            for bn in nl.affine_range(TILES_IN_BLOCK_N):",
            "                for bm in nl.affine_range(TILES_IN_BLOCK_M):",
            "                    resT_psum = nl.zeros((TILE_N, TILE_M), dtype=nl.float32, buffer=nl.psum)",
            "                    for kt in nl.affine_range(K // TILE_K):",
            "                        resT_psum += nisa.nc_matmul(",
            "                            stationary=rhs_block[kt, :, bn * TILE_N:(bn + 1) * TILE_N],",
            "                            moving=lhsT_block[kt, :, bm * TILE_M:(bm + 1) * TILE_M],",
            "                        )",
            "                    resT = nl.copy(resT_psum, dtype=result.dtype)  # [TILE_N, TILE_M]: a tile of result.T",
            "                    for c in nl.affine_range(TILE_M // 128):",
            "                        res_tile = nl.copy(nisa.nc_transpose(resT[:, c * 128:(c + 1) * 128]), dtype=result.dtype)",
            "                        r0 = m * BLOCK_M + bm * TILE_M + c * 128",
            "                        c0 = n * BLOCK_N + bn * TILE_N",
            "                        nl.store(result[r0:r0 + 128, c0:c0 + TILE_N], value=res_tile)",
            "    return result",
        ]
        return "\n".join(L) + "\n"

    @staticmethod
    def _evict(s: dict[str, Any], src: str) -> str:
        if s["evict"] == "copy":
            return f"nl.copy({src}, dtype=result.dtype)"
        engine = "nisa.vector_engine" if s["evict"] == "vector" else "nisa.scalar_engine"
        return f"nisa.tensor_copy({src}, dtype=result.dtype, engine={engine})"

    @staticmethod
    def _block_decl(op: str, count: str) -> str:
        src, block = ("lhsT", "BLOCK_M") if op == "m" else ("rhs", "BLOCK_N")
        return f"nl.ndarray(({count}, nl.par_dim(TILE_K), {block}), dtype={src}.dtype, buffer=nl.sbuf)"

    @staticmethod
    def _emit_block_load(
        w, ind: str, op: str, var: str, count: str, whole_k: bool, kexpr: str = "", declare: bool = True
    ) -> None:
        name, src, block, width = ("lhsT", "lhsT", "BLOCK_M", "m") if op == "m" else ("rhs", "rhs", "BLOCK_N", "n")
        rows = f"{var} * TILE_K" if whole_k else f"({kexpr}) * TILE_K"
        if declare:
            w(f"{ind}{name}_block = {TrainiumGemm._block_decl(op, count)}")
        w(f"{ind}for {var} in nl.affine_range({count}):")
        w(f"{ind}    # one DMA per K tile: TILE_K partitions x {block} contiguous elements")
        w(
            f"{ind}    {name}_block[{var}] = nl.load({src}[{rows}:{rows} + TILE_K, {width} * {block}:({width} + 1) * {block}])"
        )

    # --- baselines -------------------------------------------------------------------------------------------
    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        """The tutorial's block-free-dimension kernel (straightforward nl.matmul NKI): blocks of M x N tiles, each
        loaded over all of K, with the blocks that fit SBUF and move the fewest HBM bytes."""
        M, K, N = kernel.spec["M"], kernel.spec["K"], kernel.spec["N"]
        best, best_bytes = self.naive_schedule(kernel), float("inf")
        for tn in self._tn_choices(kernel):
            for bm in divisors_pow2(M // P, 64):
                for bn in divisors_pow2(N // tn, 64):
                    s = dict(self.naive_schedule(kernel), loads="block", tn=tn, bm=bm, bn=bn)
                    traffic = M * K * N / (bn * tn) + K * N * M / (bm * P)
                    if self.valid(kernel, s) and traffic < best_bytes:
                        best, best_bytes = s, traffic
        return best

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        vendor = self.vendor_schedule(kernel)
        return {
            "vendor": self.emit(kernel, vendor),
            "expert": self.emit(kernel, self.expert_schedule(kernel)),
            "naive": self.starting_code(kernel),
        }

    # --- transformations -------------------------------------------------------------------------------------
    def _moves(self, kernel: Kernel, s: dict[str, Any], item: int, params: dict[str, Any]) -> list[tuple[dict, str]]:
        """All (new schedule, description) pairs menu item `item` can produce from `s` (valid and different)."""
        if not 0 <= item < len(MENU):
            return []
        s = self.complete(kernel, s)
        K = kernel.spec["K"]
        kt = K // P
        kblocks = kt // s["bk"]
        name = MENU[item]
        out: list[tuple[dict, str]] = []

        def add(desc: str, **kw: Any) -> None:
            t = dict(s)
            t.update(kw)
            if s["stat"] == "rhs" and kw.get("stat") != "lhsT" and set(kw) - {"bm", "bn", "tn"}:
                return  # the rhs-stationary kernel has only its tile sizes as knobs
            if t != s and self.valid(kernel, t):
                out.append((t, desc))

        def grow(key: str, label: str) -> None:
            for f in (2, 4):
                add(f"{label} x{f} ({s[key]} -> {s[key] * f} tiles per block)", **{key: s[key] * f})

        def set_sizes() -> None:
            want = {"block_m": "bm", "block_n": "bn", "block_k": "bk"}
            for pk, key in want.items():
                if pk in params:
                    add(f"set TILES_IN_BLOCK_{key[1].upper()} = {params[pk]}", **{key: int(params[pk])})
            if "tile_n" in params:
                add(f"set TILE_N = {params['tile_n']}", tn=int(params["tile_n"]))
            if "tile_m" in params and params["tile_m"] > P:
                add(f"set BLOCK_M = {params['tile_m']}", bm=int(params["tile_m"]) // P)
            if "tile_k" in params and params["tile_k"] >= P:
                add(f"set BLOCK_K = {params['tile_k']}", bk=int(params["tile_k"]) // P)

        if name in (
            "reduce data movement",
            "cache reused data in local memory",
            "hoist redundant operations out of loops",
        ):
            if s["loads"] == "inner" and s["bm"] * s["bn"] > 1:  # with 1x1 blocks this alone saves nothing
                add("hoist the operand loads out of the k loop: load each block once", loads="block")
            if s["loads"] == "inner":
                add(
                    "hoist the outer operand's loads out of the inner loops: it stays resident over all of K",
                    loads="outer",
                )
            if s["loads"] == "block" and name != "hoist redundant operations out of loops":
                add("keep the outer operand's block resident over the inner block loop", loads="outer")
            if s["loads"] == "block" and name == "hoist redundant operations out of loops":
                add("hoist the outer operand's load out of the inner block loop", loads="outer")
            if name == "reduce data movement":
                grow("bm", "grow the M block")
                grow("bn", "grow the N block")
        elif name == "keep reused data resident in SBUF":
            if s["loads"] != "outer":
                add("keep the outer operand resident in SBUF over all of K", loads="outer")
        if name in (
            "double buffering",
            "multi-buffer tiles with modular allocation",
            "declare buffers inside inner loops to shorten their lifetimes",
        ):
            if s["alloc"] == "hoisted" and s["loads"] != "inner":
                add("allocate the operand blocks inside their loops, so each gets rotating buffers", alloc="loop")
        if name in ("overlap data movement and compute", "double buffering", "software pipelining"):
            if s["loop"] == "sequential":
                add("use affine_range so the compiler pipelines loads with matmuls", loop="affine")
            if s["loads"] != "inner":
                for bk in divisors_pow2(kt, kt // 2 if kt > 1 else 1):
                    if bk < s["bk"] and bk >= 2:
                        add(f"split K into blocks of {bk} tiles so the next block's loads overlap the matmuls", bk=bk)
        elif name == "loop tiling":
            if params:
                set_sizes()
            if not out:
                for key, label in (("bm", "M"), ("bn", "N"), ("bk", "K")):
                    for v in divisors_pow2(
                        kt if key == "bk" else (kernel.spec["M"] // P if key == "bm" else kernel.spec["N"] // s["tn"]),
                        64,
                    ):
                        add(f"TILES_IN_BLOCK_{label} = {v}", **{key: v})
        elif name == "try new parameter values":
            if params:
                set_sizes()
            if not out:
                for key in ("bm", "bn", "bk"):
                    for f in (2, 0.5):
                        v = int(s[key] * f)
                        if v >= 1:
                            add(f"TILES_IN_BLOCK_{key[1].upper()}: {s[key]} -> {v}", **{key: v})
                for tn in self._tn_choices(kernel):
                    add(f"TILE_N: {s['tn']} -> {tn}", tn=tn, bn=max(1, s["bn"] * s["tn"] // tn))
        elif name == "loop reordering and restructuring":
            add("swap the M and N block loops", order="nm" if s["order"] == "mn" else "mn")
            if s["inner"] == "nk":
                add("move the k loop outside the bn loop so one stationary tile feeds the whole N block", inner="kn")
            else:
                add("move the bn loop outside the k loop", inner="nk")
        elif name == "fuse operations":
            if kblocks > 1 and s["acc"] == "sbuf":
                add("fuse the K blocks: one PSUM accumulation group over all of K", bk=kt)
        elif name == "use affine_range instead of sequential_range where there are no loop-carried dependencies":
            if s["loop"] == "sequential":
                add("use affine_range for the block loops", loop="affine")
        elif name == "accumulate partial matmuls in PSUM":
            if kblocks > 1 and s["acc"] == "sbuf":
                add("keep the output tiles in PSUM across K blocks instead of adding into SBUF", acc="psum")
        elif name == "make the matrix with the large free axis the stationary operand":
            if s["inner"] == "nk" and s["bn"] > 1:
                add("keep each lhsT tile stationary while the whole N block streams through", inner="kn")
            M, N = kernel.spec["M"], kernel.spec["N"]
            if s["stat"] == "lhsT" and N > M:
                tm = max(t for t in (128, 256, 512) if M % t == 0)
                add(
                    "make rhs (larger free axis) stationary: compute result.T tiles and transpose them back",
                    stat="rhs",
                    tn=tm,
                    bm=1,
                    bn=1,
                )
            if s["stat"] == "rhs" and M >= N:
                add("make lhsT (larger free axis) the stationary operand again", **self._lhs_defaults(kernel, s))
        elif name == "use nc_matmul with pre-transposed inputs":
            if s["mm"] == "matmul":
                add("call nisa.nc_matmul on the pre-transposed lhsT directly", mm="nc_matmul")
        elif name == "make DMA transfers at least 32 KiB":
            if s["loads"] == "inner":
                if s["bm"] * s["bn"] > 1:
                    add("load whole block rows per DMA instead of single tiles", loads="block")
                for key, label in (("bm", "M"), ("bn", "N")):
                    for f in (2, 4):
                        add(
                            f"load {label} blocks of {s[key] * f} tiles per DMA row", loads="block", **{key: s[key] * f}
                        )
            else:
                grow("bm", "widen the lhsT DMA rows: M block")
                grow("bn", "widen the rhs DMA rows: N block")
        elif name == "use free dimensions of at least 128 to amortize instruction overhead":
            for tn in self._tn_choices(kernel):
                if tn > s["tn"]:
                    add(f"TILE_N {s['tn']} -> {tn}", tn=tn, bn=max(1, s["bn"] * s["tn"] // tn))
        elif name == "coalesce small result tiles before a store":
            if not s["coalesce"] and kblocks == 1:
                add("stage each block of results in SBUF and store a row of tiles per DMA", coalesce=True)
        elif name == "other methods not listed here":
            if s["stat"] == "rhs":
                add("compute result tiles directly with lhsT stationary", **self._lhs_defaults(kernel, s))
            if s["alloc"] == "loop" and s["loads"] != "inner":
                add("allocate the operand blocks once, outside the loops", alloc="hoisted")
            for ev in ("copy", "vector", "scalar"):
                add(f"evict PSUM with {ev if ev != 'copy' else 'nl.copy'}", evict=ev)
            if s["loop"] == "affine":
                add("use sequential_range for the block loops", loop="sequential")
            if s["mm"] == "nc_matmul":
                add("use nl.matmul(transpose_x=True)", mm="matmul")
        return out

    def _lhs_defaults(self, kernel: Kernel, s: dict[str, Any]) -> dict[str, Any]:
        n = self.naive_schedule(kernel)
        return {"stat": "lhsT", "tn": n["tn"], "bm": 1, "bn": 1, "bk": n["bk"], "loads": "block"}

    def apply(
        self, kernel: Kernel, schedule: dict[str, Any], item: int, params: dict[str, Any], rng: np.random.Generator
    ) -> Transform | None:
        named = []
        if params and MENU[item] in ("loop tiling", "try new parameter values"):
            named = [m for m in self._moves(kernel, schedule, item, params) if m[1].startswith("set ")]
        if not named:
            return super().apply(kernel, schedule, item, params, rng)
        s = dict(schedule)  # apply everything the plan named, in one step
        for t, _ in named:
            s.update({k: v for k, v in t.items() if t[k] != schedule[k]})
        if self.valid(kernel, s) and s != schedule:
            return Transform(s, "; ".join(d for _, d in named))
        t, desc = named[int(rng.integers(len(named)))]
        return Transform(t, desc)

    def parse_plan(self, text: str) -> list[tuple[int, dict[str, Any]]]:
        return parse_plan_items(text, set(range(len(self.menu))))

    def inject_fault(self, kernel: Kernel, code: str, rng: np.random.Generator) -> tuple[str, str]:
        return inject_from(code, GEMM_FAULTS, rng)


FAMILY = TrainiumGemm()
