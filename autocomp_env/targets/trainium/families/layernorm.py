"""Trainium `layernorm` family: `trainium/layernorm-{R}x{C}` (an NKI v1 kernel, rows on partitions)."""

from __future__ import annotations

from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.schedules.knobs import Knob
from autocomp_env.targets.trainium.common import indent
from autocomp_env.targets.trainium.menu import ITEM
from autocomp_env.targets.trainium.rows import (
    RowFamily,
    chunk_loop,
    hoist_knob,
    row_kernel,
    row_knobs,
    row_schedule,
)


class LayerNorm(RowFamily):
    """`trainium/layernorm-{R}x{C}`: out = (x - mean) * rsqrt(var + eps) * gamma + beta over axis 1."""

    name = "layernorm"
    flagship = "trainium-tutorial:1"
    small_dims = (256, 512)

    def knobs(self, kernel: Kernel) -> tuple[Knob, ...]:
        return (
            hoist_knob("hoist_gb", "broadcast gamma and beta once outside the row loop"),
            Knob(
                "stats",
                "mean and variance (two-pass; bn_stats/bn_aggr; row sums of x and x^2 on ScalarE)",
                lambda k: ("mean_var", "bn_stats", "scalar_sums"),
                {
                    ITEM["use bn_stats/bn_aggr for mean and variance"]: "bn_stats",
                    ITEM["rewrite the algorithm to reduce total work"]: ("bn_stats", "scalar_sums"),
                    ITEM["eliminate redundant computation"]: "bn_stats",
                    ITEM["software pipelining"]: "scalar_sums",
                    ITEM["fuse operations"]: "scalar_sums",
                },
            ),
            Knob(
                "apply",
                "normalize, scale and shift",
                lambda k: ("naive", "tensor_scalar", "act_fma", "stt"),
                {
                    ITEM["use tensor_scalar broadcast instead of broadcast plus tensor_tensor"]: "tensor_scalar",
                    ITEM["fuse multiply-add with the activation in one activation instruction"]: "act_fma",
                    ITEM["software pipelining"]: "act_fma",
                    ITEM["fuse operations"]: ("tensor_scalar", "stt"),
                },
            ),
            *row_knobs(),
        )

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return row_schedule(kernel.spec["C"], hoist_gb=False, stats="mean_var", apply="naive")

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        R, C = kernel.spec["R"], kernel.spec["C"]
        fc = s["fchunk"]
        nch = C // fc
        bnw = max(c for c in (128, 256, 512) if C % c == 0 and c <= fc) if C % 128 == 0 else C
        L = [
            "@nki.jit",
            "def solution(input_tensor, epsilon, gamma_vector, beta_vector):",
            f"    # LayerNorm of [{R}, {C}] f32 rows: (x - mean) * rsqrt(var + eps) * gamma + beta, 128 rows per tile.",
            f"    out_tensor = nl.ndarray(({R}, {C}), dtype=input_tensor.dtype, buffer=nl.shared_hbm)",
            f"    gamma_row = nl.load(gamma_vector.reshape((1, {C})))",
            f"    beta_row = nl.load(beta_vector.reshape((1, {C})))",
        ]
        bcast = [f"gamma_tile = gamma_row.broadcast_to((128, {C}))", f"beta_tile = beta_row.broadcast_to((128, {C}))"]
        if s["hoist_gb"]:
            L += indent(bcast, 4)
        body = [] if s["hoist_gb"] else list(bcast)
        rows = "i * 128:(i + 1) * 128"
        bn = s["stats"] == "bn_stats"
        sums = s["stats"] == "scalar_sums"
        if bn:
            body.append(f"stats = nl.ndarray((128, {6 * (C // bnw)}), dtype=nl.float32, buffer=nl.sbuf)")
        if sums and nch > 1:
            body += [
                f"sx_part = nl.ndarray((128, {nch}), dtype=nl.float32, buffer=nl.sbuf)",
                f"ssq_part = nl.ndarray((128, {nch}), dtype=nl.float32, buffer=nl.sbuf)",
            ]
        if nch == 1:
            body.append(f"x_tile = nl.load(input_tensor[{rows}, :])")
            if bn:
                body += [f"for b in nl.affine_range({C // bnw}):", *indent(self._bn("x_tile", "b", bnw), 4)]
            if sums:
                body += self._sums("x_tile", "sx", "ssq")
        else:
            cols = f"j * {fc}:(j + 1) * {fc}"
            body += [
                f"x_tile = nl.ndarray((128, {C}), dtype=nl.float32, buffer=nl.sbuf)",
                chunk_loop(nch),
                f"    x_tile[:, {cols}] = nl.load(input_tensor[{rows}, {cols}])",
            ]
            if bn:
                per = fc // bnw
                body += [
                    f"    for b in nl.affine_range({per}):",
                    *indent(self._bn("x_tile", f"j * {per} + b", bnw), 8),
                ]
            if sums:
                body += indent(self._sums(f"x_tile[:, {cols}]", "sx_j", "ssq_j"), 4)
                body += ["    sx_part[:, j:j + 1] = sx_j", "    ssq_part[:, j:j + 1] = ssq_j"]
                body += [
                    "sx = nl.sum(sx_part, axis=[1], keepdims=True)",
                    "ssq = nl.sum(ssq_part, axis=[1], keepdims=True)",
                ]
        if bn:
            body += ["mv = nisa.bn_aggr(stats)  # [128, 2]: mean, variance", "mean = mv[:, 0:1]", "var = mv[:, 1:2]"]
        elif sums:
            body += [
                "# var = E[x^2] - mean^2, from two ScalarE passes (VectorE is the busy engine here)",
                f"mean = nl.multiply(sx, {1.0 / C!r})",
                f"var = nl.subtract(nl.multiply(ssq, {1.0 / C!r}), nl.multiply(mean, mean))",
            ]
        else:
            body += [
                "mean = nl.mean(x_tile, axis=[1], keepdims=True)",
                "shifted = nl.subtract(x_tile, mean)",
                "var = nl.mean(nl.square(shifted), axis=[1], keepdims=True)",
            ]
        body.append("rstd = nl.rsqrt(var + epsilon)")
        if s["apply"] == "act_fma":
            body.append(
                "nbias = nisa.tensor_scalar(data=mean, op0=nl.multiply, operand0=-1.0, op1=nl.multiply, operand1=rstd)"
            )
        reuse = s["stats"] == "mean_var" and nch == 1
        if nch == 1:
            body += self._apply(s, "x_tile", "gamma_tile", "beta_tile", reuse)
            body.append(f"nl.store(out_tensor[{rows}, :], value=y)")
        else:
            cols = f"j * {fc}:(j + 1) * {fc}"
            body += [
                chunk_loop(nch),
                *indent(
                    self._apply(s, f"x_tile[:, {cols}]", f"gamma_tile[:, {cols}]", f"beta_tile[:, {cols}]", False), 4
                ),
                f"    nl.store(out_tensor[{rows}, {cols}], value=y)",
            ]
        return row_kernel(L, body, s, R, C, "input_tensor", "out_tensor")

    @staticmethod
    def _sums(x: str, sx: str, ssq: str) -> list[str]:
        return [
            f"{sx} = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)",
            f"{ssq} = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)",
            f"xc = nisa.activation_reduce(op=nl.copy, data={x}, reduce_op=nl.add, reduce_res={sx})  # row sums",
            f"xsq = nisa.activation_reduce(op=nl.square, data={x}, reduce_op=nl.add, reduce_res={ssq})",
        ]

    @staticmethod
    def _bn(x: str, k: str, w: int) -> list[str]:
        return [f"stats[:, ({k}) * 6:({k} + 1) * 6] = nisa.bn_stats({x}[:, ({k}) * {w}:({k} + 1) * {w}])"]

    @staticmethod
    def _apply(s: dict[str, Any], x: str, g: str, b: str, reuse_shifted: bool) -> list[str]:
        mode = s["apply"]
        if mode == "naive":
            first = [] if reuse_shifted else [f"shifted = nl.subtract({x}, mean)"]
            return [*first, "y = nl.multiply(shifted, rstd)", f"y = nl.multiply(y, {g})", f"y = nl.add(y, {b})"]
        if mode == "tensor_scalar":
            return [
                f"y = nisa.tensor_scalar(data={x}, op0=nl.subtract, operand0=mean, op1=nl.multiply, operand1=rstd)",
                f"y = nl.multiply(y, {g})",
                f"y = nl.add(y, {b})",
            ]
        if mode == "act_fma":
            return [
                f"y = nisa.activation(op=nl.copy, data={x}, scale=rstd, bias=nbias)  # ScalarE: (x - mean) * rstd",
                f"y = nl.multiply(y, {g})",
                f"y = nl.add(y, {b})",
            ]
        return [
            f"t = nisa.scalar_tensor_tensor(data={x}, op0=nl.subtract, operand0=mean, op1=nl.multiply, operand1={g})",
            f"y = nisa.scalar_tensor_tensor(data=t, op0=nl.multiply, operand0=rstd, op1=nl.add, operand1={b})",
        ]

    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {**self.naive_schedule(kernel), "hoist_gb": True}

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        # whole rows: at 8192 columns chunking only adds instructions
        return row_schedule(kernel.spec["C"], hoist_gb=True, stats="bn_stats", apply="stt")

    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        return [
            # (dropping epsilon is not a fault here: with unit-variance rows it changes the output by ~5e-6)
            (r"nl\.rsqrt\(var \+ epsilon\)", r"nl.rsqrt(mean + epsilon)", "took rsqrt of the mean, not the variance"),
            (r"var = nl\.mean\(nl\.square", r"var = nl.sum(nl.square", "summed instead of averaged the squares"),
            (r"nl\.rsqrt\(var \+ epsilon\)", r"nl.sqrt(var + epsilon)", "used sqrt instead of rsqrt"),
            (
                r"mean = mv\[:, 0:1\]\n(\s+)var = mv\[:, 1:2\]",
                r"mean = mv[:, 1:2]\n\1var = mv[:, 0:1]",
                "swapped mean and variance",
            ),
            (r"y = nl\.add\(y, (beta_tile[^)]*)\)", r"y = nl.subtract(y, \1)", "subtracted beta instead of adding it"),
            (r"op1=nl\.add, operand1=", r"op1=nl.subtract, operand1=", "subtracted beta instead of adding it"),
            (r"nl\.subtract\(x_tile, mean\)", r"nl.subtract(x_tile, rstd)", "centered by rstd instead of the mean"),
            (
                r"op0=nl\.subtract, operand0=mean",
                r"op0=nl.add, operand0=mean",
                "added the mean instead of subtracting it",
            ),
        ]


FAMILY = LayerNorm()
