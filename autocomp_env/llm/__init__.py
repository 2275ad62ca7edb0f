"""The LLM layer: an OpenAI-compatible code model with Autocomp's two-phase prompts, a completion cache and a
local fake server for tests and offline demos."""

from autocomp_env.llm.cache import CompletionCache, cache_key, default_cache_dir
from autocomp_env.llm.client import ChatClient, Completion
from autocomp_env.llm.config import LLMConfig
from autocomp_env.llm.extract import apply_edits, extract_code, parse_edits
from autocomp_env.llm.model import EnsembleCodeModel, LLMCodeModel, LLMUsage, divide_work
from autocomp_env.llm.prompts import PromptOptions, implementation_messages, planning_messages, repair_messages

__all__ = [
    "ChatClient",
    "Completion",
    "CompletionCache",
    "EnsembleCodeModel",
    "LLMCodeModel",
    "LLMConfig",
    "LLMUsage",
    "PromptOptions",
    "apply_edits",
    "cache_key",
    "default_cache_dir",
    "divide_work",
    "extract_code",
    "implementation_messages",
    "parse_edits",
    "planning_messages",
    "repair_messages",
]
