"""For tests only, loaded into a warm process of its own: the candidate's side of a Trainium evaluation with the
static guard off and the real builtins, as if a kernel had found a way past the guard. What still holds then is
what the tests check: the record/replay split, the OS confinement, the warm process's protection.

`record` also runs `payload["before"]` (test code, standing for a runner the kernel took over) before the
candidate, and can hand back `payload["forged"]` (a record, hex) instead of the candidate's record, or
`payload["raw"]` (hex) instead of its whole answer.
"""

from __future__ import annotations

import builtins

from simulators.trainium import replay, runner


def prepare() -> None:
    replay.prepare()


def prepare_refused() -> None:
    """A machine whose kernel refuses the namespaces of the sandbox's namespace level (only a network one)."""
    from simulators import isolation

    replay.prepare()
    isolation.enter = lambda keep: {"netns"}


def record(payload: dict, body: bytes = b"") -> bytes:
    runner.scan = lambda source: None
    runner.safe_builtins = lambda importer: dict(vars(builtins))
    if payload.get("before"):
        exec(payload["before"], {"runner": runner})
    if "raw" in payload:
        return bytes.fromhex(payload["raw"])
    if payload.get("forged"):
        return b'{"entries": 0}\n' + bytes.fromhex(payload["forged"])
    return runner.record(payload, body)
