"""The `autocomp-env` command line. It sits above `agents/` (it runs agents), which sits above `autocomp_env/`."""

from autocomp_cli.main import build_parser, main

__all__ = ["build_parser", "main"]
