"""What the row-wise Trainium families share (rmsnorm, layernorm, softmax): 128 rows per tile on the
partitions (or 128*G with G rows per partition), columns on the free dimension."""

from __future__ import annotations

from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import schedule_comment
from autocomp_env.schedules.knobs import Knob
from autocomp_env.targets.trainium.common import ANY, TrainiumKnobFamily, divisors, indent
from autocomp_env.targets.trainium.menu import ITEM


def check_rows(d: dict[str, int], family: str) -> None:
    if d["R"] % 128:
        raise ValueError(f"{family}: R={d['R']} must be a multiple of 128 (one row per partition, 128 per tile)")
    if d["C"] % 128 and d["C"] > 512:
        raise ValueError(f"{family}: C={d['C']} must be a multiple of 128 when larger than 512")


def chunk_knob(items: dict[int, Any] | None = None) -> Knob:
    """Free-dim chunk of the row tile that one load / compute / store step handles."""
    return Knob(
        "fchunk",
        "free-dim chunk (columns per load/compute/store step)",
        lambda k: divisors(k.spec["C"], 256),
        items
        or {
            ITEM["loop tiling"]: ANY,
            ITEM["make DMA transfers at least 32 KiB"]: "up",
            ITEM["use free dimensions of at least 128 to amortize instruction overhead"]: "up",
            ITEM["overlap data movement and compute"]: "down",
            ITEM["software pipelining"]: "down",
        },
        numeric=True,
        span=(64, 1 << 20),
    )


def loop_knob() -> Knob:
    return Knob(
        "loop",
        "row-tile loop kind",
        lambda k: ("affine", "sequential"),
        {
            ITEM["use affine_range instead of sequential_range where there are no loop-carried dependencies"]: "affine",
            ITEM["loop reordering and restructuring"]: ANY,
            # tiles allocated in an affine_range body rotate through several buffers
            ITEM["double buffering"]: "affine",
            ITEM["multi-buffer tiles with modular allocation"]: "affine",
        },
    )


def group_knob() -> Knob:
    """Rows per partition in one DMA: G > 1 moves 128*G rows per load/store (partition p holds G adjacent rows)."""
    return Knob(
        "group",
        "rows per partition per DMA",
        lambda k: tuple(
            g for g in (1, 2, 4, 8) if k.spec["R"] % (128 * g) == 0 and (g == 1 or g * k.spec["C"] * 4 <= 32768)
        ),
        {
            ITEM["make DMA transfers at least 32 KiB"]: "up",
            ITEM["coalesce small result tiles before a store"]: "up",
            ITEM["exploit free-dimension flexible indexing for transposes, splits and pooling"]: "up",
            ITEM["reduce data movement"]: "up",
            ITEM["loop tiling"]: ANY,
        },
        numeric=True,
        span=(1, 16),
    )


def row_knobs() -> tuple[Knob, ...]:
    """The knobs every row-wise family ends with: free-dim chunk, rows per partition, loop kind."""
    return chunk_knob(), group_knob(), loop_knob()


def row_schedule(fchunk: int, **knobs: Any) -> dict[str, Any]:
    """A row-wise family's schedule: its own `knobs`, then chunks of `fchunk` columns, one row per partition
    and an affine row loop."""
    return {**knobs, "fchunk": fchunk, "group": 1, "loop": "affine"}


def rows_implied(kernel: Kernel, s: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    s = {**s, name: value}
    if name == "group" and value > 1:
        s["fchunk"] = kernel.spec["C"]
    if name == "fchunk" and value < kernel.spec["C"] and "group" in s:
        s["group"] = 1
    return s


def rows_valid(kernel: Kernel, s: dict[str, Any]) -> bool:
    # grouped rows keep whole rows per instruction (no free-dim chunking of a group)
    return s.get("group", 1) == 1 or s["fchunk"] == kernel.spec["C"]


def group_rows(body: list[str], s: dict[str, Any], R: int, C: int, src: str, dst: str) -> tuple[list[str], list[str]]:
    """Rewrite an unchunked one-tile body (a `X = nl.load(src[rows, :])` line and a
    `nl.store(dst[rows, :], value=Y)` line) to handle G rows per partition: one load and one store of
    [128, G*C] through reshaped HBM views, the body looped over the G row slices. Returns (setup, body)."""
    G = s["group"]
    rows = "i * 128:(i + 1) * 128"
    if G == 1:
        return [], body
    n = R // (128 * G)
    setup = [
        f"# partition p of row tile i holds rows (i * 128 + p) * {G} ... + {G - 1}: one DMA moves {G} rows per partition",
        f"{src}_rows = {src}.reshape(({n}, 128, {G * C}))",
        f"{dst}_rows = {dst}.reshape(({n}, 128, {G * C}))",
    ]
    out = []
    inner = []
    for ln in body:
        if ln.endswith(f" = nl.load({src}[{rows}, :])"):
            var = ln.split(" = ")[0]
            out += [
                f"grp_in = nl.load({src}_rows[i])",
                f"grp_out = nl.ndarray((128, {G * C}), dtype=nl.float32, buffer=nl.sbuf)",
                f"for r in nl.affine_range({G}):",
            ]
            inner.append(f"{var} = grp_in[:, r * {C}:(r + 1) * {C}]")
        elif ln.startswith(f"nl.store({dst}[{rows}, :], value="):
            val = ln.split("value=")[1].rstrip(")")
            inner.append(f"grp_out[:, r * {C}:(r + 1) * {C}] = {val}")
        else:
            inner.append(ln)
    out += indent(inner, 4)
    out.append(f"nl.store({dst}_rows[i], value=grp_out)")
    return setup, out


def hoist_knob(name: str, label: str) -> Knob:
    return Knob(
        name,
        label,
        lambda k: (False, True),
        {
            ITEM["hoist redundant operations out of loops"]: True,
            ITEM["cache reused data in local memory"]: True,
            ITEM["keep reused data resident in SBUF"]: True,
            ITEM["eliminate redundant computation"]: True,
            ITEM["reduce data movement"]: True,
        },
    )


class RowFamily(TrainiumKnobFamily):
    """A row-wise family (`{name}-{R}x{C}`, 128 rows per tile) whose fchunk and group knobs interact as in
    `rows_valid` and `rows_implied`."""

    number_params = ("fchunk", "group")

    def check(self, d: dict[str, int]) -> None:
        check_rows(d, self.name)

    def valid(self, kernel: Kernel, s: dict[str, Any]) -> bool:
        return rows_valid(kernel, s)

    def implied(self, kernel: Kernel, s: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
        return rows_implied(kernel, s, name, value)


def row_loop(schedule: dict[str, Any], n: int) -> str:
    kind = "nl.affine_range" if schedule["loop"] == "affine" else "nl.sequential_range"
    return f"for i in {kind}({n}):"


def chunk_loop(nch: int) -> str:
    return f"for j in nl.affine_range({nch}):"


def row_kernel(head: list[str], body: list[str], s: dict[str, Any], R: int, C: int, src: str, dst: str) -> str:
    """The kernel's code: `head` (signature and setup), then the row-tile loop around the one-tile `body`
    (grouped by `group_rows`), `return dst` and the schedule marker."""
    setup, body = group_rows(body, s, R, C, src, dst)
    loop = "    " + row_loop(s, R // (128 * s["group"]))
    tail = [f"    return {dst}", "", schedule_comment(s, "python"), ""]
    return "\n".join(head + indent(setup, 4) + [loop] + indent(body, 8) + tail)

