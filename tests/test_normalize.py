"""``normalize``, RL Zoo's key, as a preset / config / ``--hp`` setting: one parser, one way to wrap an env,
applied alike by ``Agent(...)`` and ``rlcourse train``, recorded in config.yaml and checkpoints, and rebuilt
with its statistics by ``Agent.load``, ``rlcourse eval``, ``play`` and ``--resume`` (plug-in runs too).

Runs are tiny: 512 CartPole steps, or one 2048-step MountainCar iteration.
"""

from __future__ import annotations

import json

import pytest
import test_cli
import torch
import yaml
from test_cli import assert_same, invoke, load_payload
from test_plugin_cli import one_error_line

import rlcourse
from rlcourse.agents import PPO
from rlcourse.app.cli import main
from rlcourse.app.plugins import Plugins, build_env
from rlcourse.checkpoint import CheckpointError
from rlcourse.config import ConfigError, Normalization, load_preset, parse_normalize
from rlcourse.wrappers import NormalizeObservation, NormalizeReward, normalize_env, wrapped_observation, wrapper_chain

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # runs compared bit for bit share the thread count
interrupt_at = test_cli.interrupt_at

CARTPOLE, MOUNTAIN_CAR = "rlcourse/CartPole-v1", "rlcourse/MountainCar-v0"
COMMON = ["--eval-episodes", "2", "--no-progress", "--device", "cpu"]
SMALL_PPO = ["--num-envs", "4", "--hp", "n_steps=16", "--hp", "batch_size=32", "--hp", "n_epochs=1"]
BOTH, OBSERVATION = Normalization(True, True), Normalization(observation=True)


# --------------------------------------------------------------------------- the parser
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, BOTH),  # RL Zoo's `normalize: true`: observations and rewards
        (False, Normalization()),
        ({"observation": True, "reward": False}, OBSERVATION),
        ({"reward": True}, Normalization(reward=True)),  # a key left out is false
        ({"norm_obs": True, "norm_reward": False}, OBSERVATION),  # RL Zoo's names
        (Normalization(reward=True), Normalization(reward=True)),
    ],
)
def test_the_parser_reads_each_form(value, expected):
    assert parse_normalize(value) == expected
    assert parse_normalize(expected.record()) == expected  # what config.yaml and checkpoints hold reads back


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("maybe", "bad value 'maybe' for normalize (from --hp): expected true (observations and rewards"),
        (1, "bad value 1 for normalize (from --hp): expected true"),
        (None, "bad value None for normalize (from --hp)"),
        ({"observation": 1}, "bad value 1 for normalize (from --hp).observation: expected true or false"),
        ({"observations": True}, "unknown key 'observations' in normalize (from --hp); did you mean 'observation'?"),
        ({"norm_obs": True, "observation": False}, "sets observation twice"),
    ],
)
def test_the_parser_names_the_key_and_the_forms(value, message):
    with pytest.raises(ConfigError) as error:
        parse_normalize(value, "--hp")
    assert message in str(error.value) and "\n" not in str(error.value)
    if not isinstance(value, dict):
        assert "or a mapping {observation: true|false, reward: true|false}" in str(error.value)


def test_normalize_env_wraps_observations_then_rewards_with_gamma():
    env = normalize_env(rlcourse.make_vec(CARTPOLE, 2), True, gamma=0.9)
    assert isinstance(env, NormalizeReward) and isinstance(env.env, NormalizeObservation) and env.gamma == 0.9
    assert normalize_env(env.env.env, False) is env.env.env
    with pytest.raises(ValueError, match="under NormalizeObservation already"):
        normalize_env(env, {"observation": True})


# --------------------------------------------------------------------------- the Python API
def test_the_mountain_car_preset_normalises_observations():
    assert load_preset("ppo", MOUNTAIN_CAR)["normalize"] == {"observation": True, "reward": False}
    agent = PPO(MOUNTAIN_CAR, device="cpu")
    assert isinstance(agent.env, NormalizeObservation) and type(agent.env.env).__name__ == "MountainCarVecEnv"
    assert agent.normalize == OBSERVATION
    for bare in (PPO(MOUNTAIN_CAR, device="cpu", preset=None), PPO(MOUNTAIN_CAR, device="cpu", normalize=False)):
        assert not isinstance(bare.env, NormalizeObservation) and bare.normalize == Normalization()
    both = PPO(MOUNTAIN_CAR, device="cpu", normalize=True)  # explicit beats the preset; γ is the config's
    assert isinstance(both.env, NormalizeReward) and both.env.gamma == both.config.gamma == 0.99
    with pytest.raises(ConfigError, match="bad value 'yes' for normalize"):
        PPO(CARTPOLE, device="cpu", normalize="yes")


