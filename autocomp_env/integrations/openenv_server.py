"""An OpenEnv server and client for the text interface. Optional extra: `pip install -e '.[openenv]'`.

Follows OpenEnv's layout (openenv-core's `openenv init` template): pydantic `AutocompAction` and
`AutocompObservation` models, an `Environment` subclass, `create_app(...)` from
`openenv.core.env_server.http_server`, and an `EnvClient` subclass. Sessions go over the WebSocket `/ws`
(one `TextEnv` per connection, up to `max_sessions`); `/reset`, `/step`, `/state`, `/schema`, `/health`
are OpenEnv's HTTP endpoints (its HTTP `/step` is stateless by design: a fresh env per request).

    autocomp-env serve --kernel gemmini-exo-small:0 --port 8000          # binds 127.0.0.1

    from autocomp_env.integrations.openenv_server import AutocompAction, AutocompEnvClient
    with AutocompEnvClient(base_url="http://127.0.0.1:8000").sync() as client:
        result = client.reset(seed=0)
        result = client.step(AutocompAction(answer="Option 3: ..."))
        print(result.reward, result.observation.metrics)
"""

from __future__ import annotations

import uuid
from typing import Any

from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient
from openenv.core.env_server.http_server import create_app as openenv_create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
from pydantic import Field

from autocomp_env.textenv import TextEnv, TextObservation, TextTurn

DEFAULT_HOST = "127.0.0.1"  # never all interfaces unless asked: the server runs model-written code


class AutocompAction(Action):
    """The policy's answer: a plan ("Option N: ...") in plan mode, or a fenced block of code in code mode."""

    answer: str = Field(..., description="The policy's answer to the prompt")


class AutocompObservation(Observation):
    """The next prompt and what the last answer earned (`reward` and `done` come from OpenEnv's base)."""

    prompt: str = Field(default="", description="The user message of the planning prompt")
    messages: list[dict[str, str]] = Field(default_factory=list, description="The prompt as chat messages")
    kernel: str = Field(default="", description="The kernel being optimized")
    mode: str = Field(default="plan", description="'plan' or 'code'")
    turn: int = Field(default=0, description="Turns taken in this episode")
    shown: list[int] = Field(default_factory=list, description="Menu indices shown after dropout")
    metrics: dict[str, Any] = Field(default_factory=dict, description="The last turn's named metrics")
    error: str | None = Field(default=None, description="Why the last answer failed, if it did")


class AutocompEnvironment(Environment):
    """One text env per session. `reset(seed=..., kernel=...)` may switch the kernel."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # every session owns its TextEnv; the disk cache is process-safe

    def __init__(self, kernel: str, mode: str = "plan", max_turns: int = 4, **env_kwargs: Any):
        super().__init__()
        self._kernel, self._mode, self._max_turns, self._env_kwargs = kernel, mode, max_turns, env_kwargs
        self._envs: dict[str, TextEnv] = {}
        self._env: TextEnv | None = None
        self._state = State(episode_id=None, step_count=0)

    def _text_env(self, kernel: str) -> TextEnv:
        if kernel not in self._envs:
            self._envs[kernel] = TextEnv(kernel, mode=self._mode, max_turns=self._max_turns, **self._env_kwargs)
        return self._envs[kernel]

    def reset(self, seed: int | None = None, episode_id: str | None = None, kernel: str | None = None):
        self._env = self._text_env(kernel or self._kernel)
        obs = self._env.reset(seed=seed)
        self._state = State(episode_id=episode_id or str(uuid.uuid4()), step_count=0)
        return _observation(self._env, obs, reward=None, done=False)

    def step(self, action: AutocompAction, timeout_s: float | None = None, **kwargs: Any):
        if self._env is None or self._env.observation is None:
            raise RuntimeError("reset the session before step")
        if self._env.done:
            raise RuntimeError("the episode is over: reset the session")
        turn = self._env.step(action.answer)
        self._state.step_count += 1
        return _observation(self._env, turn.observation, reward=turn.reward, done=turn.done, turn=turn)

    @property
    def state(self) -> State:
        extra: dict[str, Any] = {}
        if self._env is not None and self._env.observation is not None:
            u = self._env.env
            extra = {"kernel": self._env.kernel.name, "seed": self._env.seed, "best_speedup": u.start_latency / u.best_latency}
        return State(episode_id=self._state.episode_id, step_count=self._state.step_count, **extra)

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(
            name="autocomp-env",
            description="Optimize a Gemmini or Trainium kernel: plans or code in, simulated speedups out",
            version="0",
        )

    def close(self) -> None:
        for env in self._envs.values():
            env.close()


def _observation(env: TextEnv, obs: TextObservation, reward, done: bool, turn: TextTurn | None = None):
    metrics = dict(turn.metrics) if turn is not None else {}
    error = None
    if turn is not None and not turn.metrics["correct"]:
        error = f"{turn.metrics['error_type']}: {turn.info.get('error_message') or ''}"
    return AutocompObservation(
        prompt=obs.prompt,
        messages=list(obs.messages),
        kernel=env.kernel.name,
        mode=obs.mode,
        turn=obs.turn,
        shown=list(obs.shown),
        metrics=metrics,
        error=error,
        reward=reward,
        done=done,
    )


def create_app(kernel: str, mode: str = "plan", max_turns: int = 4, max_sessions: int = 16, **env_kwargs: Any):
    """The FastAPI app (OpenEnv's `create_app` over `AutocompEnvironment`)."""
    TextEnv(kernel, mode=mode, max_turns=max_turns, **env_kwargs).close()  # bad settings fail here, not per session

    def factory() -> AutocompEnvironment:
        return AutocompEnvironment(kernel, mode, max_turns, **env_kwargs)

    return openenv_create_app(
        factory, AutocompAction, AutocompObservation, env_name="autocomp-env", max_concurrent_envs=max_sessions
    )


def serve(host: str = DEFAULT_HOST, port: int = 8000, **app_kwargs: Any) -> None:
    """Run the server until interrupted (uvicorn)."""
    import uvicorn

    uvicorn.run(create_app(**app_kwargs), host=host, port=port, log_level="warning")


class AutocompEnvClient(EnvClient[AutocompAction, AutocompObservation, State]):
    """OpenEnv client for `autocomp-env serve` (async; `.sync()` for a blocking one)."""

    def _step_payload(self, action: AutocompAction) -> dict[str, Any]:
        return {"answer": action.answer}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[AutocompObservation]:
        obs = AutocompObservation(**payload.get("observation", {}), reward=payload.get("reward"), done=payload.get("done", False))
        return StepResult(observation=obs, reward=payload.get("reward"), done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> State:
        return State(**payload)
