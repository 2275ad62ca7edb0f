"""`autocomp-env`: the command line. Every command has --help; user mistakes are one line, a hint, exit 2.

Commands: list, sim, run, bench, train, replay, validate, report, demo, serve. Options come from flags or one
YAML file (`--config`), flags winning; the effective configuration is saved with every result.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from agents.bench import format_table, report_main, run_bench
from agents.registry import AGENTS, make_agent
from agents.results import ResultStore, write_atomic
from autocomp_env import env_ids, kernels, targets
from autocomp_env.budget import Budget
from autocomp_env.codemodel import OfflineCodeModel
from autocomp_env.episode import EpisodeState, claims_from, validate_claims
from autocomp_env.evaluation import Evaluator
from autocomp_env.llm import LLMCodeModel, LLMConfig
from autocomp_env.replay import ReplayMismatch, replay
from simulators.gemmini import GemminiSimulator, parse_kernel


class UserError(Exception):
    """A mistake the user can fix: printed as one line with a hint, never a traceback."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


# --------------------------------------------------------------------------------------------------
# configuration


def load_config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {path}", "pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option: value", "e.g. `budget: 64`")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def merge_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Flags the user typed win over the file, the file over defaults."""
    file_cfg = load_config(getattr(args, "config", None))
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(file_cfg) - known)
    if unknown:
        raise UserError(
            f"unknown option(s) in config file: {', '.join(unknown)}", f"see `autocomp-env {args.command} --help`"
        )
    cfg = dict(vars(args))
    typed = set(getattr(args, "_typed", ()))
    for k, v in file_cfg.items():
        if k not in typed:
            cfg[k] = v
    cfg.pop("_typed", None)
    cfg.pop("func", None)
    return cfg


