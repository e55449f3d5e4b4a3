"""Populations (``--seeds``): member k of a batched run is the plain run of seed k, hyperparameters may differ per
member, resume, logs and eval.json per seed, grouped env streams, and bad inputs."""

from __future__ import annotations

import json

import pytest
import torch
from agent_checks import (
    assert_resume_matches_an_uninterrupted_run,
    one_error_line,
    scalar_tags,
    train_with_the_cli,
)

from rlcourse import make_vec
from rlcourse.agents import A2C, PPO
from rlcourse.agents.population import (
    A2CPopulation,
    PPOPopulation,
    interquartile_mean,
    parse_seeds,
    population_class,
)
from rlcourse.app.train_seeds import parse_vary
from rlcourse.vec_env import GeneratorGroup, draw_uniform

CARTPOLE = "rlcourse/CartPole-v1"
ENVS = 4  # per member
SETTINGS = {
    "ppo": (PPO, PPOPopulation, dict(n_steps=16, batch_size=32, n_epochs=2), 16 * ENVS * 3),
    "a2c": (A2C, A2CPopulation, dict(n_steps=8), 8 * ENVS * 6),
}
#: Member parameters against the plain run's, after a few iterations: the batched matrix products round differently.
TOLERANCE = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def population(algo: str, seeds, **overrides):
    _, population_type, hparams, _ = SETTINGS[algo]
    return population_type(CARTPOLE, seeds=seeds, num_envs=ENVS, device="cpu", preset=None, **{**hparams, **overrides})


def plain(algo: str, seed: int, **overrides):
    agent_type, _, hparams, _ = SETTINGS[algo]
    return agent_type(CARTPOLE, num_envs=ENVS, device="cpu", seed=seed, preset=None, **{**hparams, **overrides})


def assert_member_is_the_plain_run(batch, k: int, single) -> None:
    """Same actions and rewards in the last rollout, same observations now, same logs, parameters within tolerance."""
    rows = slice(k * ENVS, (k + 1) * ENVS)
    assert torch.equal(batch.buffer.actions[:, rows], single.buffer.actions)
    assert torch.equal(batch.buffer.dones[:, rows], single.buffer.dones)
    torch.testing.assert_close(batch.buffer.rewards[:, rows], single.buffer.rewards, rtol=0, atol=TOLERANCE)
    assert torch.equal(batch.obs[rows], single.obs)
    assert batch.member_logs[k]["rollout/ep_rew_mean"] == single.last_log["rollout/ep_rew_mean"]
    assert batch.member_logs[k]["train/loss"] == pytest.approx(single.last_log["train/loss"], rel=1e-4)
    weights = batch.member_weights(k)
    for name, value in single.policy.state_dict().items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=TOLERANCE)


# ============================================================================= member k == the plain run of seed k
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_each_member_equals_the_plain_run_of_its_seed(algo):
    steps = SETTINGS[algo][3]
    batch = population(algo, [3, 0, 11]).learn(steps)
    assert batch.num_timesteps == steps  # every member's own steps
    for k, seed in enumerate(batch.seeds):
        assert_member_is_the_plain_run(batch, k, plain(algo, seed).learn(steps))


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_a_population_of_one_seed_is_its_plain_run(algo):
    # one member still has a member dimension (--seeds 5): its samples must not lose it to the plain layout
    steps = SETTINGS[algo][3]
    batch = population(algo, [5]).learn(steps)
    assert_member_is_the_plain_run(batch, 0, plain(algo, 5).learn(steps))


