"""Train the learned menu policy (REINFORCE) on some kernels and compare it to random on held-out ones.

    python scripts/train_policy.py --train gemmini/matmul-128x128x128,gemmini/matmul-128x64x128 \
        --holdout gemmini/matmul-128x256x64,gemmini/matmul-192x128x64 --episodes 160 --steps 12 --out policy

Saves `<out>.pt` + `<out>.json`, prints learned vs random geomean best speedup at equal sample budget on
the held-out kernels (default: same-family kernels of the other small suites), writes `<out>-eval.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.learned import held_out_for, train_and_evaluate  # noqa: E402
from autocomp_env.kernels import suite_kernels  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default="gemmini-exo-small", help="suite name or comma list of kernels")
    ap.add_argument("--holdout", default=None, help="suite name or comma list of kernels (not trained on)")
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

    train_k = list(dict.fromkeys(suite_kernels(args.train)))
    hold_k = suite_kernels(args.holdout) if args.holdout else held_out_for(train_k)
    return train_and_evaluate(
        train_k,
        hold_k,
        episodes=args.episodes,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        hidden=args.hidden,
        seed=args.seed,
        eval_seeds=args.eval_seeds,
        env_kwargs={"fault_rate": args.fault_rate},
        out=args.out,
        log=lambda s: print(s, flush=True),
    )


if __name__ == "__main__":
    main()
