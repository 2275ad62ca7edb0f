"""The env driven by the real LLM code model against the local fake OpenAI-compatible server."""

import pytest

from autocomp_env.env import AutocompEnv
from autocomp_env.evaluation import Evaluator
from autocomp_env.kernels import UnknownKernel, get_kernel
from autocomp_env.replay import replay

llm = pytest.importorskip("autocomp_env.llm")
server = pytest.importorskip("autocomp_env.llm.server")


def test_llm_episode_counts_spend_and_replays_without_the_server():
    try:
        get_kernel("gemmini-exo-small:0")
    except UnknownKernel as e:
        pytest.skip(str(e))
    evaluator = Evaluator()
    with server.FakeLLMServer(mode="offline") as srv:
        model = llm.LLMCodeModel(llm.LLMConfig(model="fake-model", base_url=srv.base_url, cache=False))
        env = AutocompEnv(kernel="gemmini-exo-small:0", code_model=model, evaluator=evaluator, budget={"llm_calls": 50})
        env.reset(seed=0)
        infos = []
        for _ in range(2):
            plans = env.propose_plans(1)
            assert plans and plans[0].text
            infos.append(env.step(plans[0])[4])
        assert all(i["llm_calls"] == 1 and i["tokens"] > 0 for i in infos)
        assert env.usage.llm_calls >= 4 and env.usage.tokens > sum(i["tokens"] for i in infos)
        assert any(i["correct"] and i["candidate_latency"] < env.start_latency for i in infos)
        state = env.get_state()
    assert state.code_model["name"] and len(state.responses) >= 1
    again = replay(state, evaluator=evaluator)  # the server is gone: recorded responses answer
    assert again.code == env.code and again.latency == env.latency
