"""What every Trainium family needs: menu indices by name, and one shared simulator for a `Kernel`'s MAC count
and roofline."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from autocomp_env.core import Kernel
from autocomp_env.menus import TRAINIUM

ITEM: dict[str, int] = {name: i for i, name in enumerate(TRAINIUM)}  # menu item -> its index in the menu


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
