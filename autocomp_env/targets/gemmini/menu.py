"""Gemmini's optimization menus, as data. Item names follow Autocomp's menus (research/autocomp.md §2.3).

The index of an item is the `Discrete` action of the environments that use the menu, so items are only
ever appended (a change of order bumps the env version).
"""

GEMM = (
    "modify loop tiling",
    "loop reordering",
    "split loops",
    "fuse loops",
    "simplify arithmetic and propagate constants",
    "reorder computations or blocks of computations",
    "loop unrolling",
    "double buffering",
    "move more data to the scratchpad in a more outer loop to increase data reuse",
    "spread data throughout the scratchpad rather than loading to the same location repeatedly",
    "load data to the scratchpad across outer loop iterations and use if statements to prevent redundant loads",
    "hoist redundant operations out of loops",
    "substitute operations with equivalent faster ones",
    "pipeline operations to overlap computation and data movement",
    "minimize data movement",
    "minimize loop overhead",
    "other methods not listed here",
)

# Indices of the GEMM items, for the schedule spaces that use this menu.
TILING, REORDER, SPLIT, FUSE, SIMPLIFY, REORDER_COMP, UNROLL, DBUF, MORE_SPAD, SPREAD, GUARD_LOADS, HOIST = range(12)
SUBSTITUTE, PIPELINE, MIN_DATA, MIN_OVERHEAD, OTHER = range(12, 17)


LINALG = (
    "remove unnecessary code",
    "simplify arithmetic and propagate constants",
    "merge instructions",
    "merge high-level operations",
    "reorder operations or blocks of operations",
    "move CPU-based computation to the accelerator",
    "add or subtract a matrix using the bias",
    "hoist redundant operations out of loops",
    "substitute operations with equivalent faster ones",
    "pipeline operations to overlap computation and data movement",
    "eliminate data dependencies and fence operations",
    "minimize data movement",
    "minimize loop overhead",
    "other methods not listed here",
)
