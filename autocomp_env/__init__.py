"""autocomp-env: Gymnasium environments for LLM-driven optimization of tensor-accelerator kernels.

Importing the package registers one env id per kernel family:

    >>> import gymnasium as gym, autocomp_env
    >>> env = gym.make("autocomp/Gemmini-matmul-v0", kernel="gemmini-exo-small:0")

Without importing it first, `gym.make("autocomp_env:autocomp/Gemmini-matmul-v0")` imports it for you.
"""

import gymnasium

ENV_IDS: dict[str, str] = {
    "autocomp/Gemmini-matmul-v0": "gemmini/matmul",
    "autocomp/Gemmini-conv-v0": "gemmini/conv",
    "autocomp/Gemmini-tinympc-v0": "gemmini/tinympc",
    "autocomp/Trainium-gemm-v0": "trainium/gemm",
    "autocomp/Trainium-attention-v0": "trainium/attention",
    "autocomp/Trainium-sdattention-v0": "trainium/sdattention",
    "autocomp/Trainium-rmsnorm-v0": "trainium/rmsnorm",
    "autocomp/Trainium-layernorm-v0": "trainium/layernorm",
    "autocomp/Trainium-softmax-v0": "trainium/softmax",
    "autocomp/Trainium-mamba-v0": "trainium/mamba",
    "autocomp/Trainium-conv1d-v0": "trainium/conv1d",
}


def _register() -> None:
    for env_id, family in ENV_IDS.items():
        if env_id not in gymnasium.registry:
            # No TimeLimit wrapper: the env truncates at its own `max_steps` (and on budgets).
            gymnasium.register(env_id, entry_point="autocomp_env.env:AutocompEnv", kwargs={"family": family})


_register()
