"""Kernel names, aliases and suites.

A kernel is named `target/family-shape` (`gemmini/matmul-512x512x512`, `trainium/rmsnorm-512x4096`); the
family module parses the shape. Autocomp's problem sets are suites here, and their ids are aliases
(`gemmini-exo:0` is `gemmini/matmul-512x512x512`). Every suite has a `-small` twin made of each kernel's
small variant, for fast training.

Family modules are imported lazily, one at a time, so a broken family only breaks its own kernels.
"""

from __future__ import annotations

import dataclasses
import importlib
from functools import lru_cache

from autocomp_env.core import Kernel
from autocomp_env.families.base import FAMILIES, Family

# (target, family) -> module under autocomp_env.families that registers it.
FAMILY_MODULES: dict[tuple[str, str], str] = {
    ("gemmini", "matmul"): "gemmini_matmul",
    ("gemmini", "conv"): "gemmini_conv",
    ("gemmini", "tinympc"): "gemmini_tinympc",
    ("trainium", "gemm"): "trainium_gemm",
    ("trainium", "attention"): "trainium_attention",
    ("trainium", "sdattention"): "trainium_attention",
    ("trainium", "rmsnorm"): "trainium_norm",
    ("trainium", "layernorm"): "trainium_norm",
    ("trainium", "softmax"): "trainium_softmax",
    ("trainium", "mamba"): "trainium_mamba",
    ("trainium", "conv1d"): "trainium_conv1d",
}


def _mm(i: int, k: int, j: int) -> str:
    return f"gemmini/matmul-{i}x{k}x{j}"


def _conv(p: int, c: int) -> str:
    return f"gemmini/conv-4x{p}x{p}x{c}x{c}"


# Autocomp's problem sets (research/autocomp.md §3.3, §4.2). Matmul shapes are IxKxJ.
_FULL_SUITES: dict[str, tuple[str, ...]] = {
    "gemmini-gemm": (
        _mm(32, 2048, 2048),
        _mm(1024, 1024, 1024),
        _mm(256, 256, 256),
        _mm(6272, 64, 256),
        _mm(12544, 64, 128),
        _mm(12544, 128, 256),
        _mm(128, 1024, 1024),
        _mm(64, 1024, 1024),
        _mm(32, 1024, 1024),
    ),
    "gemmini-exo": (
        _mm(512, 512, 512),
        _mm(12544, 64, 256),
        _mm(12544, 256, 64),
        _mm(3136, 128, 512),
        _mm(3136, 512, 128),
        _mm(784, 256, 1024),
    ),
    "gemmini-conv": (_conv(56, 64), _conv(28, 128), _conv(14, 256), _conv(14, 128)),
    "gemmini-tinympc": (
        "gemmini/tinympc-matvec-12x4",
        "gemmini/tinympc-forward-12x4x5",
        "gemmini/tinympc-backward-12x4x10",
    ),
    "trainium-tutorial": (
        "trainium/rmsnorm-512x4096",
        "trainium/layernorm-4096x8192",
        "trainium/gemm-4096x8192x8192-bf16",
        "trainium/mamba-1x256x2048x16",
        "trainium/attention-128x4096-bf16",
        "trainium/sdattention-4096x64",
    ),
    "trainium-extra": ("trainium/softmax-4096x2048", "trainium/conv1d-8x512x2048x3"),
}


class UnknownKernel(ValueError):
    """The name is not a kernel: bad syntax, unknown alias, unknown or broken family, or a bad shape."""


def _split(name: str) -> tuple[str, str, str]:
    target, sep, rest = name.partition("/")
    family, dash, shape = rest.partition("-")
    if not (sep and dash and target and family and shape):
        raise UnknownKernel(
            f"bad kernel name {name!r}: expected 'target/family-shape' or an alias like 'gemmini-exo:0'"
        )
    return target, family, shape


def load_family(target: str, family: str) -> Family:
    """The registered family, importing its module on first use. UnknownKernel if missing or broken."""
    key = (target, family)
    if key not in FAMILIES:
        module = FAMILY_MODULES.get(key)
        if module is None:
            known = ", ".join(f"{t}/{f}" for t, f in FAMILY_MODULES)
            raise UnknownKernel(f"unknown kernel family {target}/{family}; known: {known}")
        try:
            importlib.import_module(f"autocomp_env.families.{module}")
        except Exception as e:  # a broken family must not take the others down
            raise UnknownKernel(f"kernel family {target}/{family} failed to load: {type(e).__name__}: {e}") from e
        if key not in FAMILIES:
            raise UnknownKernel(f"module autocomp_env.families.{module} did not register {target}/{family}")
    return FAMILIES[key]


def family_of(kernel: Kernel) -> Family:
    return load_family(kernel.target, kernel.family)


