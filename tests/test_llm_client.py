"""The HTTP path against the local fake server: retries, failures, cache replay, accounting, config."""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import threading
import urllib.request

import numpy as np
import pytest

from autocomp_env.budget import price as table_price
from autocomp_env.core import Feedback, Kernel, Plan
from autocomp_env.llm import ChatClient, CompletionCache, LLMCodeModel, LLMConfig, cache_key
from autocomp_env.llm.pricing import price
from autocomp_env.llm.server import FakeLLMServer

MATMUL = Kernel("gemmini/matmul-64x64x64", "gemmini", "matmul", {}, 64**3, 64**3 / 256, "cycles")
CODE = "void solution(int8_t A[64][64], int8_t B[64][64], int8_t C[64][64]) {\n}\n"
ANSWER = "Done.\n```c\nvoid solution(int8_t A[64][64], int8_t B[64][64], int8_t C[64][64]) {\n  fence();\n}\n```"


@pytest.fixture
def server():
    with FakeLLMServer() as srv:
        yield srv


def config(srv: FakeLLMServer, **kw) -> LLMConfig:
    base = dict(model="fake-model", base_url=srv.base_url, backoff_base=0.005, backoff_max=0.02, timeout=2.0)
    base.update(kw)
    return LLMConfig(**base)


def _request_parts(body: dict) -> tuple:
    return (
        body["messages"],
        {"api": "chat", "max_tokens": body["max_tokens"], "temperature": body["temperature"]},
        body["seed"],
    )


def implement(model: LLMCodeModel, seed: int = 0):
    return model.implement(
        MATMUL, CODE, Plan("tile J"), Feedback(latency=9.0, unit="cycles"), np.random.default_rng(seed)
    )


@pytest.mark.parametrize("fault", ["429", "500", "garbage", "drop"])
def test_transient_faults_are_retried_then_succeed(server: FakeLLMServer, fault: str) -> None:
    server.fail_next(fault, times=2)
    server.add_answers(ANSWER)
    model = LLMCodeModel(config(server, max_retries=3), cache=False)
    gen = implement(model)
    assert gen.error is None and "fence();" in gen.code
    assert len(server.completion_requests) == 3 and model.usage.http_requests == 3


def test_a_hanging_request_times_out_and_is_retried(server: FakeLLMServer) -> None:
    server.fail_next("hang")
    server.add_answers(ANSWER, ANSWER)  # a spare in case a loaded machine makes the retry time out too
    gen = implement(LLMCodeModel(config(server, timeout=1.0, max_retries=2), cache=False))
    assert gen.code is not None and len(server.completion_requests) >= 2


def test_exhausted_retries_give_a_failed_sample_not_code(server: FakeLLMServer) -> None:
    server.fail_next("500", times=3)
    server.add_answers(ANSWER)  # would only be reached by a 4th attempt
    gen = implement(LLMCodeModel(config(server, max_retries=2), cache=False))
    assert gen.code is None and "gave up after 3 attempts" in gen.error and "HTTP 500" in gen.error
    assert gen.llm_calls == 1 and gen.dollars == 0.0 and len(server.completion_requests) == 3


def test_backoff_is_exponential_with_deterministic_jitter(server: FakeLLMServer) -> None:
    client = ChatClient(LLMConfig(model="m", backoff_base=1.0, backoff_max=100.0))
    waits = [client.backoff("key", a) for a in range(5)]
    assert waits == [ChatClient(client.config).backoff("key", a) for a in range(5)]
    for a, w in enumerate(waits):
        assert 0.5 * 2**a <= w < 1.5 * 2**a
    assert client.backoff("other", 0) != waits[0]


def test_empty_content_and_answers_without_code_fail_cleanly(server: FakeLLMServer) -> None:
    model = LLMCodeModel(config(server), cache=False)
    server.fail_next("empty")
    gen = implement(model)
    assert gen.code is None and "empty content" in gen.error and len(server.completion_requests) == 1
    server.add_answers("I think you should tile the loops.")
    gen = implement(model, seed=1)
    assert gen.code is None and gen.error == "no code found in the model's answer" and gen.completion_tokens > 0


def test_client_errors_are_not_retried(server: FakeLLMServer) -> None:
    model = LLMCodeModel(config(server, base_url=server.base_url.replace("/v1", "/nope"), max_retries=4), cache=False)
    gen = implement(model)
    assert gen.code is None and "NotFoundError" in gen.error and len(server.requests) == 1