class _Typed(argparse.Action):
    """Records which options were given on the command line, so the YAML file can't override them."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        typed = set(getattr(namespace, "_typed", ()))
        typed.add(self.dest)
        namespace._typed = typed


def _opt(p: argparse.ArgumentParser, *names: str, **kw: Any) -> None:
    if kw.get("action") in ("store_true", "store_false"):
        p.add_argument(*names, **kw)
    else:
        p.add_argument(*names, action=_Typed, **kw)


# --------------------------------------------------------------------------------------------------
# commands


def cmd_list(cfg: dict[str, Any]) -> int:
    what = cfg["what"]
    if what in ("all", "targets"):
        print("targets: " + ", ".join(f"{t.name} ({t.description})" for t in targets.all_targets().values()))
    if what in ("all", "envs"):
        print("env ids:\n  " + "\n  ".join(sorted(env_ids())))
    if what in ("all", "suites"):
        print("suites:")
        for name, members in kernels.SUITES.items():
            print(f"  {name:22s} {len(members)} kernels")
    if what in ("all", "kernels"):
        print("kernels (alias -> name):")
        for name, members in kernels.SUITES.items():
            if name.endswith("-small"):
                continue
            for i, k in enumerate(members):
                print(f"  {name + ':' + str(i):24s} {k}")
    if what in ("all", "agents"):
        print("agents: " + ", ".join(sorted(AGENTS)))
    return 0


def cmd_sim(cfg: dict[str, Any]) -> int:
    path = Path(cfg["file"])
    if not path.is_file():
        raise UserError(f"no such file: {path}", "pass the path of a .c (Gemmini) or .py (Trainium) solution")
    code = path.read_text(errors="replace")
    try:
        kernel = _kernel(cfg["kernel"])
    except UserError:
        # A name the simulator documents but no env family has (-at, -bt, -bias, -relu, sizes that are not
        # multiples of 16): simulate it directly.
        direct = _simulate_direct(cfg["target"], cfg["kernel"], code)
        if direct is None:
            raise
        name, roofline, result = direct
        _report(cfg, name, roofline, result)
        return 0 if result.correct else 1
    if kernel.target != cfg["target"]:
        raise UserError(f"kernel {kernel.name} is a {kernel.target} kernel, not {cfg['target']}")
    result = Evaluator(cache=None).evaluate(kernel, code)
    _report(cfg, kernel.name, kernel.roofline, result)
    return 0 if result.correct else 1


def _simulate_direct(target: str, name: str, code: str) -> tuple[str, float, Any] | None:
    """(name, roofline, result) for a kernel name only the Gemmini simulator knows, else None."""
    if target != "gemmini":
        return None
    try:
        spec = parse_kernel(name)
    except ValueError:
        return None
    sim = GemminiSimulator()
    return spec.name, sim.roofline(spec.name), sim.run(code, spec.name)


def _report(cfg: dict[str, Any], name: str, roofline: float, result: Any) -> None:
    if cfg["json"]:
        print(result.to_json())
    else:
        _print_result(name, roofline, result)


def _print_result(name: str, roofline: float, r: Any) -> None:
    if r.correct:
        frac = roofline / r.latency if r.latency else 0.0
        print(f"{name}: correct, {r.latency:,.1f} {r.unit} ({frac:.1%} of roofline)")
    else:
        e = r.error
        where = f" (line {e.line})" if e and e.line else ""
        print(f"{name}: FAILED {e.type if e else 'unknown'}{where}: {e.message if e else ''}")


def _kernel(name: str) -> Any:
    try:
        return kernels.get_kernel(name)
    except (KeyError, ValueError) as e:
        raise UserError(_msg(e), "`autocomp-env list kernels` shows names and aliases") from None


def _msg(e: Exception) -> str:
    return str(e.args[0]) if e.args else str(e)  # KeyError's str() adds quotes


def _budget(cfg: dict[str, Any]) -> Any:
    return Budget(
        samples=cfg.get("budget"),
        tokens=cfg.get("max_tokens_budget"),
        dollars=cfg.get("max_dollars"),
    )


def _code_model(cfg: dict[str, Any]) -> Any:
    kind = cfg.get("code_model") or "offline"
    if kind == "offline":
        return OfflineCodeModel(fault_rate=float(cfg.get("fault_rate") or 0.0))
    if kind == "llm":
        try:
            llm_cfg = LLMConfig.from_sources(
                {k: cfg.get(k) for k in ("base_url", "model", "api_key", "temperature")},
                cfg.get("llm") or {},
                os.environ,
            )
            return LLMCodeModel(llm_cfg)
        except (ValueError, TypeError) as e:
            raise UserError(_msg(e), 'the README\'s "Using a real LLM" shows a working set of flags') from None
    raise UserError(f"unknown code model {kind!r}", "use --code-model offline or --code-model llm")


def _bench(cfg: dict[str, Any], suite: Any, agents: str, seeds: int | list[int], out: Path) -> int:
    """Run agents x kernels x seeds into the results folder `out`, print the leaderboard, save extras."""
    names = [a.strip() for a in str(agents).split(",") if a.strip()]
    kwargs = _agent_kwargs(cfg, names)
    for name in names:
        try:
            make_agent(name, **kwargs[name])
        except KeyError as e:
            raise UserError(_msg(e), "`autocomp-env list agents` shows the agents") from None
        except (ValueError, TypeError, OSError) as e:
            raise UserError(
                f"agent {name}: {_msg(e)}", "see `autocomp-env run --help` (--policy, --agent-kwargs)"
            ) from None
    if cfg.get("budget") is None or int(cfg["budget"]) < 1:
        raise UserError("--budget must be a positive number of samples")
    out.mkdir(parents=True, exist_ok=True)
    old = out / "results.jsonl"
    if not cfg.get("resume", True) and old.exists():
        old.rename(out / f"results.{int(time.time())}.jsonl")  # kept, not deleted: a fresh start
    dump_config(cfg, out / "config.json")
    env_kwargs: dict[str, Any] = {}
    if (cfg.get("code_model") or "offline") != "offline" or cfg.get("fault_rate"):
        env_kwargs["code_model"] = _code_model(cfg)
    budget = {k: v for k, v in (("tokens", cfg.get("max_tokens_budget")), ("dollars", cfg.get("max_dollars"))) if v}
    if budget:
        env_kwargs["budget"] = {"samples": int(cfg["budget"]), **budget}
    workers = int(cfg.get("workers") or 1)
    backend = cfg.get("backend") or ("ray" if workers > 1 else "serial")
    result = run_bench(
        agents=kwargs,
        suite=suite,
        budget=int(cfg["budget"]),
        seeds=seeds,
        workers=workers,
        out_dir=out,
        backend=backend,
        address=cfg.get("address"),
        env_kwargs=env_kwargs,
    )
    records = ResultStore(out).records()
    _write_episode_files(out, records)
    print(_per_kernel_table(records))
    print()
    print(format_table(result["rows"]))
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
    print(f"best code: {out / 'best'}/")
    errors = sum(int(r.get("errors") or 0) for r in result["rows"])
    if errors:
        print(f"{errors} job(s) failed; their errors are in {out / 'results.jsonl'}", file=sys.stderr)
    return 1 if errors else 0


def _agent_kwargs(cfg: dict[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    """Per-agent constructor arguments: --agent-kwargs '{"beam": {"beam_size": 2}}' and --policy for `learned`."""
    extra = cfg.get("agent_kwargs") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError as e:
            raise UserError(
                f"--agent-kwargs is not valid JSON: {e}", 'e.g. --agent-kwargs \'{"beam": {"beam_size": 2}}\''
            ) from None
    if not isinstance(extra, dict) or not all(isinstance(v, dict) for v in extra.values()):
        raise UserError("--agent-kwargs must map agent names to argument objects", 'e.g. {"beam": {"beam_size": 2}}')
    kwargs = {name: dict(extra.get(name, {})) for name in names}
    if cfg.get("policy") and "learned" in kwargs:
        policy = Path(cfg["policy"])
        if not policy.with_suffix(".pt").is_file():
            raise UserError(f"no trained policy at {policy}", "train one with `autocomp-env train --out runs/policy`")
        kwargs["learned"].setdefault("policy", str(policy))
    if "learned" in kwargs and "policy" not in kwargs["learned"]:
        raise UserError(
            "the learned agent needs --policy PATH", "train one with `autocomp-env train --out runs/policy`"
        )
    return kwargs


def _per_kernel_table(records: list[dict[str, Any]]) -> str:
    """Best result per (kernel, agent), seeds averaged geometrically: what each search reached."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        res = r.get("result")
        if r.get("status") == "ok" and res:
            groups.setdefault((res["kernel"], res["agent"]), []).append(res)

    def gm(xs: list[float]) -> float:
        return math.exp(sum(math.log(x) for x in xs) / len(xs))

    lines = [
        f"{'kernel':34s} {'agent':8s} {'start':>12s} {'best':>12s} {'vs start':>9s} {'vs vendor':>9s} {'roofline':>9s}"
    ]
    for (kernel, agent), rs in groups.items():
        best = gm([r["best_latency"] for r in rs])
        base = rs[0]["baselines"]
        vendor = f"{base['vendor'] / best:8.2f}x" if base.get("vendor") else "        -"
        lines.append(
            f"{kernel:34s} {agent:8s} {rs[0]['start_latency']:>9,.0f} {rs[0]['unit']:2s} {best:>9,.0f} {rs[0]['unit']:2s}"
            f" {rs[0]['start_latency'] / best:8.2f}x {vendor} {base['roofline'] / best:8.1%}"
        )
    return "\n".join(lines)