def _aliases() -> dict[str, str]:
    return {f"{suite}:{i}": name for suite, names in _FULL_SUITES.items() for i, name in enumerate(names)}


_ALIASES = _aliases()


@lru_cache(maxsize=1024)
def _build(name: str) -> Kernel:
    """Parse a canonical name through its family, filling in `small` (aliases are added by get_kernel)."""
    target, family, shape = _split(name)
    fam = load_family(target, family)
    try:
        kernel = fam.kernel(shape)
    except Exception as e:
        raise UnknownKernel(f"bad shape {shape!r} for {target}/{family}: {e}") from e
    if kernel.small is None:
        kernel = dataclasses.replace(kernel, small=f"{target}/{family}-{fam.small_shape(kernel)}")
    return kernel


def _small_name(name: str) -> str | None:
    try:
        return _build(name).small
    except UnknownKernel:
        return None


def resolve(name_or_alias: str) -> str:
    """The canonical kernel name for a name or an alias (`gemmini-exo:0`, `gemmini-exo-small:0`)."""
    if not isinstance(name_or_alias, str) or not name_or_alias.strip():
        raise UnknownKernel(f"kernel must be a non-empty string, got {name_or_alias!r}")
    name = name_or_alias.strip()
    if name in _ALIASES:
        return _ALIASES[name]
    suite, colon, index = name.rpartition(":")
    if colon and "/" not in name:
        full = f"{suite.removesuffix('-small')}:{index}"
        if suite.endswith("-small") and full in _ALIASES:
            return _build(_ALIASES[full]).small or _ALIASES[full]
        raise UnknownKernel(f"unknown alias {name!r}; suites: {', '.join(_FULL_SUITES)} (and their -small twins)")
    return name


@lru_cache(maxsize=1024)
def get_kernel(name_or_alias: str) -> Kernel:
    """The Kernel for a canonical name (`gemmini/matmul-512x512x512`) or an alias (`gemmini-exo:0`).

    Raises UnknownKernel (a ValueError) with the reason when the name, alias, family or shape is bad.
    """
    kernel = _build(resolve(name_or_alias))
    aliases = [a for a, n in _ALIASES.items() if n == kernel.name]
    prefix = f"{kernel.target}/{kernel.family}-"
    for a, n in _ALIASES.items():  # small aliases: only kernels of the same family can have this small variant
        if n.startswith(prefix) and n != kernel.name and _small_name(n) == kernel.name:
            suite, _, i = a.rpartition(":")
            aliases.append(f"{suite}-small:{i}")
    new = tuple(dict.fromkeys(kernel.aliases + tuple(aliases)))
    return dataclasses.replace(kernel, aliases=new) if new != kernel.aliases else kernel


def small(kernel: Kernel) -> Kernel:
    """The small training variant of `kernel` (itself if it has none)."""
    return get_kernel(kernel.small) if kernel.small else kernel


def baselines(kernel: Kernel) -> dict[str, str]:
    """{"vendor": code, "expert": code} from the kernel's family (a family may omit one it cannot express)."""
    return dict(family_of(kernel).baselines(kernel))


def starting_code(kernel: Kernel) -> str:
    """The naive code a search starts from."""
    return family_of(kernel).starting_code(kernel)


def _small_suite(suite: str, strict: bool = True) -> tuple[str, ...]:
    out = []
    for i in range(len(_FULL_SUITES[suite])):
        try:
            out.append(resolve(f"{suite}-small:{i}"))
        except UnknownKernel:
            if strict:
                raise
            out.append(f"{suite}-small:{i}")  # a broken family: the alias stays, get_kernel says why
    return tuple(out)


def __getattr__(attr: str):
    # SUITES needs the families to name the small variants, so it is built on first access (PEP 562).
    if attr == "SUITES":
        suites: dict[str, tuple[str, ...]] = {}
        for suite, names in _FULL_SUITES.items():
            suites[suite] = names
            suites[f"{suite}-small"] = _small_suite(suite, strict=False)
        return suites
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


SUITE_NAMES: tuple[str, ...] = tuple(s for full in _FULL_SUITES for s in (full, f"{full}-small"))


def suite(name: str) -> tuple[str, ...]:
    """Canonical kernel names of one suite (`gemmini-exo`, `gemmini-exo-small`, ...)."""
    if name in _FULL_SUITES:
        return _FULL_SUITES[name]
    if name.endswith("-small") and name.removesuffix("-small") in _FULL_SUITES:
        return _small_suite(name.removesuffix("-small"))
    raise UnknownKernel(f"unknown suite {name!r}; suites: {', '.join(SUITE_NAMES)}")


def list_kernels(suite_name: str | None = None) -> list[str]:
    """Canonical names of the kernels of `suite_name`, or of every full suite, in suite order."""
    if suite_name is not None:
        return list(suite(suite_name))
    return list(dict.fromkeys(n for names in _FULL_SUITES.values() for n in names))
