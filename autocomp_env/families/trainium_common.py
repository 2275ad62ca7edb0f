"""What every Trainium family needs to build a `Kernel`: one shared simulator for its MAC count and roofline."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from autocomp_env.core import Kernel


@lru_cache(maxsize=1)
def simulator() -> Any:
    """One TrainiumSimulator per process, imported lazily: importing the families must stay cheap."""
    from simulators.trainium import TrainiumSimulator

    return TrainiumSimulator()


def make_kernel(name: str, family: str, spec: dict[str, Any], small: str | None) -> Kernel:
    sim = simulator()
    return Kernel(
        name=name,
        target="trainium",
        family=family,
        spec=spec,
        macs=int(sim.macs(name)),
        roofline=float(sim.roofline(name)),
        unit="us",
        small=small,
    )
