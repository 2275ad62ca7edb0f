"""A learned menu policy: a small torch MLP over the env's features, a masked categorical over menu items,
trained with REINFORCE and a per-step baseline on some kernels and evaluated on held-out ones.

The policy walks like `RandomAgent` (a correct candidate becomes the state) but picks items from its
learned distribution. Saved as `<path>.pt` (weights) plus `<path>.json` (the config needed to rebuild it).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents import envapi
from agents.base import Agent, EpisodeResult, Tracker
from agents.simple import RandomAgent
from autocomp_env import kernels as K
from autocomp_env.kernels import suite_kernels


@dataclass(frozen=True)
class PolicyConfig:
    obs_dim: int
    n_actions: int
    hidden: int = 64
    menu: tuple[str, ...] = ()  # the menu it was trained on (checked at load: indices must mean the same)
    trained_on: tuple[str, ...] = ()


def squash(x: np.ndarray) -> np.ndarray:
    """Scale-free features (cycles, bytes and flags live on very different scales)."""
    return np.sign(x) * np.log1p(np.abs(x))


class MenuPolicy(nn.Module):
    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.obs_dim, config.hidden),
            nn.Tanh(),
            nn.Linear(config.hidden, config.hidden),
            nn.Tanh(),
            nn.Linear(config.hidden, config.n_actions),
        )

    def dist(self, features: np.ndarray, mask: np.ndarray) -> torch.distributions.Categorical:
        x = torch.as_tensor(squash(np.asarray(features, np.float32)), dtype=torch.float32)
        logits = self.net(x)
        m = torch.as_tensor(np.asarray(mask, bool))
        return torch.distributions.Categorical(logits=logits.masked_fill(~m, -1e9))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        torch.save(self.state_dict(), path.with_suffix(".pt"))
        path.with_suffix(".json").write_text(json.dumps(asdict(self.config), indent=1))

    @staticmethod
    def load(path: str | Path) -> MenuPolicy:
        path = Path(path)
        cfg = json.loads(path.with_suffix(".json").read_text())
        cfg["menu"], cfg["trained_on"] = tuple(cfg["menu"]), tuple(cfg["trained_on"])
        policy = MenuPolicy(PolicyConfig(**cfg))
        policy.load_state_dict(torch.load(path.with_suffix(".pt"), weights_only=True))
        return policy


def rollout(
    policy: MenuPolicy, env: gym.Env, seed: int, steps: int, sample: bool = True, tracker: Tracker | None = None
):
    """One walk of `steps` samples. Returns (log-probs, rewards, tracker)."""
    t = tracker or Tracker(env, seed, steps)
    gen = torch.Generator().manual_seed(seed)
    obs, _ = t.start()
    root = envapi.get_state(env)
    chain: tuple[str, ...] = ()
    logps, rewards = [], []
    restarts = 0
    while not t.exhausted:
        m = envapi.mask(obs)
        if not m.any():
            break
        d = policy.dist(obs["features"], m)
        a = torch.multinomial(d.probs, 1, generator=gen)[0] if sample else d.probs.argmax()
        logps.append(d.log_prob(a))
        out = t.step(int(a), chain)
        rewards.append(out.reward)
        obs = out.obs
        if out.correct:
            chain = (*chain, out.plan)
        if out.done and not t.exhausted:
            if out.budget_exhausted or not chain:
                break
            restarts += 1
            obs, chain = envapi.restore(env, root, sample=restarts), ()
    return logps, rewards, t


def train(
    make_env,
    kernels: list[str],
    episodes: int,
    steps: int = 16,
    batch: int = 8,
    lr: float = 3e-3,
    hidden: int = 64,
    seed: int = 0,
    log=None,
) -> MenuPolicy:
    """REINFORCE with a per-step mean baseline. `make_env(kernel) -> env`. The reward is the env's
    (log speedup per correct step, a penalty per failure), undiscounted returns-to-go."""
    torch.manual_seed(seed)
    envs = {k: make_env(k) for k in kernels}
    obs, _ = next(iter(envs.values())).reset(seed=seed)
    first = next(iter(envs.values()))
    policy = MenuPolicy(
        PolicyConfig(len(obs["features"]), len(envapi.menu(first)), hidden, envapi.menu(first), tuple(kernels))
    )
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    for start in range(0, episodes, batch):
        runs = []
        for i in range(start, min(start + batch, episodes)):
            k = kernels[int(rng.integers(len(kernels)))]
            logps, rewards, t = rollout(policy, envs[k], seed * 100_003 + i, steps)
            runs.append((logps, np.cumsum(rewards[::-1])[::-1], t))
        width = max(len(r[1]) for r in runs)
        returns = np.full((len(runs), width), np.nan)
        for j, (_, g, _) in enumerate(runs):
            returns[j, : len(g)] = g
        baseline = np.nanmean(returns, axis=0)
        scale = np.nanstd(returns) + 1e-6
        loss = torch.zeros(())
        for logps, g, _ in runs:
            adv = torch.as_tensor((g - baseline[: len(g)]) / scale, dtype=torch.float32)
            loss = loss - (torch.stack(logps) * adv).sum() / len(runs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log:
            log(start + len(runs), float(np.mean([r[2].start_latency / r[2].best_latency for r in runs])))
    return policy


class LearnedPolicyAgent(Agent):
    """Runs a trained `MenuPolicy` (sampling from it; `greedy=True` takes the argmax)."""

    name = "learned"

    def __init__(self, samples: int | None = None, policy: str | MenuPolicy | None = None, greedy: bool = False):
        super().__init__(samples)
        if policy is None:
            raise ValueError("LearnedPolicyAgent needs a policy: a MenuPolicy or the path of a saved one")
        self._policy = MenuPolicy.load(policy) if isinstance(policy, (str, Path)) else policy
        self.policy = str(policy) if isinstance(policy, (str, Path)) else "in-memory"
        self.greedy = greedy

    def config(self) -> dict[str, Any]:
        return super().config() | {"trained_on": list(self._policy.config.trained_on)}

    def run(self, env: gym.Env, seed: int) -> EpisodeResult:
        if tuple(envapi.menu(env)) != self._policy.config.menu:
            raise ValueError(
                f"policy trained on another menu ({len(self._policy.config.menu)} items) than {env.unwrapped.kernel.name}'s"
            )
        t = Tracker(env, seed, self.samples)
        with torch.no_grad():
            rollout(self._policy, env, seed, self.samples or 10**9, sample=not self.greedy, tracker=t)
        return t.result(self.name, self.config())


def held_out_for(train_kernels: list[str], limit: int = 4) -> list[str]:
    """The default evaluation set of `autocomp-env train`: kernels of the small suites not trained on, of the
    training kernels' families (other shapes), or if there are none, of any family with the same menu."""
    train = [K.get_kernel(k) for k in train_kernels]
    names = dict.fromkeys(n for s in K.SUITE_NAMES if s.endswith("-small") for n in K.suite(s))
    pool = [K.get_kernel(n) for n in names if n not in train_kernels]
    families = {(k.target, k.family) for k in train}
    menus = {tuple(K.family_of(k).menu) for k in train}
    same_family = [k.name for k in pool if (k.target, k.family) in families]
    return (same_family or [k.name for k in pool if tuple(K.family_of(k).menu) in menus])[:limit]