def test_an_env_instance_is_wrapped_only_when_asked():
    env = rlcourse.make_vec(MOUNTAIN_CAR, 16)
    agent = PPO(env, device="cpu")  # the preset's hyperparameters apply, its normalize does not
    assert agent.env is env and agent.normalize == Normalization()
    agent = PPO(env, device="cpu", normalize={"reward": True}, gamma=0.95)
    assert isinstance(agent.env, NormalizeReward) and agent.env.env is env and agent.env.gamma == 0.95
    by_hand = NormalizeObservation(rlcourse.make_vec(MOUNTAIN_CAR, 16))  # as the plugins bench builds it
    assert PPO(by_hand, device="cpu").normalize == OBSERVATION  # what the env normalises, whoever wrapped it
    with pytest.raises(ValueError, match="under NormalizeObservation already"):
        PPO(by_hand, device="cpu", normalize=True)


def test_save_and_load_rebuild_the_wrappers_with_their_statistics(tmp_path):
    agent = PPO(CARTPOLE, device="cpu", num_envs=4, n_steps=16, batch_size=32, normalize=True, seed=3)
    agent.learn(256)
    path = agent.save(tmp_path / "agent.pt")
    loaded = PPO.load(path, device="cpu")
    assert loaded.normalize == BOTH and isinstance(loaded.env, NormalizeReward)
    assert isinstance(loaded.env.env, NormalizeObservation)
    assert loaded.env.env.rms.count.item() == agent.env.env.rms.count.item() > 256  # learned, not fresh
    assert_same(loaded.env.state_dict(), agent.env.state_dict(), "env")
    raw, _ = rlcourse.make_vec(CARTPOLE, 64).reset(seed=11)
    raw = raw * 3  # far from the statistics' mean, where a wrong normalisation changes the actions
    seen = wrapped_observation(agent.env, raw)
    assert not torch.allclose(seen, raw)
    assert torch.equal(wrapped_observation(loaded.env, raw), seen)
    assert torch.equal(loaded.predict(seen), agent.predict(seen))
    fresh = PPO(CARTPOLE, device="cpu", num_envs=4, n_steps=16, batch_size=32, normalize=True, seed=3)
    assert not torch.equal(wrapped_observation(fresh.env, raw), seen)  # so the statistics did load
    needs = "needs an env under NormalizeReward > NormalizeObservation for its learned statistics"
    with pytest.raises(CheckpointError, match=f"{needs}, but this env is under no wrapper$"):
        PPO.load(path, device="cpu", env=rlcourse.make_vec(CARTPOLE, 4))


# --------------------------------------------------------------------------- the command line
def read_config(run) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_a_normalised_cli_run_is_recorded_evaluated_resumed_and_reused(tmp_path, interrupt_at, capsys):
    root = tmp_path / "runs"
    args = ["train", "ppo", CARTPOLE, "--hp", "normalize=true", "--total-steps", "512", *SMALL_PPO, *COMMON]
    invoke(*args, "--runs-root", root, "--name", "whole")
    whole = root / "rlcourse_CartPole-v1" / "ppo" / "whole"
    assert read_config(whole)["normalize"] == {"observation": True, "reward": True}
    assert [level["wrapper"] for level in load_payload(whole)["wrappers"]] == [
        "NormalizeReward",
        "NormalizeObservation",
    ]
    interrupt_at(256)
    invoke(*args, "--runs-root", root, "--name", "cut", expect=130)
    cut = whole.parent / "cut"
    assert load_payload(cut)["counters"]["num_timesteps"] == 256
    resumed = invoke("train", "--resume", cut, "--no-progress")
    assert "at step 256 of 512" in resumed.stdout
    assert_same(load_payload(cut), load_payload(whole), "checkpoint")  # the statistics and returns included
    assert json.loads((cut / "eval.json").read_text()) == json.loads((whole / "eval.json").read_text())
    assert main(["eval", str(cut), "--episodes", "2"]) == 0
    # --config <run>/config.yaml takes its normalize; --hp beats it.
    again = ["train", "ppo", CARTPOLE, "--config", whole / "config.yaml", "--total-steps", "64", *COMMON]
    invoke(*again, "--runs-root", root, "--name", "again")
    assert read_config(whole.parent / "again")["normalize"] == {"observation": True, "reward": True}
    invoke(*again, "--hp", "normalize={reward: false, observation: true}", "--runs-root", root, "--name", "obs")
    assert read_config(whole.parent / "obs")["normalize"] == {"observation": True, "reward": False}
    assert PPO.load(whole.parent / "obs" / "checkpoint.pt", device="cpu").normalize == OBSERVATION