def test_cache_replays_without_any_request(server: FakeLLMServer, tmp_path) -> None:
    server.add_answers(ANSWER, "```c\nvoid solution() { other(); }\n```")
    first = implement(LLMCodeModel(config(server), cache=CompletionCache(tmp_path)), seed=7)
    n = len(server.requests)
    assert n == 1 and not first.cache_hit
    again = implement(LLMCodeModel(config(server), cache=CompletionCache(tmp_path)), seed=7)
    assert len(server.requests) == n and again.cache_hit
    assert again.code == first.code and again.response_hash == first.response_hash
    assert (again.prompt_tokens, again.completion_tokens) == (first.prompt_tokens, first.completion_tokens)
    stored = CompletionCache(tmp_path).request(cache_key("fake-model", *_request_parts(server.requests[0]["body"])))
    assert (
        stored["messages"] == server.requests[0]["body"]["messages"]
        and stored["sample"] == server.requests[0]["body"]["seed"]
    )
    other_sample = implement(LLMCodeModel(config(server), cache=CompletionCache(tmp_path)), seed=8)
    assert len(server.requests) == n + 1 and other_sample.code != first.code


def test_cache_only_mode_never_calls_the_server(server: FakeLLMServer, tmp_path) -> None:
    gen = implement(LLMCodeModel(config(server, cache_only=True), cache=CompletionCache(tmp_path)))
    assert gen.code is None and "cache miss" in gen.error and server.requests == []


def test_failed_samples_are_not_cached(server: FakeLLMServer, tmp_path) -> None:
    cache = CompletionCache(tmp_path)
    server.fail_next("500", times=2)
    assert implement(LLMCodeModel(config(server, max_retries=1), cache=cache)).code is None
    assert len(cache) == 0
    server.add_answers(ANSWER)
    assert implement(LLMCodeModel(config(server, max_retries=1), cache=cache)).code is not None
    assert len(cache) == 1


def test_tokens_and_dollars_are_accounted(server: FakeLLMServer) -> None:
    server.add_answers(ANSWER)
    model = LLMCodeModel(config(server, price_in=2.0, price_out=8.0), cache=False)
    gen = implement(model)
    body = server.completion_requests[0]["body"]
    sent = "\n".join(m["content"] for m in body["messages"])
    assert gen.prompt_tokens == len(sent) // 4 and gen.completion_tokens == len(ANSWER) // 4
    assert gen.dollars == pytest.approx((gen.prompt_tokens * 2.0 + gen.completion_tokens * 8.0) / 1e6)
    assert model.usage.dollars == pytest.approx(gen.dollars) and model.usage.calls == 1
    assert body["model"] == "fake-model" and body["temperature"] == 1.0 and body["max_tokens"] == 4096
    assert isinstance(body["seed"], int)


def test_missing_usage_is_estimated() -> None:
    with FakeLLMServer(answers=[ANSWER], usage=False) as srv:
        gen = implement(LLMCodeModel(config(srv), cache=False))
    assert gen.completion_tokens == len(ANSWER) // 4 and gen.prompt_tokens > 100


def test_price_uses_the_project_table_unless_overridden(server: FakeLLMServer) -> None:
    assert price("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(table_price("gpt-4o-mini", 10**6, 10**6))
    assert price("gpt-4o-mini", 1_000_000, 1_000_000) > 0 and price("smollm2-135m", 10**6, 10**6) == 0.0
    assert price("anything", 500_000, 250_000, 1.0, 4.0) == pytest.approx(1.5)
    server.add_answers(ANSWER)
    gen = implement(LLMCodeModel(config(server, model="gpt-4o-mini"), cache=False))
    assert gen.dollars > 0
    assert gen.dollars == pytest.approx(table_price("gpt-4o-mini", gen.prompt_tokens, gen.completion_tokens))


def test_responses_api_path(server: FakeLLMServer) -> None:
    server.add_answers(ANSWER)
    gen = implement(LLMCodeModel(config(server, api="responses", reasoning_effort="high"), cache=False))
    req = server.completion_requests[0]
    assert req["path"].endswith("/responses") and req["body"]["reasoning"] == {"effort": "high"}
    assert "temperature" not in req["body"] and gen.code is not None and gen.prompt_tokens > 0


def test_api_key_is_sent_and_hidden_from_repr(server: FakeLLMServer) -> None:
    server.add_answers(ANSWER)
    cfg = config(server, api_key="sk-secret-123")
    implement(LLMCodeModel(cfg, cache=False))
    headers = {k.lower(): v for k, v in server.completion_requests[0]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in repr(cfg)


def test_model_pickles_and_works_after(server: FakeLLMServer, tmp_path) -> None:
    server.add_answers(ANSWER, ANSWER)
    model = LLMCodeModel(config(server), cache=CompletionCache(tmp_path))
    implement(model)
    clone = pickle.loads(pickle.dumps(model))
    assert implement(clone, seed=1).code is not None


def test_config_precedence_flags_over_file_over_env() -> None:
    env = {"AUTOCOMP_LLM_MODEL": "env-model", "AUTOCOMP_LLM_BASE_URL": "http://env/v1", "OPENAI_API_KEY": "k-env"}
    cfg = LLMConfig.from_sources(None, None, env)
    assert (cfg.model, cfg.base_url, cfg.api_key) == ("env-model", "http://env/v1", "k-env")
    file = {"llm": {"model": "file-model", "temperature": "0.5", "concurrency": 3}}
    cfg = LLMConfig.from_sources(None, file, env)
    assert (cfg.model, cfg.base_url, cfg.temperature, cfg.concurrency) == ("file-model", "http://env/v1", 0.5, 3)
    flags = argparse.Namespace(model="flag-model", temperature=None, seed=4)
    cfg = LLMConfig.from_sources(flags, file, env)
    assert (cfg.model, cfg.temperature) == ("flag-model", 0.5)
    env2 = {"AUTOCOMP_LLM_API_KEY": "k-auto", "OPENAI_API_KEY": "k-openai", "AUTOCOMP_LLM_MODEL": "m"}
    assert LLMConfig.from_sources(None, None, env2).api_key == "k-auto"


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="model is required"):
        LLMConfig.from_sources(None, None, {})
    with pytest.raises(ValueError, match="unknown LLM config keys \\['temprature'\\]"):
        LLMConfig.from_sources(None, {"model": "m", "temprature": 1}, {})
    with pytest.raises(ValueError, match="cannot use 'hot'"):
        LLMConfig.from_sources(None, {"model": "m", "temperature": "hot"}, {})
    with pytest.raises(ValueError, match="api must be one of"):
        LLMConfig(model="m", api="completions")


def test_server_lists_models_and_records_requests(server: FakeLLMServer) -> None:
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    assert [m.id for m in client.models.list()] == ["fake-model"]
    server.add_answers("hi")
    r = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hello"}])
    assert r.choices[0].message.content == "hi"
    assert server.requests[-1]["body"]["messages"][0]["content"] == "hello"
    with pytest.raises(openai.InternalServerError, match="script exhausted"):
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "again"}])


