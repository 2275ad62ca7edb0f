"""`LLMCodeModel`: the CodeModel protocol over an OpenAI-compatible endpoint; `EnsembleCodeModel` over several."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from autocomp_env import targets
from autocomp_env.core import Feedback, Generation, Kernel, Plan
from autocomp_env.kernels import family_of
from autocomp_env.llm.cache import CompletionCache
from autocomp_env.llm.client import ChatClient, Completion
from autocomp_env.llm.config import LLMConfig
from autocomp_env.llm.extract import apply_edits, extract_code, parse_edits
from autocomp_env.llm.prompts import (
    PromptOptions,
    implementation_messages,
    parse_plan,
    planning_messages,
    repair_messages,
)

# The JSON answer of an edit-mode implementation call (sent as a structured-output schema when enabled).
EDITS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "plan": {"type": "string"},
        "edits": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"old_str": {"type": "string"}, "new_str": {"type": "string"}},
                "required": ["old_str", "new_str"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["plan", "edits"],
    "additionalProperties": False,
}


def _family_menu(kernel: Kernel) -> tuple[str, ...] | None:
    try:
        return tuple(family_of(kernel).menu)
    except Exception:  # no family registered for this kernel (e.g. a hand-made Kernel): no expansion
        return None


def draw_sample_index(rng: np.random.Generator) -> int:
    """The sample index of one request: part of its cache key (and sent as `seed`). Drawn from the caller's
    rng, so a seeded run asks for the same samples again and replays from the cache."""
    return int(rng.integers(0, 2**31 - 1))


@dataclass(frozen=True)
class LLMUsage:
    """Totals over a model's lifetime (planning calls included, which `Generation` cannot carry)."""

    calls: int = 0
    failed: int = 0
    cache_hits: int = 0
    http_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0


class LLMCodeModel:
    """Autocomp's two-phase LLM code model on any OpenAI-compatible endpoint.

    >>> model = LLMCodeModel(LLMConfig(model="my-model", base_url="http://127.0.0.1:8000/v1"))  # doctest: +SKIP
    >>> gen = model.implement(kernel, code, Plan("loop unrolling"), Feedback(), np.random.default_rng(0))  # doctest: +SKIP

    `implement`, `repair` and `propose_plans` never raise for model failures: a failed sample is a
    `Generation(code=None, error=...)` (or a missing plan). `cache`: a CompletionCache, None for the default
    directory (unless `config.cache` is False), or False for no cache.
    """

    def __init__(
        self,
        config: LLMConfig,
        options: PromptOptions = PromptOptions(),
        cache: CompletionCache | None | bool = None,
    ):
        self.llm_config = config
        self.options = options
        if cache is None:
            cache = CompletionCache(config.cache_dir) if config.cache else False
        self.client = ChatClient(config, cache if isinstance(cache, CompletionCache) else None)
        self.name = f"llm:{config.model}"
        self._usage = LLMUsage()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def usage(self) -> LLMUsage:
        return self._usage

    def config(self) -> dict[str, Any]:
        """JSON-friendly description for episode records (no API key)."""
        c = self.llm_config
        return {
            "name": self.name,
            "model": c.model,
            "base_url": c.base_url,
            "api": c.api,
            "params": c.request_params(),
            "options": dataclasses.asdict(self.options),
        }

    def _account(self, c: Completion) -> None:
        with self._lock:
            u = self._usage
            self._usage = LLMUsage(
                u.calls + 1,
                u.failed + (c.text is None),
                u.cache_hits + c.cache_hit,
                u.http_requests + c.requests,
                u.prompt_tokens + c.prompt_tokens,
                u.completion_tokens + c.completion_tokens,
                u.dollars + c.dollars,
            )

    def _complete(
        self, messages: list[dict[str, str]], sample_index: int, schema: dict[str, Any] | None = None
    ) -> Completion:
        c = self.client.complete(messages, sample_index, schema)
        self._account(c)
        return c

    def _generation(self, c: Completion, code: str | None, error: str | None, note: str = "") -> Generation:
        return Generation(
            code=code,
            note=note,
            error=error,
            model=self.name,
            llm_calls=1,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            dollars=c.dollars,
            cache_hit=c.cache_hit,
            response_hash=c.response_hash,
        )

    def _to_code(self, kernel: Kernel, parent: str, c: Completion, edits_allowed: bool) -> Generation:
        if c.text is None:
            return self._generation(c, None, f"LLM request failed: {c.error}")
        lang = targets.target(kernel.target).lang
        if edits_allowed and self.options.use_edits:
            parsed = parse_edits(c.text)
            if parsed is not None:
                plan_line, edits = parsed
                new, why = apply_edits(parent, edits)
                if new is not None:
                    return self._generation(c, new, None, note=f"{len(edits)} edits applied")
                code = extract_code(c.text, lang) if "```" in c.text else None
                if code is None:
                    return self._generation(c, None, f"edits could not be applied: {why}")
                return self._generation(c, code, None, note=f"edits failed ({why}); used the full code instead")
        code = extract_code(c.text, lang)
        if code is None:
            return self._generation(c, None, "no code found in the model's answer")
        return self._generation(c, code, None)

    # --- CodeModel protocol -------------------------------------------------------------------------------
    def implement(
        self, kernel: Kernel, code: str, plan: Plan, feedback: Feedback, rng: np.random.Generator
    ) -> Generation:
        """Code for `plan`. A bare menu item (a menu action: `menu_index` set and the text is just the item's
        name) is first turned into a plan specific to this code by a forced-option planning call, as Autocomp
        always plans before it implements; the Generation then counts both calls."""
        menu = _family_menu(kernel) if self.options.expand_menu_actions else None
        first = None
        if menu is not None and plan.menu_index is not None and 0 <= plan.menu_index < len(menu):
            if plan.text.strip().lower() == menu[plan.menu_index].lower():
                messages, shown, _ = planning_messages(
                    kernel, code, feedback, menu, None, rng, self.options, forced=plan.menu_index
                )
                first = self._complete(messages, draw_sample_index(rng))
                specific = parse_plan(first.text, shown) if first.text is not None else None
                if specific is None:
                    return self._generation(first, None, f"LLM planning failed: {first.error or 'empty plan'}")
                plan = Plan(specific.text, plan.menu_index)
        messages = implementation_messages(kernel, code, plan, feedback, self.options)
        schema = EDITS_SCHEMA if self.options.use_edits and self.llm_config.structured_output else None
        answer = self._complete(messages, draw_sample_index(rng), schema)
        gen = self._to_code(kernel, code, answer, edits_allowed=True)
        if first is None:
            return gen
        return dataclasses.replace(
            gen,
            note=(f"plan: {plan.text[:300]}" + (f"; {gen.note}" if gen.note else "")),
            llm_calls=gen.llm_calls + 1,
            prompt_tokens=gen.prompt_tokens + first.prompt_tokens,
            completion_tokens=gen.completion_tokens + first.completion_tokens,
            dollars=gen.dollars + first.dollars,
            cache_hit=gen.cache_hit and first.cache_hit,
        )

    def repair(self, kernel: Kernel, code: str, plan: Plan, error_text: str, rng: np.random.Generator) -> Generation:
        """One attempt to fix a failed candidate `code`, given its error output (compiler/simulator text)."""
        messages = repair_messages(kernel, code, plan, error_text, self.options)
        return self._to_code(kernel, code, self._complete(messages, draw_sample_index(rng)), edits_allowed=False)

    def propose_plans(
        self,
        kernel: Kernel,
        code: str,
        feedback: Feedback,
        menu: tuple[str, ...],
        mask: np.ndarray,
        n: int,
        rng: np.random.Generator,
    ) -> list[Plan]:
        """Up to `n` plans (failed samples are left out). When the prompt is stochastic each sample gets its
        own prompt (own dropout and feedback draws), as in Autocomp; otherwise one prompt is sampled n times.
        All random draws happen before the requests run in parallel, so the result is order-independent."""
        if n <= 0:
            return []
        jobs = []
        prompt = None
        for _ in range(n):
            if prompt is None or self.options.stochastic:
                prompt = planning_messages(kernel, code, feedback, menu, mask, rng, self.options)
            jobs.append((prompt, draw_sample_index(rng)))
        with ThreadPoolExecutor(max_workers=min(n, self.llm_config.concurrency)) as pool:
            done = list(pool.map(lambda job: self._complete(job[0][0], job[1]), jobs))
        plans = []
        for (prompt_, _), c in zip(jobs, done, strict=True):
            plan = parse_plan(c.text, prompt_[1]) if c.text is not None else None
            if plan is not None:
                plans.append(plan)
        return plans


