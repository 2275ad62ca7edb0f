"""LLM endpoint faults inside a real episode: each is retried or becomes a failed sample with its reason, and
the episode goes on (same state, finite penalty, the next step works)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import autocomp_env  # noqa: F401  (registers the envs)
from autocomp_env.llm import LLMCodeModel, LLMConfig
from autocomp_env.llm.server import FakeLLMServer

KERNEL = "gemmini/matmul-16x16x16"
PLAN = "Option 1: modify loop tiling"
RETRIES = 2
ROOT = str(Path(__file__).resolve().parent.parent)


def _config(url: str) -> LLMConfig:
    return LLMConfig(model="fake", base_url=url, timeout=0.5, max_retries=RETRIES, backoff_base=0.01, backoff_max=0.05)


@pytest.fixture(scope="module")
def eval_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("eval"))  # shared: the start and the offline steps simulate once


@pytest.fixture
def server():
    with FakeLLMServer(mode="offline", hang_seconds=3.0) as srv:
        yield srv


def _env(url: str, cache_dir: str):
    env = gym.make(
        "autocomp/Gemmini-matmul-v0",
        kernel=KERNEL,
        action_mode="plan",
        code_model=LLMCodeModel(_config(url), cache=False),
        cache_dir=cache_dir,
        max_steps=20,
    )
    env.reset(seed=0)
    return env


def _step_ok(env) -> dict:
    _, reward, terminated, truncated, info = env.step(PLAN)
    assert info["correct"] and info["error_type"] is None, info["error_message"]
    assert not truncated
    return info


def _step_failed(env, reason: str) -> dict:
    before = (env.unwrapped.code, env.unwrapped.latency)
    _, reward, terminated, truncated, info = env.step(PLAN)
    assert reward == -env.unwrapped.failure_penalty
    assert info["error_type"] == "generation_error" and reason in info["error_message"], info["error_message"]
    assert (env.unwrapped.code, env.unwrapped.latency) == before and not terminated and not truncated
    return info


@pytest.mark.parametrize("fault", ["429", "500", "garbage", "drop", "hang"])
def test_transient_faults_are_retried_within_the_step(fault, server, eval_cache):
    env = _env(server.base_url, eval_cache)
    n0 = len(server.completion_requests)
    server.fail_next(fault, RETRIES)  # fails every attempt but the last
    _step_ok(env)
    assert len(server.completion_requests) - n0 == RETRIES + 1
    _step_ok(env)
    env.close()


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda s: s.fail_next("500", RETRIES + 1), "gave up after 3 attempts"),
        (lambda s: s.fail_next("empty"), "empty content"),
        (lambda s: s.add_answers("I would rather not write code today."), "no code found"),
    ],
    ids=["retries-exhausted", "empty", "no-code"],
)
def test_a_failed_sample_is_penalized_with_its_reason_and_the_episode_goes_on(setup, reason, server, eval_cache):
    env = _env(server.base_url, eval_cache)
    setup(server)
    info = _step_failed(env, reason)
    assert info["llm_calls"] >= 1
    _step_ok(env)
    env.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int) -> subprocess.Popen:
    """The fake endpoint as its own process, so it can really die (SIGKILL closes its open connections)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "autocomp_env.llm.server", "--port", str(port), "--mode", "offline"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert "serving" in proc.stdout.readline()
    return proc


def test_an_endpoint_killed_mid_run_fails_samples_until_it_is_back(eval_cache):
    port = _free_port()
    srv = _serve(port)
    try:
        env = _env(f"http://127.0.0.1:{port}/v1", eval_cache)
        _step_ok(env)
        srv.kill()
        srv.wait()
        _step_failed(env, "gave up after 3 attempts; last error: APIConnectionError")
        srv = _serve(port)  # the endpoint comes back at the same address
        _step_ok(env)
        assert env.unwrapped.usage.samples == 2  # failed generations are not simulated
        env.close()
    finally:
        srv.kill()
        srv.wait()
