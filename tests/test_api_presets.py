"""One behaviour for the Python API and the CLI: shipped presets, torch threads, and the smoke-test budget cap."""

from __future__ import annotations

import warnings

import pytest
import torch
import yaml

import rlcourse
from rlcourse.agents import A2C, DQN, PPO
from rlcourse.agents.base import MAX_STEPS_VARIABLE, capped_budget
from rlcourse.app.cli import main
from rlcourse.config import RUN_KEYS, ConfigError, config_to_dict, load_preset
from rlcourse.device import DEFAULT_THREADS
from tests.identity_envs import IdentityEnv

CARTPOLE = "rlcourse/CartPole-v1"


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Agents set torch's thread count for the process; every test here leaves it as it found it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def preset_hparams(algo: str, env_id: str, name: str = "default") -> dict:
    return {key: value for key, value in load_preset(algo, env_id, name).items() if key not in RUN_KEYS}


@pytest.mark.parametrize("agent_class", [PPO, DQN, A2C])
def test_the_api_applies_the_default_preset_as_the_cli_does(agent_class):
    agent = agent_class(CARTPOLE, device="cpu")
    preset = load_preset(agent.algo, CARTPOLE)
    config = config_to_dict(agent.config)
    for key, value in preset_hparams(agent.algo, CARTPOLE).items():
        assert config[key] == (list(value) if isinstance(value, tuple) else value), key
    assert agent.num_envs == preset["num_envs"] and agent.preset_timesteps == preset["total_timesteps"]


def test_preset_none_gives_the_config_defaults():
    agent = PPO(CARTPOLE, device="cpu", preset=None)
    assert agent.config == PPO.config_class() and agent.num_envs == PPO.default_num_envs
    assert agent.preset_timesteps is None
    with pytest.raises(ValueError, match="needs total_timesteps"):
        agent.learn()


def test_explicit_arguments_override_the_preset():
    preset = load_preset("ppo", CARTPOLE)
    agent = PPO(CARTPOLE, device="cpu", num_envs=4, n_steps=64, batch_size=64, learning_rate=1e-4)
    assert agent.num_envs == 4 and agent.config.n_steps == 64 and agent.config.learning_rate == 1e-4
    assert agent.config.gamma == preset["gamma"] != PPO.config_class().gamma  # the rest is the preset's


def test_an_env_instance_takes_its_ids_preset_hyperparameters_but_keeps_its_size():
    env = rlcourse.make_vec(CARTPOLE, 4)
    agent = PPO(env, device="cpu", batch_size=64)
    assert agent.num_envs == 4 and agent.config.gamma == load_preset("ppo", CARTPOLE)["gamma"]
    unregistered = PPO(IdentityEnv(4), device="cpu", n_steps=4, batch_size=16)  # no env_id: nothing to apply
    assert unregistered.config.gamma == PPO.config_class().gamma
    with pytest.raises(ValueError, match="needs a registered env"):
        PPO(IdentityEnv(4), device="cpu", preset="large_batch_4096")


def test_an_env_without_presets_uses_the_defaults_and_a_bad_variant_is_named():
    agent = PPO("Pendulum-v1", device="cpu", num_envs=2, n_steps=8, batch_size=16)
    assert agent.config.gamma == PPO.config_class().gamma
    with pytest.raises(ConfigError, match="unknown preset 'large_batch_409'.*large_batch_4096"):
        PPO(CARTPOLE, device="cpu", preset="large_batch_409")
    with pytest.raises(ValueError, match="preset must be a variant name"):
        PPO(CARTPOLE, device="cpu", preset=True)


def test_api_and_cli_resolve_the_same_settings(tmp_path):
    code = main(
        ["train", "ppo", CARTPOLE, "--device", "cpu", "--total-steps", "256", "--runs-root", str(tmp_path)]
        + ["--name", "same", "--no-progress", "--eval-episodes", "1"]
    )
    assert code == 0
    config = yaml.safe_load((tmp_path / "rlcourse_CartPole-v1" / "ppo" / "same" / "config.yaml").read_text())
    agent = PPO(CARTPOLE, device="cpu")
    assert config["hyperparameters"] == config_to_dict(agent.config)
    assert config["num_envs"] == agent.num_envs


def test_agents_set_one_torch_thread_by_default_and_leave_it_with_none():
    torch.set_num_threads(2)
    PPO(CARTPOLE, device="cpu", preset=None)
    assert torch.get_num_threads() == DEFAULT_THREADS == 1
    torch.set_num_threads(2)
    PPO(CARTPOLE, device="cpu", preset=None, threads=None)
    assert torch.get_num_threads() == 2
    PPO(CARTPOLE, device="cpu", preset=None, threads=3)
    assert torch.get_num_threads() == 3
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            PPO(CARTPOLE, device="cpu", preset=None, threads=bad)


@pytest.mark.parametrize(("flags", "expected"), [((), DEFAULT_THREADS), (("--threads", "2"), 2)])
def test_the_cli_records_its_thread_count(tmp_path, flags, expected):
    code = main(
        ["train", "ppo", CARTPOLE, "--device", "cpu", "--total-steps", "64", "--num-envs", "2", "--runs-root"]
        + [str(tmp_path), "--name", "t", "--no-progress", "--eval-episodes", "1", "--hp", "n_steps=32"]
        + ["--hp", "batch_size=64", *flags]
    )
    assert code == 0
    config = yaml.safe_load((tmp_path / "rlcourse_CartPole-v1" / "ppo" / "t" / "config.yaml").read_text())
    assert config["torch_threads"] == expected == torch.get_num_threads()


def test_the_cli_refuses_a_bad_thread_count(capsys):
    assert main(["train", "ppo", CARTPOLE, "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlcourse: error:") and "--threads" in err and len(err.strip().splitlines()) == 1


def test_the_smoke_test_cap_shortens_learn_and_says_so(monkeypatch):
    monkeypatch.delenv(MAX_STEPS_VARIABLE, raising=False)
    assert capped_budget(1000) == 1000
    monkeypatch.setenv(MAX_STEPS_VARIABLE, "64")
    agent = PPO(CARTPOLE, device="cpu", num_envs=2, n_steps=16, batch_size=32, preset=None)
    with pytest.warns(UserWarning, match="caps this learn"):
        agent.learn(10_000)
    assert agent.num_timesteps == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert capped_budget(32) == 32  # under the cap: no warning
    monkeypatch.setenv(MAX_STEPS_VARIABLE, "lots")
    with pytest.raises(ValueError, match=MAX_STEPS_VARIABLE):
        capped_budget(10)