def _write_episode_files(out: Path, records: list[dict[str, Any]]) -> None:
    """From the results store: best/<stem>.c|py, episodes/<stem>.json (replayable) and trajectory.jsonl
    (every sample of every episode), where <stem> is <kernel>__<agent>__seed<n>."""
    (out / "best").mkdir(exist_ok=True)
    (out / "episodes").mkdir(exist_ok=True)
    lines = []
    for r in records:
        res = r.get("result") or {}
        kernel = res.get("kernel")
        if not kernel:
            continue
        head = {"agent": res.get("agent"), "kernel": kernel, "seed": res.get("seed")}
        lines += [json.dumps(head | step, sort_keys=True) for step in res.get("steps", ())]
        stem = f"{kernel.replace('/', '_')}__{res.get('agent')}__seed{res.get('seed')}"
        if res.get("best_code"):
            ext = ".c" if kernel.startswith("gemmini/") else ".py"
            (out / "best" / f"{stem}{ext}").write_text(res["best_code"])
        if res.get("episode"):
            write_atomic(out / "episodes" / f"{stem}.json", json.dumps(res["episode"], indent=1, sort_keys=True))
    write_atomic(out / "trajectory.jsonl", "".join(line + "\n" for line in lines))


def cmd_run(cfg: dict[str, Any]) -> int:
    kernel = _kernel(cfg["kernel"])
    model = "" if (cfg.get("code_model") or "offline") == "offline" else f"-llm-{cfg.get('model') or 'default'}"
    name = f"{cfg['agent']}{model}-{kernel.name.replace('/', '_')}-seed{cfg['seed']}".replace(":", "_")
    out = Path(cfg["out"]) / name
    return _bench(cfg, [kernel.name], cfg["agent"], [int(cfg["seed"])], out)


