"""Each Gemmini instruction against numpy, through small C programs linked with the simulator runtime."""

from __future__ import annotations

import numpy as np
import pytest

from simulators import sandbox
from simulators.gemmini.build import build_runtime
from simulators.gemmini.config import DEFAULT, FP32_4X4, GemminiConfig

RNG = np.random.default_rng(7)


def c_array(name: str, a: np.ndarray, ctype: str) -> str:
    vals = ", ".join(repr(float(v)) + "f" if ctype == "float" else str(int(v)) for v in a.ravel())
    dims = "".join(f"[{s}]" for s in a.shape)
    return f"static {ctype} {name}{dims} __attribute__((aligned(64))) = {{{vals}}};"


def run_prog(
    decls: str,
    body: str,
    dumps: dict[str, tuple[str, tuple[int, ...]]],
    config: GemminiConfig = DEFAULT,
    env: dict[str, str] | None = None,
):
    """Compile and run `body` in main(); return the dumped arrays, or the simulator error text."""
    root = build_runtime(config)
    fmt = {"int8_t": "%d", "int32_t": "%d", "float": "%g"}
    dump = "\n".join(
        f'  printf("{n}"); for (size_t i = 0; i < sizeof {n} / sizeof *({ctype} *){n}; i++) '
        f'printf(" {fmt[ctype]}", ((({ctype} *){n})[i])); printf("\\n");'
        for n, (ctype, _) in dumps.items()
    )
    src = (
        '#include "gemmini.h"\nvoid gsim_init(void *); void gsim_reset(void); void gsim_finish(const char *);\n'
        f"{decls}\nint main(void) {{ char probe; gsim_init(&probe); gsim_reset();\n{body}\n"
        f'  gsim_finish("stats.txt");\n{dump}\n  return 0; }}\n'
    )
    script = f"gcc -O1 -w -I {root}/include prog.c {root}/libgsim.a -lm -o prog 2> cc.txt || exit 97; exec ./prog"
    out = sandbox.run(["/bin/sh", "-c", script], files={"prog.c": src}, read_back=("cc.txt", "gsim_error.txt"), env=env)
    assert out.returncode != 97, out.files.get("cc.txt", b"").decode()
    if "gsim_error.txt" in out.files:
        return out.files["gsim_error.txt"].decode()
    assert out.returncode == 0, out.stderr
    res = {}
    for line in out.stdout.splitlines():
        name, *vals = line.split()
        ctype, shape = dumps[name]
        res[name] = np.array([float(v) for v in vals]).reshape(shape)
    return res


def i8(*shape: int) -> np.ndarray:
    return RNG.integers(-128, 128, size=shape).astype(np.int8)


def test_mvin_mvout_scratchpad_roundtrip():
    a = i8(16, 16)
    r = run_prog(
        c_array("a", a, "int8_t") + "static int8_t o[16][16];",
        "config_ld(16, 1.0f, DIM, 0); config_st(16); mvin(a, 5, 16, 16); mvout(o, 5, 16, 16); fence();",
        {"o": ("int8_t", (16, 16))},
    )
    assert np.array_equal(r["o"], a)


def test_mvin_64_columns_uses_block_stride():
    a = i8(16, 64)
    body = "config_ld(64, 1.0f, 40, 0); config_st(16); mvin(a, 100, 64, 16);"
    body += "".join(f"mvout(o[{b}], 100 + {b} * 40, 16, 16);" for b in range(4)) + "fence();"
    r = run_prog(c_array("a", a, "int8_t") + "static int8_t o[4][16][16];", body, {"o": ("int8_t", (4, 16, 16))})
    for b in range(4):
        assert np.array_equal(r["o"][b], a[:, b * 16 : (b + 1) * 16])


def test_mvin_from_address_zero_writes_zeros():
    a = i8(16, 16)
    body = "config_ld(16, 1.0f, DIM, 0); config_st(16); mvin(a, 0, 16, 16); mvin(0, 0, 16, 8); mvout(o, 0, 16, 16); fence();"
    r = run_prog(c_array("a", a, "int8_t") + "static int8_t o[16][16];", body, {"o": ("int8_t", (16, 16))})
    assert not r["o"][:8].any() and np.array_equal(r["o"][8:], a[8:])


