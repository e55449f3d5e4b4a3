"""``rlcourse bench``: structure and arithmetic of the report on tiny CPU budgets (never a wall-clock assertion),
the settings per batch size, and the shape of the bench package (no import circle)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import rlcourse.app.bench
from rlcourse.agents import PPOConfig
from rlcourse.app.bench import cartpole, harness
from rlcourse.app.bench.cartpole import BenchRow, add_sb3_ratios, large_batch_hparams, render_markdown, run_bench
from rlcourse.app.bench.command import bench_command
from rlcourse.app.bench.harness import bench_meta
from rlcourse.app.bench.report import write_report
from rlcourse.config import RUN_KEYS, load_preset, make_config

TINY = dict(device="cpu", num_envs=[16], seeds=1, max_steps=5000, sb3_max_steps=2000, throughput_seconds=0.05)


def _write(rows, meta, out_dir):
    """The cartpole suite's report files, as ``rlcourse bench`` writes them."""
    return write_report(render_markdown(rows, meta), {"rows": rows}, meta, out_dir)


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
    assert ours["runs"][0]["throughput_iterations"] >= harness.THROUGHPUT_MIN_ITERATIONS


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
    md_path, json_path = _write(reachable, meta, tmp_path / "out")
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
    rows = run_bench(
        device="cpu",
        num_envs=[16],
        seeds=1,
        target=10_000.0,
        max_steps=1024,
        sb3_max_steps=512,
        eval_every=1,
        throughput_seconds=0.05,
    )
    for row in rows:
        assert row["time_to_target_s"] is None and row["steps_to_target"] is None and row["reached"] == 0
        assert row["time_to_target_vs_sb3"] is None
    ours = _row(rows, "rlcourse PPO")
    assert ours["runs"][0]["steps_trained"] >= 1024  # trained the whole budget
    md_path, _ = _write(rows, bench_meta("cpu", 10_000.0), tmp_path)
    assert "| never | never |" in md_path.read_text()


def test_quality_suite(monkeypatch):
    preset = {**load_preset("ppo", cartpole.ENV_ID), "total_timesteps": 512}
    monkeypatch.setattr(cartpole, "load_preset", lambda algo, env_id, name="default": dict(preset))
    monkeypatch.setattr(cartpole, "RL_ZOO_STEPS", 512)
    rows = run_bench(
        device="cpu",
        num_envs=[16],
        seeds=2,
        target=10_000.0,
        max_steps=256,
        sb3_max_steps=512,
        quality=True,
        eval_every=1,
        throughput_seconds=0.05,
    )
    sb3, ours = _row(rows, "SB3 PPO (RL Zoo)", "quality"), _row(rows, "rlcourse PPO (preset)", "quality")
    assert [r["seed"] for r in ours["runs"]] == [0, 1] == [r["seed"] for r in sb3["runs"]]
    assert ours["num_envs"] == preset["num_envs"]
    assert all(r["steps_trained"] >= 512 for r in ours["runs"])
    assert _row(rows, "SB3 PPO")["runs"] == sb3["runs"]  # same seeds and budget: the speed runs are reused
    assert ours["speed_vs_sb3"] == pytest.approx(ours["steps_per_s"] / sb3["steps_per_s"])


def test_ratio_arithmetic_on_synthetic_rows():
    def run(steps_per_s, ttt):
        return {
            "seed": 0,
            "steps_per_s": steps_per_s,
            "time_to_target_s": ttt,
            "steps_to_target": 1 if ttt else None,
            "final_mean": 500.0,
            "final_std": 0.0,
        }

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


def _variant_hparams(env_id, name):
    return {key: value for key, value in load_preset("ppo", env_id, name).items() if key not in RUN_KEYS}


def test_each_tier_runs_its_preset_variant():
    """At its own env count a tier's variant runs as written; in between, the number of minibatches is kept."""
    for n in (64, 1024, 4096, 262_144):
        assert large_batch_hparams(n) == _variant_hparams(cartpole.ENV_ID, f"large_batch_{n}"), n
    assert large_batch_hparams(16)["batch_size"] == 16 * 16 // 4  # large_batch_64: 4 minibatches of a 16-step rollout
    assert large_batch_hparams(256)["batch_size"] == 256 * 16 // 4
    assert large_batch_hparams(2048)["batch_size"] == 2048 * 16 // 8  # large_batch_1024: 8 minibatches
    assert large_batch_hparams(1 << 20)["batch_size"] == 65536  # the largest tier keeps its minibatch size
    tiers = ("large_batch_64", "large_batch_1024", "large_batch_4096", "large_batch_262144")
    assert tuple(t.variant for t in cartpole.LARGE_BATCH_TIERS) == tiers


