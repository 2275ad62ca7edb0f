"""Trainium `conv1d` family: depthwise 1-D convolution (valid cross-correlation).

`trainium/conv1d-{N}x{C}x{W}x{F}`: out[n, c, j] = sum_f x[n, c, j + f] * w[c, f], out width W - F + 1.
Channels go on partitions (128 per tile), the sequence on the free dim; each filter tap is one pass.
"""

from __future__ import annotations

from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import schedule_comment
from autocomp_env.schedules.knobs import Knob
from autocomp_env.targets.trainium.common import ANY, TrainiumKnobFamily, check_channels, indent
from autocomp_env.targets.trainium.menu import ITEM


class Conv1d(TrainiumKnobFamily):
    name = "conv1d"
    flagship = "trainium-extra:1"
    small_dims = (2, 128, 256, 3)
    number_params = ("wsplit",)

    def check(self, d: dict[str, int]) -> None:
        check_channels(d, "conv1d")
        if d["F"] > d["W"]:
            raise ValueError(f"conv1d: filter width F={d['F']} is larger than the input width W={d['W']}")

    def knobs(self, kernel: Kernel) -> tuple[Knob, ...]:
        return (
            Knob(
                "x_load",
                "input loads (one shifted load per tap, or one load sliced per tap)",
                lambda k: ("per_tap", "once"),
                {
                    ITEM["reduce data movement"]: "once",
                    ITEM["cache reused data in local memory"]: "once",
                    ITEM["keep reused data resident in SBUF"]: "once",
                    ITEM["exploit free-dimension flexible indexing for transposes, splits and pooling"]: "once",
                },
            ),
            Knob(
                "w_load",
                "filter loads (per tap, per tile, or once per channel tile outside the batch loop)",
                lambda k: ("per_tap", "per_tile", "hoisted"),
                {
                    ITEM["hoist redundant operations out of loops"]: ("per_tile", "hoisted"),
                    ITEM["cache reused data in local memory"]: "hoisted",
                    ITEM["make DMA transfers at least 32 KiB"]: ("per_tile", "hoisted"),
                    ITEM["reduce data movement"]: ("per_tile", "hoisted"),
                },
            ),
            Knob(
                "order",
                "loop order (nc: batch outside channel tiles; cn: channel tiles outside)",
                lambda k: ("nc", "cn"),
                {ITEM["loop reordering and restructuring"]: ANY},
            ),
            Knob(
                "tap",
                "per-tap multiply-accumulate",
                lambda k: ("mul_add", "stt", "act_first"),
                {
                    ITEM["fuse operations"]: "stt",
                    ITEM["use tensor_scalar broadcast instead of broadcast plus tensor_tensor"]: "stt",
                    ITEM["fuse multiply-add with the activation in one activation instruction"]: "act_first",
                    ITEM["eliminate redundant computation"]: ("stt", "act_first"),
                },
            ),
            Knob(
                "engine",
                "engine of the taps (vector; tensor: diag(w_f) matmuls accumulated in PSUM; mixed: tap 0 on VectorE "
                "fused with the PSUM eviction)",
                lambda k: ("vector", "tensor", "mixed"),
                {
                    ITEM["use the Tensor engine for cross-partition reductions and reshapes"]: ("tensor", "mixed"),
                    ITEM["accumulate partial matmuls in PSUM"]: ("tensor", "mixed"),
                    ITEM["software pipelining"]: "mixed",
                    ITEM["rewrite the algorithm to reduce total work"]: ("tensor", "mixed"),
                },
            ),
            Knob(
                "wsplit",
                "output columns per instruction",
                lambda k: (
                    tuple(c for c in (256, 512, 1024, 2048, 4096) if c < k.spec["W"] - k.spec["F"] + 1)
                    + (k.spec["W"] - k.spec["F"] + 1,)
                ),
                {
                    ITEM["loop tiling"]: ANY,
                    ITEM["software pipelining"]: "down",
                    ITEM["use free dimensions of at least 128 to amortize instruction overhead"]: "up",
                },
                numeric=True,
            ),
        )

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        if s["w_load"] == "hoisted" and s["order"] != "cn":
            return False
        # TensorE taps read x and the diagonal filter matrices from SBUF tiles; the tap style is theirs
        return s["engine"] == "vector" or (s["x_load"] == "once" and s["w_load"] != "per_tap" and s["tap"] == "stt")

    def implied(self, kernel: Kernel, s: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
        s = {**s, name: value}
        if name == "engine" and value != "vector":
            s.update(x_load="once", tap="stt")
            if s["w_load"] == "per_tap":
                s["w_load"] = "per_tile"
        if (name, value) in (("tap", "mul_add"), ("tap", "act_first"), ("x_load", "per_tap"), ("w_load", "per_tap")):
            s["engine"] = "vector"
        if name == "w_load" and value == "hoisted":
            s["order"] = "cn"
        if name == "order" and value == "nc" and s["w_load"] == "hoisted":
            s["w_load"] = "per_tile"
        return s

    def naive_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {
            "x_load": "per_tap",
            "w_load": "per_tap",
            "order": "nc",
            "tap": "mul_add",
            "engine": "vector",
            "wsplit": kernel.spec["W"] - kernel.spec["F"] + 1,
        }

    def write(self, kernel: Kernel, s: dict[str, Any]) -> str:
        N, C, W, F = (kernel.spec[k] for k in ("N", "C", "W", "F"))
        Wo = W - F + 1
        nct = C // 128
        ch = "ct * 128:(ct + 1) * 128"
        L = [
            "@nki.jit",
            "def solution(x, w):",
            f"    # Depthwise conv1d: x [{N}, {C}, {W}], w [{C}, {F}] -> out [{N}, {C}, {Wo}] (valid), f32.",
            f"    out = nl.ndarray(({N}, {C}, {Wo}), dtype=x.dtype, buffer=nl.shared_hbm)",
        ]
        outer, inner = (("n", N), ("ct", nct)) if s["order"] == "nc" else (("ct", nct), ("n", N))
        L.append(f"    for {outer[0]} in nl.affine_range({outer[1]}):")
        diag = _diag_lines(F) if s["engine"] != "vector" else []
        if diag:
            L[-1:-1] = ["    i_p = nl.arange(128)[:, None]", "    i_f = nl.arange(128)[None, :]"]
        if s["w_load"] == "hoisted":
            L.append(f"        w_t = nl.load(w[{ch}, :])  # the filter of this channel tile, reused for every batch")
            L += indent(diag, 8)
        body = []
        if s["w_load"] == "per_tile":
            body.append(f"w_t = nl.load(w[{ch}, :])")
            body += diag
        if s["x_load"] == "once":
            body.append(f"x_t = nl.load(x[n, {ch}, :])")
        ws = s["wsplit"]
        nsp = -(-Wo // ws)
        if nsp == 1:
            body += self._taps(s, F, "0", Wo, f"out[n, {ch}, :]")
        else:
            nfull = Wo // ws
            if nfull == 1:
                body += self._taps(s, F, "0", ws, f"out[n, {ch}, 0:{ws}]")
            else:
                body.append(f"for q in nl.affine_range({nfull}):")
                body += indent(self._taps(s, F, f"q * {ws}", ws, f"out[n, {ch}, q * {ws}:(q + 1) * {ws}]"), 4)
            if Wo % ws:  # the last piece is shorter: a static piece of its own
                last0 = nfull * ws
                body += self._taps(s, F, str(last0), Wo - last0, f"out[n, {ch}, {last0}:{Wo}]")
        L.append(f"        for {inner[0]} in nl.affine_range({inner[1]}):")
        L += indent(body, 12)
        L += ["    return out", "", schedule_comment(s, "python"), ""]
        return "\n".join(L)

    @staticmethod
    def _taps(s: dict[str, Any], F: int, j0: str, width: int, dst: str) -> list[str]:
        """Accumulate the F taps of output columns [j0, j0 + width) and store them to `dst`."""
        ch = "ct * 128:(ct + 1) * 128"
        if s["engine"] != "vector":
            return _tensor_taps(s, F, j0, width, dst)

        def xs(f: int) -> str:
            if s["x_load"] == "once":
                return f"x_t[:, {span(j0, f, width)}]"
            return "x_f"

        def wcol(f: int) -> str:
            return "w_f" if s["w_load"] == "per_tap" else f"w_t[:, {f}:{f + 1}]"

        lines = []
        first = 0
        if s["tap"] == "act_first":
            lines += _tap_loads(s, 0, j0, width, ch)
            lines.append(f"acc = nisa.activation(op=nl.copy, data={xs(0)}, scale={wcol(0)})  # tap 0 on ScalarE")
            first = 1
        else:
            lines.append(f"acc = nl.zeros((128, {width}), dtype=nl.float32, buffer=nl.sbuf)")
        for f in range(first, F):
            lines += _tap_loads(s, f, j0, width, ch)
            if s["tap"] == "mul_add":
                lines += [f"prod = nl.multiply({xs(f)}, {wcol(f)})", "acc = nl.add(acc, prod)"]
            else:
                lines.append(
                    f"acc = nisa.scalar_tensor_tensor(data={xs(f)}, op0=nl.multiply, operand0={wcol(f)}, "
                    "op1=nl.add, operand1=acc)"
                )
        lines.append(f"nl.store({dst}, value=acc)")
        return lines

    def vendor_schedule(self, kernel: Kernel) -> dict[str, Any]:
        return {**self.naive_schedule(kernel), "x_load": "once", "w_load": "per_tile"}

    def expert_schedule(self, kernel: Kernel) -> dict[str, Any]:
        # taps 1.. as diag(w_f) matmuls in PSUM on TensorE, tap 0 fused into the eviction on VectorE
        return {**self.naive_schedule(kernel), "x_load": "once", "w_load": "per_tile", "tap": "stt", "engine": "mixed"}

    def faults(self, kernel: Kernel) -> list[tuple[str, str, str]]:
        return [
            (r"x_t\[:, (\w+) \+ 1:", r"x_t[:, \1 + 2:", "wrong tap offset"),
            (r"x_t\[:, 1:(\d+)\]", r"x_t[:, 0:\1 - 1]", "wrong tap offset"),
            (r"diag\[f \+ 1\]", r"diag[f]", "paired each shifted input with the previous tap's weights"),
            (r"on_false_value=0\.0", r"on_false_value=1.0", "filter matrices not diagonal: channels mixed"),
            (r"x\[n, ([^,]+), 1:(\d+)\]\)", r"x[n, \1, 0:\2 - 1])", "wrong tap offset in a shifted load"),
            (r"w_t\[:, 1:2\]", r"w_t[:, 0:1]", "used filter tap 0 twice"),
            (r"op1=nl\.add, operand1=acc", r"op1=nl.subtract, operand1=acc", "subtracted the accumulator"),
            (r"acc = nl\.add\(acc, prod\)", r"acc = prod", "overwrote the accumulator instead of adding"),
            (
                r"w_f = nl\.load\(w\[ct \* 128:\(ct \+ 1\) \* 128, (\d+):",
                r"w_f = nl.load(w[ct * 128:(ct + 1) * 128, 0:",
                "loaded tap 0 for every tap",
            ),
        ]


def _diag_lines(F: int) -> list[str]:
    return [
        "# diag(w[:, f]) per tap: a TensorE matmul with it scales every channel (partition) by its own weight",
        f"diag = nl.ndarray(({F}, nl.par_dim(128), 128), dtype=nl.float32, buffer=nl.sbuf)",
        f"for f in nl.affine_range({F}):",
        "    w_b = w_t[:, f:f + 1].broadcast_to((128, 128))",
        "    diag[f] = nisa.affine_select(pred=(i_p == i_f), on_true_tile=w_b, on_false_value=0.0)",
    ]


def _cols(start: str, n: int) -> str:
    return f"0:{n}" if start == "0" else f"{start}:{start} + {n}"


def _tensor_taps(s: dict[str, Any], F: int, j0: str, width: int, dst: str) -> list[str]:
    """Taps as matmuls diag(w_f) @ x_shifted accumulated in PSUM, pieces of <= 512 columns (one PSUM bank)."""
    first = 1 if s["engine"] == "mixed" else 0
    pw = min(512, width)
    full, tail = divmod(width, pw)

    def piece(c0: str, n: int) -> list[str]:
        base = c0 if j0 == "0" else (f"{j0} + {c0}" if c0 != "0" else j0)
        shift = f"f + {first}" if first else "f"
        lo = shift if base == "0" else f"{base} + {shift}"
        taps = f"nl.affine_range({F - first})"
        dcol = f"f + {first}" if first else "f"
        lines = [
            f"ps = nl.zeros((128, {n}), dtype=nl.float32, buffer=nl.psum)",
            f"for f in {taps}:",
            f"    ps += nisa.nc_matmul(diag[{dcol}], x_t[:, {lo}:{lo} + {n}])",
        ]
        cols = _cols(c0, n)
        if first:
            lines.append(
                f"acc[:, {cols}] = nisa.scalar_tensor_tensor(data=x_t[:, {_cols(base, n)}], op0=nl.multiply, "
                "operand0=w_t[:, 0:1], op1=nl.add, operand1=ps)  # tap 0 fused with the PSUM eviction"
            )
        else:
            lines.append(f"acc[:, {cols}] = nl.copy(ps)  # PSUM eviction on ScalarE")
        return lines

    out = [f"acc = nl.ndarray((128, {width}), dtype=nl.float32, buffer=nl.sbuf)"]
    if full == 1:
        out += piece("0", pw)
    else:
        out += [f"for p in nl.affine_range({full}):", *indent(piece(f"p * {pw}", pw), 4)]
    if tail:
        out += piece(str(full * pw), tail)
    out.append(f"nl.store({dst}, value=acc)")
    return out


def span(j0: str, f: int, width: int) -> str:
    """The input columns of tap f for output columns [j0, j0 + width)."""
    if j0 == "0":
        return f"{f}:{f + width}"
    lo = f"{j0} + {f}" if f else j0
    return f"{lo}:{lo} + {width}"


def _tap_loads(s: dict[str, Any], f: int, j0: str, width: int, ch: str) -> list[str]:
    lines = []
    if s["x_load"] == "per_tap":
        lines.append(f"x_f = nl.load(x[n, {ch}, {span(j0, f, width)}])  # input shifted by tap {f}")
    if s["w_load"] == "per_tap":
        lines.append(f"w_f = nl.load(w[{ch}, {f}:{f + 1}])")
    return lines


FAMILY = Conv1d()
