"""Simulators for the accelerators autocomp-env targets.

This package imports nothing from the rest of the project: it can be used (and tested) on its own.
"""
