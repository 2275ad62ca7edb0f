"""The OpenEnv server: a real uvicorn server on 127.0.0.1, driven by OpenEnv's own client over WebSocket."""

import socket
import threading
import time

import pytest

pytest.importorskip("openenv", reason="the OpenEnv server needs the 'openenv' extra: pip install -e '.[openenv]'")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from autocomp_env.integrations.openenv_server import (  # noqa: E402
    DEFAULT_HOST,
    AutocompAction,
    AutocompEnvClient,
    create_app,
)
from autocomp_env.textenv import ScriptedPolicy, TextEnv, TextObservation  # noqa: E402

KERNEL = "gemmini-exo-small:0"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    with socket.socket() as s:
        s.bind((DEFAULT_HOST, 0))
        port = s.getsockname()[1]
    app = create_app(KERNEL, max_turns=2, max_sessions=4, cache_dir=cache)
    srv = uvicorn.Server(uvicorn.Config(app, host=DEFAULT_HOST, port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    url = f"http://{DEFAULT_HOST}:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url, cache
    srv.should_exit = True
    t.join(timeout=10)


def test_an_episode_over_the_websocket_with_openenvs_client(server):
    url, cache = server
    policy = ScriptedPolicy(seed=0)
    with AutocompEnvClient(base_url=url).sync() as client:
        result = client.reset(seed=5)
        obs = result.observation
        assert obs.kernel.startswith("gemmini/") and "# Optimization menu" in obs.prompt and not result.done
        # the same prompt a local TextEnv shows for that seed
        assert obs.prompt == TextEnv(KERNEL, cache_dir=cache).reset(seed=5).prompt
        rewards = []
        while not result.done:
            local = TextObservation(obs.messages, tuple(obs.shown), "pick", obs.turn, obs.mode)
            result = client.step(AutocompAction(answer=policy(local)))
            obs = result.observation
            rewards.append(result.reward)
            assert set(obs.metrics) >= {"correct", "speedup", "roofline_fraction", "error_type"}
        assert len(rewards) == 2 and all(isinstance(r, float) for r in rewards)
        state = client.state()
        assert state.step_count == 2 and state.kernel == obs.kernel


def test_a_bad_answer_is_a_structured_failure_and_the_session_goes_on(server):
    url, _ = server
    with AutocompEnvClient(base_url=url).sync() as client:
        client.reset(seed=0)
        result = client.step(AutocompAction(answer=""))
        assert result.reward == pytest.approx(-0.1)
        assert result.observation.metrics["error_type"] == "format_error" and result.observation.error
        result = client.step(AutocompAction(answer="Option 1: tile it"))
        assert result.done  # max_turns=2: the session kept working


def test_http_endpoints_and_schema(server):
    url, _ = server
    assert httpx.get(f"{url}/health").status_code == 200
    schema = httpx.get(f"{url}/schema").json()
    assert "answer" in schema["action"]["properties"] and "prompt" in schema["observation"]["properties"]
    r = httpx.post(f"{url}/reset", json={"seed": 1}, timeout=120)
    assert r.status_code == 200 and "# Current code" in r.json()["observation"]["prompt"]
    bad = httpx.post(f"{url}/step", json={"action": {"plan": "x"}}, timeout=60)
    assert bad.status_code == 422  # OpenEnv validates the action against the schema


def test_serve_command_rejects_a_bad_kernel_in_one_line(capsys):
    from autocomp_cli.main import main

    assert main(["serve", "--kernel", "nope"]) == 2
    err = capsys.readouterr().err
    assert "bad kernel name" in err and "Traceback" not in err
