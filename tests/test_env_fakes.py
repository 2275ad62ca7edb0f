"""A tiny fake family and simulator (target "toy") so env tests run without the real ones.

Latency is a simple function of the schedule; "BUG" in the code makes it wrong; "CLAIM:<x>" claims a latency.
"""

from __future__ import annotations

import re

from autocomp_env import targets
from autocomp_env.core import Kernel
from autocomp_env.schedules.base import Family, Transform, read_schedule, schedule_comment
from simulators.result import SimResult, within_roofline

MENU = ("loop tiling", "loop unrolling", "vectorize", "fuse loops", "other methods not listed here")


class ToyFamily(Family):
    target = "toy"
    name = "axpy"
    menu = MENU
    lang = "c"

    flagship = "toy/axpy-1024"

    def spec(self, parsed: str) -> dict:
        # "<n>" or "<n>-roof<r>" (a roofline of r cycles, to test termination)
        n = int(parsed.partition("-roof")[0])
        if n <= 0 or n % 64:
            raise ValueError("n must be a positive multiple of 64")
        return {"n": n}

    def small_name(self, spec: dict) -> str:
        return "toy/axpy-64"

    def baselines(self, kernel: Kernel) -> dict[str, str]:
        return {
            "vendor": self.emit(kernel, {"tile": 8, "unroll": 2, "vec": False}),
            "expert": self.emit(kernel, {"tile": 16, "unroll": 8, "vec": True}),
        }

    def naive_schedule(self, kernel: Kernel) -> dict:
        return {"tile": 1, "unroll": 1, "vec": False}

    def emit(self, kernel: Kernel, schedule: dict) -> str:
        return f"// toy axpy n={kernel.spec['n']}\n{schedule_comment(schedule, 'c')}\nvoid solution() {{}}\n"

    def applicable(self, kernel: Kernel, schedule: dict):
        import numpy as np

        return np.array([schedule["tile"] < 16, schedule["unroll"] < 8, not schedule["vec"], False, False])

    def apply(self, kernel, schedule, item, params, rng):
        s = dict(schedule)
        if item == 0 and s["tile"] < 16:
            s["tile"] = min(16, int(params.get("tile", s["tile"] * int(rng.choice([2, 4])))))
        elif item == 1 and s["unroll"] < 8:
            s["unroll"] *= 2
        elif item == 2 and not s["vec"]:
            s["vec"] = True
        else:
            return None
        return Transform(s, f"{MENU[item]} -> {s}")

    def parse_plan(self, text: str):
        out = []
        m = re.search(r"tile\D*(\d+)?", text, re.I)
        if m:
            out.append((0, {"tile": int(m.group(1))} if m.group(1) else {}))
        if re.search(r"unroll", text, re.I):
            out.append((1, {}))
        if re.search(r"vector", text, re.I):
            out.append((2, {}))
        return out

    def inject_fault(self, kernel, code, rng):
        return code + "// BUG: off-by-one in the tile loop\n", "off-by-one in the tile loop"


class ToySimulator:
    version = "toy-1"
    runs = 0

    def run(self, code: str, kernel: str, *, seeds=(0, 1), timeout: float = 30.0) -> SimResult:
        ToySimulator.runs += 1
        n = int(kernel.split("-")[1])
        if "RAISE" in code:
            raise RuntimeError("simulator bug")
        if "BUG" in code:
            return SimResult.failure("cycles", "wrong_output", "mismatch at element 3")
        claim = re.search(r"CLAIM:(\S+)", code)
        if claim:
            return within_roofline(SimResult(True, float(claim.group(1)), "cycles", utilization=1.0), self.roofline(kernel))
        s = read_schedule(code)
        if s is None:
            return SimResult.failure("cycles", "compile_error", "no solution found")
        lat = round(4 * n / s["tile"] / s["unroll"] ** 0.5 / (2 if s["vec"] else 1) + 10, 3)
        result = SimResult(True, lat, "cycles", utilization=(n / 64) / lat, counters={"busy": lat / 2}, sim_seconds=0.001)
        return within_roofline(result, self.roofline(kernel))  # the one roofline check, as every simulator's

    def roofline(self, kernel: str) -> float:
        n, _, roof = kernel.split("-", 1)[1].partition("-roof")
        return float(roof) if roof else int(n) / 64

    def macs(self, kernel: str) -> int:
        return int(kernel.split("-")[1])


def parse(name: str) -> tuple[str, str]:
    """The toy "simulator's" parse: `toy/<family>-<shape>` -> (family, shape)."""
    family, dash, shape = name.partition("/")[2].partition("-")
    if not (family and dash and shape):
        raise ValueError("expected toy/<family>-<shape>")
    return family, shape


FAMILY = ToyFamily()
TARGET = targets.Target(
    name="toy",
    title="Toy",
    description="a fake target for tests",
    unit="cycles",
    lang="c",
    simulator=lambda config: ToySimulator(),
    parse=parse,
    families={"axpy": __name__},
    suites={},
    counters=(),
    prompts=targets.PromptTexts(
        role="a toy compiler", rules=("keep it toy",), isa=lambda k: "# Target: toy", signature=lambda k: "toy()"
    ),
    timeout=30.0,
    seconds_per_gmac=0.0,
)


TOY_ID = "autocomp-test/Toy-v0"


def install() -> None:
    """Register the toy target (family, simulator) and the env id `autocomp-test/Toy-v0` (kernel toy/axpy-1024)."""
    import gymnasium

    if targets.TARGETS.get("toy") is not TARGET:
        targets.register(TARGET)
    if TOY_ID not in gymnasium.registry:
        gymnasium.register(TOY_ID, entry_point="autocomp_env.env:AutocompEnv", kwargs={"kernel": "toy/axpy-1024"})