@pytest.mark.parametrize(
    "algo, varied",
    [
        (
            "ppo",
            {"learning_rate": [3e-3, 3e-4], "clip_range": [0.1, 0.3], "ent_coef": [0.0, 0.05], "gamma": [0.9, 0.99]},
        ),
        ("a2c", {"learning_rate": [7e-4, 3e-3], "gae_lambda": [1.0, 0.8], "vf_coef": [0.5, 1.0]}),
    ],
)
def test_varied_hyperparameters_differ_and_each_member_is_its_plain_run(algo, varied):
    steps = SETTINGS[algo][3]
    batch = population(algo, [1, 1 + 1], member_hparams=varied, anneal_lr=True).learn(steps)
    singles = [
        plain(algo, seed, anneal_lr=True, **{name: values[k] for name, values in varied.items()}).learn(steps)
        for k, seed in enumerate(batch.seeds)
    ]
    for k, single in enumerate(singles):
        assert_member_is_the_plain_run(batch, k, single)
    assert not torch.equal(singles[0].buffer.actions, singles[1].buffer.actions)
    assert batch.member_logs[0]["train/loss"] != batch.member_logs[1]["train/loss"]


def test_the_same_seed_with_another_setting_is_a_different_member():
    batch = population("ppo", [4, 5], member_hparams={"learning_rate": [1e-2, 1e-2]}).learn(SETTINGS["ppo"][3])
    single = plain("ppo", 5, learning_rate=1e-2).learn(SETTINGS["ppo"][3])
    assert_member_is_the_plain_run(batch, 1, single)


# ============================================================================= resume, logs, eval.json
def test_resume_continues_the_whole_batch_bit_for_bit(tmp_path):
    def make(run_dir=None):
        return population("ppo", [2, 6], run_dir=run_dir, member_hparams={"ent_coef": [0.0, 0.01]})

    straight, resumed = assert_resume_matches_an_uninterrupted_run(
        make, tmp_path, total=16 * ENVS * 4, half=16 * ENVS * 2
    )
    assert resumed.member_hparams == {"ent_coef": [0.0, 0.01]} and resumed.seeds == [2, 6]


def test_each_member_logs_to_its_own_folder_and_eval_json_has_a_row_per_seed(tmp_path):
    batch = population("ppo", [0, 1, 2, 3], run_dir=tmp_path / "run").learn(SETTINGS["ppo"][3])
    result = batch.write_eval(n_episodes=3)
    for seed in batch.seeds:
        tags = scalar_tags(tmp_path / "run" / f"seed_{seed}")
        assert {"rollout/ep_rew_mean", "train/loss", "train/approx_kl"} <= tags
    aggregate = scalar_tags(tmp_path / "run")
    assert {f"rollout/ep_rew_mean{end}" for end in ("", "_iqm", "_min", "_max")} <= aggregate
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert [row["seed"] for row in saved["seeds"]] == batch.seeds
    means = [row["mean_reward"] for row in saved["seeds"]]
    assert saved["mean_reward_min"] == min(means) and saved["mean_reward_max"] == max(means)
    assert result["mean_reward"] == pytest.approx(sum(means) / len(means))


def test_a_member_evaluates_as_the_plain_run_of_its_seed_does():
    steps = SETTINGS["ppo"][3]
    batch = population("ppo", [8, 9]).learn(steps)
    batch.evaluate(n_episodes=4)
    assert batch.member_eval[1] == plain("ppo", 9).learn(steps).evaluate(n_episodes=4)


def test_batch_streams_give_distinct_reproducible_members():
    steps = SETTINGS["ppo"][3]
    first, again = (population("ppo", [0, 1], streams="batch").learn(steps) for _ in range(2))
    assert torch.equal(first.buffer.actions, again.buffer.actions)
    assert not torch.equal(first.buffer.actions[:, :ENVS], first.buffer.actions[:, ENVS:])
    assert first.member_weights(1)["policy_net.0.weight"].ne(again.member_weights(1)["policy_net.0.weight"]).sum() == 0
    with pytest.raises(ValueError, match="streams must be one of member, batch"):
        population("ppo", [0], streams="own")


def test_interquartile_mean_by_hand():
    assert interquartile_mean([100.0, 1.0, 2.0, 3.0, 4.0, -50.0, 5.0, 6.0]) == pytest.approx(3.5)  # mean of 2..5
    assert interquartile_mean([7.0]) == 7.0