def divide_work(n: int, k: int) -> list[int]:
    """Split n samples over k models: n // k each, the remainder to the first models (Autocomp's split)."""
    base, extra = divmod(n, k)
    return [base + (i < extra) for i in range(k)]


class EnsembleCodeModel:
    """Several code models acting as one: plan samples are divided across them with `divide_work`;
    `implement`/`repair` pick one model per call from the rng; `implement_many` divides code samples too."""

    def __init__(self, models: list[Any]):
        if not models:
            raise ValueError("EnsembleCodeModel needs at least one model")
        self.models = list(models)
        self.name = "ensemble(" + ",".join(m.name for m in self.models) + ")"

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "models": [m.config() if callable(getattr(m, "config", None)) else {"name": m.name} for m in self.models],
        }

    def _pick(self, rng: np.random.Generator) -> Any:
        return self.models[int(rng.integers(len(self.models)))]

    def implement(
        self, kernel: Kernel, code: str, plan: Plan, feedback: Feedback, rng: np.random.Generator
    ) -> Generation:
        return self._pick(rng).implement(kernel, code, plan, feedback, rng)

    def repair(self, kernel: Kernel, code: str, plan: Plan, error_text: str, rng: np.random.Generator) -> Generation:
        model = self._pick(rng)
        if not hasattr(model, "repair"):
            return Generation(code=None, error=f"{model.name} cannot repair", model=model.name)
        return model.repair(kernel, code, plan, error_text, rng)

    def implement_many(
        self, kernel: Kernel, code: str, plan: Plan, feedback: Feedback, n: int, rng: np.random.Generator
    ) -> list[Generation]:
        """n implementations of one plan, divided across the models in order."""
        out = []
        for model, k in zip(self.models, divide_work(n, len(self.models)), strict=True):
            out += [model.implement(kernel, code, plan, feedback, rng) for _ in range(k)]
        return out

    def propose_plans(
        self,
        kernel: Kernel,
        code: str,
        feedback: Feedback,
        menu: tuple[str, ...],
        mask: np.ndarray,
        n: int,
        rng: np.random.Generator,
    ) -> list[Plan]:
        shares = divide_work(n, len(self.models))
        rngs = rng.spawn(len(self.models))
        work = [(m, k, r) for m, k, r in zip(self.models, shares, rngs, strict=True) if k > 0]
        with ThreadPoolExecutor(max_workers=max(1, len(work))) as pool:
            results = list(pool.map(lambda w: w[0].propose_plans(kernel, code, feedback, menu, mask, w[1], w[2]), work))
        return [p for plans in results for p in plans]
