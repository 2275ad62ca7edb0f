"""Kernel families: one module per (target, family). Each registers a `Family` with `register()`.

A family knows how to parse a kernel name into a `Kernel`, write its starting code and baselines, and
holds the offline code model's schedule space for it (see `base.Family`).
"""

from autocomp_env.families.base import FAMILIES, Family, family_for, register  # noqa: F401
