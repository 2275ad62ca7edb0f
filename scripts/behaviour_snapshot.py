"""A JSON snapshot of what the environment does, to prove that a refactoring left behaviour unchanged.

    python scripts/behaviour_snapshot.py --out before.json
    ... refactor ...
    python scripts/behaviour_snapshot.py --out after.json --compare before.json   # exit 1 and a diff if not

It records, for every kernel of every suite and of its -small twin: the kernel record, the starting code and
the baselines (sha256), the menu mask at the start, the code after each applicable menu item from the start
(offline code model, seeded), what a few free-form plans parse into and a seeded fault. For the -small
kernels it also records the env's observation at reset (features, mask, info), the simulator's result for
the starting code and the baseline latencies. Then seeded offline trajectories of random, greedy and beam
search on two small kernels (plans, latencies, rewards) and a direct env walk. No evaluation cache is used:
every simulator figure is simulated afresh. Takes about 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import autocomp_env  # noqa: E402, F401  (registers the env ids)
from agents.beam import BeamSearchAgent  # noqa: E402
from agents.envapi import EnvSpec, make_env  # noqa: E402
from agents.simple import GreedyAgent, RandomAgent  # noqa: E402
from autocomp_env import kernels  # noqa: E402
from autocomp_env.codemodel import OfflineCodeModel  # noqa: E402
from autocomp_env.core import Feedback, Plan  # noqa: E402
from autocomp_env.evaluation import Evaluator  # noqa: E402

try:  # the marker reader moved in the one-package-per-target redesign (issue 18)
    from autocomp_env.schedules.base import read_schedule  # noqa: E402
except ImportError:
    from autocomp_env.families.base import read_schedule  # noqa: E402

PLANS = (
    "tile the loops by 4 and unroll by 2",
    "double buffering, then fuse operations",
    "use the hardware loop and wider mvins of 64 columns",
    "make DMA transfers at least 32 KiB and hoist redundant operations out of loops",
)
WALK_KERNELS = ("gemmini-exo-small:0", "trainium-tutorial-small:0")


def sha(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:20]


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def kernel_record(name: str) -> dict[str, Any]:
    k = kernels.get_kernel(name)
    fam = kernels.family_of(k)
    start = kernels.starting_code(k)
    out: dict[str, Any] = {
        "record": {
            "name": k.name,
            "target": k.target,
            "family": k.family,
            "spec": k.spec,
            "macs": k.macs,
            "roofline": k.roofline,
            "unit": k.unit,
            "small": k.small,
            "aliases": sorted(k.aliases),
        },
        "menu": sha("\n".join(fam.menu)),
        "start": sha(start),
        "baselines": {b: sha(code) for b, code in kernels.baselines(k).items()},
    }
    schedule = read_schedule(start)
    mask = np.asarray(fam.applicable(k, schedule), dtype=bool)
    out["mask"] = mask.astype(int).tolist()
    model = OfflineCodeModel()
    moves = {}
    for i in np.flatnonzero(mask):
        gen = model.implement(k, start, Plan(fam.menu[i], int(i)), Feedback(), np.random.default_rng(int(i)))
        moves[str(i)] = {"code": sha(gen.code), "note": gen.note}
    out["moves"] = moves
    out["plans"] = {text: [[i, p] for i, p in fam.parse_plan(text)] for text in PLANS}
    buggy, desc = fam.inject_fault(k, start, np.random.default_rng(7))
    out["fault"] = {"code": sha(buggy), "description": desc}
    return out


def reset_record(name: str, evaluator: Evaluator) -> dict[str, Any]:
    k = kernels.get_kernel(name)
    env = make_env(EnvSpec(name).with_kwargs(evaluator=evaluator))
    obs, info = env.reset(seed=0)
    r = evaluator.evaluate(k, kernels.starting_code(k))
    rec = {
        "features": obs["features"],
        "mask": obs["mask"],
        "feature_names": list(env.unwrapped.feature_names),
        "info": {key: v for key, v in info.items() if key != "timing"},
        "sim": {
            "correct": r.correct,
            "latency": r.latency,
            "unit": r.unit,
            "utilization": r.utilization,
            "error": r.error.type if r.error else None,
            "counters": r.counters,
        },
        "baseline_latencies": env.unwrapped.baseline_latencies(),
        "env_id": env.spec.id,
    }
    env.close()
    return rec


def trajectories(evaluator: Evaluator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in WALK_KERNELS:
        for agent in (RandomAgent(samples=8), GreedyAgent(samples=8), BeamSearchAgent(samples=10)):
            env = make_env(EnvSpec(name).with_kwargs(evaluator=evaluator, budget={"samples": 10}))
            res = agent.run(env, seed=3)
            env.close()
            steps = [{k: v for k, v in s.items() if "seconds" not in k} for s in res.steps]
            out[f"{name}/{agent.name}"] = {
                "best_plans": res.best_plans,
                "best_latency": res.best_latency,
                "trace": res.trace,
                "steps": steps,
                "best_code": sha(res.best_code),
                "baselines": res.baselines,
            }
        env = make_env(EnvSpec(name).with_kwargs(evaluator=evaluator, action_mode="both", fault_rate=0.3))
        obs, _ = env.reset(seed=5)
        walk = []
        for t in range(6):
            items = np.flatnonzero(obs["mask"])
            action = (
                {"kind": 1, "menu": 0, "plan": PLANS[t % len(PLANS)]}
                if t % 3 == 2
                else {"kind": 0, "menu": int(items[t % len(items)]), "plan": "x"}
            )
            obs, reward, term, trunc, info = env.step(action)
            walk.append(
                {
                    "reward": reward,
                    "terminated": term,
                    "truncated": trunc,
                    "code": sha(obs["code"]),
                    "features": obs["features"],
                    "info": {key: v for key, v in info.items() if key != "timing"},
                }
            )
        out[f"{name}/walk"] = walk
        out[f"{name}/propose"] = [[p.text, p.menu_index] for p in env.unwrapped.propose_plans(5)]
        env.close()
    return out


def snapshot() -> dict[str, Any]:
    evaluator = Evaluator(cache=None)
    suites = kernels.SUITES
    names = list(dict.fromkeys(n for members in suites.values() for n in members))
    small = list(dict.fromkeys(n for s, members in suites.items() if s.endswith("-small") for n in members))
    return jsonable(
        {
            "suites": suites,
            "env_ids": sorted(i for i in gym.registry if i.startswith("autocomp/")),
            "kernels": {n: kernel_record(n) for n in names},
            "reset": {n: reset_record(n, evaluator) for n in small},
            "trajectories": trajectories(evaluator),
        }
    )


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'after' if k not in a else 'before'}")
            else:
                out += diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:200]} != {json.dumps(b)[:200]}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="where to write the snapshot (JSON)")
    ap.add_argument("--compare", default=None, help="an earlier snapshot: print the differences, exit 1 if any")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autocomp-snapshot-") as tmp:
        os.environ["AUTOCOMP_CACHE"] = tmp  # fresh simulator builds, and no evaluation cache anywhere
        snap = snapshot()
    Path(args.out).write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}: {len(snap['kernels'])} kernels, {len(snap['reset'])} resets")
    if args.compare:
        differences = diff(json.loads(Path(args.compare).read_text()), snap)
        for d in differences[:50]:
            print(d)
        print(f"{len(differences)} difference(s) from {args.compare}")
        return 1 if differences else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
