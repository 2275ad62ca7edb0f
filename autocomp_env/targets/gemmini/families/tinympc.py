"""TinyMPC kernels on the FP32 4x4 Gemmini (`gemmini/tinympc-{matvec-NXxNU, forward-NXxNUxH, backward-NXxNUxH}`).

Every product is matrix x vector. `M v` runs in column form (A = blocks of M, weights = 4x1 blocks of v,
results in accumulator rows 4 x 1 column); `M^T v` runs in row form (A = v^T, 1 x 4 rows; weights = blocks of M;
results in 1 x 4 accumulator rows), so no transposed load is needed. Vectors are contiguous in memory either way.

Schedule keys (JSON):

| key | values | meaning |
|---|---|---|
| vec | 0, 1, 2 | vector work: 0 = negations and additions in CPU loops; 1 = additions as the array's D bias, negation on the CPU; 2 = everything on the accelerator (negated matrices via mvin scale -1, negated biases) |
| merge | bool | accumulate products that sum into one vector in the same accumulator rows (backward: the `-Kinf^T r` term through a transposed-A compute) |
| fence | "every", "needed" | fence after every accelerator step (naive) or only before CPU reads and DRAM read-after-write |
| resident | bool | load the constant matrices once before the horizon loop instead of every step |
| wide | bool | one mvin per 4-row group of a matrix (up to 16 columns) and one per row vector, instead of one per 4x4 block |
| reload | bool | (forward) load x_i twice, once per product (naive), instead of sharing the scratchpad copy |
| unroll | bool | unroll the horizon loop |
"""

from __future__ import annotations

import re
import sys
from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import schedule_comment
from autocomp_env.targets.gemmini.common import GemminiFamily, Writer, faults, inject_fault
from autocomp_env.targets.gemmini.menu import LINALG
from simulators.gemmini.kernels import KernelSpec

DIM = 4  # the FP32 4x4 configuration
(REMOVE, SIMPLIFY, MERGE_INSTR, MERGE_OPS, REORDER, TO_ACCEL, BIAS, HOIST, SUBSTITUTE, PIPELINE, FENCES, MIN_DATA,
 MIN_OVERHEAD, OTHER) = range(14)  # fmt: skip
KINDS = ("matvec", "forward", "backward")


def naive_schedule(kernel: Kernel) -> dict[str, Any]:
    return {
        "vec": 0,
        "merge": False,
        "fence": "every",
        "resident": False,
        "wide": False,
        "reload": True,
        "unroll": False,
    }


def valid(kernel: Kernel, s: dict[str, Any]) -> bool:
    if kernel.spec["kind"] == "backward" and s["merge"]:
        # The merged -Kinf^T r term needs the negated Kinf of vec level 2 and one NU block (one transposed A).
        return s["vec"] == 2 and kernel.spec["NU"] == DIM
    return True


def normalize(kernel: Kernel, s: dict[str, Any]) -> dict[str, Any]:
    s = dict(s)
    kind = kernel.spec["kind"]
    if kind == "matvec":
        s.update(merge=False, resident=False, reload=False, unroll=False)
    if kind == "backward":
        s["reload"] = False
    return s


