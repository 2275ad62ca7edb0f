"""Kernel names, aliases and suites.

A kernel is named `target/family-shape` (`gemmini/matmul-512x512x512`, `trainium/rmsnorm-512x4096`). The
name is parsed once, by the target's simulator (`Target.parse`); the family turns the parsed record into
the kernel's spec, and the simulator gives its MACs and roofline. Autocomp's problem sets are suites here
(each target's record lists its own), and their ids are aliases (`gemmini-exo:0` is
`gemmini/matmul-512x512x512`). Every suite has a `-small` twin made of each kernel's small variant, for
fast training.

Family modules are imported lazily, one at a time, so a broken family only breaks its own kernels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import lru_cache

from autocomp_env import targets
from autocomp_env.core import Kernel
from autocomp_env.schedules.base import Family


class UnknownKernel(ValueError):
    """The name is not a kernel: bad syntax, unknown alias, unknown or broken family, or a bad shape."""


def _full_suites() -> dict[str, tuple[str, ...]]:
    return {name: names for t in targets.all_targets().values() for name, names in t.suites.items()}


def load_family(target: str, family: str) -> Family:
    """The registered family, importing its module on first use. UnknownKernel if missing or broken."""
    try:
        return targets.family(target, family)
    except ValueError as e:
        raise UnknownKernel(str(e)) from e


def family_of(kernel: Kernel) -> Family:
    return load_family(kernel.target, kernel.family)


def _aliases() -> dict[str, str]:
    return {f"{suite}:{i}": name for suite, names in _full_suites().items() for i, name in enumerate(names)}


@lru_cache(maxsize=1024)
def _build(name: str) -> Kernel:
    """The Kernel record of a canonical name, built once (aliases are added by get_kernel)."""
    target_name, slash, _ = name.partition("/")
    if not (slash and target_name):
        raise UnknownKernel(
            f"bad kernel name {name!r}: expected 'target/family-shape' or an alias like 'gemmini-exo:0'"
        )
    try:
        target = targets.target(target_name)
    except ValueError as e:
        raise UnknownKernel(f"bad kernel name {name!r}: {e}") from e
    try:
        family_name, parsed = target.parse(name)
    except ValueError as e:
        raise UnknownKernel(f"bad kernel name {name!r}: {e}") from e
    fam = load_family(target.name, family_name)
    try:
        spec = fam.spec(parsed)
    except Exception as e:
        raise UnknownKernel(f"bad shape for {target.name}/{family_name} in {name!r}: {e}") from e
    sim = targets.simulator(target.name)
    return Kernel(
        name=name,
        target=target.name,
        family=family_name,
        spec=spec,
        macs=int(sim.macs(name)),
        roofline=float(sim.roofline(name)),
        unit=target.unit,
        small=fam.small_name(spec),
    )


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
    aliases = _aliases()
    if name in aliases:
        return aliases[name]
    suite, colon, index = name.rpartition(":")
    if colon and "/" not in name:
        full = f"{suite.removesuffix('-small')}:{index}"
        if suite.endswith("-small") and full in aliases:
            return _build(aliases[full]).small or aliases[full]
        suites = ", ".join(_full_suites())
        raise UnknownKernel(f"unknown alias {name!r}; suites: {suites} (and their -small twins)")
    return name


@lru_cache(maxsize=1024)
def get_kernel(name_or_alias: str) -> Kernel:
    """The Kernel for a canonical name (`gemmini/matmul-512x512x512`) or an alias (`gemmini-exo:0`).

    Raises UnknownKernel (a ValueError) with the reason when the name, alias, family or shape is bad.
    """
    kernel = _build(resolve(name_or_alias))
    known = _aliases()
    aliases = [a for a, n in known.items() if n == kernel.name]
    prefix = f"{kernel.target}/{kernel.family}-"
    for a, n in known.items():  # small aliases: only kernels of the same family can have this small variant
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
    for i in range(len(_full_suites()[suite])):
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
        for suite, names in _full_suites().items():
            suites[suite] = names
            suites[f"{suite}-small"] = _small_suite(suite, strict=False)
        return suites
    if attr == "SUITE_NAMES":
        return tuple(s for full in _full_suites() for s in (full, f"{full}-small"))
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def suite(name: str) -> tuple[str, ...]:
    """Canonical kernel names of one suite (`gemmini-exo`, `gemmini-exo-small`, ...)."""
    full = _full_suites()
    if name in full:
        return full[name]
    if name.endswith("-small") and name.removesuffix("-small") in full:
        return _small_suite(name.removesuffix("-small"))
    names = ", ".join(s for f in full for s in (f, f"{f}-small"))
    raise UnknownKernel(f"unknown suite {name!r}; suites: {names}")


def list_kernels(suite_name: str | None = None) -> list[str]:
    """Canonical names of the kernels of `suite_name`, or of every full suite, in suite order."""
    if suite_name is not None:
        return list(suite(suite_name))
    return list(dict.fromkeys(n for names in _full_suites().values() for n in names))


def suite_kernels(suite_or_names: str | Iterable[str]) -> list[str]:
    """Canonical kernel names from a suite name ("gemmini-exo"), a comma list of kernels or aliases, or a
    list of kernel names."""
    if not isinstance(suite_or_names, str):
        return list(suite_or_names)
    if suite_or_names in _full_suites() or suite_or_names.removesuffix("-small") in _full_suites():
        return list(suite(suite_or_names))
    return [resolve(k.strip()) for k in suite_or_names.split(",") if k.strip()]
