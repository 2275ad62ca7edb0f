"""Wrappers that let stock RL tooling train on the envs.

`NumericObservation` drops the code text and keeps the numbers: the observation becomes one flat float32
`Box` (features followed by the menu mask) and the action space the menu (`Discrete`), whatever the
env's `action_mode`. Stock wrappers (`TimeLimit`, `RecordEpisodeStatistics`, `FlattenObservation`,
`NormalizeObservation`, ...) and torch policies work on top of it.

    >>> import gymnasium as gym, autocomp_env
    >>> env = NumericObservation(gym.make("autocomp/Gemmini-matmul-v0", kernel="small"))
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class NumericObservation(gym.ObservationWrapper):
    """Observation: `concat(features, mask)` as `Box(float32)`; action: `Discrete(len(menu))`.

    `feature_names` lists what each index of the observation means (`mask:<menu item>` for the mask part).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        obs_space = env.observation_space
        if not isinstance(obs_space, spaces.Dict) or {"features", "mask"} - set(obs_space.spaces):
            raise ValueError("NumericObservation wraps an autocomp env (Dict observation with features and mask)")
        features, mask = obs_space["features"], obs_space["mask"]
        n = int(mask.n)
        self.observation_space = spaces.Box(
            low=np.concatenate([features.low, np.zeros(n, np.float32)]).astype(np.float32),
            high=np.concatenate([features.high, np.ones(n, np.float32)]).astype(np.float32),
            dtype=np.float32,
        )
        self.action_space = spaces.Discrete(n)
        base = env.unwrapped
        self.feature_names = tuple(getattr(base, "feature_names", ())) + tuple(
            f"mask:{item}" for item in getattr(base, "menu", range(n))
        )

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        return np.concatenate(
            [np.asarray(observation["features"], np.float32), np.asarray(observation["mask"], np.float32)]
        )

    def step(self, action: Any):
        # Menu indices are valid actions of the env in every action mode.
        return super().step(int(np.asarray(action).item()))
