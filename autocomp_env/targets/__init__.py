"""Targets: one package per accelerator, `autocomp_env/targets/<name>/`, exporting one `Target` record.

A target package holds its menu, its prompt texts, the helpers its families share and a `families/` folder
with one module per kernel family (module name = family name; the module's `FAMILY` is the family). What
the env, the evaluator, the prompts and the CLI know about a target comes from its record: env ids
(`autocomp/<title>-<family>-v0`), default kernels (each family's `flagship`), suites, observation counters,
timeouts, the simulator and its kernel-name parser. Adding a family is one file in `families/`; adding a
target is one folder here (or, from outside the package, one `register(Target(...))` call).

One simulator instance exists per (target, config) in a process: `simulator(name)`.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from autocomp_env.core import Kernel
from autocomp_env.schedules.base import Family
from simulators.result import SimResult


class Simulator(Protocol):
    """A target's simulator (`simulators/<target>/`): the narrow contract the evaluator relies on."""

    version: str

    def run(self, code: str, kernel: str, *, seeds: Sequence[int] = (0, 1), timeout: float = ...) -> SimResult: ...

    def roofline(self, kernel: str) -> float: ...

    def macs(self, kernel: str) -> int: ...


@dataclass(frozen=True)
class PromptTexts:
    """What an LLM is told about a target, in our own words for our simulators."""

    role: str  # who the model plays
    rules: tuple[str, ...]  # rules every candidate must follow
    isa: Callable[[Kernel], str]  # the architecture and ISA description for a kernel
    signature: Callable[[Kernel], str]  # what `solution` computes for a kernel


@dataclass(frozen=True)
class Target:
    """Everything the environment knows about one accelerator target."""

    name: str  # the first part of its kernel names: "gemmini"
    title: str  # env ids are autocomp/<title>-<family>-v0
    description: str  # one line for `autocomp-env list targets`
    unit: str  # latency unit: "cycles" | "us"
    lang: str  # candidate code: "c" | "python"
    simulator: Callable[[Any], Simulator]  # config (None: the default) -> a new simulator
    parse: Callable[[str], tuple[str, Any]]  # kernel name -> (family name, the simulator's own parsed record)
    families: Mapping[str, str]  # family name -> the module whose `FAMILY` it is
    suites: Mapping[str, tuple[str, ...]]  # Autocomp's problem sets: suite name -> kernel names
    counters: tuple[tuple[str, str | float], ...]  # simulator counters exposed as observation features
    prompts: PromptTexts
    timeout: float  # seconds of wall clock for one evaluation, plus ...
    seconds_per_gmac: float  # ... this many per 10^9 MACs and seed (a functional check runs every tile)

    def env_id(self, family: str) -> str:
        return f"autocomp/{self.title}-{family}-v0"

    def timeout_for(self, kernel: Kernel, seeds: int) -> float:
        """Wall-clock limit of one evaluation of `kernel` on `seeds` input seeds."""
        return self.timeout + seeds * self.seconds_per_gmac * kernel.macs / 1e9


def family_modules(package: str, folder: str | Path) -> dict[str, str]:
    """The families of a target package by folder convention: every module in `folder` (its `families/`)."""
    return {
        m.name: f"{package}.families.{m.name}"
        for m in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name)
        if not m.name.startswith("_")
    }


TARGETS: dict[str, Target] = {}
_FAMILIES: dict[tuple[str, str], Family] = {}
_SIMULATORS: dict[tuple[str, str], Simulator] = {}
_LOCK = threading.Lock()
_discovered = False


def register(target: Target) -> Target:
    """Add (or replace) a target; its families load on first use."""
    TARGETS[target.name] = target
    for key in [k for k in _FAMILIES if k[0] == target.name]:
        del _FAMILIES[key]
    return target


def _discover() -> None:
    # The target packages of this folder, imported by name: a broken one must not take the others down.
    global _discovered
    if _discovered:
        return
    _discovered = True
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not m.ispkg or m.name in TARGETS:
            continue
        try:
            register(importlib.import_module(f"{__name__}.{m.name}").TARGET)
        except Exception as e:
            warnings.warn(f"target {m.name} failed to load: {type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)


def all_targets() -> dict[str, Target]:
    """Every known target, by name (the built-in ones in name order, then registered ones)."""
    _discover()
    return TARGETS


def target(name: str) -> Target:
    """The target called `name`; ValueError naming the known ones otherwise."""
    known = all_targets()
    if name not in known:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(known)}")
    return known[name]


def family(target_name: str, name: str) -> Family:
    """The family `target_name/name`, imported on first use. ValueError if unknown or broken."""
    key = (target_name, name)
    if key not in _FAMILIES:
        t = target(target_name)
        module = t.families.get(name)
        if module is None:
            known = ", ".join(f"{t.name}/{f}" for f in t.families)
            raise ValueError(f"unknown kernel family {target_name}/{name}; known: {known}")
        try:
            fam = importlib.import_module(module).FAMILY
        except Exception as e:  # a broken family must not take the others down
            raise ValueError(f"kernel family {target_name}/{name} failed to load: {type(e).__name__}: {e}") from e
        if (fam.target, fam.name) != key:
            raise ValueError(f"module {module} holds {fam.target}/{fam.name}, not {target_name}/{name}")
        _FAMILIES[key] = fam
    return _FAMILIES[key]


def simulator(target_name: str, config: Any = None) -> Simulator:
    """This process's simulator for `target_name` and `config` (None: the default), created on first use."""
    key = (target_name, repr(config))
    with _LOCK:  # envs in threads share it; creating two would build a runtime twice
        sim = _SIMULATORS.get(key)
        if sim is None:
            sim = _SIMULATORS[key] = target(target_name).simulator(config)
    return sim
