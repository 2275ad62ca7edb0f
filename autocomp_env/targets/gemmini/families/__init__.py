"""Gemmini kernel families: one module per family (module name = family name), each defining `FAMILY`."""
