"""Starting or joining Ray once per process, with this package importable in every worker."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def init_ray(workers: int = 2, address: str | None = None, pythonpath: tuple[str, ...] = ()) -> None:
    """Start Ray with `workers` CPUs on this machine, or join the cluster at `address` ("auto",
    "ray://HEAD:10001"). Workers get our package root (and `pythonpath`) on sys.path. A no-op when Ray
    is already initialized."""
    import ray  # noqa: PLC0415  (seconds to import: only the Ray backends need it)

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    paths = [str(ROOT), *pythonpath, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
