"""TrainiumSimulator end to end (through the sandbox): correctness, errors, caching, CLI."""

import dataclasses
import json
import os
from unittest.mock import ANY

import pytest

from simulators.trainium import TrainiumSimulator, main, parse_kernel

EX = os.path.join(os.path.dirname(__file__), "..", "simulators", "trainium", "examples")


def example(name: str) -> str:
    with open(os.path.join(EX, f"{name}.py")) as f:
        return f.read()


@pytest.fixture(scope="module")
def sim():
    return TrainiumSimulator()


def test_naive_rmsnorm_is_correct_and_timed(sim):
    r = sim.run(example("rmsnorm"), "trainium/rmsnorm-256x512")
    assert r.error is None and r.correct
    assert r.unit == "us" and r.latency > sim.roofline("trainium/rmsnorm-256x512")
    assert r.counters["hbm_read_bytes"] == (256 * 512 + 512) * 4
    assert r.counters["hbm_write_bytes"] == 256 * 512 * 4


def test_naive_gemm_is_correct_and_counts_flops(sim):
    k = "trainium/gemm-256x256x1024-bf16"
    r = sim.run(example("gemm_naive"), k)
    assert r.error is None and r.correct
    assert r.counters["matmul_flops"] == 2 * sim.macs(k)
    assert 0 < r.utilization < 1


def test_wrong_output_is_reported(sim):
    code = example("rmsnorm").replace("nl.rsqrt(mean)", "nl.sqrt(mean)")
    r = sim.run(code, "trainium/rmsnorm-128x256")
    assert not r.correct and r.error.type == "wrong_output"


@pytest.mark.parametrize(
    "code",
    [
        "import os\n@nki.jit\ndef solution(a, g):\n    return a\n",
        "from subprocess import run\n",
        "import neuronxcc.nki as nki\nx = ().__class__.__subclasses__()\n",
        "f = open('/etc/passwd')\n",
        "__import__('os')\n",
        "@nki.jit\ndef solution(a, g):\n    t = nl.load(a)\n    t.alloc.sess.tl.end = 0\n",
        "x = nl._rt\n",
        "x = getattr(nl, 'session')\n",
        "x = np.lib.npyio.os.system('true')\n",
        "np.savetxt('result.json', np.zeros(1))\n",
    ],
)
def test_forbidden_code_is_refused_before_running(sim, code):
    r = sim.run(code, "trainium/rmsnorm-128x256")
    assert r.error.type == "forbidden_import" and r.error.line is not None


def test_syntax_error_is_a_compile_error(sim):
    r = sim.run("@nki.jit\ndef solution(a, g)\n    pass\n", "trainium/rmsnorm-128x256")
    assert r.error.type == "compile_error" and r.error.line == 2


def test_constraint_error_carries_the_kernel_line(sim):
    code = example("gemm_naive").replace("TILE_M = nl.tile_size.gemm_stationary_fmax", "TILE_M = 256")
    r = sim.run(code, "trainium/gemm-256x256x512-bf16")
    assert r.error.type == "constraint_error"
    lines = code.splitlines()
    assert "TILE_M, TILE_N" in lines[r.error.line - 1]  # the PSUM tile [256, 512] is the first violation
    assert "exceeds architecture limitation of 128" in r.error.message


def test_runtime_error_in_kernel(sim):
    r = sim.run("@nki.jit\ndef solution(a, g):\n    return 1 / 0\n", "trainium/rmsnorm-128x256")
    assert r.error.type == "runtime_error" and "ZeroDivisionError" in r.error.message and r.error.line == 3


def test_exit_is_a_runtime_error(sim):
    r = sim.run("@nki.jit\ndef solution(a, g):\n    raise SystemExit(3)\n", "trainium/rmsnorm-128x256")
    assert r.error.type == "runtime_error" and "exit" in r.error.message and r.error.line == 3


def test_memory_limit(sim):
    code = "@nki.jit\ndef solution(a, g):\n    t = nl.ndarray((128, 2**40), nl.float32)\n    return a\n"
    r = sim.run(code, "trainium/rmsnorm-128x256")
    assert r.error.type == "memory_limit"


def test_timeout(sim):
    code = "@nki.jit\ndef solution(a, g):\n    while True:\n        pass\n"
    r = sim.run(code, "trainium/rmsnorm-128x256", timeout=2)
    assert r.error.type == "timeout"


def test_bad_kernel_names():
    for bad in ["trainium/gemm-128x128x128", "trainium/foo-1x2", "gemmini/matmul-1x1x1", "trainium/rmsnorm-0x4"]:
        with pytest.raises(ValueError):
            parse_kernel(bad)
    assert parse_kernel("trainium/mamba-1x256x2048x16").d == {"B": 1, "C": 256, "L": 2048, "S": 16}
    r = TrainiumSimulator().run("", "trainium/nope-1")
    assert r.error.type == "invalid_kernel"


def test_timing_mode_matches_auto_and_cache(sim):
    code = example("rmsnorm")
    fresh = TrainiumSimulator()
    t = fresh.run(code, "trainium/rmsnorm-384x256", mode="timing")
    assert t.counters["checked"] is False
    a = fresh.run(code, "trainium/rmsnorm-384x256")
    assert a.correct and a.counters["checked"] is True
    assert a.latency == t.latency
    assert fresh.run(code, "trainium/rmsnorm-384x256", mode="timing").counters["checked"] is True  # now cached
    bad = code.replace("nl.rsqrt(mean)", "nl.sqrt(mean)")
    assert fresh.run(bad, "trainium/rmsnorm-384x256").error.type == "wrong_output"
    assert fresh.run(bad, "trainium/rmsnorm-384x256", mode="timing").error.type == "wrong_output"
    # Without its own cache (the env's evaluator caches instead) nothing carries over between runs.
    bare = TrainiumSimulator(cache_results=False)
    assert bare.run(code, "trainium/rmsnorm-384x256") == dataclasses.replace(a, sim_seconds=ANY)
    assert bare.run(code, "trainium/rmsnorm-384x256", mode="timing").counters["checked"] is False


def test_cli_json(tmp_path, capsys):
    p = tmp_path / "k.py"
    p.write_text(example("rmsnorm"))
    rc = main([str(p), "--kernel", "trainium/rmsnorm-128x256", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and d["correct"] and d["latency_us"] > 0 and d["error"] is None and "mfu" in d["profile"]


def test_kernels_see_only_public_nki_names(sim):
    code = "@nki.jit\ndef solution(a, g):\n    s = nl.new_tile((1, 1), nl.float32)\n    return a\n"
    r = sim.run(code, "trainium/rmsnorm-128x256")
    assert r.error.type == "runtime_error" and "new_tile" in r.error.message


def test_a_kernel_that_skips_its_inputs_is_beyond_the_roofline(sim):
    code = "@nki.jit\ndef solution(a, g):\n    return nl.ndarray(a.shape, a.dtype, buffer=nl.shared_hbm)\n"
    r = sim.run(code, "trainium/rmsnorm-128x256", mode="timing")
    assert r.error.type == "beyond_roofline"
