"""`neuronxcc.nki`, implemented by simulators.trainium.nkisim (numpy functional model + trn1 timing model)."""

import sys

from simulators.trainium.nkisim import isa, language, typing
from simulators.trainium.nkisim.api import baremetal, benchmark, jit, profile, simulate_kernel

for _name, _mod in (("language", language), ("isa", isa), ("typing", typing)):
    sys.modules[f"{__name__}.{_name}"] = _mod

__all__ = ["jit", "baremetal", "benchmark", "profile", "simulate_kernel", "language", "isa", "typing"]