def cmd_bench(cfg: dict[str, Any]) -> int:
    out = (
        Path(cfg["out"])
        if cfg.get("out") not in (None, "runs")
        else Path("runs") / f"bench-{cfg['suite']}-{cfg['budget']}"
    )
    try:
        names = [_kernel(k).name for k in kernels.suite_kernels(cfg["suite"])]
    except (KeyError, ValueError) as e:
        raise UserError(_msg(e), "`autocomp-env list suites` shows the suites") from None
    return _bench(cfg, names, cfg["agents"], int(cfg["seeds"]), out)


DEMO_KERNELS = ("gemmini/matmul-512x512x512", "trainium/rmsnorm-512x4096")
DEMO_KERNELS_QUICK = ("gemmini/matmul-64x64x64", "trainium/rmsnorm-128x512")


def cmd_demo(cfg: dict[str, Any]) -> int:
    cfg = dict(cfg)
    quick = bool(cfg.get("quick"))
    if cfg.get("budget") is None:
        cfg["budget"] = 12 if quick else 64
    kernels = DEMO_KERNELS_QUICK if quick else DEMO_KERNELS
    print(f"autocomp-env demo: agents {cfg['agents']} on {', '.join(kernels)}, {cfg['budget']} samples each, offline")
    return _bench(cfg, list(kernels), cfg["agents"], int(cfg.get("seeds") or 1), Path(cfg["out"]))


def cmd_train(cfg: dict[str, Any]) -> int:
    from agents.learned import train_main  # noqa: PLC0415  (torch: seconds, only this command needs it)

    return train_main(cfg)


def cmd_replay(cfg: dict[str, Any]) -> int:
    """CLI `autocomp-env replay FILE`: replay a saved episode state and report whether it reproduces."""
    state = EpisodeState.load(cfg["file"])
    try:
        env = replay(state)
    except ReplayMismatch as e:
        print(f"MISMATCH {state.kernel}: {e}")
        return 1
    print(
        f"ok {state.kernel}: {len(state.events)} events reproduced, latency {env.latency:g}, speedup {state.speedup:.3f}x"
    )
    return 0


def cmd_validate(cfg: dict[str, Any]) -> int:
    """CLI `autocomp-env validate FILE`: re-simulate every claim of the file in a fresh process."""
    results = validate_claims(claims_from(cfg["file"]))
    for r in results:
        print(f"{'ok' if r.ok else 'FAIL'} {r.kernel}: {r.message}")
    print(f"{sum(r.ok for r in results)}/{len(results)} claims validated")
    return 0 if results and all(r.ok for r in results) else 1



def cmd_report(cfg: dict[str, Any]) -> int:
    return report_main(cfg)


