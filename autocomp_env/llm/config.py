"""`LLMConfig`: how to reach an OpenAI-compatible endpoint, from flags, a config file section and env vars."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

APIS = ("chat", "responses")

# Environment variables, in order of preference per field.
ENV_VARS = {
    "base_url": ("AUTOCOMP_LLM_BASE_URL", "OPENAI_BASE_URL"),
    "model": ("AUTOCOMP_LLM_MODEL",),
    "api_key": ("AUTOCOMP_LLM_API_KEY", "OPENAI_API_KEY"),
}


@dataclass(frozen=True)
class LLMConfig:
    """One model behind an OpenAI-compatible API (OpenAI, vLLM, Ollama, llama.cpp server, our fake server).

    Prices are USD per million tokens; None means the project price table (0 for unknown, e.g. local, models).
    `cache_only` replays from the completion cache and never makes a request (a miss is a failed sample).
    """

    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    temperature: float = 1.0
    max_tokens: int = 4096
    timeout: float = 120.0
    max_retries: int = 8
    concurrency: int = 9
    api: str = "chat"  # "chat" (chat.completions) | "responses" (OpenAI Responses API)
    reasoning_effort: str | None = None  # for OpenAI reasoning models; then no temperature is sent
    send_seed: bool = True  # send the sample index as `seed` (vLLM/OpenAI honour it)
    structured_output: bool = True  # edit mode: send the JSON schema of the answer (dropped if rejected)
    backoff_base: float = 1.0  # seconds before the first retry; doubles each attempt
    backoff_max: float = 60.0
    cache: bool = True
    cache_dir: str | None = None  # default: $AUTOCOMP_CACHE/llm or ~/.cache/autocomp-env/llm
    cache_only: bool = False
    price_in: float | None = None
    price_out: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError("LLMConfig.model is required (flag --model, config key llm.model or AUTOCOMP_LLM_MODEL)")
        if self.api not in APIS:
            raise ValueError(f"LLMConfig.api must be one of {APIS}, got {self.api!r}")
        if self.temperature < 0 or self.max_tokens < 1 or self.timeout <= 0:
            raise ValueError("LLMConfig: temperature must be >= 0, max_tokens >= 1 and timeout > 0")
        if self.max_retries < 0 or self.concurrency < 1:
            raise ValueError("LLMConfig: max_retries must be >= 0 and concurrency >= 1")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("LLMConfig: backoff times must be >= 0")

    def request_params(self) -> dict[str, Any]:
        """The sampling parameters that change an answer (they are part of the cache key)."""
        p: dict[str, Any] = {"api": self.api, "max_tokens": self.max_tokens}
        if self.reasoning_effort:
            p["reasoning_effort"] = self.reasoning_effort
        else:
            p["temperature"] = self.temperature
        return p

    @staticmethod
    def from_sources(
        flags: Mapping[str, Any] | Any | None = None,
        config: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> LLMConfig:
        """Merge with precedence flags > config file > environment. `flags` may be an argparse Namespace;
        None values are ignored. `config` is the YAML dict (its `llm:` section if there is one).
        Unknown config keys are an error, so typos do not pass silently."""
        environ = os.environ if environ is None else environ
        names = {f.name: f for f in dataclasses.fields(LLMConfig)}
        merged: dict[str, Any] = {}
        for name, keys in ENV_VARS.items():
            for key in keys:
                if environ.get(key):
                    merged[name] = environ[key]
                    break
        section = dict(config or {})
        if isinstance(section.get("llm"), Mapping):
            section = dict(section["llm"])
        unknown = sorted(set(section) - set(names))
        if unknown:
            raise ValueError(f"unknown LLM config keys {unknown}; known: {sorted(names)}")
        merged.update({k: v for k, v in section.items() if v is not None})
        if flags is not None and not isinstance(flags, Mapping):
            flags = vars(flags)
        merged.update({k: v for k, v in (flags or {}).items() if k in names and v is not None})
        if not merged.get("model"):
            raise ValueError("LLMConfig.model is required (flag --model, config key llm.model or AUTOCOMP_LLM_MODEL)")
        return LLMConfig(**{k: _coerce(names[k], v) for k, v in merged.items()})


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = str(f.type)
    try:
        if "bool" in kind and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if kind.startswith("float") and not isinstance(value, bool):
            return float(value)
        if kind.startswith("int") and not isinstance(value, bool):
            return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"LLM config {f.name}: cannot use {value!r} as {kind}") from None
    return value
