"""Adapters from the text interface (`autocomp_env.textenv`) to training libraries, each an optional extra:

- `openenv_server`: an OpenEnv server (`autocomp-env serve`) and client (`pip install -e '.[openenv]'`);
- `verifiers_env`: a verifiers environment with `load_environment()` (`pip install -e '.[verifiers]'`);
- `trl`: environments for TRL's `GRPOTrainer(environment_factory=...)` and a GRPO reward function
  (`pip install -e '.[train]'`).

Importing this package imports none of them.
"""
