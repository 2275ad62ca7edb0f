"""Autocomp search traces measured on trn1: parse them (with `ast`, never executing them) and score the model.

A trace file is one nested `CodeCandidate(parent=..., code='''...''', score=MS, ...)` expression; the root
(`parent=None`) is the starting kernel. `score` is the measured P99 latency in milliseconds. A step whose code
text is damaged in the file (a syntax error, or a name that is used but never bound anywhere: text lost
mid-line) is reported as damaged and not run.

The statistics compare the simulated latencies of the intact steps with the measured ones: Spearman rank
correlation, the share of consecutive intact steps whose direction (faster / slower / same within 3 %) matches,
the median |relative error| and the end-to-end speedup (first intact step over the last).
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import statistics
from dataclasses import dataclass

from .kernels import _DIMS, default_name

# Names the harness defines for a kernel file (runner.py), besides the builtins.
_HARNESS = frozenset({"nki", "nl", "nisa", "nt", "np", "math", "par_dim"})
SAME_WITHIN = 0.03  # two latencies within 3 % are "the same" for the direction statistic


@dataclass(frozen=True)
class Step:
    index: int
    code: str
    measured_us: float
    damage: str | None  # why the code text cannot run as written, or None if intact
    source: str = "trace"  # "trace", or "opt" for the separate best-kernel file standing in for a damaged last step


def _candidates(node: ast.expr) -> list[dict]:
    """The CodeCandidate calls of a trace, root first, as {keyword: ast node}."""
    chain = []
    while isinstance(node, ast.Call):
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        chain.append(kw)
        node = kw.get("parent")
    chain.reverse()
    return chain


def damage(code: str) -> str | None:
    """Why `code` is damaged text (None if it is intact): a syntax error, or names never bound in the file."""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return f"syntax error at line {e.lineno}: {e.msg}"
    # `x += y` reads x: its target does not bind a name that nothing else binds.
    aug = {id(n.target) for n in ast.walk(tree) if isinstance(n, ast.AugAssign)}
    bound = set(_HARNESS) | set(dir(builtins))
    loads = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            if isinstance(n.ctx, ast.Load) or id(n) in aug:
                loads.append(n)
            else:
                bound.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, ast.alias):
            bound.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            bound.add(n.name)
    missing = sorted({(n.lineno, n.id) for n in loads if n.id not in bound})
    if missing:
        line, name = missing[0]
        return f"undefined name {name!r} at line {line} (text lost)"
    return None


def parse_trace(path: str) -> list[Step]:
    """The steps of one trace file, root first. If the last step is damaged and a sibling `*_opt.py` holds the
    best kernel of the search (the last step's code, intact), it is appended as an "opt" step with its score."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    if not tree.body or not isinstance(tree.body[0], ast.Expr):
        raise ValueError(f"{path}: not a CodeCandidate trace")
    steps = []
    for i, kw in enumerate(_candidates(tree.body[0].value)):
        code, score = kw.get("code"), kw.get("score")
        if not (isinstance(code, ast.Constant) and isinstance(code.value, str)):
            raise ValueError(f"{path}: step {i} has no code string")
        if not (isinstance(score, ast.Constant) and isinstance(score.value, (int, float))):
            raise ValueError(f"{path}: step {i} has no numeric score")
        steps.append(Step(i, code.value, float(score.value) * 1000.0, damage(code.value)))
    opt = path.replace("_trace.py", "_opt.py")
    if steps and steps[-1].damage and opt != path and os.path.exists(opt):
        with open(opt) as f:
            code = f.read()
        if damage(code) is None:
            steps.append(Step(len(steps), code, steps[-1].measured_us, None, "opt"))
    return steps


def family_of(path: str) -> str:
    """The kernel family a trace file is about, from its file name (`4_attention_trace.py` -> attention)."""
    stem = re.sub(r"[^a-z0-9]", "", os.path.basename(path).lower().replace("_trace.py", ""))
    found = [f for f in _DIMS if f in stem]
    if not found:
        raise ValueError(f"{path}: cannot tell the kernel family from the file name (known: {sorted(_DIMS)})")
    return max(found, key=len)  # sdattention before attention


def trace_files(directory: str) -> list[str]:
    return sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith("_trace.py") and f[0] != ".")


# -- statistics --------------------------------------------------------------------------------------------------
def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan for fewer than 2 points."""
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / (va * vb) ** 0.5 if va and vb else float("nan")


def direction(before: float, after: float) -> int:
    """-1 faster, +1 slower, 0 the same within SAME_WITHIN."""
    r = after / before
    return -1 if r < 1 - SAME_WITHIN else 1 if r > 1 + SAME_WITHIN else 0


def score(measured: list[float], simulated: list[float]) -> dict:
    """The per-trace figures for latencies of the intact steps, in trace order."""
    n = len(measured)
    dirs = [direction(measured[i], measured[i + 1]) == direction(simulated[i], simulated[i + 1]) for i in range(n - 1)]
    errs = [abs(s / m - 1.0) for m, s in zip(measured, simulated, strict=True)]
    e2e_m = measured[0] / measured[-1] if n else float("nan")
    e2e_s = simulated[0] / simulated[-1] if n else float("nan")
    return {
        "steps": n,
        "spearman": spearman(measured, simulated),
        "direction": sum(dirs) / len(dirs) if dirs else float("nan"),
        "median_error": statistics.median(errs) if errs else float("nan"),
        "speedup_measured": e2e_m,
        "speedup_simulated": e2e_s,
        "speedup_ratio": e2e_s / e2e_m if n else float("nan"),
    }


TARGETS = {"spearman": 0.9, "direction": 0.9, "median_error": 0.15, "speedup_ratio": 0.20}


def meets(fig: dict) -> dict[str, bool]:
    return {
        "spearman": fig["spearman"] >= TARGETS["spearman"],
        "direction": fig["direction"] >= TARGETS["direction"],
        "median_error": fig["median_error"] <= TARGETS["median_error"],
        "speedup": abs(fig["speedup_ratio"] - 1.0) <= TARGETS["speedup_ratio"],
    }


def kernel_for(path: str) -> str:
    return default_name(family_of(path))


def run_trace(path: str, kernel: str | None = None, cfg=None, timeout: float = 600.0) -> dict:
    """Simulate every intact step of one trace (timing only, in the sandbox: the code is model-written).

    Returns {"file", "kernel", "steps": [{index, source, measured_us, simulated_us, damage, error}], "figures"}.
    An intact step that fails to run keeps its error and counts as a failure of the simulator."""
    from .simulator import TrainiumSimulator

    kernel = kernel or kernel_for(path)
    sim = TrainiumSimulator(cfg)
    rows = []
    for st in parse_trace(path):
        row = {
            "index": st.index,
            "source": st.source,
            "measured_us": st.measured_us,
            "simulated_us": None,
            "damage": st.damage,
            "error": None,
        }
        if st.damage is None:
            r = sim.run(st.code, kernel, mode="timing", timeout=timeout)
            if r.error is not None:
                row["error"] = f"{r.error.type} (line {r.error.line}): {r.error.message}"
            else:
                row["simulated_us"] = r.latency
                row["cpu_s"] = r.counters.get("timing_cpu_seconds")
        rows.append(row)
    ok = [r for r in rows if r["simulated_us"] is not None]
    figs = score([r["measured_us"] for r in ok], [r["simulated_us"] for r in ok])
    figs["failed"] = sum(1 for r in rows if r["damage"] is None and r["simulated_us"] is None)
    return {"file": os.path.basename(path), "kernel": kernel, "steps": rows, "figures": figs}
