"""Episode states that serialize to JSON, replay deterministically, and validate in a fresh process.

An `EpisodeState` is the search position of an `AutocompEnv`: the kernel, the code-model config, the
random state at reset, the events so far (steps and plan proposals, both of which draw from the env's
rng), the LLM responses those steps used (by hash), and the current code. It is data: saved and loaded
as JSON, never executed. `validate(state)` re-simulates the final code in a fresh Python process and
checks the claim; `autocomp_env.replay.replay(state)` rebuilds an env by re-running the events.

    python -m autocomp_env.episode validate state.json   # prints a ValidationResult as JSON
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocomp_env.evaluation import Evaluator
from autocomp_env.kernels import get_kernel

FORMAT = 1


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True)
class EpisodeState:
    """A replayable search position. `events` are dicts: {"kind": "step", "plan", "menu_index",
    "response_hash", "latency", "correct"} or {"kind": "propose", "n", "plans"}."""

    env_id: str | None
    kernel: str
    action_mode: str
    code_model: dict[str, Any]
    seed: int | None
    reset_rng: dict[str, Any]  # the bit-generator state right after reset
    rng: dict[str, Any]  # the bit-generator state now
    events: tuple[dict[str, Any], ...]
    responses: dict[str, str]  # response hash -> code, for code models that are not reproducible offline
    code: str
    code_hash: str
    latency: float
    start_latency: float
    best_latency: float
    best_code_hash: str
    history: tuple[tuple[str, float | None], ...] = ()
    steps: int = 0
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.start_latency / self.latency

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["events"] = list(d["events"])
        d["history"] = [list(h) for h in d["history"]]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> EpisodeState:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not an episode state of format {FORMAT}")
        names = {f.name for f in dataclasses.fields(EpisodeState)}
        missing = names - set(d) - {"history", "steps", "format", "extra"}
        if missing:
            raise ValueError(f"episode state is missing {sorted(missing)}")
        values = {k: v for k, v in d.items() if k in names}
        values["events"] = tuple(dict(e) for e in values["events"])
        values["history"] = tuple((str(p), lat) for p, lat in values.get("history", ()))
        state = EpisodeState(**values)
        if code_hash(state.code) != state.code_hash:
            raise ValueError("episode state is corrupt: its code does not match code_hash")
        return state

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json())

    @staticmethod
    def load(path: str | os.PathLike) -> EpisodeState:
        return EpisodeState.from_dict(json.loads(Path(path).read_text()))


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@dataclass(frozen=True)
class ValidationResult:
    ok: bool
    correct: bool
    claimed_latency: float
    latency: float | None
    message: str = ""
    error_type: str | None = None
    kernel: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Claim:
    """What a result says: this code is correct on this kernel with this latency."""

    kernel: str
    code: str
    latency: float


def claims_from(path: str | os.PathLike) -> list[Claim]:
    """Claims in a file: an episode state (.json, its current code), a results store (.jsonl, each ok
    record's best code) or a JSON list of {"kernel", "code", "latency"}."""
    text = Path(path).read_text()
    if str(path).endswith(".jsonl"):
        out = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of an interrupted run
            res = rec.get("result") if isinstance(rec, dict) else None
            if isinstance(res, dict) and res.get("best_code"):
                out.append(Claim(res["kernel"], res["best_code"], float(res["best_latency"])))
        return out
    data = json.loads(text)
    if isinstance(data, list):
        return [Claim(str(c["kernel"]), str(c["code"]), float(c["latency"])) for c in data]
    state = EpisodeState.from_dict(data)
    return [Claim(state.kernel, state.code, state.latency)]


def _check(claim: Claim) -> ValidationResult:
    try:
        result = Evaluator(cache=None).evaluate(get_kernel(claim.kernel), claim.code)
    except Exception as e:  # e.g. a kernel this installation does not know
        kind = "invalid_kernel" if isinstance(e, ValueError) else "runtime_error"
        return ValidationResult(False, False, claim.latency, None, f"{type(e).__name__}: {e}", kind, claim.kernel)
    err = result.error
    if not result.correct:
        msg = f"the code is not correct: {err.type}: {err.message}" if err else "the code is not correct"
        return ValidationResult(
            False, False, claim.latency, result.latency, msg, err.type if err else None, claim.kernel
        )
    if not close(result.latency, claim.latency):
        msg = f"latency {result.latency} != claimed {claim.latency}"
        return ValidationResult(False, True, claim.latency, result.latency, msg, None, claim.kernel)
    return ValidationResult(True, True, claim.latency, result.latency, "ok", None, claim.kernel)


def validate_claims(
    claims: list[Claim], *, fresh_process: bool = True, timeout: float = 1800.0
) -> list[ValidationResult]:
    """Re-simulate each claim without any cache (by default all in one fresh Python process, so nothing of
    this one (caches, monkeypatches, registries) can vouch for the results)."""
    if not fresh_process:
        return [_check(c) for c in claims]
    payload = json.dumps([dataclasses.asdict(c) for c in claims])
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "autocomp_env.episode", "validate", "-"],
            input=payload,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        results = [ValidationResult(**d) for d in json.loads(proc.stdout.strip().splitlines()[-1])]
        if len(results) != len(claims):
            raise ValueError("wrong number of results")
        return results
    except (ValueError, IndexError, TypeError, subprocess.TimeoutExpired) as e:
        tail = f"{e}" if isinstance(e, subprocess.TimeoutExpired) else (proc.stderr or proc.stdout)[-2000:]
        return [
            ValidationResult(
                False, False, c.latency, None, f"validator process failed: {tail}", "runtime_error", c.kernel
            )
            for c in claims
        ]


def validate(record: EpisodeState | str | os.PathLike, *, fresh_process: bool = True) -> ValidationResult:
    """Re-simulate the current code of an episode state (or a saved state's path) and check that it is
    correct with the recorded latency. By default in a fresh process."""
    state = record if isinstance(record, EpisodeState) else EpisodeState.load(record)
    return validate_claims([Claim(state.kernel, state.code, state.latency)], fresh_process=fresh_process)[0]


def _load_plugins() -> None:
    # `AUTOCOMP_PLUGINS="pkg.mod:install,other.mod"`: modules (and optional setup functions) that register
    # extra families or simulators. Named by the user's environment, never by the state file.
    for spec in filter(None, os.environ.get("AUTOCOMP_PLUGINS", "").split(",")):
        module, _, func = spec.strip().partition(":")
        mod = importlib.import_module(module)
        if func:
            getattr(mod, func)()


def _main(argv: list[str]) -> int:
    _load_plugins()
    if len(argv) != 2 or argv[0] != "validate":
        print(
            "usage: python -m autocomp_env.episode validate <file | ->  (stdin: a JSON list of claims)", file=sys.stderr
        )
        return 2
    if argv[1] == "-":
        claims = [Claim(**c) for c in json.loads(sys.stdin.read())]
    else:
        claims = claims_from(argv[1])
    results = [_check(c) for c in claims]
    print(json.dumps([r.to_dict() for r in results]))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
