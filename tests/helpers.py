"""Pieces shared by test modules: the containment checks of the two hostile-code suites, one Ray session, code
from the scripts.

A module uses a fixture from here by binding it to a module name (`listener = helpers.listener`), which pytest
collects like one defined in place.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import tempfile
import uuid
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest

from autocomp_env.codemodel import OfflineCodeModel
from autocomp_env.core import Generation
from simulators.result import ERROR_TYPES

TESTS = str(Path(__file__).parent)


@functools.cache
def script(name: str) -> ModuleType:
    """Imports scripts/<name>.py (scripts/ is no package), so a test uses the code a script runs, not a copy."""
    spec = importlib.util.spec_from_file_location(f"scripts.{name}", Path(TESTS).parent / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- hostile code -------------------------------------------------------------------------------------------------
TAG = uuid.uuid4().hex[:12]  # names the files hostile code tries to create or read
SECRET = f"secret-{TAG}"
HOME_SECRET = os.path.join(os.path.expanduser("~"), f"autocomp-hostile-{TAG}.txt")
OUTSIDE = (f"/tmp/autocomp-pwned-{TAG}", os.path.join(os.path.expanduser("~"), f"autocomp-pwned-{TAG}"))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Sandbox dirs go to a private root, so leftovers are ours alone (others run tests on this machine)."""
    root = tmp_path / "sbx"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    with open(HOME_SECRET, "w") as f:
        f.write(SECRET)
    yield root
    os.unlink(HOME_SECRET)
    for p in OUTSIDE:
        if os.path.exists(p):
            os.unlink(p)


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.setblocking(False)
    yield s
    s.close()


def procs_under(root: Path) -> list[str]:
    """Live processes whose working directory or command line is inside `root`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(root)) or str(root) in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def assert_contained(name: str, root: Path, listener: socket.socket) -> None:
    assert not list(root.glob("autocomp-sbx-*")), "sandbox dir left behind"
    assert not procs_under(root), "process left behind"
    for p in OUTSIDE:
        assert not os.path.exists(p), f"{name} wrote {p}"
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


def assert_error(name: str, result, allowed: set[str]) -> None:
    assert not result.correct and result.latency is None
    assert result.error is not None and result.error.type in ERROR_TYPES
    assert result.error.type in allowed, (name, result.error)
    assert SECRET not in result.stdout + result.error.message


class Scripted:
    """Returns the queued codes, then behaves like the offline model."""

    name = "scripted"

    def __init__(self, codes: list[str]):
        self.codes = list(codes)
        self.offline = OfflineCodeModel()

    def implement(self, kernel, code, plan, feedback, rng):
        if self.codes:
            return Generation(code=self.codes.pop(0), model=self.name)
        return self.offline.implement(kernel, code, plan, feedback, rng)

    def propose_plans(self, *a, **kw):
        return self.offline.propose_plans(*a, **kw)


def assert_env_penalizes_and_goes_on(
    env_id: str, kernel: str, cases: list[tuple[str, str, set[str]]], root: Path, listener: socket.socket
) -> None:
    """Steps the env through each (name, code, allowed error types): each costs exactly the failure penalty,
    leaves the state as it was and is contained; then the offline model takes a normal, correct step."""
    env = gym.make(
        env_id,
        kernel=kernel,
        code_model=Scripted([code for _, code, _ in cases]),
        cache_dir="",
        max_steps=len(cases) + 5,
    )
    env.reset(seed=0)
    start_code, start_latency = env.unwrapped.code, env.unwrapped.latency
    penalty = env.unwrapped.failure_penalty
    for name, _, allowed in cases:
        _, reward, terminated, truncated, info = env.step(0)
        assert reward == -penalty and np.isfinite(reward), name
        assert info["error_type"] in allowed, (name, info["error_type"], info["error_message"])
        assert env.unwrapped.code == start_code and env.unwrapped.latency == start_latency
        assert not terminated and not truncated
        assert_contained(name, root, listener)
    _, reward, _, _, info = env.step(0)  # the offline model again: a normal, correct step
    assert info["correct"] and info["error_type"] is None and np.isfinite(reward)
    env.close()


# ---- Ray ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One small Ray session for the module that binds this fixture (autouse there)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from agents.rollouts import init_ray

    init_ray(2, pythonpath=(TESTS,))
    yield
    ray.shutdown()
