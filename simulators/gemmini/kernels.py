"""Kernel specs for the Gemmini harness: names, array signatures, seeded inputs, numpy references.

Names: `gemmini/matmul-{I}x{K}x{J}[-bias][-relu]`, `gemmini/conv-{N}x{P}x{Q}x{C}x{K}` (3x3, stride 1, padding 1,
int32 bias), `gemmini/tinympc-matvec-{NX}x{NU}`, `gemmini/tinympc-forward-{NX}x{NU}x{H}`,
`gemmini/tinympc-backward-{NX}x{NU}x{H}` (FP32, 4x4 config), `gemmini/resadd-{I}x{J}[-relu]` (C = sat8(A + B),
the residual addition of `tiled_resadd_auto`), `gemmini/globalavg-{N}x{D}x{C}` (the rounded mean over each
image's D x D pixels per channel, as `tiled_global_average_auto`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_INT = r"([1-9][0-9]{0,5})"
_PATTERNS = {
    "matmul": re.compile(rf"^gemmini/matmul-{_INT}x{_INT}x{_INT}((?:-at|-bt|-bias|-relu)*)$"),
    "conv": re.compile(rf"^gemmini/conv-{_INT}x{_INT}x{_INT}x{_INT}x{_INT}$"),
    "tinympc-matvec": re.compile(rf"^gemmini/tinympc-matvec-{_INT}x{_INT}$"),
    "tinympc-forward": re.compile(rf"^gemmini/tinympc-forward-{_INT}x{_INT}x{_INT}$"),
    "tinympc-backward": re.compile(rf"^gemmini/tinympc-backward-{_INT}x{_INT}x{_INT}$"),
    "resadd": re.compile(rf"^gemmini/resadd-{_INT}x{_INT}(-relu)?$"),
    "globalavg": re.compile(rf"^gemmini/globalavg-{_INT}x{_INT}x{_INT}$"),
}
_MAX_ELEMS = 1 << 26  # largest array we generate (64 Mi elements)


@dataclass(frozen=True)
class Array:
    name: str
    ctype: str  # "int8_t" | "int32_t" | "float"
    shape: tuple[int, ...]
    role: str  # "in" (checked unchanged? no: only passed), "out" (compared), "inout" (passed and compared)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype({"int8_t": np.int8, "int32_t": np.int32, "float": np.float32}[self.ctype])

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class KernelSpec:
    name: str
    kind: str
    dims: tuple[int, ...]
    bias: bool = False
    relu: bool = False
    a_t: bool = False  # A is given transposed, as [K][I]
    b_t: bool = False  # B is given transposed, as [J][K]

    @property
    def fp32(self) -> bool:
        return self.kind.startswith("tinympc")

    @property
    def arrays(self) -> tuple[Array, ...]:
        d = self.dims
        if self.kind == "matmul":
            i, k, j = d
            arrs = [
                Array("A", "int8_t", (k, i) if self.a_t else (i, k), "in"),
                Array("B", "int8_t", (j, k) if self.b_t else (k, j), "in"),
            ]
            if self.bias:
                arrs.append(Array("D", "int32_t", (1, j), "in"))
            return (*arrs, Array("C", "int8_t", (i, j), "out"))
        if self.kind == "resadd":
            return (Array("A", "int8_t", d, "in"), Array("B", "int8_t", d, "in"), Array("C", "int8_t", d, "out"))
        if self.kind == "globalavg":
            n, dim, c = d
            return (Array("input", "int8_t", (n, dim, dim, c), "in"), Array("output", "int8_t", (n, c), "out"))
        if self.kind == "conv":
            n, p, q, c, k = d
            return (
                Array("inp", "int8_t", (n, p + 2, q + 2, c), "in"),
                Array("weights", "int8_t", (3, 3, c, k), "in"),
                Array("bias", "int32_t", (1, k), "in"),
                Array("output", "int8_t", (n, p, q, k), "out"),
            )
        nx, nu = d[0], d[1]
        if self.kind == "tinympc-matvec":
            return (
                Array("Kinf", "float", (nx, nu), "in"),
                Array("x", "float", (nx, 1), "in"),
                Array("d", "float", (nu, 1), "in"),
                Array("u", "float", (nu, 1), "out"),
            )
        h = d[2]
        if self.kind == "tinympc-forward":
            return (
                Array("Adyn", "float", (nx, nx), "in"),
                Array("Bdyn", "float", (nx, nu), "in"),
                Array("Kinf", "float", (nu, nx), "in"),
                Array("x", "float", (h, nx, 1), "inout"),
                Array("d", "float", (h, nu, 1), "in"),
                Array("u", "float", (h, nu, 1), "out"),
            )
        return (
            Array("Quu_inv", "float", (nu, nu), "in"),
            Array("AmBKt", "float", (nx, nx), "in"),
            Array("Kinf", "float", (nu, nx), "in"),
            Array("Bdyn", "float", (nx, nu), "in"),
            Array("p", "float", (h, nx, 1), "inout"),
            Array("q", "float", (h, nx, 1), "in"),
            Array("r", "float", (h, nu, 1), "in"),
            Array("d", "float", (h, nu, 1), "out"),
        )

    @property
    def macs(self) -> int:
        d = self.dims
        if self.kind == "matmul":
            return d[0] * d[1] * d[2]
        if self.kind == "conv":
            n, p, q, c, k = d
            return n * p * q * 9 * c * k
        if self.kind in ("resadd", "globalavg"):
            return 0  # no multiply-accumulate: its roofline is 0 cycles
        nx, nu = d[0], d[1]
        if self.kind == "tinympc-matvec":
            return nx * nu
        h = d[2]
        if self.kind == "tinympc-forward":
            return (h - 1) * (nu * nx + nx * nx + nx * nu)
        return (h - 1) * (nx * nu + nu * nu + nx * nx + nx * nu)

    def defines(self) -> dict[str, int | str]:
        d = self.dims
        if self.kind == "matmul":
            i, k, j = d
            return {
                "MAT_DIM_I": i,
                "MAT_DIM_K": k,
                "MAT_DIM_J": j,
                "A_MATRIX_NAME": "A",
                "B_MATRIX_NAME": "B",
                "C_MATRIX_NAME": "C",
                "D_MATRIX_NAME": "D",
                "A_TRANSPOSE": int(self.a_t),
                "B_TRANSPOSE": int(self.b_t),
            }
        if self.kind == "resadd":
            return {"MAT_DIM_I": d[0], "MAT_DIM_J": d[1]}
        if self.kind == "globalavg":
            return {"BATCH_SIZE": d[0], "IN_DIM": d[1], "CHANNELS": d[2]}
        if self.kind == "conv":
            n, p, q, c, k = d
            return {
                "BATCH_SIZE": n,
                "IN_ROW_DIM": p + 2,
                "IN_COL_DIM": q + 2,
                "IN_CHANNELS": c,
                "OUT_CHANNELS": k,
                "OUT_ROW_DIM": p,
                "OUT_COL_DIM": q,
                "KERNEL_DIM": 3,
                "PADDING": 1,
                "N": n,
                "INP_ROWS": p + 2,
                "INP_COLS": q + 2,
                "C": c,
                "K": k,
                "P": p,
                "Q": q,
                "R": 3,
                "S": 3,
                "STRIDE": 1,
                "INP_MATRIX_NAME": "inp",
                "WEIGHT_MATRIX_NAME": "weights",
                "BIAS_MATRIX_NAME": "bias",
                "OUT_MATRIX_NAME": "output",
                "OUTPUT_MATRIX_NAME": "output",
            }
        out: dict[str, int | str] = {"NX": d[0], "NU": d[1]}
        if len(d) > 2:
            out["NHORIZON"] = d[2]
        return out

    def signature(self) -> str:
        def dim(s: int) -> str:
            return f"[{s}]"

        params = ", ".join(f"{a.ctype} {a.name}{''.join(dim(s) for s in a.shape)}" for a in self.arrays)
        return f"void solution({params})"


def parse_kernel(name: str) -> KernelSpec:
    """Parse a Gemmini kernel name; raise ValueError with the accepted forms for anything else."""
    if not isinstance(name, str):
        raise ValueError(f"kernel name must be a string, got {type(name).__name__}")
    for kind, pat in _PATTERNS.items():
        m = pat.match(name)
        if not m:
            continue
        if kind == "matmul":
            dims = tuple(int(x) for x in m.groups()[:3])
            flags = m.group(4) or ""
            parts = flags.split("-")[1:]
            if len(set(parts)) != len(parts):
                raise ValueError(f"{name}: repeated variant flag")
            spec = KernelSpec(
                name, kind, dims, bias="bias" in parts, relu="relu" in parts, a_t="at" in parts, b_t="bt" in parts
            )
        elif kind == "resadd":
            spec = KernelSpec(name, kind, (int(m.group(1)), int(m.group(2))), relu=bool(m.group(3)))
        else:
            spec = KernelSpec(name, kind, tuple(int(x) for x in m.groups()))
        if kind.startswith("tinympc") and len(spec.dims) > 2 and spec.dims[2] < 2:
            raise ValueError(f"{name}: NHORIZON must be at least 2")
        if any(a.size > _MAX_ELEMS for a in spec.arrays):
            raise ValueError(f"{name}: an array would exceed {_MAX_ELEMS} elements")
        return spec
    raise ValueError(
        f"unknown Gemmini kernel {name!r}; expected gemmini/matmul-IxKxJ[-at][-bt][-bias][-relu], "
        "gemmini/conv-NxPxQxCxK, gemmini/tinympc-matvec-NXxNU, gemmini/tinympc-forward-NXxNUxH, "
        "gemmini/tinympc-backward-NXxNUxH, gemmini/resadd-IxJ[-relu] or gemmini/globalavg-NxDxC"
    )


_SMALL = (np.arange(256) % 7 - 3).astype(np.int8)  # a byte to -3..3, nearly uniform


def _int8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # The whole int8 range, but mostly small values so that sums do not all saturate: one in eight uniform over
    # int8, the rest over -3..3. Drawn as bytes and a table (inputs are drawn per evaluation, so speed matters).
    b = rng.integers(0, 256, size=(2, *shape), dtype=np.uint8)
    return np.where(b[0] < 32, b[1].view(np.int8), _SMALL[b[1]])


def _small_float(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    v = rng.integers(-2, 3, size=shape) * (rng.random(shape) < 0.35)
    return v.astype(np.float32)


_EXACT = 2.0**24  # below this, float32 sums of integers are exact in any order


def make_inputs(spec: KernelSpec, seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs (and the initial contents of outputs) for every array of the kernel."""
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt])
        out: dict[str, np.ndarray] = {}
        for a in spec.arrays:
            if a.ctype == "int8_t":
                out[a.name] = _int8(rng, a.shape)
            elif a.ctype == "int32_t":
                out[a.name] = rng.integers(-4000, 4001, size=a.shape).astype(np.int32)
            else:
                out[a.name] = _small_float(rng, a.shape)
            if a.role == "out":  # garbage, so stale memory never passes by accident
                out[a.name] = (rng.integers(0, 200, size=a.shape, dtype=np.uint8).astype(np.int16) - 100).astype(
                    a.dtype
                )
        if spec.kind == "tinympc-forward":
            out["x"][1:] = rng.integers(-100, 100, size=out["x"][1:].shape)
        if spec.kind == "tinympc-backward":
            out["p"][:-1] = rng.integers(-100, 100, size=out["p"][:-1].shape)
        if not spec.fp32 or _max_intermediate(spec, out) < _EXACT:
            return out
    raise ValueError(f"{spec.name}: could not draw inputs whose float32 results are exact")


