"""Kernel names, aliases, suites and lazy family loading."""

import pytest
import test_env_fakes as fakes

from autocomp_env import kernels
from autocomp_env.kernels import UnknownKernel, get_kernel, list_kernels, resolve

fakes.install()


def test_autocomp_problem_sets_are_suites_with_the_papers_shapes():
    s = kernels._full_suites()
    assert len(s["gemmini-gemm"]) == 9 and len(s["gemmini-exo"]) == 6 and len(s["gemmini-conv"]) == 4
    assert len(s["gemmini-tinympc"]) == 3 and len(s["trainium-tutorial"]) == 6 and len(s["trainium-extra"]) == 2
    assert resolve("gemmini-gemm:0") == "gemmini/matmul-32x2048x2048"
    assert resolve("gemmini-gemm:3") == "gemmini/matmul-6272x64x256"
    assert resolve("gemmini-exo:2") == "gemmini/matmul-12544x256x64"
    assert resolve("gemmini-exo:5") == "gemmini/matmul-784x256x1024"
    assert resolve("gemmini-conv:0") == "gemmini/conv-4x56x56x64x64"
    assert resolve("gemmini-conv:3") == "gemmini/conv-4x14x14x128x128"
    assert resolve("gemmini-tinympc:2") == "gemmini/tinympc-backward-12x4x10"
    assert resolve("trainium-tutorial:2") == "trainium/gemm-4096x8192x8192-bf16"
    assert resolve("trainium-tutorial:5") == "trainium/sdattention-4096x64"
    assert resolve("trainium-extra:1") == "trainium/conv1d-8x512x2048x3"
    assert kernels.SUITE_NAMES[:2] == ("gemmini-gemm", "gemmini-gemm-small") and len(kernels.SUITE_NAMES) == 12
    assert len(list_kernels()) == 30 and list_kernels("gemmini-exo")[0] == "gemmini/matmul-512x512x512"


def test_names_parse_through_the_family_and_canonical_names_pass_through():
    k = get_kernel("toy/axpy-1024")
    assert (k.target, k.family, k.spec, k.small) == ("toy", "axpy", {"n": 1024}, "toy/axpy-64")
    assert get_kernel(" toy/axpy-1024 ") is k
    assert resolve("toy/axpy-64") == "toy/axpy-64"


@pytest.mark.parametrize(
    "bad, match",
    [
        ("", "non-empty"),
        ("matmul", "bad kernel name"),
        ("gemmini/matmul", "bad kernel name"),
        ("gemmini-exo:99", "unknown alias"),
        ("nosuch:0", "unknown alias"),
        ("toy/nosuch-64", "unknown kernel family"),
        ("toy/axpy-65", "bad shape"),
        ("toy/axpy-abc", "bad shape"),
    ],
)
def test_bad_names_raise_unknown_kernel_with_the_reason(bad, match):
    with pytest.raises(UnknownKernel, match=match):
        get_kernel(bad)
    assert issubclass(UnknownKernel, ValueError)


def test_a_broken_family_module_only_breaks_its_own_kernels(monkeypatch, tmp_path):
    monkeypatch.setitem(fakes.TARGET.families, "broken", "no_such_family_module")
    with pytest.raises(UnknownKernel, match="failed to load"):
        get_kernel("toy/broken-64")
    assert get_kernel("toy/axpy-64").name == "toy/axpy-64"


def test_suite_helpers_reject_unknown_suites():
    with pytest.raises(UnknownKernel):
        kernels.suite("gemmini-nope")
    with pytest.raises(UnknownKernel):
        list_kernels("trainium-nope-small")


def test_starting_code_and_baselines_come_from_the_family():
    k = get_kernel("toy/axpy-1024")
    assert '"tile":1' in kernels.starting_code(k)
    assert set(kernels.baselines(k)) == {"vendor", "expert"}
    assert kernels.small(k).name == "toy/axpy-64"


def _real(name):
    try:
        return get_kernel(name)
    except UnknownKernel as e:
        pytest.skip(f"real family not available yet: {e}")


@pytest.mark.parametrize("suite", ["gemmini-exo", "gemmini-conv", "trainium-tutorial", "trainium-extra"])
def test_real_suites_resolve_with_small_variants_and_aliases(suite):
    first = _real(f"{suite}:0")
    assert f"{suite}:0" in first.aliases and first.small
    small = get_kernel(f"{suite}-small:0")
    assert small.name == first.small and f"{suite}-small:0" in small.aliases
    assert small.macs <= first.macs and small.roofline > 0