def test_mvin_row_stride_zero_broadcasts_bias_into_accumulator():
    b = RNG.integers(-(2**30), 2**30, size=(1, 16)).astype(np.int32)
    body = "gemmini_extended3_config_ld(0, 1.0f, false, 2); gemmini_config_st(64); mvin3(b, 1u << 31, 16, 16);"
    body += "mvout(o, (1u << 31) | (1u << 29), 16, 16); fence();"
    r = run_prog(c_array("b", b, "int32_t") + "static int32_t o[16][16];", body, {"o": ("int32_t", (16, 16))})
    assert np.array_equal(r["o"], np.repeat(b, 16, axis=0))


def test_mvin_scale_rounds_half_to_even_and_saturates():
    a = i8(16, 16)
    body = "config_ld(16, 0.5f, DIM, 0); config_st(16); mvin(a, 0, 16, 16); mvout(o, 0, 16, 16); fence();"
    r = run_prog(c_array("a", a, "int8_t") + "static int8_t o[16][16];", body, {"o": ("int8_t", (16, 16))})
    assert np.array_equal(r["o"], np.rint(a.astype(np.float32) * np.float32(0.5)))
    body = "config_ld(16, 3.0f, DIM, 0); config_st(16); mvin(a, 0, 16, 16); mvout(o, 0, 16, 16); fence();"
    r = run_prog(c_array("a", a, "int8_t") + "static int8_t o[16][16];", body, {"o": ("int8_t", (16, 16))})
    assert np.array_equal(r["o"], np.clip(a.astype(np.int32) * 3, -128, 127))


def _ws_program(
    extra: str = "", cfg: str = "config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false);", st: int = 64
):
    return (
        cfg + f"config_ld(16, 1.0f, DIM, 0); config_ld(16, 1.0f, DIM, 1); gemmini_config_st({st});"
        "mvin(a, 0, 16, 16); mvin2(b, 4096, 16, 16); mvin(d, 8192, 16, 16);" + extra
    )


def test_compute_preloaded_ws_with_d_and_raw_accumulator_read():
    a, b, d = i8(16, 16), i8(16, 16), i8(16, 16)
    body = _ws_program(
        "preload(4096, 1u << 31, 16, 16, 16, 16); compute_preloaded(0, 8192, 16, 16, 16, 16);"
        "mvout(o, (1u << 31) | (1u << 29), 16, 16); fence();"
    )
    decls = "".join(c_array(n, v, "int8_t") for n, v in (("a", a), ("b", b), ("d", d))) + "static int32_t o[16][16];"
    r = run_prog(decls, body, {"o": ("int32_t", (16, 16))})
    assert np.array_equal(r["o"], a.astype(np.int64) @ b + d)


def test_compute_accumulated_reuses_weights_and_bit30_accumulates():
    a, b, d = i8(16, 16), i8(16, 16), i8(16, 16)
    body = _ws_program(
        "preload(4096, 1u << 31, 16, 16, 16, 16); compute_preloaded(0, GARBAGE_ADDR, 16, 16, 16, 16);"
        "preload(GARBAGE_ADDR, (1u << 31) | 16, 16, 16, 16, 16); compute_accumulated(8192, GARBAGE_ADDR, 16, 16, 16, 16);"
        "preload(GARBAGE_ADDR, (1u << 31) | (1u << 30), 16, 16, 16, 16); compute_accumulated(8192, GARBAGE_ADDR, 16, 16, 16, 16);"
        "mvout(o[0], (1u << 31) | (1u << 29), 16, 16); mvout(o[1], (1u << 31) | (1u << 29) | 16, 16, 16); fence();"
    )
    decls = "".join(c_array(n, v, "int8_t") for n, v in (("a", a), ("b", b), ("d", d))) + "static int32_t o[2][16][16];"
    r = run_prog(decls, body, {"o": ("int32_t", (2, 16, 16))})
    ab, db = a.astype(np.int64) @ b, d.astype(np.int64) @ b
    assert np.array_equal(r["o"][0], ab + db)
    assert np.array_equal(r["o"][1], db)


