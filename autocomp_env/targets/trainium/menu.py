"""Trainium's optimization menu, as data. Item names follow Autocomp's Trainium menu (research/autocomp.md §2.3).

The index of an item is the `Discrete` action of the Trainium environments, so items are only ever appended
(a change of order bumps the env version).
"""

MENU = (
    "reduce data movement",
    "overlap data movement and compute",
    "cache reused data in local memory",
    "loop tiling",
    "loop reordering and restructuring",
    "loop unrolling",
    "fuse operations",
    "use lower precision",
    "double buffering",
    "software pipelining",
    "hoist redundant operations out of loops",
    "eliminate redundant computation",
    "simplify or remove unnecessary code",
    "try new parameter values",
    "rewrite the algorithm to reduce total work",
    "map the contraction axis to the partition dimension",
    "use affine_range instead of sequential_range where there are no loop-carried dependencies",
    "exploit free-dimension flexible indexing for transposes, splits and pooling",
    "pad tiles to pmax=128 with masking",
    "accumulate partial matmuls in PSUM",
    "use nc_matmul with pre-transposed inputs",
    "fuse multiply-add with the activation in one activation instruction",
    "make the matrix with the large free axis the stationary operand",
    "make DMA transfers at least 32 KiB",
    "replace load_transpose2d with load plus nc_transpose when memory-bound",
    "allocate SBUF/PSUM buffers directly",
    "keep reused data resident in SBUF",
    "declare buffers inside inner loops to shorten their lifetimes",
    "multi-buffer tiles with modular allocation",
    "use the Tensor engine for cross-partition reductions and reshapes",
    "use tensor_tensor_scan instead of sequential loops",
    "use free dimensions of at least 128 to amortize instruction overhead",
    "use bn_stats/bn_aggr for mean and variance",
    "use tensor_scalar broadcast instead of broadcast plus tensor_tensor",
    "coalesce small result tiles before a store",
    "other methods not listed here",
)

ITEM: dict[str, int] = {name: i for i, name in enumerate(MENU)}  # menu item -> its index in the menu