class _Prog:
    """Writes the C body, tracking the load configurations so that config_ld is issued only on change."""

    def __init__(self, s: dict[str, Any]) -> None:
        self.s = s
        self.w = Writer()
        self.cfg: dict[int, tuple[int, float, int]] = {}

    def __call__(self, line: str) -> None:
        self.w(line)

    def forget(self) -> None:
        self.cfg = {}  # entering or leaving a loop body: the runtime state is not known statically

    def config(self, ident: int, stride: int, scale: float, block: int) -> None:
        if self.cfg.get(ident) != (stride, scale, block):
            self(f"config_ld({stride}, {scale:.1f}f, {block}, {ident});")
            self.cfg[ident] = (stride, scale, block)

    def fence(self, needed: bool) -> None:
        if needed or self.s["fence"] == "every":
            self("fence();")

    def matrix(self, ptr: str, rows: int, cols: int, base: str, scale: float = 1.0) -> None:
        """Blocks (ib, kb) of a rows x cols matrix at base + (ib * KB + kb) * 4."""
        ident = 1 if scale > 0 else 2
        kb_n = cols // DIM
        self.config(ident, cols * 4, scale, DIM)
        call = "mvin2" if ident == 1 else "mvin3"
        for ib in range(rows // DIM):
            if self.s["wide"]:
                self(f"{call}(&{ptr}[{ib * DIM}][0], {base} + {ib * kb_n * DIM}, {cols}, {DIM});")
            else:
                for kb in range(kb_n):
                    self(f"{call}(&{ptr}[{ib * DIM}][{kb * DIM}], {base} + {(ib * kb_n + kb) * DIM}, {DIM}, {DIM});")

    def colvec(self, ptr: str, n: int, base: str, scale: float = 1.0) -> None:
        """A length-n vector as n/4 blocks of 4 rows x 1 column (the weights of column-form products)."""
        self.config(0, 4, scale, DIM)
        for kb in range(n // DIM):
            self(f"mvin(&{ptr}[{kb * DIM}][0], {base} + {kb * DIM}, 1, {DIM});")

    def rowvec(self, ptr: str, n: int, base: str, scale: float = 1.0) -> None:
        """A length-n vector as n/4 rows of 1 x 4 (the A operand of row-form products), rows base, base+1, ..."""
        self.config(0, 4, scale, 1)
        if self.s["wide"]:
            self(f"mvin(&{ptr}[0][0], {base}, {n}, 1);")
        else:
            for kb in range(n // DIM):
                self(f"mvin(&{ptr}[{kb * DIM}][0], {base} + {kb}, {DIM}, 1);")

    def colprod(self, mat: str, rows: int, cols: int, vec: str, acc: str, accumulate: bool, bias: str | None) -> None:
        """acc (rows/4 blocks of 4x1) (+)= M v (+ bias, 4x1 blocks in the scratchpad, added by the first compute)."""
        kb_n = cols // DIM
        for kb in range(kb_n):
            flag = " | ACC" if (kb > 0 or accumulate) else ""
            for ib in range(rows // DIM):
                d = f"{bias} + {ib * DIM}" if (bias and kb == 0) else "GARBAGE_ADDR"
                a = f"{mat} + {(ib * kb_n + kb) * DIM}"
                c = f"{acc} + {ib * DIM}{flag}"
                if ib == 0:  # new weights (this block of v), reused for the other row blocks of M
                    self(f"preload({vec} + {kb * DIM}, {c}, 1, {DIM}, 1, {DIM});")
                    self(f"compute_preloaded({a}, {d}, {DIM}, {DIM}, 1, {DIM});")
                else:
                    self(f"preload(GARBAGE_ADDR, {c}, 1, {DIM}, 1, {DIM});")
                    self(f"compute_accumulated({a}, {d}, {DIM}, {DIM}, 1, {DIM});")

    def rowprod(self, vec: str, mat: str, rows: int, cols: int, acc: str, bias: str | None) -> None:
        """acc (cols/4 rows of 1x4, 4 rows apart) = v^T M (+ bias rows): M^T v in row form."""
        kb_n, jb_n = rows // DIM, cols // DIM
        for jb in range(jb_n):
            for kb in range(kb_n):
                flag = " | ACC" if kb > 0 else ""
                d = f"{bias} + {jb}" if (bias and kb == 0) else "GARBAGE_ADDR"
                self(f"preload({mat} + {(kb * jb_n + jb) * DIM}, {acc} + {jb * DIM}{flag}, {DIM}, {DIM}, {DIM}, 1);")
                self(f"compute_preloaded({vec} + {kb}, {d}, {DIM}, 1, {DIM}, 1);")

    def store_col(self, ptr: str, n: int, acc: str) -> None:
        for ib in range(n // DIM):
            self(f"mvout(&{ptr}[{ib * DIM}][0], {acc} + {ib * DIM}, 1, {DIM});")

    def store_row(self, ptr: str, n: int, acc: str) -> None:
        if self.s["wide"]:
            self(f"mvout(&{ptr}[0][0], {acc}, {n}, 1);")
        else:
            for jb in range(n // DIM):
                self(f"mvout(&{ptr}[{jb * DIM}][0], {acc} + {jb * DIM}, {DIM}, 1);")


def _layout(p: _Prog, spad: list[tuple[str, int]], acc: list[tuple[str, int]]) -> None:
    """Declare scratchpad and accumulator addresses for named buffers of the given row counts, packed in order."""
    parts, row = [], 0
    for name, rows in spad:
        parts.append(f"{name} = {row}")
        row += rows
    p(f"const uint32_t {', '.join(parts)};  // scratchpad rows")
    parts, row = [], 0
    for name, rows in acc:
        parts.append(f"{name} = 0x{0x80000000 + row:08X}")
        row += rows
    p(f"const uint32_t {', '.join(parts)};  // accumulator rows")


def _head(p: _Prog, kernel: Kernel, s: dict[str, Any], signature: str, what: str) -> list[str]:
    p("config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);")
    p("config_st(4);  // one float per output row")
    p("const uint32_t ACC = 0x40000000;")
    return [f"{signature} {{", f"  {schedule_comment(s, 'c')}", f"  // {what}"]


def _signature(kernel: Kernel) -> str:
    nx, nu, h = kernel.spec["NX"], kernel.spec["NU"], kernel.spec.get("H")
    kind = kernel.spec["kind"]
    if kind == "matvec":
        return f"void solution(float Kinf[{nx}][{nu}], float x[{nx}][1], float d[{nu}][1], float u[{nu}][1])"
    if kind == "forward":
        return (
            f"void solution(float Adyn[{nx}][{nx}], float Bdyn[{nx}][{nu}], float Kinf[{nu}][{nx}], "
            f"float x[{h}][{nx}][1], float d[{h}][{nu}][1], float u[{h}][{nu}][1])"
        )
    return (
        f"void solution(float Quu_inv[{nu}][{nu}], float AmBKt[{nx}][{nx}], float Kinf[{nu}][{nx}], "
        f"float Bdyn[{nx}][{nu}], float p[{h}][{nx}][1], float q[{h}][{nx}][1], float r[{h}][{nu}][1], "
        f"float d[{h}][{nu}][1])"
    )


def describe(s: dict[str, Any]) -> str:
    where = ("CPU vector ops", "bias adds on the accelerator", "all vector ops on the accelerator")[s["vec"]]
    parts = [where, f"fences {'after every step' if s['fence'] == 'every' else 'only where needed'}"]
    for key, text in (
        ("merge", "merged products"),
        ("resident", "resident matrices"),
        ("wide", "wide mvins"),
        ("unroll", "unrolled horizon"),
    ):
        if s[key]:
            parts.append(text)
    return "; ".join(parts)


def emit(kernel: Kernel, s: dict[str, Any]) -> str:
    p = _Prog(s)
    head = _head(p, kernel, s, _signature(kernel), describe(s))
    {"matvec": _matvec, "forward": _forward, "backward": _backward}[kernel.spec["kind"]](p, kernel, s)
    return "\n".join([*head, *p.w.lines, "}", ""])


def _matvec(p: _Prog, kernel: Kernel, s: dict[str, Any]) -> None:
    nx, nu = kernel.spec["NX"], kernel.spec["NU"]
    neg = -1.0 if s["vec"] == 2 else 1.0
    _layout(p, [("X", nx // DIM), ("KI", nx * nu // DIM), ("DB", nu // DIM)], [("U", nu)])
    p.rowvec("x", nx, "X")
    p.matrix("Kinf", nx, nu, "KI", scale=neg)
    if s["vec"] >= 1:
        p.rowvec("d", nu, "DB", scale=neg)
    p.fence(False)
    p.rowprod("X", "KI", nx, nu, "U", "DB" if s["vec"] >= 1 else None)
    if s["vec"] == 2:
        p.store_row("u", nu, "U")
        return
    p(f"float t[{nu}][1];")
    p.store_row("t", nu, "U")
    p.fence(True)  # the CPU reads t
    p.w.open(f"for (int j = 0; j < {nu}; j++)")
    p("u[j][0] = -t[j][0];" if s["vec"] == 1 else "u[j][0] = -(t[j][0] + d[j][0]);")
    p.w.close()


def _horizon(p: _Prog, s: dict[str, Any], first: int, stop: int, step: int, matrices: list[tuple], body) -> None:
    """The loop over horizon steps `i`, or its unrolled copies. The constant `matrices` (`p.matrix` arguments)
    load once before it when resident, else at the start of every step."""

    def loads() -> None:
        for m in matrices:
            p.matrix(*m)

    def each(i: str) -> None:
        if not s["resident"]:
            loads()
        body(i)

    if s["resident"]:
        loads()
    if s["unroll"]:
        for i in range(first, stop, step):
            p(f"// step {i}")
            each(str(i))
        return
    cmp = "<" if step > 0 else ">"
    p.forget()
    p.w.open(f"for (int i = {first}; i {cmp} {stop}; i{'++' if step > 0 else '--'})")
    each("i")
    p.forget()
    p.w.close()


def _forward(p: _Prog, kernel: Kernel, s: dict[str, Any]) -> None:
    nx, nu, h = kernel.spec["NX"], kernel.spec["NU"], kernel.spec["H"]
    neg = -1.0 if s["vec"] == 2 else 1.0
    # Scratchpad rows: matrices, then vectors. Accumulator rows: u, x_next, and a temp when not merged.
    spad = [("KI", nu * nx // DIM), ("AD", nx * nx // DIM), ("BD", nx * nu // DIM), ("X", nx), ("X2", nx)]
    _layout(p, [*spad, ("UV", nu), ("DV", nu)], [("U", nu), ("XN", nx), ("T", nx)])
    if not s["merge"]:
        p(f"float t[{nx}][1];")

    def step(i: str) -> None:
        p.colvec(f"x[{i}]", nx, "X")
        if s["vec"] >= 1:
            p.colvec(f"d[{i}]", nu, "DV", scale=neg)
        p.fence(False)
        # u_i = -(Kinf x_i) - d_i
        p.colprod("KI", nu, nx, "X", "U", False, "DV" if s["vec"] >= 1 else None)
        p.store_col(f"u[{i}]", nu, "U")
        p.fence(True)  # u_i is read back (by the CPU, or by the mvin below)
        if s["vec"] < 2:
            p.w.open(f"for (int j = 0; j < {nu}; j++)")
            p(f"u[{i}][j][0] = -u[{i}][j][0];" if s["vec"] == 1 else f"u[{i}][j][0] = -u[{i}][j][0] - d[{i}][j][0];")
            p.w.close()
        p.colvec(f"u[{i}]", nu, "UV")
        # x_{i+1} = Adyn x_i + Bdyn u_i
        xs = "X"
        if s["reload"]:
            p.colvec(f"x[{i}]", nx, "X2")
            xs = "X2"
        p.fence(False)
        p.colprod("AD", nx, nx, xs, "XN", False, None)
        p.colprod("BD", nx, nu, "UV", "XN" if s["merge"] else "T", s["merge"], None)
        p.store_col(f"x[{i} + 1]", nx, "XN")
        if not s["merge"]:
            p.store_col("t", nx, "T")
            p.fence(True)  # the CPU adds t
            p.w.open(f"for (int j = 0; j < {nx}; j++)")
            p(f"x[{i} + 1][j][0] += t[j][0];")
            p.w.close()
        p.fence(s["merge"])  # the next step reads x_{i+1}: a fence after its mvout (CPU stores need none)

    matrices = [("Kinf", nu, nx, "KI", neg), ("Adyn", nx, nx, "AD"), ("Bdyn", nx, nu, "BD")]
    _horizon(p, s, 0, h - 1, 1, matrices, step)


def _backward(p: _Prog, kernel: Kernel, s: dict[str, Any]) -> None:
    nx, nu, h = kernel.spec["NX"], kernel.spec["NU"], kernel.spec["H"]
    neg = -1.0 if s["vec"] == 2 else 1.0
    mats = [("QU", nu * nu // DIM), ("AM", nx * nx // DIM), ("BD", nx * nu // DIM), ("KI", nu * nx // DIM)]
    vecs = [("PR", nx // DIM), ("PC", nx), ("RR", nu // DIM), ("RC", nu), ("TR", nu // DIM), ("QC", nx)]
    _layout(p, [*mats, *vecs], [("T", nu), ("DO", nu), ("PN", nx), ("KR", nx)])
    p(f"float t[{nu}][1];")
    if not s["merge"]:
        p(f"float kr[{nx}][1];")

    def step(i: str) -> None:
        p.rowvec(f"p[{i} + 1]", nx, "PR")
        p.colvec(f"p[{i} + 1]", nx, "PC")
        p.rowvec(f"r[{i}]", nu, "RR")
        if s["vec"] >= 1:
            p.colvec(f"q[{i}]", nx, "QC")
        if s["merge"]:
            p.colvec(f"r[{i}]", nu, "RC")
        p.fence(False)
        # t = Bdyn^T p_{i+1} + r_i (row form), then d_i = Quu_inv^T t
        p.rowprod("PR", "BD", nx, nu, "T", "RR" if s["vec"] >= 1 else None)
        p.store_row("t", nu, "T")
        p.fence(True)  # t is read back
        if s["vec"] == 0:
            p.w.open(f"for (int j = 0; j < {nu}; j++)")
            p(f"t[j][0] += r[{i}][j][0];")
            p.w.close()
        p.rowvec("t", nu, "TR")
        p.fence(False)
        p.rowprod("TR", "QU", nu, nu, "DO", None)
        p.store_row(f"d[{i}]", nu, "DO")
        # p_i = q_i + AmBKt p_{i+1} - Kinf^T r_i
        p.colprod("AM", nx, nx, "PC", "PN", False, "QC" if s["vec"] >= 1 else None)
        if s["merge"]:
            # Column form of -Kinf^T r_i: A = (-Kinf)^T blocks, read transposed straight from the Kinf rows.
            p("config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, true, false);")
            for ib in range(nx // DIM):
                weights = "RC" if ib == 0 else "GARBAGE_ADDR"
                p(f"preload({weights}, PN + {ib * DIM} | ACC, 1, {DIM}, 1, {DIM});")
                call = "compute_preloaded" if ib == 0 else "compute_accumulated"
                p(f"{call}(KI + {ib * DIM}, GARBAGE_ADDR, {DIM}, {DIM}, 1, {DIM});")
            p("config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);")
            p.store_col(f"p[{i}]", nx, "PN")
        else:
            p.store_col(f"p[{i}]", nx, "PN")
            p.rowprod("RR", "KI", nu, nx, "KR", None)
            p.store_row("kr", nx, "KR")
            p.fence(True)  # the CPU combines the two products
            p.w.open(f"for (int j = 0; j < {nx}; j++)")
            sign = "+" if s["vec"] == 2 else "-"
            p(f"p[{i}][j][0] {sign}= kr[j][0];" if s["vec"] >= 1 else f"p[{i}][j][0] += q[{i}][j][0] - kr[j][0];")
            p.w.close()
        p.fence(s["merge"])  # the next step reads p_i: a fence after its mvout (CPU stores need none)

    matrices = [("Quu_inv", nu, nu, "QU"), ("AmBKt", nx, nx, "AM"), ("Bdyn", nx, nu, "BD"), ("Kinf", nu, nx, "KI", neg)]
    _horizon(p, s, h - 2, -1, -1, matrices, step)


# --- transformations ---------------------------------------------------------------------------
def moves(kernel: Kernel, s: dict[str, Any], kind: str) -> list[tuple[dict[str, Any], str]]:
    out: list[tuple[dict[str, Any], str]] = []

    def put(desc: str, **changes: Any) -> None:
        out.append(({**s, **changes}, desc))

    if kind == "bias" and s["vec"] == 0:
        put("add the bias vectors as the array's D operand instead of in CPU loops", vec=1)
    elif kind == "negate" and s["vec"] == 1:
        put("negate through mvin scale -1 (negated matrices and biases): no CPU loop left", vec=2)
    elif kind == "to_accel" and s["vec"] < 2:
        put("move the CPU vector work to the accelerator", vec=s["vec"] + 1)
    elif kind == "merge" and not s["merge"]:
        put(
            "accumulate both products into the same accumulator rows",
            merge=True,
            vec=max(s["vec"], 2 if kernel.spec["kind"] == "backward" else s["vec"]),
        )
    elif kind == "fences" and s["fence"] == "every":
        put("keep only the fences before CPU reads and DRAM read-after-write", fence="needed")
    elif kind == "resident" and not s["resident"]:
        put("load the constant matrices once, before the horizon loop", resident=True)
    elif kind == "wide" and not s["wide"]:
        put("one mvin per 4-row group and per vector instead of one per 4x4 block", wide=True)
    elif kind == "reload" and s["reload"]:
        put("reuse the scratchpad copy of x_i instead of loading it again", reload=False)
    elif kind == "unroll" and not s["unroll"]:
        put("unroll the horizon loop", unroll=True)
    return out


ITEM_MOVES: dict[int, tuple[str, ...]] = {
    REMOVE: ("fences", "reload"),
    SIMPLIFY: ("negate",),
    MERGE_INSTR: ("wide",),
    MERGE_OPS: ("merge",),
    REORDER: ("reload",),
    TO_ACCEL: ("to_accel",),
    BIAS: ("bias",),
    HOIST: ("resident",),
    SUBSTITUTE: ("negate", "wide"),
    PIPELINE: ("fences", "resident"),
    FENCES: ("fences",),
    MIN_DATA: ("resident", "reload"),
    MIN_OVERHEAD: ("unroll", "wide"),
    OTHER: ("bias", "negate", "merge", "fences", "resident", "wide", "reload", "unroll"),
}

ITEM_PATTERNS: tuple[tuple[int, str], ...] = (
    (REMOVE, r"remove (unnecessary|redundant)|unnecessary code|dead code"),
    (SIMPLIFY, r"simplif|propagat|negat\w* (via|through|with) (the )?scale|scale (of )?-1"),
    (MERGE_INSTR, r"merge (the )?(instructions|mvins|loads)|wider? mvins?|fewer mvins"),
    (MERGE_OPS, r"merge (the )?(high.level )?(operations|products|matmuls)|accumulate both|same accumulator"),
    (REORDER, r"reorder"),
    (TO_ACCEL, r"(move|offload)\b.{0,30}\b(to|onto) the accelerator|cpu.based|cpu loops?"),
    (BIAS, r"\bbias\b"),
    (HOIST, r"hoist|out of the (horizon )?loop|load (the )?(constant )?matri\w+ once"),
    (SUBSTITUTE, r"substitut|equivalent faster|faster equivalent"),
    (PIPELINE, r"pipelin|overlap"),
    (FENCES, r"fences?|data dependenc"),
    (MIN_DATA, r"data movement|fewer loads|resident"),
    (MIN_OVERHEAD, r"loop overhead|unroll"),
    (OTHER, r"other methods?"),
)


def tinympc_spec(parsed: KernelSpec) -> dict[str, Any]:
    kind = parsed.kind.removeprefix("tinympc-")
    nx, nu, *h = parsed.dims
    shape = f"{kind}-{'x'.join(map(str, parsed.dims))}"
    if nx % DIM or nu % DIM or nx > 16 or nu > 16:
        raise ValueError(f"tinympc NX and NU must be multiples of {DIM} between {DIM} and 16, got {shape!r}")
    spec: dict[str, Any] = {"kind": kind, "NX": nx, "NU": nu, "dtype": "float32"}
    if h:
        if not 2 <= h[0] <= 64:
            raise ValueError(f"tinympc horizon must be between 2 and 64, got {shape!r}")
        spec["H"] = h[0]
    return spec


class GemminiTinyMPC(GemminiFamily):
    space = sys.modules[__name__]
    name = "tinympc"
    menu = LINALG
    flagship = "gemmini-tinympc:1"
    item_moves = ITEM_MOVES
    item_patterns = ITEM_PATTERNS
    choices = {"vec": (0, 1, 2), "fence": ("every", "needed")}

    def spec(self, parsed: KernelSpec) -> dict[str, Any]:
        return tinympc_spec(parsed)

    def small_name(self, spec: dict[str, Any]) -> str:
        dims = [spec["NX"], spec["NU"]] + ([spec["H"]] if "H" in spec else [])
        return f"gemmini/tinympc-{spec['kind']}-{'x'.join(map(str, dims))}"  # already tiny: itself

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        # No vendor library covers these kernels; the "vendor" entry is the straightforward CPU-heavy code
        # Autocomp starts from, and the expert is the best schedule of our space.
        return {"vendor": self.starting_code(kernel), "expert": self.emit(kernel, expert_schedule(kernel))}

    def plan_params(self, text: str) -> dict[str, Any]:
        return {}

    def inject_fault(self, kernel: Kernel, code: str, rng) -> tuple[str, str]:
        found = faults(code) + _fence_faults(code)
        if not found:
            return inject_fault(code, rng)
        return found[int(rng.integers(len(found)))]


def _fence_faults(code: str) -> list[tuple[str, str]]:
    """Drop a fence that orders a mvout before a later mvin of the same array (a DRAM read-after-write)."""
    lines = code.splitlines(keepends=True)
    reloaded = set(re.findall(r"\bmvin\d?\(&(\w+)\[", code))
    out, stored = [], set()
    for i, line in enumerate(lines):
        stored |= set(re.findall(r"\bmvout\(&(\w+)\[", line))
        if line.strip() == "fence();":
            if stored & reloaded:
                out.append(("".join(lines[:i] + lines[i + 1 :]), "a fence between a mvout and a reload is missing"))
            stored = set()
    return out


def expert_schedule(kernel: Kernel) -> dict[str, Any]:
    """Hand-tuned: resident matrices, wide loads, minimal fences, merged forward products. The few vector
    negations and additions stay on the CPU: in our simulator a short CPU loop costs less than the extra
    loads and load configurations that folding them into the array needs."""
    merge = kernel.spec["kind"] == "forward"
    s = {"vec": 0, "merge": merge, "fence": "needed", "resident": True, "wide": True, "reload": False, "unroll": True}
    return normalize(kernel, s)


FAMILY = GemminiTinyMPC()
