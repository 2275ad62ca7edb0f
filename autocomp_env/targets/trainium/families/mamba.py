"""Trainium `mamba` family: the selective scan of the NKI fused-mamba tutorial.

`trainium/mamba-{B}x{C}x{L}x{S}`: for every state s, dA = exp(delta * A[:, s]), dBu = delta * u * B[s],
h = dA * h + dBu scanned over L, out += C[s] * h. Channels go on partitions (128 per tile), L on the free dim.
"""

from __future__ import annotations

from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import schedule_comment
from autocomp_env.schedules.knobs import Knob
from autocomp_env.targets.trainium.common import ANY, TrainiumKnobFamily, check_channels, divisors, indent
from autocomp_env.targets.trainium.menu import ITEM


class Mamba(TrainiumKnobFamily):
    name = "mamba"
    flagship = "trainium-tutorial:3"
    small_dims = (1, 128, 256, 16)
    number_params = ("lchunk",)

    def check(self, d: dict[str, int]) -> None:
        check_channels(d, "mamba")

    def knobs(self, kernel: Kernel) -> tuple[Knob, ...]:
        resident = {
            ITEM["hoist redundant operations out of loops"]: True,
            ITEM["cache reused data in local memory"]: True,
            ITEM["keep reused data resident in SBUF"]: True,
            ITEM["reduce data movement"]: True,
        }
        return (
            Knob("hoist_loads", "load delta, u and A once per channel tile", lambda k: (False, True), resident),
            Knob(
                "hoist_du",
                "compute delta * u once per channel tile instead of once per state",
                lambda k: (False, True),
                {
                    ITEM["eliminate redundant computation"]: True,
                    ITEM["hoist redundant operations out of loops"]: True,
                    ITEM["rewrite the algorithm to reduce total work"]: True,
                },
            ),
            Knob(
                "order",
                "loop order (cs: channel tiles outside states; sc: states outside, B/C broadcast once per state)",
                lambda k: ("cs", "sc"),
                {
                    ITEM["loop reordering and restructuring"]: ANY,
                    ITEM["eliminate redundant computation"]: "sc",
                },
            ),
            Knob(
                "lchunk",
                "sequence chunk per scan (carry passed between chunks)",
                lambda k: divisors(k.spec["L"], 128),
                {
                    ITEM["use tensor_tensor_scan instead of sequential loops"]: "up",
                    ITEM["use free dimensions of at least 128 to amortize instruction overhead"]: "up",
                    ITEM["loop tiling"]: ANY,
                    ITEM["software pipelining"]: "down",
                    ITEM["declare buffers inside inner loops to shorten their lifetimes"]: "down",
                },
                numeric=True,
            ),
            Knob(
                "gpsimd_ops",
                "element-wise ops moved from VectorE to GpSimd (none; C*h; C*h and the accumulate; also B*du)",
                lambda k: ("none", "mul", "mul_acc", "all"),
                {
                    ITEM["software pipelining"]: ANY,
                    ITEM["overlap data movement and compute"]: ("mul", "mul_acc"),
                },
            ),
            Knob(
                "bcast",
                "partition broadcast of B[s], C[s] (broadcast_to, or a ones-matmul evicted by ScalarE)",
                lambda k: ("broadcast_to", "matmul"),
                {
                    ITEM["use the Tensor engine for cross-partition reductions and reshapes"]: "matmul",
                    ITEM["accumulate partial matmuls in PSUM"]: "matmul",
                },
            ),
        )

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        return s["hoist_loads"] or not s["hoist_du"]

    def implied(self, kernel: Kernel, s: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
        s = {**s, name: value}
        if name == "hoist_du" and value:
            s["hoist_loads"] = True
        if name == "hoist_loads" and not value:
            s["hoist_du"] = False
        return s

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {
            "hoist_loads": False,
            "hoist_du": False,
            "order": "cs",
            "lchunk": kernel.spec["L"],
            "gpsimd_ops": "none",
            "bcast": "broadcast_to",
        }

    # --- emitter -------------------------------------------------------------------------------------
    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        B, C, L, S = (kernel.spec[k] for k in ("B", "C", "L", "S"))
        nct = C // 128
        sc = s["order"] == "sc"
        L_ = [
            "@nki.jit",
            "def solution(delta, u, A, B, C):",
            f"    # Selective scan: delta, u [{B}, {C}, {L}], A [{C}, {S}], B, C [{B}, {S}, {L}], f32.",
            f"    out = nl.ndarray(({B}, {C}, {L}), dtype=delta.dtype, buffer=nl.shared_hbm)",
        ]
        if s["bcast"] == "matmul":
            L_.append("    ones_row = nl.ones((1, 128), dtype=nl.float32, buffer=nl.sbuf)")
        L_.append(f"    for ib in nl.affine_range({B}):")
        ch = "ct * 128:(ct + 1) * 128"

        def tile(name: str) -> str:  # where a per-channel-tile tensor lives in this loop order
            return f"{name}_all[ct]" if sc else name

        loads = [
            f"{tile('delta_t')} = nl.load(delta[ib, {ch}, :])" if sc else f"delta_t = nl.load(delta[ib, {ch}, :])",
            f"{tile('u_t')} = nl.load(u[ib, {ch}, :])" if sc else f"u_t = nl.load(u[ib, {ch}, :])",
        ]
        du = f"du = nisa.tensor_tensor({tile('delta_t')}, {tile('u_t')}, op=nl.multiply)"
        per_ct = []  # before the state loop
        per_state_ct = []  # inside (state, channel tile)
        if s["hoist_loads"]:
            per_ct += [*loads, f"{tile('A_t')} = nl.load(A[{ch}, :])"]
            a_col = f"{tile('A_t')}[:, s:s + 1]"
            if s["hoist_du"]:
                per_ct.append(du.replace("du =", f"{tile('du')} ="))
            else:
                per_state_ct.append(du)
        else:
            per_state_ct += [
                f"delta_t = nl.load(delta[ib, {ch}, :])",
                f"u_t = nl.load(u[ib, {ch}, :])",
                f"A_col = nl.load(A[{ch}, s:s + 1])",
                "du = nisa.tensor_tensor(delta_t, u_t, op=nl.multiply)",
            ]
            a_col = "A_col"
        d_name = tile("delta_t") if s["hoist_loads"] else "delta_t"
        du_name = tile("du") if s["hoist_du"] else "du"
        acc = tile("acc")
        if s["bcast"] == "broadcast_to":
            bc = [
                "B_row = nl.load(B[ib, s:s + 1, :])",
                "C_row = nl.load(C[ib, s:s + 1, :])",
                f"B_b = B_row.broadcast_to((128, {L}))  # partition broadcast",
                f"C_b = C_row.broadcast_to((128, {L}))",
            ]
        else:
            pw = max(d for d in range(1, min(L, 512) + 1) if L % d == 0)  # one PSUM bank per piece
            q = f"q * {pw}:(q + 1) * {pw}"
            bc = [
                "B_row = nl.load(B[ib, s:s + 1, :])",
                "C_row = nl.load(C[ib, s:s + 1, :])",
                f"B_b = nl.ndarray((128, {L}), dtype=nl.float32, buffer=nl.sbuf)",
                f"C_b = nl.ndarray((128, {L}), dtype=nl.float32, buffer=nl.sbuf)",
                "# broadcast over partitions as a ones-matmul into PSUM, evicted by ScalarE (VectorE stays free)",
                f"for q in nl.affine_range({L // pw}):",
                f"    B_b[:, {q}] = nl.copy(nl.matmul(ones_row, B_row[:, {q}], transpose_x=True))",
                f"    C_b[:, {q}] = nl.copy(nl.matmul(ones_row, C_row[:, {q}], transpose_x=True))",
            ]
        per_state_ct += self._scan(s, L, d_name, a_col, du_name, acc)
        if sc:
            blk = f"(({nct}, nl.par_dim(128), {L}), dtype=nl.float32, buffer=nl.sbuf)"
            body = []
            if s["hoist_loads"]:
                body += [
                    f"delta_t_all = nl.ndarray{blk}",
                    f"u_t_all = nl.ndarray{blk}",
                    f"A_t_all = nl.ndarray(({nct}, nl.par_dim(128), {S}), dtype=nl.float32, buffer=nl.sbuf)",
                ]
                if s["hoist_du"]:
                    body.append(f"du_all = nl.ndarray{blk}")
                body += [f"for ct in nl.affine_range({nct}):", *indent(per_ct, 4)]
            body += [
                f"acc_all = nl.zeros{blk}",
                "# states outside: B[s] and C[s] are broadcast once and reused by every channel tile",
                f"for s in nl.affine_range({S}):",
                *indent(bc, 4),
                f"    for ct in nl.affine_range({nct}):",
                *indent(per_state_ct, 8),
                f"for ct in nl.affine_range({nct}):",
                f"    nl.store(out[ib, {ch}, :], value=acc_all[ct])",
            ]
        else:
            body = [
                f"for ct in nl.affine_range({nct}):",
                *indent(per_ct, 4),
                f"    acc = nl.zeros((128, {L}), dtype=nl.float32, buffer=nl.sbuf)",
                f"    for s in nl.affine_range({S}):",
                *indent(bc + per_state_ct, 8),
                f"    nl.store(out[ib, {ch}, :], value=acc)",
            ]
        L_ += indent(body, 8)
        L_ += ["    return out", "", schedule_comment(s, "python"), ""]
        return "\n".join(L_)

    @staticmethod
    def _scan(s: dict[str, Any], L: int, d: str, a_col: str, du: str, acc: str) -> list[str]:
        g = ", engine=nisa.gpsimd_engine"
        ops = s["gpsimd_ops"]
        mul_e = g if ops != "none" else ""
        dbu_e = g if ops == "all" else ""
        K = s["lchunk"]
        full = K == L
        cols = f"k * {K}:(k + 1) * {K}"
        if full:
            acc_ix = f"{acc}[...]" if "[" not in acc else acc
        else:
            acc_ix = f"{acc}[:, {cols}]" if "[" not in acc else f"{acc[:-1]}, :, {cols}]"
        if ops in ("mul_acc", "all"):
            accumulate = f"{acc_ix} = nisa.tensor_tensor({acc_ix}, hc, op=nl.add{g})"
        else:
            accumulate = f"{acc_ix} += hc"
        if full:
            return [
                f"dA = nisa.activation(op=nl.exp, data={d}, scale={a_col})  # exp(delta * A[:, s])",
                f"dBu = nisa.tensor_tensor({du}, B_b, op=nl.multiply{dbu_e})",
                "h = nisa.tensor_tensor_scan(dA, dBu, initial=0, op0=np.multiply, op1=np.add)",
                f"hc = nisa.tensor_tensor(h, C_b, op=nl.multiply{mul_e})",
                accumulate,
            ]
        return [
            "carry = nl.zeros((128, 1), dtype=nl.float32, buffer=nl.sbuf)",
            f"for k in nl.sequential_range({L // K}):  # the scan state is carried from chunk to chunk",
            f"    dA = nisa.activation(op=nl.exp, data={d}[:, {cols}], scale={a_col})",
            f"    dBu = nisa.tensor_tensor({du}[:, {cols}], B_b[:, {cols}], op=nl.multiply{dbu_e})",
            "    h = nisa.tensor_tensor_scan(dA, dBu, initial=carry, op0=np.multiply, op1=np.add)",
            f"    carry[...] = h[:, {K - 1}:{K}]",
            f"    hc = nisa.tensor_tensor(h, C_b[:, {cols}], op=nl.multiply{mul_e})",
            f"    {accumulate}",
        ]

    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {**self.naive_schedule(kernel), "hoist_loads": True}

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        # Loads and delta*u once per channel tile; every element-wise product on GpSimd (faster clock than
        # VectorE, which keeps the scan): the best the schedule search finds on the flagship.
        return {**self.naive_schedule(kernel), "hoist_loads": True, "hoist_du": True, "gpsimd_ops": "all"}

    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        return [
            (r"initial=0,", r"initial=1.0,", "scan started from 1 instead of 0"),
            (r"op0=np\.multiply, op1=np\.add", r"op0=np.add, op1=np.add", "scan adds the decay instead of multiplying"),
            (r"scale=(\w+(?:\[[^\]]*\])?)(\[:, s:s \+ 1\])?\)", r"scale=1.0)", "dropped A from the exponent"),
            (
                r"B_row = nl\.load\(B\[ib, s:s \+ 1, :\]\)",
                r"B_row = nl.load(C[ib, s:s + 1, :])",
                "loaded C in place of B",
            ),
            (r"carry\[\.\.\.\] = h\[:, (\d+):(\d+)\]", r"carry[...] = h[:, 0:1]", "carried the first element"),
            (r"nl\.store\(out\[ib, ct \* 128:", r"nl.store(out[ib, ct * 128 + 1:", "off-by-one channel offset"),
        ]


FAMILY = Mamba()
