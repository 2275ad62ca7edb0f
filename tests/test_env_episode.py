"""Episode states: JSON round trip, deterministic replay, validation in a fresh process."""

import dataclasses
import json
import os
from pathlib import Path

import pytest
import test_env_fakes as fakes

from autocomp_env.core import Generation, Plan
from autocomp_env.env import AutocompEnv
from autocomp_env.episode import EpisodeState, code_hash, validate
from autocomp_env.evaluation import Evaluator
from autocomp_env.replay import ReplayMismatch, replay

fakes.install()
TESTS = str(Path(__file__).resolve().parent)


def played(seed=5, **kw):
    env = AutocompEnv(kernel="toy/axpy-1024", evaluator=Evaluator(), **kw)
    env.reset(seed=seed)
    for n in (2, 1):
        plans = env.propose_plans(n)
        env.step(plans[0])
    env.step("tile 4 and vectorize")
    env.step(4)  # "other methods": does not apply
    return env


def test_state_round_trips_through_json(tmp_path):
    state = played().get_state()
    state.save(tmp_path / "s.json")
    loaded = EpisodeState.load(tmp_path / "s.json")
    assert loaded == state and loaded.speedup > 1.0
    assert [e["kind"] for e in loaded.events] == ["propose", "step", "propose", "step", "step", "step"]
    bad = json.loads(state.to_json())
    bad["code"] += "// changed\n"
    with pytest.raises(ValueError, match="corrupt"):
        EpisodeState.from_dict(bad)
    with pytest.raises(ValueError):
        EpisodeState.from_dict({"format": 99})


def test_replay_reproduces_the_episode_and_continues_identically():
    env = played(fault_rate=0.3)
    state = env.get_state()
    again = replay(state, evaluator=Evaluator())
    assert again.code == env.code and again.latency == env.latency and again.get_state().events == state.events
    assert again.np_random.bit_generator.state == env.np_random.bit_generator.state
    assert again.step(0)[4]["latency"] == env.step(0)[4]["latency"]


def test_replay_detects_a_tampered_record():
    state = played().get_state()
    events = list(state.events)
    i = next(i for i, e in enumerate(events) if e["kind"] == "step" and e["correct"])
    events[i] = dict(events[i], latency=events[i]["latency"] * 0.5)
    with pytest.raises(ReplayMismatch, match="latency"):
        replay(dataclasses.replace(state, events=tuple(events)))


class ScriptedLLM:
    """Stands in for an LLM: answers a fixed list of codes, with response hashes, not reproducible offline."""

    name = "scripted-llm"

    def __init__(self, codes):
        self.codes = list(codes)

    def implement(self, kernel, code, plan, feedback, rng):
        c = self.codes.pop(0)
        return Generation(code=c, model=self.name, response_hash=code_hash(c), llm_calls=1, prompt_tokens=5)

    def propose_plans(self, kernel, code, feedback, menu, mask, n, rng):
        return [Plan("think harder")]


def test_replay_of_a_non_offline_model_uses_the_recorded_responses():
    fam = fakes.ToyFamily()
    from autocomp_env.kernels import get_kernel

    k = get_kernel("toy/axpy-1024")
    codes = [
        fam.emit(k, {"tile": 2, "unroll": 1, "vec": False}),
        "garbage",
        fam.emit(k, {"tile": 8, "unroll": 2, "vec": True}),
    ]
    env = AutocompEnv(kernel="toy/axpy-1024", code_model=ScriptedLLM(codes), evaluator=Evaluator())
    env.reset(seed=0)
    env.propose_plans(1)
    for _ in codes:
        env.step("think harder")
    state = env.get_state()
    assert state.code_model == {"name": "scripted-llm"} and len(state.responses) == 3
    again = replay(state)
    assert again.code == codes[-1] and again.latency == env.latency


def test_validate_accepts_an_honest_record_and_rejects_a_false_claim():
    state = played().get_state()
    assert validate(state, fresh_process=False).ok
    lie = dataclasses.replace(state, latency=state.latency * 0.9)
    v = validate(lie, fresh_process=False)
    assert not v.ok and v.correct and "claimed" in v.message
    broken_code = state.code + "// BUG\n"
    wrong = dataclasses.replace(state, code=broken_code, code_hash=code_hash(broken_code))
    v = validate(wrong, fresh_process=False)
    assert not v.ok and not v.correct and v.error_type == "wrong_output"


def test_validate_runs_in_a_fresh_process(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCOMP_PLUGINS", "test_env_fakes:install")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    state = played().get_state()
    state.save(tmp_path / "s.json")
    v = validate(tmp_path / "s.json")
    assert v.ok and v.latency == state.latency, v.message
    monkeypatch.setenv("AUTOCOMP_PLUGINS", "")  # without the toy family the fresh process cannot vouch for it
    v = validate(state)
    assert not v.ok and v.error_type == "invalid_kernel" and "toy" in v.message


def test_cli_helpers_validate_results_files_and_replay_states(tmp_path, capsys, monkeypatch):
    from autocomp_cli.main import cmd_replay as replay_main
    from autocomp_cli.main import cmd_validate as validate_main
    from autocomp_env.episode import claims_from

    state = played().get_state()
    state.save(tmp_path / "s.json")
    assert replay_main({"file": str(tmp_path / "s.json")}) == 0 and "reproduced" in capsys.readouterr().out
    rec = {"status": "ok", "result": {"kernel": state.kernel, "best_code": state.code, "best_latency": state.latency}}
    lie = {"status": "ok", "result": dict(rec["result"], best_latency=1.0)}
    (tmp_path / "results.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps(lie) + "\n{torn")
    claims = claims_from(tmp_path / "results.jsonl")
    assert [c.latency for c in claims] == [state.latency, 1.0]
    monkeypatch.setenv("AUTOCOMP_PLUGINS", "test_env_fakes:install")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    assert validate_main({"file": str(tmp_path / "results.jsonl")}) == 1
    out = capsys.readouterr().out
    assert "1/2 claims validated" in out and "FAIL" in out
