"""``rlcourse bench --suite agents``: rows, fields and report on tiny CPU budgets (never a wall-clock assertion)."""

from __future__ import annotations

import json

import pytest
import torch

from rlcourse.agents import ALGOS, IMITATION_ALGOS
from rlcourse.app.bench import agents as bench_agents
from rlcourse.app.bench import sb3
from rlcourse.app.bench.agents import (
    ROWS,
    SB3_IMPLEMENTATION,
    AgentRow,
    run_agents_bench,
    skip_reason,
)
from rlcourse.app.bench.agents_report import render_agents_markdown
from rlcourse.app.bench.harness import bench_meta
from rlcourse.app.bench.sb3 import SB3_ZOO
from rlcourse.config import load_preset, preset_names

SCALE = 0.01  # reinforce: 2,000 steps (two 1,024-step iterations); A2C and SB3 A2C: 5,000 steps


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    lines: list[str] = []
    report = run_agents_bench(
        "cpu", ["reinforce", "a2c"], seeds=1, sb3_seeds=1, budget_scale=SCALE, throughput_seconds=0.05, say=lines.append
    )
    return report, lines


def _rows(report, algo):
    return {row["implementation"]: row for row in report["rows"] if row["algo"] == algo}


def test_every_algorithm_has_a_row():
    assert set(ALGOS) - IMITATION_ALGOS <= {row.algo for row in ROWS}  # bc/dagger learn from experts
    assert len({row.algo for row in ROWS}) == len(ROWS), "one row per algorithm"
    for row in ROWS:
        assert load_preset(row.algo, row.env_id), f"{row.algo} has no preset for {row.env_id}"
    for algo, setup in SB3_ZOO.items():
        assert algo in {row.algo for row in ROWS}
        assert setup.env_id == next(r.env_id for r in ROWS if r.algo == algo).removeprefix("rlcourse/")


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown algorithm 'nope'.*dqn"):
        run_agents_bench("cpu", ["dqn", "nope"], seeds=1)
    with pytest.raises(ValueError, match="SB3 has no counterpart"):
        bench_agents.sb3_run("rainbow", None, 0, 100)
    with pytest.raises(ValueError, match="seeds"):
        run_agents_bench("cpu", ["reinforce"], seeds=0)


def test_rows_and_their_fields(tiny):
    report, lines = tiny
    json.dumps(report)  # plain, JSON-ready values
    assert [(r["algo"], r["implementation"]) for r in report["rows"]] == [
        ("a2c", "rlcourse (preset)"),
        ("a2c", SB3_IMPLEMENTATION),
        ("reinforce", "rlcourse (preset)"),
    ]
    assert len(lines) == 3
    a2c, sb3 = _rows(report, "a2c")["rlcourse (preset)"], _rows(report, "a2c")[SB3_IMPLEMENTATION]
    reinforce = _rows(report, "reinforce")["rlcourse (preset)"]
    assert (a2c["env_id"], a2c["target"], a2c["device"], a2c["num_envs"], a2c["budget"]) == (
        "rlcourse/CartPole-v1",
        500.0,
        "cpu",
        8,
        5000,
    )
    assert (sb3["env_id"], sb3["device"], sb3["num_envs"], sb3["budget"]) == ("CartPole-v1", "cpu", 8, 5000)
    assert (reinforce["num_envs"], reinforce["budget"]) == (8, 2000)
    for row in (a2c, sb3, reinforce):
        assert row["note"] is None and len(row["runs"]) == 1
        run = row["runs"][0]
        assert run["seed"] == 0
        assert run["steps_per_s"] > 0 and run["throughput_iterations"] >= 5
        assert run["steps_trained"] >= row["budget"] and run["train_s"] > 0
        assert 0 < run["final_mean"] <= 500 and run["final_std"] >= 0
        if run["steps_to_target"] is None:
            assert run["time_to_target_s"] is None
        else:
            assert 0 < run["steps_to_target"] <= run["steps_trained"] and run["final_mean"] > 0
        assert row["reached"] == (run["steps_to_target"] is not None)
        assert row["steps_per_s"] == run["steps_per_s"]
    assert a2c["speed_vs_sb3"] == pytest.approx(a2c["steps_per_s"] / sb3["steps_per_s"])
    assert sb3["speed_vs_sb3"] is None and reinforce["speed_vs_sb3"] is None  # SB3 has no REINFORCE


def test_markdown(tiny):
    report, _ = tiny
    meta = bench_meta("cpu", 0.0, compile=False)
    text = render_agents_markdown(report, meta)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| algorithm | env | target | implementation |")
    assert len(table) == 1 + len(report["rows"])
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert "| a2c | CartPole-v1 | ≥ 500 | SB3 (RL Zoo) | cpu | 8 | 1 |" in text
    assert "| reinforce | rlcourse/CartPole-v1 | ≥ 475 | rlcourse (preset) | cpu | 8 | 1 |" in text
    assert "(0/1)" in text or "(1/1)" in text
    assert f"{report['rows'][0]['speed_vs_sb3']:.2f}×" in text