def test_partial_tiles_pad_with_zeros_and_clip_outputs():
    a, b, d = i8(16, 16), i8(16, 16), i8(16, 16)
    body = _ws_program(
        "gemmini_config_st(16); mvin(0, 32, 16, 16);"
        "preload(4096, 32, 7, 5, 6, 3); compute_preloaded(0, GARBAGE_ADDR, 5, 9, 16, 16);"
        "mvout(o, 32, 16, 16); fence();"
    )
    decls = "".join(c_array(n, v, "int8_t") for n, v in (("a", a), ("b", b), ("d", d))) + "static int8_t o[16][16];"
    r = run_prog(decls, body, {"o": ("int8_t", (16, 16))})
    want = np.zeros((16, 16), np.int64)
    full = a[:9, :5].astype(np.int64) @ b[:5, :7]
    want[:3, :6] = np.clip(full[:3, :6], -128, 127)
    assert np.array_equal(r["o"], want)


def test_mvout_scale_rne_saturation_relu():
    x = RNG.integers(-2000, 2000, size=(16, 16)).astype(np.int32)
    x[0, :4] = [5, 15, 25, -15]  # ties at scale 0.5 round to even
    body = (
        "gemmini_extended3_config_ld(64, 1.0f, false, 2); mvin3(x, 1u << 31, 16, 16);"
        "gemmini_extended_config_st(16, RELU, 0.37f); mvout(o, 1u << 31, 16, 16);"
        "gemmini_extended_config_st(16, NO_ACTIVATION, 0.5f); mvout(h, 1u << 31, 16, 16); fence();"
    )
    decls = c_array("x", x, "int32_t") + "static int8_t o[16][16], h[16][16];"
    r = run_prog(decls, body, {"o": ("int8_t", (16, 16)), "h": ("int8_t", (16, 16))})
    y = np.rint(x.astype(np.float32) * np.float32(0.37))
    assert np.array_equal(r["o"], np.maximum(np.clip(y, -128, 127), 0))
    assert np.array_equal(r["h"], np.clip(np.rint(x.astype(np.float32) * np.float32(0.5)), -128, 127))


def test_transposes_and_a_stride():
    a, b, d = i8(16, 16), i8(16, 16), i8(16, 16)
    out = {"o": ("int32_t", (3, 16, 16))}
    decls = "".join(c_array(n, v, "int8_t") for n, v in (("a", a), ("b", b), ("d", d))) + "static int32_t o[3][16][16];"
    acc_rd = "(1u << 31) | (1u << 29)"
    body = (
        _ws_program(cfg="config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, true, false);")
        + "preload(4096, 1u << 31, 16, 16, 16, 16); compute_preloaded(0, GARBAGE_ADDR, 16, 16, 16, 16);"
        + f"mvout(o[0], {acc_rd}, 16, 16);"
        + "config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, true);"
        + "preload(4096, 1u << 31, 16, 16, 16, 16); compute_preloaded(0, GARBAGE_ADDR, 16, 16, 16, 16);"
        + f"mvout(o[1], {acc_rd}, 16, 16);"
        + "config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 2, false, false);"
        + "preload(4096, 1u << 31, 16, 16, 16, 16); compute_preloaded(0, GARBAGE_ADDR, 16, 8, 16, 8);"
        + f"mvout(o[2], {acc_rd}, 16, 8); fence();"
    )
    r = run_prog(decls, body, out)
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    assert np.array_equal(r["o"][0], a64.T @ b64)
    assert np.array_equal(r["o"][1], a64 @ b64.T)
    assert np.array_equal(r["o"][2][:8], a64[0::2] @ b64)


def test_output_stationary_dataflow():
    a, b, d = i8(16, 16), i8(16, 16), i8(16, 16)
    body = _ws_program(
        "preload(GARBAGE_ADDR, 1u << 31, 16, 16, 16, 16); compute_preloaded(0, 4096, 16, 16, 16, 16);"
        "preload(GARBAGE_ADDR, 64, 16, 16, 16, 16); compute_preloaded(0, 4096, 16, 16, 16, 16);"
        "mvout(o, (1u << 31) | (1u << 29), 16, 16); gemmini_config_st(16); mvout(s, 64, 16, 16); fence();",
        cfg="gemmini_extended_config_ex(OUTPUT_STATIONARY, RELU, 3, 1, 0, 0);",
    )
    decls = "".join(c_array(n, v, "int8_t") for n, v in (("a", a), ("b", b), ("d", d)))
    decls += "static int32_t o[16][16]; static int8_t s[16][16];"
    r = run_prog(decls, body, {"o": ("int32_t", (16, 16)), "s": ("int8_t", (16, 16))})
    ab = a.astype(np.int64) @ b
    # sys_shift 3 with round-half-to-even, then int8 saturation and ReLU for a scratchpad destination
    q, rem = ab >> 3, ab & 7
    shifted = q + ((rem > 4) | ((rem == 4) & (q & 1 == 1)))
    assert np.array_equal(r["o"], shifted)
    assert np.array_equal(r["s"], np.maximum(np.clip(shifted, -128, 127), 0))