def train_and_evaluate(
    train_kernels: list[str],
    holdout: list[str],
    episodes: int = 200,
    steps: int = 12,
    batch: int = 8,
    lr: float = 3e-3,
    hidden: int = 64,
    seed: int = 0,
    eval_seeds: int = 8,
    env_kwargs: dict[str, Any] | None = None,
    out: str | Path = "policy",
    log=print,
) -> dict[str, Any]:
    """Train on `train_kernels`, save `<out>.pt/.json`, then compare with `RandomAgent` at the same sample
    budget (`steps`) on the held-out kernels (other seeds than training). Writes and returns `<out>-eval.json`."""
    train_kernels = list(dict.fromkeys(train_kernels))
    overlap = set(train_kernels) & set(holdout)
    if overlap:
        raise ValueError(f"held-out kernels also in training: {sorted(overlap)}")
    if not holdout:
        raise ValueError("no held-out kernels to evaluate on")
    env_kw = {"max_steps": steps} | dict(env_kwargs or {})

    def make(kernel: str) -> gym.Env:
        return envapi.make_env(envapi.EnvSpec(kernel).with_kwargs(**env_kw))

    t0 = time.perf_counter()
    progress = (lambda n, s: log(f"episodes {n:5d}  batch geomean best speedup {s:.3f}")) if log else None
    policy = train(make, train_kernels, episodes, steps, batch, lr, hidden, seed, log=progress)
    train_s = time.perf_counter() - t0
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    policy.save(out)

    per_kernel, all_l, all_r = {}, [], []
    for k in holdout:
        seeds = range(10_000, 10_000 + eval_seeds)  # not the training seeds
        learned = [np.log(LearnedPolicyAgent(samples=steps, policy=policy).run(make(k), s).best_speedup) for s in seeds]
        rand = [np.log(RandomAgent(samples=steps).run(make(k), s).best_speedup) for s in seeds]
        per_kernel[k] = {"learned": float(np.exp(np.mean(learned))), "random": float(np.exp(np.mean(rand)))}
        all_l += learned
        all_r += rand
        if log:
            log(f"{k:40s} learned {per_kernel[k]['learned']:.3f}x  random {per_kernel[k]['random']:.3f}x")
    result = {
        "train": train_kernels,
        "holdout": list(holdout),
        "config": {
            "episodes": episodes,
            "steps": steps,
            "batch": batch,
            "lr": lr,
            "hidden": hidden,
            "seed": seed,
            "eval_seeds": eval_seeds,
            "env_kwargs": env_kw,
        },
        "train_seconds": train_s,
        "budget": steps,
        "per_kernel": per_kernel,
        "learned_geomean": float(np.exp(np.mean(all_l))),
        "random_geomean": float(np.exp(np.mean(all_r))),
        "policy": str(Path(out).with_suffix(".pt")),
    }
    Path(f"{out}-eval.json").write_text(json.dumps(result, indent=1))
    if log:
        log(
            f"held-out geomean best speedup @ {steps} samples: learned {result['learned_geomean']:.3f}x, random {result['random_geomean']:.3f}x"
        )
    return result


def train_main(cfg: dict[str, Any]) -> int:
    """`autocomp-env train`: cfg keys suite (training suite or comma list), episodes, seed, out, and optional
    holdout, steps, eval_seeds, fault_rate. Held-out kernels default to `held_out_for(training kernels)`."""
    train_k = list(dict.fromkeys(suite_kernels(cfg.get("suite") or "gemmini-exo-small")))
    holdout = suite_kernels(cfg["holdout"]) if cfg.get("holdout") else held_out_for(train_k)
    env_kwargs = {"fault_rate": float(cfg["fault_rate"])} if cfg.get("fault_rate") else {}
    train_and_evaluate(
        train_k,
        holdout,
        episodes=int(cfg.get("episodes") or 200),
        steps=int(cfg.get("steps") or 12),
        seed=int(cfg.get("seed") or 0),
        eval_seeds=int(cfg.get("eval_seeds") or 8),
        env_kwargs=env_kwargs,
        out=cfg.get("out") or "policy",
    )
    return 0