# ============================================================================= grouped env streams
def test_a_group_of_sub_envs_draws_what_an_env_of_its_size_draws():
    grouped = make_vec(CARTPOLE, 6, "cpu")
    grouped.split_streams(2)
    obs, _ = grouped.reset(seed=[10, 20])
    alone = [make_vec(CARTPOLE, 3, "cpu") for _ in range(2)]
    firsts = [env.reset(seed=seed)[0] for env, seed in zip(alone, (10, 20))]
    assert torch.equal(obs, torch.cat(firsts))
    actions = torch.tensor([0, 1, 1, 0, 1, 0])
    for _ in range(30):  # through several resets
        obs = grouped.step(actions)[0]
        assert torch.equal(obs, torch.cat([env.step(actions[i * 3 : i * 3 + 3])[0] for i, env in enumerate(alone)]))
    assert grouped.state_dict()["generator"].shape[0] == 2


def test_a_generator_group_draws_each_group_from_its_own_generator():
    group = GeneratorGroup([torch.Generator().manual_seed(s) for s in (1, 2)])
    expected = torch.cat([torch.rand(2, 3, generator=torch.Generator().manual_seed(s)) for s in (1, 2)])
    assert torch.equal(draw_uniform((4, 3), group, torch.device("cpu")), expected)
    with pytest.raises(ValueError, match="does not split into 2 groups"):
        draw_uniform((3,), group, torch.device("cpu"))
    with pytest.raises(ValueError, match="one seed per group"):
        group.manual_seed(5)


# ============================================================================= bad inputs
def test_seed_lists_parse():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5, 1-2,9") == [5, 1, 2, 9]


@pytest.mark.parametrize(
    "text, match",
    [
        ("5-2", "runs downward"),
        ("x", "is not a seed"),
        ("1,0-2", "repeats"),
        ("", "is not a seed"),
        ("-3", "not a seed"),
    ],
)
def test_bad_seed_ranges_are_refused(text, match):
    with pytest.raises(ValueError, match=match):
        parse_seeds(text)


def test_bad_varied_settings_are_refused():
    with pytest.raises(ValueError, match="2 values for 3 seeds"):
        parse_vary(["learning_rate=0.1,0.2"], 3)
    with pytest.raises(ValueError, match="'fast' is not a number"):
        parse_vary(["learning_rate=0.1,fast"], 2)
    with pytest.raises(ValueError, match="learning_rate is given twice"):  # the second must not silently win
        parse_vary(["learning_rate=0.1,0.2", "learning_rate=0.3,0.4"], 2)
    with pytest.raises(ValueError, match="'n_steps' cannot differ"):
        population("ppo", [0, 1], member_hparams={"n_steps": [8, 16]})
    with pytest.raises(ValueError, match="'activation' cannot differ"):
        population("ppo", [0, 1], member_hparams={"activation": ["tanh", "relu"]})
    with pytest.raises(ValueError, match="plain numbers"):
        population("a2c", [0, 1], member_hparams={"gamma": [0.9, "high"]})
    with pytest.raises(ValueError, match="1 values for 2 members"):
        population("a2c", [0, 1], member_hparams={"gamma": [0.9]})
    with pytest.raises(ValueError, match=r"member 1 \(seed 1\): gamma must be in"):
        population("a2c", [0, 1], member_hparams={"gamma": [0.9, 1.5]})


def test_what_a_population_cannot_train_is_refused():
    with pytest.raises(ValueError, match=r"populations \(seeds\) are supported by ppo and a2c, not dqn"):
        population_class("dqn")
    with pytest.raises(ValueError, match="cannot train data-parallel"):
        population("ppo", [0, 1], distributed=True)
    with pytest.raises(ValueError, match="target_kl"):
        population("ppo", [0, 1], target_kl=0.01)
    with pytest.raises(ValueError, match="declares groupable"):
        PPOPopulation("rlcourse/Pendulum-v1", seeds=[0, 1], num_envs=2, device="cpu", preset=None, batch_size=32)
    with pytest.raises(ValueError, match="repeats"):
        population("ppo", [1, 1])
    with pytest.raises(ValueError, match=r"one seed per member \(seeds=...\), not seed=3"):
        population("ppo", [0, 1], seed=3)
    # the minibatch is per member, and so is the arithmetic the error shows: 16 steps x 4 envs per member
    with pytest.raises(ValueError, match=r"batch_size \(48\) must divide n_steps \* num_envs \(16 \* 4 = 64\)"):
        population("ppo", [0, 1], batch_size=48)
    with pytest.raises(ValueError, match="predict"):
        population("ppo", [0]).predict(torch.zeros(4))


