"""The benchmark on the fake env: leaderboard figures are consistent with the episodes, files are written."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import pytest
import test_agents_fake as fake

from agents import bench
from agents.base import EpisodeResult

KERNELS = ["fake/matmul-64", "fake/matmul-256"]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    res = bench.run_bench(
        "random,beam",
        KERNELS,
        budget=24,
        seeds=2,
        out_dir=d,
        imports=("test_agents_fake",),
        env_id=fake.ENV_ID,
        progress=False,
    )
    return d, res


def test_leaderboard_rows_match_the_episodes(out):
    d, res = out
    recs = [json.loads(line) for line in (d / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 2 * 2 * 2
    rows = {r["agent"]: r for r in res["rows"]}
    assert set(rows) == {"random", "beam"}
    for agent, row in rows.items():
        eps = [EpisodeResult.from_dict(r["result"]) for r in recs if r["job"]["agent"] == agent]
        assert row["episodes"] == 4 and row["errors"] == 0
        assert row["speedup_vs_start"] == pytest.approx(math.exp(sum(math.log(e.best_speedup) for e in eps) / 4))
        # the fake's vendor baseline is start / 3, so the two speedups differ by exactly 3x
        assert row["speedup_vs_vendor"] == pytest.approx(row["speedup_vs_start"] / 3)
        assert row["fast_vendor"] == sum(e.best_latency < e.baselines["vendor"] for e in eps) / 4
        assert 0 < row["roofline_pct"] <= 100
        assert row["samples"] <= 24
    assert res["rows"][0]["speedup_vs_start"] >= res["rows"][1]["speedup_vs_start"]  # sorted best first


def test_files_json_csv_png_are_written(out):
    d, res = out
    board = json.loads((d / "leaderboard.json").read_text())
    assert board["config"]["budget"] == 24 and board["config"]["kernels"] == KERNELS
    rows = list(csv.DictReader((d / "leaderboard.csv").open()))
    assert [r["agent"] for r in rows] == [r["agent"] for r in res["rows"]]
    png = (d / "speedup_vs_samples.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_speedup_curve_is_monotone_and_ends_at_the_best():
    r = EpisodeResult(
        "a", "k", 0, "cycles", 100.0, 50.0, {}, 3, 0, 0, 0, 0.0, 0.0, ((1, 80.0), (2, 80.0), (3, 50.0)), ()
    )
    curve = bench.speedup_curve([r], bench.np.arange(0, 5))
    assert list(curve) == [1.0, 1.25, 1.25, 2.0, 2.0]


def test_bench_main_prints_a_table(tmp_path, capsys, monkeypatch):
    real = bench.run_bench
    monkeypatch.setattr(
        bench, "run_bench", lambda **kw: real(**kw, imports=("test_agents_fake",), env_id=fake.ENV_ID, progress=False)
    )
    args = SimpleNamespace(
        agents="greedy,beam",
        suite="fake/matmul-64",
        budget=8,
        seeds=1,
        workers=1,
        out=str(tmp_path),
        agent_kwargs='{"beam": {"beam_size": 2}}',
    )
    monkeypatch.setattr(bench, "suite_kernels", lambda s: [s])
    assert bench.bench_main(args) == 0
    text = capsys.readouterr().out
    assert "greedy" in text and "speedup_vs_vendor" in text and "leaderboard.csv" in text
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert board["config"]["agents"]["beam"] == {"samples": 8, "beam_size": 2}


def test_report_combines_folders_and_keeps_same_named_agents_apart(out, tmp_path):
    d, _ = out
    other = tmp_path / "other"
    bench.run_bench(
        {"beam": {"beam_size": 2}},
        KERNELS[:1],
        budget=8,
        seeds=1,
        out_dir=other,
        imports=("test_agents_fake",),
        env_id=fake.ENV_ID,
        progress=False,
    )
    res = bench.report([d, other], tmp_path / "rep")
    agents = {r["agent"]: r for r in res["rows"]}
    assert set(agents) == {"random", f"{d.name}/beam", "other/beam"}
    assert agents["other/beam"]["episodes"] == 1 and agents[f"{d.name}/beam"]["episodes"] == 4
    assert (tmp_path / "rep" / "report.csv").exists() and (tmp_path / "rep" / "report.png").stat().st_size > 5000
    with pytest.raises(ValueError, match="no results"):
        bench.report([tmp_path / "empty"])
