"""The verifiers environment `autocomp-verifiers` (verifiers resolves an id to the top-level module of that
name and takes the Taskset and Env it exports). The code is in `autocomp_env.integrations.verifiers_env`.

    vf eval --env.taskset.id autocomp-verifiers --env.taskset.kernels '["gemmini-exo-small:0"]' ...
"""

from autocomp_env.integrations.verifiers_env import AutocompEnv, AutocompTaskset, load_environment

__all__ = ["AutocompEnv", "AutocompTaskset", "load_environment"]
