"""Every command and the Python example in the README run as written (with small budgets where needed)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def cli_commands() -> list[str]:
    cmds = []
    for block in blocks("bash"):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("autocomp-env "):
                cmds.append(line)
    return cmds


def shrink(cmd: str) -> list[str]:
    """Small settings: tiny budgets, small suites, one seed. Paths stay as written (relative to the work dir)."""
    args = shlex.split(cmd)[1:]
    small = {"--budget": "2", "--seeds": "1", "--episodes": "4"}
    if args[0] == "train":
        args += ["--eval-seeds", "1"]
    for i, a in enumerate(args[:-1]):
        if a in small:
            args[i + 1] = small[a]
        if a == "--suite" and not args[i + 1].endswith("-small"):
            args[i + 1] += "-small"
    return args


def test_the_readme_shows_the_two_commands_and_ci_runs_the_test_one():
    first, second = blocks("bash")[:2]
    assert "autocomp-env demo" in first
    test_cmd = [line for line in second.splitlines() if line and not line.startswith("#")][0]
    assert test_cmd.endswith("pytest -q")
    assert test_cmd in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("example", [b for b in blocks("python") if "gym.make(" in b], ids=["env-loop", "agent"])
def test_the_python_examples_run(example, tmp_path):
    r = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "speedup" in r.stdout


@pytest.fixture(scope="module")
def llm_server():
    from autocomp_env.llm.server import FakeLLMServer

    with FakeLLMServer(mode="offline") as server:
        yield server


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all README commands, run in order, as a user following the README would."""
    return tmp_path_factory.mktemp("readme")


@pytest.mark.parametrize("cmd", [c for c in cli_commands() if not c.startswith("autocomp-env demo")])
def test_every_readme_command_runs(cmd, workdir, llm_server):
    args = shrink(cmd)
    env = dict(os.environ, OPENAI_API_KEY="sk-test", AUTOCOMP_CACHE=str(workdir / "cache"))
    if "--base-url" in args:
        args[args.index("--base-url") + 1] = llm_server.base_url
    elif "llm" in args:
        args += ["--base-url", llm_server.base_url]
    if args[0] == "serve":  # a server: it must come up and answer /health, then it is stopped
        assert_serves(args, env, workdir)
        return
    r = subprocess.run(
        [sys.executable, "-m", "autocomp_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=workdir,
    )
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"


def assert_serves(args, env, workdir):
    import socket
    import time
    import urllib.request

    pytest.importorskip("openenv", reason="`autocomp-env serve` needs the 'openenv' extra")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = list(args)
    args[args.index("--port") + 1] = str(port)
    proc = subprocess.Popen([sys.executable, "-m", "autocomp_cli", *args], env=env, cwd=workdir, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("`autocomp-env serve` did not answer /health within 300 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