def cmd_serve(cfg: dict[str, Any]) -> int:
    try:
        from autocomp_env.integrations.openenv_server import serve  # noqa: PLC0415  (optional openenv extra)
    except ImportError as e:
        raise UserError(f"the OpenEnv server needs openenv-core ({e.name} is missing)", "pip install -e '.[openenv]'") from None
    if cfg["host"] not in ("127.0.0.1", "localhost", "::1"):
        print(f"autocomp-env serve: warning: listening on {cfg['host']}: anyone who can reach it runs code in your sandbox", file=sys.stderr)
    code_model = _code_model(cfg) if cfg.get("code_model") == "llm" else "offline"
    env_kwargs = {} if cfg["mode"] == "code" else {"code_model": code_model}
    _kernel(cfg["kernel"])
    print(f"autocomp-env serve: OpenEnv server for {cfg['kernel']} ({cfg['mode']} mode) at http://{cfg['host']}:{cfg['port']}", flush=True)
    serve(
        host=cfg["host"],
        port=int(cfg["port"]),
        kernel=cfg["kernel"],
        mode=cfg["mode"],
        max_turns=int(cfg["max_turns"]),
        max_sessions=int(cfg["max_sessions"]),
        **env_kwargs,
    )
    return 0


# --------------------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="autocomp-env",
        description="Gymnasium environments, simulators and agents for LLM-driven accelerator-code optimization.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        _opt(sp, "--config", help="YAML file of options (flags given on the command line win)")
        return sp

    sp = add("list", cmd_list, "List targets, env ids, suites, kernels and agents.")
    sp.add_argument("what", nargs="?", default="all", choices=["all", "targets", "envs", "suites", "kernels", "agents"])

    sp = add("sim", cmd_sim, "Simulate one solution file against a kernel and print correctness and latency.")
    sp.add_argument("target", choices=sorted(targets.all_targets()))
    sp.add_argument("file", help="solution file (.c for Gemmini, .py for Trainium)")
    _opt(sp, "--kernel", required=True, help="kernel name or alias, e.g. gemmini/matmul-512x512x512 or gemmini-exo:0")
    sp.add_argument("--json", action="store_true", help="print the full result as JSON")

    def search_opts(sp: argparse.ArgumentParser) -> None:
        _opt(sp, "--budget", type=int, default=64, help="samples (evaluated candidates) per run (default 64)")
        _opt(sp, "--max-dollars", type=float, default=None, help="dollar budget per run (LLM code models)")
        _opt(sp, "--max-tokens-budget", type=int, default=None, help="token budget per run (LLM code models)")
        _opt(sp, "--code-model", default="offline", choices=["offline", "llm"], help="who implements plans")
        _opt(sp, "--fault-rate", type=float, default=0.0, help="offline model: share of generations with a bug")
        _opt(sp, "--base-url", default=None, help="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, OpenAI)")
        _opt(sp, "--model", default=None, help="LLM model name")
        _opt(sp, "--api-key", default=None, help="API key (default: $OPENAI_API_KEY / $AUTOCOMP_LLM_API_KEY)")
        _opt(sp, "--temperature", type=float, default=None, help="LLM sampling temperature")
        _opt(sp, "--policy", default=None, help="a trained policy (from `autocomp-env train`) for the learned agent")
        _opt(
            sp, "--agent-kwargs", default=None, help='JSON of per-agent arguments, e.g. \'{"beam": {"beam_size": 2}}\''
        )
        _opt(sp, "--out", default="runs", help="results folder (default ./runs)")

    sp = add("run", cmd_run, "Run one search (any agent, any code model) on one kernel.")
    _opt(sp, "--kernel", required=True, help="kernel name or alias")
    _opt(sp, "--agent", default="beam", help="agent name (see `autocomp-env list agents`)")
    _opt(sp, "--seed", type=int, default=0)
    search_opts(sp)

    def bench_opts(sp: argparse.ArgumentParser) -> None:
        _opt(sp, "--agents", default="random,greedy,beam", help="comma-separated agent names")
        _opt(sp, "--seeds", type=int, default=3, help="seeds per (agent, kernel)")
        _opt(sp, "--workers", type=int, default=2, help="parallel Ray workers")
        _opt(sp, "--backend", default="ray", choices=["ray", "serial"], help="ray (parallel) or serial (debugging)")
        _opt(sp, "--address", default=None, help="Ray cluster address (default: start Ray on this machine)")
        sp.add_argument("--no-resume", dest="resume", action="store_false", help="start over instead of resuming")
        search_opts(sp)

    sp = add("bench", cmd_bench, "Benchmark agents on a suite in parallel and print a leaderboard.")
    _opt(sp, "--suite", required=True, help="suite name, e.g. gemmini-exo (see `autocomp-env list suites`)")
    bench_opts(sp)

    sp = add("demo", cmd_demo, "The offline main job: beam search on a Gemmini GEMM and a Trainium kernel.")
    sp.add_argument("--quick", action="store_true", help="small kernels, a few seconds")
    bench_opts(sp)
    sp.set_defaults(budget=None, agents="random,beam", seeds=1, workers=1, backend="serial", out="runs/demo")

    sp = add("train", cmd_train, "Train a learned search policy (REINFORCE) and evaluate it on held-out kernels.")
    _opt(sp, "--suite", default="gemmini-exo-small", help="training suite")
    _opt(sp, "--episodes", type=int, default=200)
    _opt(sp, "--seed", type=int, default=0)
    _opt(sp, "--steps", type=int, default=12, help="samples per training episode")
    _opt(sp, "--eval-seeds", type=int, default=8, help="seeds per held-out kernel in the final comparison")
    _opt(sp, "--holdout", default=None, help="held-out kernels (suite or comma list); default: similar unseen shapes")
    _opt(sp, "--out", default="runs/policy", help="where to save the policy (PATH.pt + PATH.json)")

    sp = add("replay", cmd_replay, "Replay a saved episode offline and check it reproduces the same numbers.")
    sp.add_argument("file", help="episode JSON (from a results folder)")

    sp = add("validate", cmd_validate, "Re-simulate the best code of an episode or results file in a fresh process.")
    sp.add_argument("file", help="episode JSON or results JSONL")

    sp = add("serve", cmd_serve, "Serve a kernel as an OpenEnv environment for LLM-policy training (text interface).")
    _opt(sp, "--kernel", default="gemmini-exo-small:0", help="kernel name or alias (a session may reset to another)")
    _opt(sp, "--mode", default="plan", choices=["plan", "code"], help="the policy writes plans or full code")
    _opt(sp, "--max-turns", type=int, default=4, help="turns per episode (default 4)")
    _opt(sp, "--max-sessions", type=int, default=16, help="concurrent WebSocket sessions (default 16)")
    _opt(sp, "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    _opt(sp, "--port", type=int, default=8000, help="port (default 8000)")
    _opt(sp, "--code-model", default="offline", choices=["offline", "llm"], help="plan mode: who implements plans")
    _opt(sp, "--base-url", default=None, help="OpenAI-compatible endpoint for --code-model llm")
    _opt(sp, "--model", default=None, help="LLM model name for --code-model llm")
    _opt(sp, "--api-key", default=None, help="API key (default: $OPENAI_API_KEY / $AUTOCOMP_LLM_API_KEY)")
    _opt(sp, "--temperature", type=float, default=None, help="LLM sampling temperature")

    sp = add("report", cmd_report, "Comparison table and plots from one or several results folders.")
    sp.add_argument("dirs", nargs="+", help="results folders")
    _opt(sp, "--out", default=None, help="where to write the combined report (default: the first folder)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
    try:
        cfg = merge_config(args, sub)
        return int(args.func(cfg) or 0)
    except UserError as e:
        print(f"autocomp-env {args.command}: error: {e}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished results are kept (rerun the same command to resume)", file=sys.stderr)
        return 130


def dump_config(cfg: dict[str, Any], path: Path) -> None:
    """The effective configuration saved beside every result (secrets removed)."""
    safe = {k: ("***" if "key" in k and v else v) for k, v in cfg.items() if not callable(v)}
    path.write_text(json.dumps(safe, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    sys.exit(main())
