"""Benchmarks, calibration, search-space checks and training runs: scripts run from the command line (a
package only so that the import contracts in pyproject.toml can check their imports)."""
