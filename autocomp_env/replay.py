"""Replaying an episode: a fresh env brought to a saved `EpisodeState` by re-running its events, checking
every latency on the way (`replay(state)`). Offline episodes re-run the offline code model; others answer
from the responses the state recorded (`RecordedCodeModel`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from autocomp_env.codemodel import OfflineCodeModel
from autocomp_env.core import Feedback, Generation, Kernel, Plan
from autocomp_env.env import AutocompEnv
from autocomp_env.episode import EpisodeState, close


class ReplayMismatch(ValueError):
    """Replaying an episode gave a different result than the one recorded."""


class RecordedCodeModel:
    """Answers with the code recorded in an episode (by response hash), for replaying LLM episodes offline."""

    def __init__(self, name: str, responses: dict[str, str], events: tuple[dict[str, Any], ...]):
        self.name = name
        self._responses = responses
        self._steps = [e for e in events if e["kind"] == "step"]
        self._proposals = [e for e in events if e["kind"] == "propose"]

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "recorded": True}

    def implement(
        self, kernel: Kernel, code: str, plan: Plan, feedback: Feedback, rng: np.random.Generator
    ) -> Generation:
        event = self._steps.pop(0)
        h = event.get("response_hash")
        if h is None or h not in self._responses:
            return Generation(code=None, error="no recorded response for this step", model=self.name)
        return Generation(code=self._responses[h], model=self.name, response_hash=h, note="replayed")

    def propose_plans(self, kernel, code, feedback, menu, mask, n, rng) -> list[Plan]:
        event = self._proposals.pop(0)
        return [Plan(p["text"], p["menu_index"]) for p in event["plans"]]


def replay(state: EpisodeState, **env_kwargs: Any):
    """A fresh env brought to `state` by re-running its events; ReplayMismatch if any latency differs.

    Offline episodes re-run the code model; others use the recorded responses. `env_kwargs` go to the
    env (e.g. `evaluator=`)."""
    cfg = dict(state.code_model)
    if cfg.get("name") == "offline":
        model = OfflineCodeModel(
            fault_rate=cfg.get("fault_rate", 0.0), keep_probability=cfg.get("keep_probability", 0.25)
        )
    else:
        model = RecordedCodeModel(str(cfg.get("name", "recorded")), state.responses, state.events)
    env = AutocompEnv(
        kernel=state.kernel, action_mode=state.action_mode, code_model=model, max_steps=10**9, **env_kwargs
    )
    env.reset(seed=state.seed, options={"rng_state": state.reset_rng})
    if env.start_latency is None or not close(env.start_latency, state.start_latency):
        raise ReplayMismatch(f"start latency {env.start_latency} != recorded {state.start_latency}")
    for i, event in enumerate(state.events):
        if event["kind"] == "propose":
            plans = env.propose_plans(event["n"])
            got = [{"text": p.text, "menu_index": p.menu_index} for p in plans]
            if got != list(event["plans"]):
                raise ReplayMismatch(f"event {i}: proposed plans differ: {got} != {event['plans']}")
            continue
        _, _, _, _, info = env.step(Plan(event["plan"], event["menu_index"]))
        if bool(info["correct"]) != bool(event["correct"]) or not close(info["candidate_latency"], event["latency"]):
            raise ReplayMismatch(
                f"event {i} ({event['plan']!r}): got correct={info['correct']} latency={info['candidate_latency']}, "
                f"recorded correct={event['correct']} latency={event['latency']}"
            )
    if env.code_hash != state.code_hash:
        raise ReplayMismatch("replayed code differs from the recorded code")
    return env