def test_rows_that_cannot_run_are_skipped_with_a_note(monkeypatch):
    monkeypatch.delitem(ALGOS, "rainbow")
    monkeypatch.setattr(
        bench_agents,
        "ROWS",
        (AgentRow("rainbow", "rlcourse/CartPole-v1", 475.0), AgentRow("reinforce", "Pendulum-v1", -200.0)),
    )
    report = run_agents_bench("cpu", ["rainbow", "reinforce"], seeds=1, sb3_seeds=1)
    rainbow, reinforce = report["rows"]
    assert rainbow["runs"] == [] and "not in rlcourse.agents.ALGOS" in rainbow["note"]
    assert reinforce["runs"] == [] and "no preset for Pendulum-v1" in reinforce["note"]
    text = render_agents_markdown(report, bench_meta("cpu", 0.0))
    assert "skipped: rainbow is not in rlcourse.agents.ALGOS" in text and "Skipped:" in text
    assert "cuda" in skip_reason("a3c", "rlcourse/CartPole-v1", torch.device("cuda"))
    assert skip_reason("a3c", "rlcourse/CartPole-v1", torch.device("cpu")) is None


def test_a3c_envs_read_workers_times_envs(tiny):
    report, _ = tiny
    a3c = dict(report["rows"][-1], algo="a3c", workers=8, num_envs=4)
    text = render_agents_markdown({"rows": [a3c]}, bench_meta("cpu", 0.0))
    assert "| cpu | 8 × 4 | 1 |" in text and "A3C: evaluations run while its workers keep training" in text


def test_the_zoo_settings_are_rl_zoos():
    """sb3_zoo.yml as RL Zoo publishes it: ``lin_x`` schedules and σ-noise become SB3 objects."""
    from stable_baselines3.common.env_util import make_vec_env

    assert SB3_ZOO["ppo"].hparams["learning_rate"] == "lin_1e-3" and SB3_ZOO["dqn"].hparams["learning_rate"] == 2.3e-3
    model = sb3.sb3_model("ppo", make_vec_env("CartPole-v1", 8), 0)
    assert (model.n_steps, model.batch_size, model.n_epochs, model.gamma) == (32, 256, 20, 0.98)
    assert model.learning_rate(1.0) == pytest.approx(1e-3) and model.learning_rate(0.5) == pytest.approx(5e-4)
    assert model.clip_range(1.0) == pytest.approx(0.2) and model.clip_range(0.0) == pytest.approx(0.0)
    ddpg = sb3.sb3_model("ddpg", make_vec_env("Pendulum-v1", 1), 0)
    assert ddpg.action_noise._sigma.tolist() == [0.1]


def test_sb3_evaluates_at_the_same_interval_as_rlcourse():
    """SB3 rows evaluate every N rollouts; a rollout must have as many env steps as an rlcourse iteration."""
    from stable_baselines3.common.env_util import make_vec_env

    for algo, setup in SB3_ZOO.items():
        row = next(r for r in ROWS if r.algo == algo)
        preset = load_preset(algo, row.env_id)
        hparams = {k: v for k, v in preset.items() if k not in ("num_envs", "total_timesteps")}
        ours = ALGOS[algo](row.env_id, num_envs=preset["num_envs"], device="cpu", **hparams).steps_per_iteration
        theirs = sb3.rollout_steps(sb3.sb3_model(algo, make_vec_env(setup.env_id, setup.n_envs), 0))
        assert theirs == ours, algo


def test_large_batch_settings_are_valid_configs_for_every_row():
    from rlcourse.config import RUN_KEYS, make_config

    rows = [row for row in ROWS if row.large_batch is not None]
    assert {row.algo for row in rows} == {"dqn", "rainbow", "a2c", "reinforce", "ddpg", "ppo", "pqn"}
    for row in rows:
        assert row.large_batch in preset_names(row.algo, row.env_id), row
        settings = bench_agents.large_batch_settings(row)
        assert settings["num_envs"] > 1 and settings["total_timesteps"] > 0
        assert row.large_batch == f"large_batch_{settings['num_envs']}", "variants are named by their env count"
        make_config(ALGOS[row.algo].config_class, {k: v for k, v in settings.items() if k not in RUN_KEYS})


def test_large_batch_rows_use_their_settings_and_stay_off_on_the_cpu_by_default(monkeypatch):
    small = {"num_envs": 16, "total_timesteps": 4096, "n_steps": 8, "optimizer": "adam", "learning_rate": 3e-3}
    monkeypatch.setattr(bench_agents, "large_batch_settings", lambda row: dict(small) if row.algo == "a2c" else None)
    report = run_agents_bench(
        "cpu", ["a2c"], seeds=1, sb3_seeds=0, budgets={"a2c": 1024}, throughput_seconds=0.05, large_batch=True
    )
    rows = _rows(report, "a2c")
    assert set(rows) == {bench_agents.RLCOURSE_IMPLEMENTATION, bench_agents.LARGE_BATCH_IMPLEMENTATION}
    large = rows[bench_agents.LARGE_BATCH_IMPLEMENTATION]
    assert (large["num_envs"], large["budget"], large["device"]) == (16, 1024, "cpu")
    assert large["runs"][0]["steps_trained"] >= 1024
    assert "rlcourse (large batch)" in render_agents_markdown(report, bench_meta("cpu", 0.0, compile=False))
    default = run_agents_bench("cpu", ["a2c"], seeds=1, sb3_seeds=0, budgets={"a2c": 256}, throughput_seconds=0.05)
    assert [row["implementation"] for row in default["rows"]] == [bench_agents.RLCOURSE_IMPLEMENTATION]


def test_turning_every_rlcourse_row_off_is_a_clear_error():
    from click.testing import CliRunner

    from rlcourse.app.cli import cli

    with pytest.raises(ValueError, match="nothing to run"):
        run_agents_bench("cpu", ["a2c"], seeds=1, sb3_seeds=1, presets=False)
    result = CliRunner().invoke(cli, ["bench", "--suite", "agents", "--device", "cpu", "--no-preset-rows"])
    assert result.exit_code == 2 and "--large-batch" in result.output and "Traceback" not in result.output