# ============================================================================= the CLI
def test_cli_trains_a_population_and_refuses_bad_seeds(tmp_path, capsys):
    train_with_the_cli(
        "ppo", CARTPOLE, "--seeds", "0-1", "--num-envs", "2", "--total-steps", "128", "--preset", "none",
        "--hp", "n_steps=32", "--hp", "batch_size=32", "--hp", "n_epochs=1", "--vary", "learning_rate=0.001,0.003",
        "--runs-root", tmp_path, "--name", "pop", "--no-progress", "--eval-episodes", "2", "--device", "cpu",
    )  # fmt: skip
    run = tmp_path / "rlcourse_CartPole-v1" / "ppo" / "pop"
    saved = json.loads((run / "eval.json").read_text())
    assert [row["seed"] for row in saved["seeds"]] == [0, 1]
    assert "rollout/ep_rew_mean" in scalar_tags(run / "seed_1")
    resumed = train_with_the_cli("--resume", run, "--no-progress", "--eval-episodes", "2")
    assert "already finished" in resumed and "per seed: mean return IQM" in resumed
    capsys.readouterr()
    from rlcourse.app.cli import main

    assert main(["eval", str(run), "--episodes", "2", "--device", "cpu"]) == 0  # the population, not a plain PPO
    assert [row["seed"] for row in json.loads((run / "eval.json").read_text())["seeds"]] == [0, 1]
    capsys.readouterr()
    assert "play shows one agent" in one_error_line(["play", run, "--device", "cpu"], capsys)
    for bad, match in [
        (["--seeds", "5-2"], "runs downward"),
        (["--seeds", "x"], "is not a seed"),
        (["--seeds", "0-1", "--vary", "gamma=0.9"], "1 values for 2 seeds"),
        (["--seeds", "0-1", "--vary", "net_arch=1,2"], "cannot differ"),
        (["--vary", "gamma=0.9"], "--vary needs --seeds"),
        (["--seeds", "0-1", "--distributed"], "--seeds cannot be combined with --distributed"),
        (["--seeds", "0-1", "--seed", "3"], "--seeds cannot be combined with --seed"),
        (["--seeds", "0-1", "--resume", tmp_path], "--resume continues a run with the seeds"),
        (["--seeds", "0-1", "--hp", "curiosity=true"], "plug-ins (curiosity) are not supported"),
    ]:
        line = one_error_line(["train", "ppo", CARTPOLE, "--runs-root", str(tmp_path), *bad], capsys)
        assert match in line
    line = one_error_line(["train", "dqn", CARTPOLE, "--seeds", "0-1", "--runs-root", str(tmp_path)], capsys)
    assert "--seeds is supported by ppo and a2c" in line


# ============================================================================= the bench suite
def test_seeds_bench_reports_the_population_and_the_projection(tmp_path):
    from rlcourse.app.cli import main

    code = main(
        ["bench", "--suite", "seeds", "--seeds", "2", "--num-envs", "8", "--max-steps", "256", "--device", "cpu"]
        + ["--out", str(tmp_path)]
    )
    assert code == 0
    (report_file,) = tmp_path.glob("bench-seeds-*.json")
    report = json.loads(report_file.read_text())
    population, plain_runs = report["population"], report["plain"]
    assert population["members"] == 2 and population["steps_per_member"] == 256 and len(population["returns"]) == 2
    assert population["solved"] == sum(value >= 475 for value in population["returns"])
    assert plain_runs["projected_s"] == pytest.approx(plain_runs["mean_wall_s"] * 2)
    assert "PPO CartPole agents at once" in next(tmp_path.glob("bench-seeds-*.md")).read_text()