def test_spad_destination_saturates_and_applies_relu():
    a, b, d = i8(16, 16), i8(16, 16), i8(16, 16)
    body = _ws_program(
        "preload(4096, 64, 16, 16, 16, 16); compute_preloaded(0, GARBAGE_ADDR, 16, 16, 16, 16);"
        "mvout(o, 64, 16, 16); fence();",
        cfg="config_ex(WEIGHT_STATIONARY, RELU, 1, false, false);",
        st=16,
    )
    decls = "".join(c_array(n, v, "int8_t") for n, v in (("a", a), ("b", b), ("d", d))) + "static int8_t o[16][16];"
    r = run_prog(decls, body, {"o": ("int8_t", (16, 16))})
    assert np.array_equal(r["o"], np.maximum(np.clip(a.astype(np.int64) @ b, -128, 127), 0))


@pytest.mark.parametrize("full_c", [0, 1])
@pytest.mark.parametrize("scalar", [False, True], ids=["simd", "scalar"])
def test_loop_ws_with_padding_and_bias(full_c, scalar):
    # scalar: the portable MAC loop (hosts without AVX2) must give the same bits as the AVX2 one
    i, k, j = 40, 50, 20
    a, b = i8(i, k), i8(k, j)
    bias = RNG.integers(-500, 500, size=(i, j)).astype(np.int32)
    ti, tk, tj = -(-i // 16), -(-k // 16), -(-j // 16)
    pads = f"{ti * 16 - i}, {tj * 16 - j}, {tk * 16 - k}"
    ctype, csz = ("int32_t", 4) if full_c else ("int8_t", 1)
    body = (
        f"config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false); gemmini_extended_config_st({j * csz}, 0, 1.0f);"
        f"config_ld({k}, 1.0f, DIM, 0); config_ld({j}, 1.0f, DIM, 1); gemmini_extended3_config_ld({j * 4}, 1.0f, false, 2);"
        f"gemmini_loop_ws({ti}, {tj}, {tk}, {pads}, a, b, bias, c, {k}, {j}, {j}, {j}, false, false, {full_c}, false, false, 0, 0, 0, 0);"
        "fence();"
    )
    decls = c_array("a", a, "int8_t") + c_array("b", b, "int8_t") + c_array("bias", bias, "int32_t")
    decls += f"static {ctype} c[{i}][{j}];"
    r = run_prog(decls, body, {"c": (ctype, (i, j))}, env={"GSIM_SCALAR": "1"} if scalar else None)
    want = a.astype(np.int64) @ b + bias
    assert np.array_equal(r["c"], want if full_c else np.clip(want, -128, 127))


def test_fp32_config_matmul_exact():
    rng = np.random.default_rng(3)
    a = rng.integers(-5, 6, size=(4, 4)).astype(np.float32)
    b = rng.integers(-5, 6, size=(4, 4)).astype(np.float32)
    body = (
        "config_ex(WEIGHT_STATIONARY, NO_ACTIVATION, 1, false, false); config_ld(16, 1.0f, DIM, 0); config_ld(16, 1.0f, DIM, 1);"
        "config_st(16, -2.0f); mvin(a, 0, 4, 4); mvin2(b, 16, 4, 4);"
        "preload(16, 1u << 31, 4, 4, 4, 4); compute_preloaded(0, GARBAGE_ADDR, 4, 4, 4, 4); mvout(o, 1u << 31, 4, 4); fence();"
    )
    r = run_prog(
        c_array("a", a, "float") + c_array("b", b, "float") + "static float o[4][4];",
        body,
        {"o": ("float", (4, 4))},
        FP32_4X4,
    )
    assert np.array_equal(r["o"], (a @ b) * -2)


@pytest.mark.parametrize(
    ("body", "etype", "words"),
    [
        ("mvin(a, 16380, 16, 16);", "address_error", "scratchpad"),
        ("mvin3(a, (1u << 31) | 1020, 16, 16);", "address_error", "accumulator"),
        ("mvin(a, 0, 16, 17);", "constraint_error", "rows"),
        ("mvin(a, 0, 65, 1);", "constraint_error", "cols"),
        ("compute_preloaded(0, GARBAGE_ADDR, 16, 16, 16, 16);", "constraint_error", "preload"),
        ("mvin((int8_t *)0x1000, 0, 16, 16);", "address_error", "outside"),
        ("config_st(16); mvout(a, 0, 16, 16); mvin(a, 0, 16, 16);", "hazard_error", "fence"),
    ],
)
def test_instruction_errors(body, etype, words):
    err = run_prog(
        c_array("a", i8(16, 16), "int8_t"), "config_ld(16, 1.0f, DIM, 0); config_ld(64, 1.0f, DIM, 2);" + body, {}
    )
    assert isinstance(err, str)
    assert err.splitlines()[0] == etype
    assert words in err


def test_fenced_read_after_write_is_fine():
    a = i8(16, 16)
    body = "config_ld(16, 1.0f, DIM, 0); config_st(16); mvin(a, 0, 16, 16); mvout(o, 0, 16, 16); fence(); mvin(o, 16, 16, 16); mvout(a, 16, 16, 16); fence();"
    r = run_prog(c_array("a", a, "int8_t") + "static int8_t o[16][16];", body, {"a": ("int8_t", (16, 16))})
    assert np.array_equal(r["a"], a)


def test_accumulator_mvin_accumulates_with_bit30_and_shrunk_int8():
    x = RNG.integers(-(2**31), 2**31 - 1, size=(4, 16)).astype(np.int32)
    a = i8(4, 16)
    body = (
        "gemmini_extended3_config_ld(64, 1.0f, false, 2); gemmini_extended3_config_ld(16, 2.0f, true, 1);"
        "mvin3(x, 1u << 31, 16, 4); mvin3(x, (1u << 31) | (1u << 30), 16, 4);"
        "mvin2(a, (1u << 31) | 8, 16, 4);"
        "gemmini_config_st(64); mvout(o, (1u << 31) | (1u << 29), 16, 4); mvout(s, (1u << 31) | (1u << 29) | 8, 16, 4); fence();"
    )
    decls = c_array("x", x, "int32_t") + c_array("a", a, "int8_t") + "static int32_t o[4][16], s[4][16];"
    r = run_prog(decls, body, {"o": ("int32_t", (4, 16)), "s": ("int32_t", (4, 16))})
    assert np.array_equal(r["o"], (x.astype(np.int64) * 2 + 2**31) % 2**32 - 2**31)  # int32 wraparound
    assert np.array_equal(r["s"], np.clip(a.astype(np.int32) * 2, -128, 127))


def test_loop_conv_ws_with_padding_matches_numpy():
    n, h, w, c, k = 1, 6, 5, 8, 20
    x, wt = i8(n, h, w, c), i8(3, 3, c, k)
    bias = RNG.integers(-300, 300, size=(k,)).astype(np.int32)
    args = [n, h, w, c, k, h, w, h, w, 1, 1, 3, 1, 0, 0, 0]  # batch..pool_padding
    args += [n, h, w, k, 3, 3, c, 1, 1, 1, 1, 0, 0, 0, 0, h, w]  # batches..ocols
    tail = ["wt", "o", "bias", "x", 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, c, k, k, 0, 0, 0]
    call = "gemmini_loop_conv_ws(" + ", ".join(map(str, args + tail)) + ");"
    body = "gemmini_extended_config_st(20, 0, 1.0f);" + call + "fence();"
    decls = c_array("x", x, "int8_t") + c_array("wt", wt, "int8_t") + c_array("bias", bias, "int32_t")
    decls += f"static int8_t o[{n}][{h}][{w}][{k}];"
    r = run_prog(decls, body, {"o": ("int8_t", (n, h, w, k))})
    xp = np.pad(x.astype(np.int64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.broadcast_to(bias.astype(np.int64), (n, h, w, k)).copy()
    for dr in range(3):
        for dc in range(3):
            want += np.tensordot(xp[:, dr : dr + h, dc : dc + w, :], wt[dr, dc].astype(np.int64), axes=([3], [0]))
    assert np.array_equal(r["o"], np.clip(want, -128, 127))
