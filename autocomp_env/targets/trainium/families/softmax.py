"""Trainium `softmax` family: `trainium/softmax-{R}x{C}`, softmax over axis 1 of an f32 [R, C] tensor."""

from __future__ import annotations

from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.schedules.knobs import Knob
from autocomp_env.targets.trainium.menu import ITEM
from autocomp_env.targets.trainium.rows import (
    RowFamily,
    chunk_loop,
    row_kernel,
    row_knobs,
    row_schedule,
)


class Softmax(RowFamily):
    """Rows on partitions (128 per tile): max, exp(x - max), sum, scale by 1/sum."""

    name = "softmax"
    flagship = "trainium-extra:0"
    small_dims = (256, 512)

    def knobs(self, kernel: Kernel) -> tuple[Knob, ...]:
        return (
            Knob(
                "exp",
                "exp(x - max)",
                lambda k: ("sub_exp", "act_bias"),
                {
                    ITEM["fuse multiply-add with the activation in one activation instruction"]: "act_bias",
                    ITEM["fuse operations"]: "act_bias",
                    ITEM["eliminate redundant computation"]: "act_bias",
                },
            ),
            Knob(
                "sum",
                "row sum of the exponentials",
                lambda k: ("separate", "act_reduce"),
                {ITEM["fuse operations"]: "act_reduce", ITEM["reduce data movement"]: "act_reduce"},
            ),
            Knob(
                "scale",
                "division by the row sum",
                lambda k: ("divide_bcast", "divide", "recip_mul"),
                {
                    ITEM["use tensor_scalar broadcast instead of broadcast plus tensor_tensor"]: (
                        "divide",
                        "recip_mul",
                    ),
                    ITEM["simplify or remove unnecessary code"]: "divide",
                    ITEM["rewrite the algorithm to reduce total work"]: "recip_mul",
                    ITEM["eliminate redundant computation"]: "recip_mul",
                },
            ),
            *row_knobs(),
        )

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        # The row sum can only ride on the exp instruction when that instruction is an activation.
        return not (s["sum"] == "act_reduce" and s["exp"] != "act_bias") and super().valid(kernel, s)

    def implied(self, kernel: Kernel, s: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
        s = super().implied(kernel, s, name, value)
        if name == "sum" and value == "act_reduce":
            s["exp"] = "act_bias"
        if name == "exp" and value == "sub_exp":
            s["sum"] = "separate"
        return s

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return row_schedule(kernel.spec["C"], exp="sub_exp", sum="separate", scale="divide_bcast")

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        R, C = kernel.spec["R"], kernel.spec["C"]
        fc = s["fchunk"]
        nch = C // fc
        rows = "i * 128:(i + 1) * 128"
        cols = f"j * {fc}:(j + 1) * {fc}"
        L = [
            "@nki.jit",
            "def solution(x):",
            f"    # Softmax over axis 1 of x [{R}, {C}] f32, 128 rows per tile.",
            f"    out = nl.ndarray(({R}, {C}), dtype=x.dtype, buffer=nl.shared_hbm)",
        ]
        body = []
        if nch == 1:
            body += [f"x_tile = nl.load(x[{rows}, :])", "row_max = nl.max(x_tile, axis=[1], keepdims=True)"]
        else:
            body += [
                f"x_tile = nl.ndarray((128, {C}), dtype=nl.float32, buffer=nl.sbuf)",
                f"part_max = nl.ndarray((128, {nch}), dtype=nl.float32, buffer=nl.sbuf)",
                chunk_loop(nch),
                f"    x_tile[:, {cols}] = nl.load(x[{rows}, {cols}])",
                f"    part_max[:, j:j + 1] = nl.max(x_tile[:, {cols}], axis=[1], keepdims=True)",
                "row_max = nl.max(part_max, axis=[1], keepdims=True)",
            ]
        if s["exp"] == "sub_exp":
            body += ["shifted = nl.subtract(x_tile, row_max)", "e = nl.exp(shifted)"]
        else:
            body.append("neg_max = nl.multiply(row_max, -1.0)")
            if s["sum"] == "act_reduce":
                body += [
                    "row_sum = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)",
                    "# exp(x - max) on ScalarE, with the row sum accumulated by the same instruction",
                    "e = nisa.activation_reduce(op=nl.exp, data=x_tile, bias=neg_max, reduce_op=nl.add, "
                    "reduce_res=row_sum)",
                ]
            else:
                body.append("e = nisa.activation(op=nl.exp, data=x_tile, bias=neg_max)  # exp(x - max) on ScalarE")
        if s["sum"] == "separate":
            body.append("row_sum = nl.sum(e, axis=[1], keepdims=True)")
        if s["scale"] == "recip_mul":
            body.append("inv_sum = nl.reciprocal(row_sum)")
        elif s["scale"] == "divide_bcast":
            body.append(f"sum_bcast = row_sum.broadcast_to((128, {C}))")

        def scale(e: str) -> str:
            if s["scale"] == "divide_bcast":
                sb = "sum_bcast" if nch == 1 else f"sum_bcast[:, {cols}]"
                return f"y = nl.divide({e}, {sb})"
            if s["scale"] == "divide":
                return f"y = nl.divide({e}, row_sum)"
            return f"y = nisa.tensor_scalar(data={e}, op0=nl.multiply, operand0=inv_sum)"

        if nch == 1:
            body += [scale("e"), f"nl.store(out[{rows}, :], value=y)"]
        else:
            body += [chunk_loop(nch), "    " + scale(f"e[:, {cols}]"), f"    nl.store(out[{rows}, {cols}], value=y)"]
        return row_kernel(L, body, s, R, C, "x", "out")

    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {**self.naive_schedule(kernel), "scale": "divide"}

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        # exp(x - max) with the max folded into the activation bias; the row sum stays a separate VectorE
        # reduce (fusing it into the activation serializes ScalarE behind it); scale by the reciprocal.
        return row_schedule(kernel.spec["C"], exp="act_bias", sum="separate", scale="recip_mul")

    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        # Softmax is invariant to any per-row shift of x, so these bugs break the exponent or the normalization.
        return [
            (r"inv_sum = nl\.reciprocal\(row_sum\)", r"inv_sum = row_sum", "multiplied by the sum, not its inverse"),
            (r"nl\.divide\(e", r"nl.multiply(e", "multiplied by the sum instead of dividing"),
            (r"bias=neg_max", r"bias=neg_max, scale=2.0", "wrong activation scale on the exponent"),
            (r"e = nl\.exp\(shifted\)", r"e = nl.exp(nl.multiply(shifted, 0.5))", "exponent halved"),
            (
                r"row_sum = nl\.sum\(e, axis=\[1\], keepdims=True\)",
                r"row_sum = nl.max(e, axis=[1], keepdims=True)",
                "normalized by the row max instead of the row sum",
            ),
        ]


FAMILY = Softmax()