def test_dialogue_tiers_run_the_default_preset_and_its_large_batch_variants():
    from rlcourse.app.bench.dialogue import ENV_ID, ppo_hparams

    default = _variant_hparams(ENV_ID, "default")
    assert ppo_hparams(64) == default
    assert ppo_hparams(16) == {**default, "batch_size": 512}  # one minibatch: the whole 32 × 16 rollout
    assert ppo_hparams(4096) == _variant_hparams(ENV_ID, "large_batch_4096")
    assert ppo_hparams(65536) == _variant_hparams(ENV_ID, "large_batch_65536")
    assert ppo_hparams(1024)["batch_size"] == 1024 * 16 // 4


def _package_imports(path: Path) -> set[str]:
    """The modules of ``rlcourse.app.bench`` that a file imports (at any depth in the file)."""
    package, names = "rlcourse.app.bench", set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == package:  # from rlcourse.app.bench import cartpole
            modules = [f"{package}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        names |= {m.removeprefix(f"{package}.").split(".")[0] for m in modules if m.startswith(f"{package}.")}
    return names


def test_the_bench_package_has_no_import_circle():
    """Suites import the shared modules (harness, report, sb3), never each other; shared ones import no suite;
    only the command imports the suites."""
    folder = Path(rlcourse.app.bench.__file__).parent
    modules = {path.stem: _package_imports(path) for path in folder.glob("*.py") if path.stem != "__init__"}
    shared = {"harness", "report", "sb3"}
    suites = {
        "cartpole": {"cartpole"},
        "agents": {"agents", "agents_report"},
        "dialogue": {"dialogue"},
        "threads": {"threads"},
        "plugins": {"plugins", "imitation_reference"},  # the reference script runs in imitation's own Python
        "pokemon": {"pokemon", "elo"},
        "scale": {"scale"},
        "chatbot": {"chatbot"},
        "seqgan": {"seqgan"},
        "seeds": {"seeds"},
    }
    assert shared | set().union(*suites.values()) | {"command"} == set(modules), sorted(modules)
    for members in suites.values():
        for member in members:  # a suite's report module may read its own suite's names, never another suite's
            assert modules[member] <= shared | (members - {member}), (member, modules[member])
    assert "agents_report" not in modules["agents"]  # rendering follows running, not the reverse
    assert modules["harness"] == set() and modules["report"] == set() and modules["sb3"] <= {"harness"}
    assert "command" not in set().union(*modules.values())


def test_no_private_names_cross_the_bench_modules():
    folder = Path(rlcourse.app.bench.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rlcourse"):
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                assert not private, (path.name, node.module, private)


@pytest.mark.parametrize(
    "args",
    [
        ["--num-envs", "0"],
        ["--num-envs", "-3"],
        ["--seeds", "0"],
        ["--max-steps", "0"],
        ["--sb3-max-steps", "0"],
        ["--eval-every", "0"],
        ["--device", "tpu"],
        ["--target", "nan"],
        ["--target", "abc"],
    ],
)
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
    measure = cartpole.measure_throughput
    monkeypatch.setattr(cartpole, "measure_throughput", lambda agent, seconds: measure(agent, 0.05))
    result = CliRunner().invoke(
        bench_command,
        [
            "--device",
            "cpu",
            "--num-envs",
            "16",
            "--max-steps",
            "1024",
            "--no-sb3",
            "--target",
            "10000",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "device: " in result.output and "| rlcourse PPO | cpu | 16 |" in result.output
    assert len(list(tmp_path.glob("bench-cpu-*.md"))) == 1 and len(list(tmp_path.glob("bench-cpu-*.json"))) == 1


def test_dialogue_suite_rows_and_report():
    from rlcourse.app.bench.dialogue import render_dialogue_markdown, run_dialogue_bench

    report = run_dialogue_bench(
        torch.device("cpu"),
        num_envs=[16],
        seeds=1,
        nlu_presets=["tcbot"],
        env_num_envs=[32],
        budget=2048,
        sb3_seeds=1,
        compile=False,
        expert_dialogues=200,
        sb3_budget=256,
    )
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
    meta = {
        "device_name": "test cpu",
        "device": "cpu",
        "date": "2026-01-01",
        "torch": torch.__version__,
        "stable_baselines3": "x",
        "compile": False,
        "tf32": False,
    }
    text = render_dialogue_markdown(report, meta)
    assert "| rule expert" not in text and "| pydial30 | 200 |" in text
    assert (
        "| rlcourse PPO | tcbot | cpu | 16 | 1 |" in text and "| SB3 PPO (single env) | tcbot | cpu | 8 | 1 |" in text
    )


def test_dialogue_suite_rejects_an_unknown_nlu_preset():
    from rlcourse.app.cli import main

    assert main(["bench", "--suite", "dialogue", "--nlu", "nope", "--device", "cpu"]) == 2


def test_agents_suite_rejects_an_unknown_algorithm_from_the_cli(capsys):
    from rlcourse.app.cli import main

    assert (
        main(["bench", "--suite", "agents", "--algo", "nope", "--device", "cpu", "--out", "/nonexistent-never-written"])
        == 2
    )
    assert "unknown algorithm 'nope'" in capsys.readouterr().err