def test_unsupported_parameters_are_dropped_once_and_the_request_retried() -> None:
    from autocomp_env.llm.server import HTTPFailure

    def picky(request: dict) -> str:
        if "seed" in request:
            raise HTTPFailure(400, "Unsupported parameter: 'seed' is not supported with this model.")
        if "max_tokens" in request:
            raise HTTPFailure(400, "Unsupported parameter: 'max_tokens' is not supported. Use 'max_completion_tokens'.")
        return ANSWER

    with FakeLLMServer(handler=picky) as srv:
        model = LLMCodeModel(config(srv, max_retries=0), cache=False)
        assert implement(model).code is not None
        assert implement(model, seed=1).code is not None
        bodies = [r["body"] for r in srv.completion_requests]
    assert len(bodies) == 4  # 2 rejections, then one clean request per sample
    assert "seed" not in bodies[-1] and bodies[-1]["max_completion_tokens"] == 4096


def test_other_client_errors_fail_without_retry() -> None:
    from autocomp_env.llm.server import HTTPFailure

    def deny(request: dict) -> str:
        raise HTTPFailure(401, "invalid api key")

    with FakeLLMServer(handler=deny) as srv:
        gen = implement(LLMCodeModel(config(srv, max_retries=3), cache=False))
        assert gen.code is None and "AuthenticationError" in gen.error and len(srv.requests) == 1


def test_retry_after_is_honoured(server: FakeLLMServer) -> None:
    import time

    server.retry_after = 0.3
    server.fail_next("429")
    server.add_answers(ANSWER)
    t0 = time.monotonic()
    gen = implement(LLMCodeModel(config(server, backoff_max=1.0), cache=False))
    assert gen.code is not None and time.monotonic() - t0 >= 0.3


def test_cache_upgrades_a_table_without_the_request_column(tmp_path) -> None:
    import sqlite3

    from autocomp_env.llm.cache import CachedCompletion

    db = sqlite3.connect(tmp_path / "completions.sqlite")
    db.execute(
        "CREATE TABLE completions (key TEXT PRIMARY KEY, model TEXT, text TEXT NOT NULL, prompt_tokens INTEGER, "
        "completion_tokens INTEGER, response_hash TEXT, created REAL)"
    )
    db.execute("INSERT INTO completions VALUES ('old', 'm', 'answer', 1, 2, 'h', 0)")
    db.commit()
    db.close()
    cache = CompletionCache(tmp_path)
    assert cache.get("old") == CachedCompletion("answer", 1, 2, "h") and cache.request("old") is None
    cache.put("new", "m", CachedCompletion("x", 3, 4, "h2"), {"messages": []})
    assert cache.request("new") == {"messages": []} and len(cache) == 2


def test_serve_until_interrupted_serves_then_stops_on_ctrl_c() -> None:
    srv = FakeLLMServer()
    seen: list[int] = []

    def poke_then_interrupt() -> None:
        try:
            with urllib.request.urlopen(srv.base_url + "/models", timeout=2) as r:
                seen.append(r.status)
        finally:  # Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(0.1, poke_then_interrupt).start()
    srv.serve_until_interrupted()
    assert seen == [200]
    with pytest.raises(OSError):
        urllib.request.urlopen(srv.base_url + "/models", timeout=1)
