"""A functional + cycle-approximate simulator of NKI v1 kernels on trn1 (the `neuronxcc.nki` API, in numpy)."""
