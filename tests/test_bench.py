"""``rlcourse bench``: structure and arithmetic of the report on tiny CPU budgets (never a wall-clock assertion)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from rlcourse.agents import PPOConfig

from rlcourse import bench
from rlcourse.bench import (
    BenchRow,
    add_sb3_ratios,
    bench_command,
    bench_meta,
    large_batch_hparams,
    run_bench,
    write_report,
)
from rlcourse.config import make_config

TINY = dict(device="cpu", num_envs=[16], seeds=1, max_steps=5000, sb3_max_steps=2000, throughput_seconds=0.05)


def _row(rows, implementation, suite="speed"):
    matches = [r for r in rows if r["implementation"] == implementation and r["suite"] == suite]
    assert len(matches) == 1, [(r["implementation"], r["suite"]) for r in rows]
    return matches[0]


@pytest.fixture(scope="module")
def reachable():
    """A run whose target (30) both implementations can reach within their tiny budgets."""
    return run_bench(target=30.0, eval_every=1, **TINY)


def test_rows_for_sb3_and_rlcourse(reachable):
    sb3, ours = _row(reachable, "SB3 PPO"), _row(reachable, "rlcourse PPO")
    assert (sb3["device"], sb3["num_envs"]) == ("cpu", 8)
    assert (ours["device"], ours["num_envs"]) == ("cpu", 16)
    for row in (sb3, ours):
        assert len(row["runs"]) == 1 and row["runs"][0]["seed"] == 0
        assert row["steps_per_s"] > 0
        assert 0 <= row["final_mean"] <= 500 and row["final_std"] >= 0
    assert sb3["runs"][0]["steps_trained"] >= 2000
    assert ours["setup_s"] > 0 and sb3["setup_s"] is None
    assert ours["runs"][0]["throughput_iterations"] >= bench.THROUGHPUT_MIN_ITERATIONS


def test_ratios_come_from_the_same_rows(reachable):
    sb3, ours = _row(reachable, "SB3 PPO"), _row(reachable, "rlcourse PPO")
    assert ours["speed_vs_sb3"] == pytest.approx(ours["steps_per_s"] / sb3["steps_per_s"])
    assert sb3["speed_vs_sb3"] is None
    if ours["time_to_target_s"] and sb3["time_to_target_s"]:
        assert ours["time_to_target_vs_sb3"] == pytest.approx(sb3["time_to_target_s"] / ours["time_to_target_s"])
    else:
        assert ours["time_to_target_vs_sb3"] is None


def test_target_reached_is_consistent(reachable):
    for row in reachable:
        for run in row["runs"]:
            if run["steps_to_target"] is None:
                assert run["time_to_target_s"] is None
            else:
                assert 0 < run["steps_to_target"] <= run["steps_trained"]
                assert 0 <= run["time_to_target_s"] <= run["train_s"]
    ours = _row(reachable, "rlcourse PPO")["runs"][0]
    # Like SB3, rlcourse trains its whole budget after reaching the target (final evals compare converged policies).
    assert ours["steps_trained"] >= 5000
    assert ours["steps_to_target"] is None or ours["steps_to_target"] < ours["steps_trained"]


def test_report_files_parse_back(reachable, tmp_path):
    meta = bench_meta("cpu", 30.0, seeds=1, max_steps=5000, sb3_max_steps=2000)
    md_path, json_path = write_report(reachable, meta, tmp_path / "out")
    assert md_path.name.startswith("bench-cpu-") and md_path.name.endswith(f"-{meta['date']}.md"), md_path.name
    assert len(md_path.name) > len(f"bench-cpu-{meta['date']}.md"), "the device's name is part of the file name"
    assert json_path.suffix == ".json"
    data = json.loads(json_path.read_text())
    assert data["rows"] == json.loads(json.dumps(reachable))
    assert data["meta"]["device"] == "cpu" and data["meta"]["target"] == 30.0
    text = md_path.read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| implementation | device | envs | steps/s (training) |")
    assert len(table) == 3  # header + SB3 + rlcourse
    ours = _row(reachable, "rlcourse PPO")
    assert f"{ours['speed_vs_sb3']:.2f}×" in table[2]


def test_unreachable_target_gives_none(tmp_path):
    rows = run_bench(device="cpu", num_envs=[16], seeds=1, target=10_000.0, max_steps=1024, sb3_max_steps=512,
                     eval_every=1, throughput_seconds=0.05)
    for row in rows:
        assert row["time_to_target_s"] is None and row["steps_to_target"] is None and row["reached"] == 0
        assert row["time_to_target_vs_sb3"] is None
    ours = _row(rows, "rlcourse PPO")
    assert ours["runs"][0]["steps_trained"] >= 1024  # trained the whole budget
    md_path, _ = write_report(rows, bench_meta("cpu", 10_000.0), tmp_path)
    assert "| never | never |" in md_path.read_text()


def test_quality_suite(monkeypatch):
    preset = {**bench.load_preset("ppo", bench.ENV_ID), "total_timesteps": 512}
    monkeypatch.setattr(bench, "load_preset", lambda algo, env_id: dict(preset))
    monkeypatch.setattr(bench, "RL_ZOO_STEPS", 512)
    rows = run_bench(device="cpu", num_envs=[16], seeds=2, target=10_000.0, max_steps=256, sb3_max_steps=512,
                     quality=True, eval_every=1, throughput_seconds=0.05)
    sb3, ours = _row(rows, "SB3 PPO (RL Zoo)", "quality"), _row(rows, "rlcourse PPO (preset)", "quality")
    assert [r["seed"] for r in ours["runs"]] == [0, 1] == [r["seed"] for r in sb3["runs"]]
    assert ours["num_envs"] == preset["num_envs"]
    assert all(r["steps_trained"] >= 512 for r in ours["runs"])
    assert _row(rows, "SB3 PPO")["runs"] == sb3["runs"]  # same seeds and budget: the speed runs are reused
    assert ours["speed_vs_sb3"] == pytest.approx(ours["steps_per_s"] / sb3["steps_per_s"])


def test_ratio_arithmetic_on_synthetic_rows():
    def run(steps_per_s, ttt):
        return {"seed": 0, "steps_per_s": steps_per_s, "time_to_target_s": ttt, "steps_to_target": 1 if ttt else None,
                "final_mean": 500.0, "final_std": 0.0}

    sb3 = BenchRow("SB3 PPO", "speed", "cpu", 8, [run(4000.0, 20.0)])
    ours = BenchRow("rlcourse PPO", "speed", "cpu", 64, [run(30_000.0, 2.0), run(50_000.0, None)])
    add_sb3_ratios([sb3, ours])
    assert ours.steps_per_s == 40_000.0 and ours.reached == 1
    assert ours.speed_vs_sb3 == pytest.approx(10.0)
    assert ours.time_to_target_vs_sb3 == pytest.approx(10.0)


@pytest.mark.parametrize("num_envs", [1, 16, 64, 4096, 262_144])
def test_large_batch_hparams_fit_the_batch(num_envs):
    hp = large_batch_hparams(num_envs)
    assert (hp["n_steps"] * num_envs) % hp["batch_size"] == 0
    make_config(PPOConfig, hp)  # every key is a PPOConfig field with a valid value


@pytest.mark.parametrize("args", [
    ["--num-envs", "0"],
    ["--num-envs", "-3"],
    ["--seeds", "0"],
    ["--max-steps", "0"],
    ["--sb3-max-steps", "0"],
    ["--eval-every", "0"],
    ["--device", "tpu"],
    ["--target", "nan"],
    ["--target", "abc"],
])
def test_bad_options_exit_2(args):
    result = CliRunner().invoke(bench_command, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output


def test_out_must_not_be_a_file(tmp_path):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    result = CliRunner().invoke(bench_command, ["--device", "cpu", "--out", str(existing)])
    assert result.exit_code == 2, result.output


def test_cuda_without_cuda_exits_2(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = CliRunner().invoke(bench_command, ["--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "CUDA is not available" in result.output


def test_command_writes_the_report(tmp_path, monkeypatch):
    measure = bench.measure_throughput
    monkeypatch.setattr(bench, "measure_throughput", lambda agent, seconds: measure(agent, 0.05))
    result = CliRunner().invoke(bench_command, ["--device", "cpu", "--num-envs", "16", "--max-steps", "1024",
                                                "--no-sb3", "--target", "10000", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "device: " in result.output and "| rlcourse PPO | cpu | 16 |" in result.output
    assert len(list(tmp_path.glob("bench-cpu-*.md"))) == 1 and len(list(tmp_path.glob("bench-cpu-*.json"))) == 1


def test_dialogue_suite_rows_and_report():
    from rlcourse.bench_dialogue import render_dialogue_markdown, run_dialogue_bench

    report = run_dialogue_bench(torch.device("cpu"), num_envs=[16], seeds=1, nlu_presets=["tcbot"], env_num_envs=[32],
                                budget=2048, sb3_seeds=1, compile=False, expert_dialogues=200, sb3_budget=256)
    assert [r["num_envs"] for r in report["env"]] == [32] and report["env"][0]["steps_per_s"] > 0
    assert [r["nlu"] for r in report["expert"]] == ["clean", "tcbot", "pydial15", "pydial30"]
    clean, noisiest = report["expert"][0], report["expert"][-1]
    assert clean["success_rate"] >= 0.95 and noisiest["success_rate"] < clean["success_rate"]  # noise hurts the expert
    (ppo,) = report["ppo"]
    assert ppo["nlu"] == "tcbot" and ppo["num_envs"] == 16 and len(ppo["runs"]) == 1
    run = ppo["runs"][0]
    assert run["steps_trained"] >= 2048 and 0.0 <= run["final_success"] <= 1.0 and 1 <= run["final_turns"] <= 20
    (sb3,) = report["sb3"]
    assert sb3["runs"][0]["steps_trained"] >= 256
    meta = {"device_name": "test cpu", "device": "cpu", "date": "2026-01-01", "torch": torch.__version__,
            "stable_baselines3": "x", "compile": False, "tf32": False}
    text = render_dialogue_markdown(report, meta)
    assert "| rule expert" not in text and "| pydial30 | 200 |" in text
    assert "| rlcourse PPO | tcbot | cpu | 16 | 1 |" in text and "| SB3 PPO (single env) | tcbot | cpu | 8 | 1 |" in text


def test_dialogue_suite_rejects_an_unknown_nlu_preset():
    from rlcourse.cli import main

    assert main(["bench", "--suite", "dialogue", "--nlu", "nope", "--device", "cpu"]) == 2


def test_agents_suite_rejects_an_unknown_algorithm_from_the_cli(capsys):
    from rlcourse.cli import main

    assert main(["bench", "--suite", "agents", "--algo", "nope", "--device", "cpu", "--out", "/nonexistent-never-written"]) == 2
    assert "unknown algorithm 'nope'" in capsys.readouterr().err
