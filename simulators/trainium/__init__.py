"""Trainium (trn1, NeuronCore-v2) simulator for NKI v1 kernels: functional numpy model + cycle-approximate timing."""

from .config import TrainiumConfig
from .kernels import KernelSpec, parse_kernel
from .simulator import TrainiumSimulator, main

__all__ = ["TrainiumSimulator", "TrainiumConfig", "KernelSpec", "parse_kernel", "main"]
