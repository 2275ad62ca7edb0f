"""One chat completion with caching, retries, a concurrency limit and token/dollar accounting.

An exhausted retry, an HTTP error or an empty answer is a `Completion` with `text=None` and `error` set:
the error text never reaches a prompt as a plan or as code.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from autocomp_env.llm.cache import CachedCompletion, CompletionCache, cache_key
from autocomp_env.llm.config import LLMConfig
from autocomp_env.llm.pricing import price

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Completion:
    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    requests: int = 0  # HTTP requests made for this completion (0 on a cache hit)
    cache_hit: bool = False
    response_hash: str | None = None
    key: str = ""


class _Retryable(Exception):
    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait  # the server's Retry-After, if it sent one


class _Unsupported(Exception):
    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


# Parameters an endpoint may reject ("Unsupported parameter: 'seed'"); the client then stops sending them.
_OPTIONAL = ("seed", "temperature", "max_tokens", "reasoning_effort", "reasoning", "response_format", "text")
_REJECTION = re.compile(r"unsupported|not supported|unrecognized|unknown|extra|not permitted|does not support", re.I)


def _unsupported_param(e: Exception, kw: dict[str, Any]) -> str | None:
    text = str(e)
    if not _REJECTION.search(text):
        return None
    for name in _OPTIONAL:
        if name in kw and re.search(rf"\b{name}\b", text):
            return name
    return None


def _retry_after(e: Any) -> float | None:
    try:
        return float(e.response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None


def _estimate_tokens(text: str) -> int:
    # Some local servers omit `usage`; ~4 characters per token is the usual rough figure.
    return max(1, len(text) // 4)


class ChatClient:
    """`complete(messages, sample_index)` against `config`'s endpoint, through `cache` (None: no cache).

    Pickles without its HTTP client and semaphore (they are rebuilt lazily), so it can cross Ray boundaries.
    """

    def __init__(self, config: LLMConfig, cache: CompletionCache | None = None):
        self.config = config
        self.cache = cache
        self._client: Any = None
        self._sem = threading.BoundedSemaphore(config.concurrency)
        self._lock = threading.Lock()
        self._dropped: set[str] = set()  # optional parameters the endpoint rejected
        self.http_requests = 0  # every HTTP request this client made (retries included)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"], state["_sem"], state["_lock"] = None, None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sem = threading.BoundedSemaphore(self.config.concurrency)
        self._lock = threading.Lock()

    def _openai(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai  # noqa: PLC0415  (about a second to import: offline runs never need it)

                c = self.config
                self._client = openai.OpenAI(
                    base_url=c.base_url,
                    api_key=c.api_key or "not-needed",  # local servers ignore it; the client insists on one
                    timeout=c.timeout,
                    max_retries=0,  # we retry ourselves, with deterministic jitter and accounting
                )
            return self._client

    def backoff(self, key: str, attempt: int) -> float:
        """Seconds to wait before retry `attempt` (0-based): exponential with jitter in [0.5, 1.5) drawn from
        the request key, so the schedule is reproducible."""
        u = int(hashlib.sha256(f"{key}:{attempt}".encode()).hexdigest()[:8], 16) / 2**32
        return min(self.config.backoff_max, self.config.backoff_base * 2**attempt) * (0.5 + u)

    def complete(self, messages: Messages, sample_index: int = 0, schema: dict[str, Any] | None = None) -> Completion:
        """One completion. `schema` asks for JSON matching a JSON schema (structured output), where the
        endpoint supports it; endpoints that reject it get the plain request."""
        c = self.config
        params = c.request_params()
        if schema is not None:
            params["schema"] = schema
        key = cache_key(c.model, messages, params, sample_index)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                dollars = price(c.model, hit.prompt_tokens, hit.completion_tokens, c.price_in, c.price_out)
                return Completion(
                    hit.text, None, hit.prompt_tokens, hit.completion_tokens, dollars, 0, True, hit.response_hash, key
                )
        if c.cache_only:
            return Completion(None, "cache miss with cache_only set: no request made", key=key)
        errors: list[str] = []
        attempt, requests, adjustments, wait = 0, 0, 0, 0.0
        while attempt <= c.max_retries:
            if wait:
                time.sleep(wait)
            try:
                requests += 1
                with self._sem:
                    with self._lock:
                        self.http_requests += 1
                    text, p_tok, c_tok = self._request(messages, sample_index, schema)
            except _Unsupported as e:  # learned once per client; retried at once, not counted as a failure
                adjustments += 1
                if adjustments > len(_OPTIONAL):
                    return Completion(None, f"request rejected: {e}", requests=requests, key=key)
                with self._lock:
                    self._dropped.add(e.param)
                wait = 0.0
                continue
            except _Retryable as e:
                errors.append(str(e))
                attempt += 1
                wait = max(self.backoff(key, attempt - 1), min(e.wait or 0.0, c.backoff_max))
                continue
            except Exception as e:  # not worth retrying (bad request, auth, unknown model): fail the sample now
                return Completion(None, f"{type(e).__name__}: {_short(e)}", requests=requests, key=key)
            if not text or not text.strip():
                return Completion(None, "the model returned empty content", p_tok, 0, 0.0, requests, key=key)
            dollars = price(c.model, p_tok, c_tok, c.price_in, c.price_out)
            rhash = hashlib.sha256(text.encode()).hexdigest()
            if self.cache is not None:
                request = {"model": c.model, "messages": messages, "params": params, "sample": sample_index}
                self.cache.put(key, c.model, CachedCompletion(text, p_tok, c_tok, rhash), request)
            return Completion(text, None, p_tok, c_tok, dollars, requests, False, rhash, key)
        last = errors[-1] if errors else "unknown error"
        return Completion(
            None, f"gave up after {c.max_retries + 1} attempts; last error: {last}", requests=requests, key=key
        )

    def _params(self, messages: Messages, sample_index: int, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """Request arguments, minus the optional ones this endpoint rejected earlier."""
        c = self.config
        if c.api == "responses":
            kw: dict[str, Any] = {"model": c.model, "input": messages, "max_output_tokens": c.max_tokens}
            if c.reasoning_effort:
                kw["reasoning"] = {"effort": c.reasoning_effort}
            else:
                kw["temperature"] = c.temperature
            if schema is not None:
                kw["text"] = {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}}
        else:
            kw = {"model": c.model, "messages": messages, "max_tokens": c.max_tokens}
            if c.reasoning_effort:
                kw["reasoning_effort"] = c.reasoning_effort
            else:
                kw["temperature"] = c.temperature
            if c.send_seed:
                kw["seed"] = int(sample_index)
            if schema is not None:
                kw["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": schema, "strict": True},
                }
        for name in self._dropped:
            value = kw.pop(name, None)
            if name == "max_tokens" and value is not None:  # OpenAI reasoning models want the new name
                kw["max_completion_tokens"] = value
        return kw

    def _request(
        self, messages: Messages, sample_index: int, schema: dict[str, Any] | None = None
    ) -> tuple[str | None, int, int]:
        import openai  # noqa: PLC0415  (as in _openai)

        c = self.config
        client = self._openai()
        kw = self._params(messages, sample_index, schema)
        try:
            if c.api == "responses":
                r = client.responses.create(**kw)
                text = r.output_text
                usage = getattr(r, "usage", None)
                p_tok = getattr(usage, "input_tokens", None)
                c_tok = getattr(usage, "output_tokens", None)
            else:
                r = client.chat.completions.create(**kw)
                if not getattr(r, "choices", None):
                    raise _Retryable("malformed response: no choices")
                text = r.choices[0].message.content
                usage = getattr(r, "usage", None)
                p_tok = getattr(usage, "prompt_tokens", None)
                c_tok = getattr(usage, "completion_tokens", None)
        except (openai.APITimeoutError, openai.APIConnectionError) as e:
            raise _Retryable(f"{type(e).__name__}: {_short(e)}") from None
        except openai.APIStatusError as e:
            if e.status_code >= 500 or e.status_code in (408, 409, 429):
                raise _Retryable(f"HTTP {e.status_code}: {_short(e)}", _retry_after(e)) from None
            param = _unsupported_param(e, kw) if e.status_code in (400, 422) else None
            if param is not None:
                raise _Unsupported(param, _short(e)) from None
            raise
        except (openai.APIResponseValidationError, ValueError, AttributeError, TypeError) as e:
            # Garbage bodies surface as decode/validation errors; a proxy hiccup is worth another try.
            raise _Retryable(f"malformed response: {type(e).__name__}: {_short(e)}") from None
        text = text if isinstance(text, str) else None
        if p_tok is None:
            p_tok = _estimate_tokens("".join(m.get("content", "") for m in messages))
        if c_tok is None:
            c_tok = _estimate_tokens(text or "")
        return text, int(p_tok), int(c_tok)


def _short(e: BaseException, limit: int = 300) -> str:
    s = str(e).replace("\n", " ")
    return s if len(s) <= limit else s[:limit] + "..."
