"""Train the learned menu policy (REINFORCE) on some kernels and compare it to random on held-out ones.

    python scripts/train_policy.py --train gemmini/matmul-64x64x64,gemmini/matmul-128x128x64 \
        --holdout gemmini/matmul-96x96x96,gemmini/matmul-160x64x128 --episodes 200 --steps 12 --out policy

Saves `<out>.pt` + `<out>.json`, prints learned vs random geomean best speedup at equal sample budget on
the held-out kernels, and writes `<out>-eval.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    from agents.bench import suite_kernels
    from agents.envapi import EnvSpec, make_env
    from agents.learned import LearnedPolicyAgent, train
    from agents.simple import RandomAgent

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True, help="suite name or comma list of kernels")
    ap.add_argument("--holdout", required=True, help="suite name or comma list of kernels (not trained on)")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--steps", type=int, default=12, help="samples per training episode and per evaluation episode")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-seeds", type=int, default=8)
    ap.add_argument("--fault-rate", type=float, default=0.1)
    ap.add_argument("--out", default="policy")
    args = ap.parse_args(argv)

    train_k, hold_k = suite_kernels(args.train), suite_kernels(args.holdout)
    overlap = set(train_k) & set(hold_k)
    if overlap:
        raise SystemExit(f"held-out kernels also in training: {sorted(overlap)}")
    env_kw = {"max_steps": args.steps, "fault_rate": args.fault_rate}

    def make(kernel: str):
        return make_env(EnvSpec(kernel).with_kwargs(**env_kw))

    t0 = time.perf_counter()
    log = lambda n, s: print(f"episodes {n:5d}  batch geomean best speedup {s:.3f}", flush=True)  # noqa: E731
    policy = train(make, train_k, args.episodes, args.steps, args.batch, args.lr, args.hidden, args.seed, log=log)
    train_s = time.perf_counter() - t0
    policy.save(args.out)

    per_kernel, all_l, all_r = {}, [], []
    for k in hold_k:
        seeds = range(1000, 1000 + args.eval_seeds)  # not the training seeds
        learned = [
            np.log(LearnedPolicyAgent(samples=args.steps, policy=policy).run(make(k), s).best_speedup) for s in seeds
        ]
        rand = [np.log(RandomAgent(samples=args.steps).run(make(k), s).best_speedup) for s in seeds]
        per_kernel[k] = {"learned": float(np.exp(np.mean(learned))), "random": float(np.exp(np.mean(rand)))}
        all_l += learned
        all_r += rand
        print(f"{k:40s} learned {per_kernel[k]['learned']:.3f}x  random {per_kernel[k]['random']:.3f}x", flush=True)
    out = {
        "train": train_k,
        "holdout": hold_k,
        "config": vars(args),
        "train_seconds": train_s,
        "budget": args.steps,
        "per_kernel": per_kernel,
        "learned_geomean": float(np.exp(np.mean(all_l))),
        "random_geomean": float(np.exp(np.mean(all_r))),
    }
    Path(f"{args.out}-eval.json").write_text(json.dumps(out, indent=1))
    print(
        f"held-out geomean best speedup @ {args.steps} samples: learned {out['learned_geomean']:.3f}x, random {out['random_geomean']:.3f}x"
    )
    return out


if __name__ == "__main__":
    main()