@pytest.mark.parametrize(
    ("flags", "chain"),
    [
        ((), ["ModelReward", "NormalizeObservation"]),  # the preset's normalize: the ICM reads normalised obs
        (("--hp", "normalize=true"), ["NormalizeReward", "ModelReward", "NormalizeObservation"]),
    ],
    ids=["preset", "observation-and-reward"],
)
def test_a_mountain_car_curiosity_run_trains_normalised_and_evaluates_and_plays(flags, chain, tmp_path, capsys):
    root = tmp_path / "runs"
    args = ["train", "ppo", MOUNTAIN_CAR, "--hp", "curiosity={eta: 0.1}", *flags, "--total-steps", "2048", *COMMON]
    invoke(*args, "--runs-root", root, "--name", "icm")
    run = root / "rlcourse_MountainCar-v0" / "ppo" / "icm"
    payload = load_payload(run)
    assert [level["wrapper"] for level in payload["wrappers"]] == chain
    assert read_config(run)["normalize"] == {"observation": True, "reward": len(chain) == 3}
    # eval and play load the policy onto the env under its normalisation only: the ICM's reward level is left
    # out, the learned statistics are kept.
    loaded = PPO.load(run / "checkpoint.pt", device="cpu")
    assert [type(level).__name__ for level in wrapper_chain(loaded.env)] == [n for n in chain if n != "ModelReward"]
    saved = payload["env_statistics"]
    for _ in range(chain.index("NormalizeObservation")):  # one level of nesting per wrapper outside it
        saved = saved["env"]
    observation_level = next(level for level in wrapper_chain(loaded.env) if isinstance(level, NormalizeObservation))
    assert torch.equal(observation_level.rms.mean, saved["wrapper"]["mean"]) and saved["wrapper"]["count"] > 2048
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert main(["play", str(run), "--episodes", "1"]) == 0
    assert "ppo on rlcourse/MountainCar-v0 after 2,048 steps" in capsys.readouterr().out
    resumed = invoke("train", "--resume", run, "--no-progress")  # rebuilt with its plug-in and normalisation
    assert "nothing left to train" in resumed.stdout


def test_a_normalised_curiosity_run_resumes_bit_identical(tmp_path, interrupt_at):
    root = tmp_path / "runs"
    args = ["train", "ppo", MOUNTAIN_CAR, "--hp", "curiosity={batch_size: 32}", "--hp", "normalize=true", *SMALL_PPO]
    args += ["--total-steps", "512", *COMMON]
    invoke(*args, "--runs-root", root, "--name", "whole")
    interrupt_at(256)
    invoke(*args, "--runs-root", root, "--name", "cut", expect=130)
    whole = root / "rlcourse_MountainCar-v0" / "ppo" / "whole"
    invoke("train", "--resume", whole.parent / "cut", "--no-progress")
    # Every wrapper's state (both normalisers' statistics, the ICM reward's last observations), the ICM's training.
    assert_same(load_payload(whole.parent / "cut"), load_payload(whole), "checkpoint")


def test_a_bad_normalize_is_one_line(tmp_path, capsys):
    base = ["train", "ppo", CARTPOLE, "--runs-root", tmp_path / "runs"]
    error = one_error_line([*base, "--hp", "normalize=maybe"], capsys)
    assert "bad value 'maybe' for normalize (from --hp): expected true" in error
    config = tmp_path / "my.yml"
    config.write_text("normalize: {obs: true}\n")
    assert "unknown key 'obs' in normalize (from config file" in one_error_line([*base, "--config", config], capsys)
    assert not (tmp_path / "runs").exists()


def test_adversarial_imitation_refuses_observation_normalisation():
    with pytest.raises(ConfigError, match="gail compares the agent's observations with the demonstrations' raw"):
        build_env(Plugins(method="gail", demos="absent"), CARTPOLE, 2, torch.device("cpu"), {}, 0, normalize=True)
