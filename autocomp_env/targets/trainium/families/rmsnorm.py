"""Trainium `rmsnorm` family: `trainium/rmsnorm-{R}x{C}` (an NKI v1 kernel, rows on partitions)."""

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


class RMSNorm(RowFamily):
    """`trainium/rmsnorm-{R}x{C}`: out = a * rsqrt(mean(a^2, axis=1)) * g (no epsilon)."""

    name = "rmsnorm"
    flagship = "trainium-tutorial:0"
    small_dims = (128, 512)

    def knobs(self, kernel: Kernel) -> tuple[Knob, ...]:
        return (
            hoist_knob("hoist_g", "broadcast gamma once outside the row loop"),
            Knob(
                "sumsq",
                "sum of squares",
                lambda k: ("square_sum", "act_reduce"),
                {ITEM["fuse operations"]: "act_reduce", ITEM["eliminate redundant computation"]: "act_reduce"},
            ),
            Knob(
                "rsqrt",
                "1/rms",
                lambda k: ("divide", "act_scale"),
                {
                    ITEM["fuse multiply-add with the activation in one activation instruction"]: "act_scale",
                    ITEM["simplify or remove unnecessary code"]: "act_scale",
                    ITEM["fuse operations"]: "act_scale",
                },
            ),
            Knob(
                "normalize",
                "scaling by 1/rms and gamma",
                lambda k: ("two_mult", "stt", "act_scale"),
                {
                    ITEM["fuse operations"]: "stt",
                    ITEM["use tensor_scalar broadcast instead of broadcast plus tensor_tensor"]: "stt",
                    ITEM["fuse multiply-add with the activation in one activation instruction"]: "act_scale",
                    ITEM["software pipelining"]: "act_scale",
                },
            ),
            *row_knobs(),
        )

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return row_schedule(kernel.spec["C"], hoist_g=False, sumsq="square_sum", rsqrt="divide", normalize="two_mult")

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        R, C = kernel.spec["R"], kernel.spec["C"]
        fc = s["fchunk"]
        nch = C // fc
        L = [
            "@nki.jit",
            "def solution(a_tensor, g_tensor):",
            f"    # RMSNorm of a [{R}, {C}] f32: out = a * rsqrt(mean(a^2, axis=1)) * g, 128 rows per tile.",
            f"    out_tensor = nl.ndarray(({R}, {C}), dtype=a_tensor.dtype, buffer=nl.shared_hbm)",
            f"    g_row = nl.load(g_tensor.reshape((1, {C})))",
        ]
        if s["hoist_g"]:
            L.append(f"    g_tile = g_row.broadcast_to((128, {C}))  # partition broadcast, once for all rows")
        body = []
        if not s["hoist_g"]:
            body.append(f"g_tile = g_row.broadcast_to((128, {C}))")
        rows = "i * 128:(i + 1) * 128"
        if nch == 1:
            body.append(f"a_tile = nl.load(a_tensor[{rows}, :])")
            body += self._sumsq(s, "a_tile", "ss")
        else:
            body += [
                f"a_tile = nl.ndarray((128, {C}), dtype=nl.float32, buffer=nl.sbuf)",
                f"partial = nl.ndarray((128, {nch}), dtype=nl.float32, buffer=nl.sbuf)",
                f"# load and reduce {nch} chunks of {fc} columns so the reduction starts before the row is in",
                chunk_loop(nch),
                f"    a_tile[:, j * {fc}:(j + 1) * {fc}] = nl.load(a_tensor[{rows}, j * {fc}:(j + 1) * {fc}])",
                *indent(self._sumsq(s, f"a_tile[:, j * {fc}:(j + 1) * {fc}]", "part"), 4),
                "    partial[:, j:j + 1] = part",
                "ss = nl.sum(partial, axis=[1], keepdims=True)",
            ]
        if s["rsqrt"] == "divide":
            body += [f"mean = ss / {C}", "rstd = nl.rsqrt(mean)"]
        else:
            body.append(f"rstd = nisa.activation(op=nl.rsqrt, data=ss, scale={1.0 / C!r})  # rsqrt(ss / C)")
        if nch == 1:
            body += self._normalize(s, "a_tile", "g_tile", "out_tile")
            body.append(f"nl.store(out_tensor[{rows}, :], value=out_tile)")
        else:
            cols = f"j * {fc}:(j + 1) * {fc}"
            body += [
                chunk_loop(nch),
                *indent(self._normalize(s, f"a_tile[:, {cols}]", f"g_tile[:, {cols}]", "out_tile"), 4),
                f"    nl.store(out_tensor[{rows}, {cols}], value=out_tile)",
            ]
        return row_kernel(L, body, s, R, C, "a_tensor", "out_tensor")

    @staticmethod
    def _sumsq(s: dict[str, Any], x: str, out: str) -> list[str]:
        if s["sumsq"] == "square_sum":
            return [f"sq = nl.square({x})", f"{out} = nl.sum(sq, axis=[1], keepdims=True)"]
        return [
            f"{out} = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)",
            f"sq = nisa.activation_reduce(op=nl.square, data={x}, reduce_op=nl.add, reduce_res={out})",
        ]

    @staticmethod
    def _normalize(s: dict[str, Any], x: str, g: str, out: str) -> list[str]:
        if s["normalize"] == "two_mult":
            return [f"{out} = nl.multiply({x}, rstd)", f"{out} = nl.multiply({out}, {g})"]
        if s["normalize"] == "stt":
            return [
                f"{out} = nisa.scalar_tensor_tensor(data={x}, op0=nl.multiply, operand0=rstd, "
                f"op1=nl.multiply, operand1={g})"
            ]
        return [
            f"scaled = nisa.activation(op=nl.copy, data={x}, scale=rstd)  # ScalarE, frees VectorE",
            f"{out} = nl.multiply(scaled, {g})",
        ]

    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {**self.naive_schedule(kernel), "hoist_g": True}

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        C = kernel.spec["C"]
        fchunk = 512 if C % 512 == 0 and C > 512 else C  # loads of 2 KiB per partition overlap the math
        return row_schedule(fchunk, hoist_g=True, sumsq="act_reduce", rsqrt="act_scale", normalize="stt")

    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        return [
            (r"mean = ss / (\d+)", r"mean = ss", "forgot to divide the sum of squares by C"),
            (r"scale=([0-9.e-]+)\)  # rsqrt", r"scale=1.0)  # rsqrt", "dropped the 1/C scale of the rsqrt"),
            (r"nl\.rsqrt\(mean\)", r"nl.sqrt(mean)", "used sqrt instead of rsqrt"),
            (r"operand1=g_tile(\[[^\]]*\])?\)", r"operand1=a_tile\1)", "multiplied by the input instead of gamma"),
            (r"reshape\(\(1, (\d+)\)\)\)", r"reshape((1, \1))[:, ::-1])", "gamma loaded reversed"),
        ]


FAMILY = RMSNorm()