def _max_intermediate(spec: KernelSpec, inp: dict[str, np.ndarray]) -> float:
    ref = reference(spec, inp, dtype=np.float64)
    return max(float(np.abs(v).max(initial=0.0)) for v in ref.values()) * max(spec.dims)


def reference(spec: KernelSpec, inp: dict[str, np.ndarray], dtype=np.float32) -> dict[str, np.ndarray]:
    """The expected contents of every array the candidate must write."""
    if spec.kind == "matmul":
        # BLAS is exact here: |sums| < 2^24 in float32 while K * 128^2 + the bias stays below it, else float64
        dt = np.float32 if spec.dims[1] * 128 * 128 + 4096 < 2**24 else np.float64
        a, b = inp["A"].astype(dt), inp["B"].astype(dt)
        acc = ((a.T if spec.a_t else a) @ (b.T if spec.b_t else b)).astype(np.int64)
        if spec.bias:
            acc = acc + inp["D"].astype(np.int64)
        c = np.clip(acc, -128, 127)
        if spec.relu:
            c = np.maximum(c, 0)
        return {"C": c.astype(np.int8)}
    if spec.kind == "globalavg":
        n, dim, _c = spec.dims
        s = inp["input"].astype(np.int64).sum(axis=(1, 2)).astype(np.float32)  # exact: |sums| < 2^24
        mean = np.rint(s * (np.float32(1.0) / np.float32(dim * dim)))  # float32 product, half to even
        return {"output": np.clip(mean, -128, 127).astype(np.int8)}
    if spec.kind == "resadd":
        c = np.clip(inp["A"].astype(np.int64) + inp["B"].astype(np.int64), -128, 127)
        return {"C": (np.maximum(c, 0) if spec.relu else c).astype(np.int8)}
    if spec.kind == "conv":
        x, w = inp["inp"].astype(np.float64), inp["weights"].astype(np.float64)
        n, p, q, _c, k = spec.dims
        acc = np.broadcast_to(inp["bias"].astype(np.float64).reshape(1, 1, 1, k), (n, p, q, k)).copy()
        for r in range(3):
            for s in range(3):
                acc += np.tensordot(x[:, r : r + p, s : s + q, :], w[r, s], axes=([3], [0]))
        return {"output": np.clip(acc, -128, 127).astype(np.int8)}  # exact: |sums| < 2^53
    f = {k: v.astype(np.float64) for k, v in inp.items()}
    if spec.kind == "tinympc-matvec":
        return {"u": (-(f["Kinf"].T @ f["x"] + f["d"])).astype(dtype)}
    h = spec.dims[2]
    if spec.kind == "tinympc-forward":
        x, u = f["x"].copy(), f["u"].copy()
        for i in range(h - 1):
            u[i] = -(f["Kinf"] @ x[i]) - f["d"][i]
            x[i + 1] = f["Adyn"] @ x[i] + f["Bdyn"] @ u[i]
        return {"x": x.astype(dtype), "u": u.astype(dtype)}
    p, d = f["p"].copy(), f["d"].copy()
    for i in range(h - 2, -1, -1):
        d[i] = f["Quu_inv"].T @ (f["Bdyn"].T @ p[i + 1] + f["r"][i])
        p[i] = f["q"][i] + f["AmBKt"] @ p[i + 1] - f["Kinf"].T @ f["r"][i]
    return {"p": p.astype(dtype), "d": d.astype(dtype)}


@lru_cache(maxsize=8)
def case(spec: KernelSpec, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, expected outputs) for one seed; cached because a search evaluates many candidates per kernel."""
    inp = make_inputs(spec, seed)
    ref = reference(spec, inp)
    for v in (*inp.values(), *ref.values()):
        v.flags.writeable = False
    return inp, ref
