"""The architecture holds: the import contracts of pyproject.toml (layers simulators <- autocomp_env <- agents
<- CLI/scripts, no cycles, targets and families independent, generic schedule engines) pass `lint-imports`,
ruff passes (no function-local imports but the documented ones), and every target record is complete."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import autocomp_env
from autocomp_env import targets
from autocomp_env.kernels import get_kernel, load_family
from simulators.gemmini import FP32_4X4

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_ruff_passes_including_no_function_local_imports():
    # PLC0415 is on: an import inside a function needs a noqa that says which heavy dependency it defers.
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:]


@pytest.mark.parametrize("name", ["gemmini", "trainium"])
def test_a_target_record_derives_its_env_ids_suites_and_flagships(name):
    t = targets.target(name)
    assert t.families and t.suites and t.counters and t.unit in ("cycles", "us") and t.lang in ("c", "python")
    for family in t.families:
        assert autocomp_env.ENV_IDS[t.env_id(family)] == f"{name}/{family}"
        fam = load_family(name, family)
        assert (fam.target, fam.name, fam.lang) == (name, family, t.lang)
        flagship = get_kernel(fam.flagship)
        assert (flagship.target, flagship.family, flagship.unit) == (name, family, t.unit)
    for kernels in t.suites.values():
        assert all(k.startswith(f"{name}/") for k in kernels)


def test_one_simulator_instance_per_target_and_config():
    assert targets.simulator("gemmini") is targets.simulator("gemmini")
    assert targets.simulator("gemmini", FP32_4X4) is not targets.simulator("gemmini")
