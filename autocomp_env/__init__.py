"""autocomp-env: Gymnasium environments for LLM-driven optimization of tensor-accelerator kernels.

Importing the package registers one env id per kernel family of every target (`autocomp_env.targets`):

    >>> import gymnasium as gym, autocomp_env
    >>> env = gym.make("autocomp/Gemmini-matmul-v0", kernel="gemmini-exo-small:0")

Without importing it first, `gym.make("autocomp_env:autocomp/Gemmini-matmul-v0")` imports it for you.
"""

import gymnasium

from autocomp_env import targets


def env_ids() -> dict[str, str]:
    """Every env id of the known targets -> the "target/family" it serves."""
    return {t.env_id(f): f"{t.name}/{f}" for t in targets.all_targets().values() for f in t.families}


def _register() -> None:
    for env_id, family in env_ids().items():
        if env_id not in gymnasium.registry:
            # No TimeLimit wrapper: the env truncates at its own `max_steps` (and on budgets).
            gymnasium.register(env_id, entry_point="autocomp_env.env:AutocompEnv", kwargs={"family": family})


ENV_IDS: dict[str, str] = env_ids()  # the ids registered at import (a target registered later adds its own)
_register()
