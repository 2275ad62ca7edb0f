"""The `autocomp-env` command as a user runs it: a subprocess, its output and exit code."""

import json
import os
import subprocess
import sys

import pytest

from autocomp_env.kernels import get_kernel, starting_code


def cli(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "autocomp_cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


@pytest.mark.parametrize("command", ["list", "sim", "run", "bench", "demo", "train", "replay", "validate", "report"])
def test_every_command_has_help(command):
    r = cli(command, "--help")
    assert r.returncode == 0 and "usage: autocomp-env " + command in r.stdout


def test_list_shows_suites_aliases_envs_and_agents():
    r = cli("list")
    assert r.returncode == 0
    for text in (
        "gemmini-exo:0",
        "gemmini/matmul-512x512x512",
        "autocomp/Trainium-gemm-v0",
        "beam",
        "trainium-tutorial",
    ):
        assert text in r.stdout


def test_sim_reports_correctness_and_cycles_as_json(tmp_path):
    kernel = get_kernel("gemmini/matmul-32x32x32")
    path = tmp_path / "start.c"
    path.write_text(starting_code(kernel))
    r = cli("sim", "gemmini", str(path), "--kernel", kernel.name, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["correct"] is True and out["cycles"] > kernel.roofline and out["error"] is None


@pytest.mark.parametrize(
    "kernel", ["gemmini/matmul-20x36x52", "gemmini/matmul-32x48x32-at", "gemmini/matmul-32x32x48-bt-bias-relu"]
)
def test_sim_accepts_every_kernel_name_the_gemmini_simulator_documents(tmp_path, kernel):
    from simulators.gemmini import vendor_code

    path = tmp_path / "lib.c"
    path.write_text(vendor_code(kernel, fsm=True))
    r = cli("sim", "gemmini", str(path), "--kernel", kernel)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{kernel}: correct" in r.stdout and "of roofline" in r.stdout


def test_sim_of_broken_code_is_a_structured_error_with_exit_1(tmp_path):
    path = tmp_path / "bad.c"
    path.write_text("void solution(int8_t A[32][32], int8_t B[32][32], int8_t C[32][32]) { this is not C }")
    r = cli("sim", "gemmini", str(path), "--kernel", "gemmini/matmul-32x32x32", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["type"] == "compile_error"


@pytest.mark.parametrize(
    "args, words",
    [
        (("sim", "gemmini", "/nonexistent.c", "--kernel", "gemmini-exo:0"), "no such file"),
        (("sim", "gemmini", __file__, "--kernel", "gemmini/matmul-64x64"), "expected gemmini/matmul-IxKxJ"),
        # (64x64x60 alone is a name the simulator takes: sim runs it, issue 13)
        (("sim", "gemmini", __file__, "--kernel", "gemmini/tinympc-forward-12x4x1"), "NHORIZON must be at least 2"),
        (("bench", "--suite", "no-such-suite", "--budget", "2"), "bad kernel name"),
        (("run", "--kernel", "gemmini-exo-small:0", "--agent", "no-such-agent"), "unknown agent"),
        (("run", "--kernel", "gemmini-exo-small:0", "--budget", "0"), "--budget"),
        (("run", "--kernel", "gemmini-exo-small:0", "--code-model", "llm", "--budget", "2"), "model is required"),
    ],
)
def test_user_mistakes_are_one_clear_line_with_a_hint_and_exit_2(args, words, monkeypatch):
    monkeypatch.delenv("AUTOCOMP_LLM_MODEL", raising=False)
    r = cli(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("autocomp-env ") and words in lines[0]
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint:"))


def test_config_file_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("budget: [unclosed")
    r = cli("run", "--kernel", "gemmini-exo-small:0", "--config", str(bad))
    assert r.returncode == 2 and "not valid YAML" in r.stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("budgett: 3\n")
    r = cli("run", "--kernel", "gemmini-exo-small:0", "--config", str(unknown))
    assert r.returncode == 2 and "budgett" in r.stderr


def test_run_writes_a_self_contained_folder_and_config_flags_win(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("agent: random\nbudget: 50\nseed: 0\n")
    r = cli("run", "--kernel", "gemmini/matmul-32x32x32", "--config", str(cfg), "--budget", "3", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "random-gemmini_matmul-32x32x32-seed0"
    saved = json.loads((folder / "config.json").read_text())
    assert saved["budget"] == 3 and saved["agent"] == "random"  # flag over file, file over default
    for name in ("results.jsonl", "trajectory.jsonl", "leaderboard.json", "leaderboard.csv", "speedup_vs_samples.png"):
        assert (folder / name).is_file(), name
    (code,) = list((folder / "best").iterdir())
    assert "void solution" in code.read_text()
    record = json.loads((folder / "results.jsonl").read_text().splitlines()[0])
    assert record["status"] == "ok"
    steps = [json.loads(line) for line in (folder / "trajectory.jsonl").read_text().splitlines()]
    assert [s["sample"] for s in steps] == [1, 2, 3] and all("plan" in s and "correct" in s for s in steps)
    (episode,) = list((folder / "episodes").iterdir())
    r = cli("replay", str(episode))
    assert r.returncode == 0 and "reproduced" in r.stdout, r.stderr
    r = cli("validate", str(folder / "results.jsonl"))
    assert r.returncode == 0 and "1/1 claims validated" in r.stdout, r.stderr


def test_api_keys_are_not_saved_with_results(tmp_path):
    from autocomp_cli.main import dump_config

    dump_config({"api_key": "sk-secret", "budget": 3}, tmp_path / "c.json")
    assert "sk-secret" not in (tmp_path / "c.json").read_text()


def test_demo_quick_runs_offline_and_prints_a_leaderboard(tmp_path):
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    r = subprocess.run(
        [sys.executable, "-m", "autocomp_cli", "demo", "--quick", "--budget", "4", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "speedup_vs_start" in r.stdout and "beam" in r.stdout
    assert (tmp_path / "speedup_vs_samples.png").stat().st_size > 1000
