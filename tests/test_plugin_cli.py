"""Plug-ins from the command line: ``train gail|airl ENV --demos``, ``--hp curiosity=...``, and their bad inputs."""

from __future__ import annotations

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_gail import balancing

from rlcourse.app.cli import main


@pytest.fixture
def demos(tmp_path, monkeypatch):
    """10 episodes of the hand-written CartPole expert as the Minari dataset ``test/cartpole-v0``."""
    import rlcourse
    from rlcourse.supervised.imitation.demos import record_episodes, save_demonstrations

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = rlcourse.make_vec("rlcourse/CartPole-v1", 4)
    save_demonstrations(record_episodes(env, balancing, 4, seed=0), "test/cartpole-v0", env, "balancing")
    return "test/cartpole-v0"


def one_error_line(args, capsys) -> str:
    code = main([str(arg) for arg in args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("method", ["gail", "airl"])
def test_adversarial_imitation_trains_logs_and_evaluates(method, demos, tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["train", method, "rlcourse/CartPole-v1", "--demos", demos, "--total-steps", "512"]
    assert main([*args, "--name", "m", "--runs-root", str(runs), "--no-progress", "--eval-episodes", "2"]) == 0
    run = runs / "rlcourse_CartPole-v1" / method / "m"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["plugins"]["method"] == method and config["plugins"]["generator"] == "ppo"
    assert config["plugins"]["demos"] == demos and config["hyperparameters"]["n_steps"] == 32  # PPO's preset
    tags = EventAccumulator(str(run)).Reload().Tags()["scalars"]
    assert {"discriminator/loss", "discriminator/real_accuracy", "discriminator/fake_accuracy"} <= set(tags)
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2"]) == 0  # the checkpoint is the generator's
    assert "ppo on rlcourse/CartPole-v1" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0  # rebuilt with its plug-ins: nothing left
    assert "nothing left to train" in capsys.readouterr().out  # (tests/test_plugin_resume.py resumes stopped runs)


def test_curiosity_for_any_agent(tmp_path):
    runs = tmp_path / "runs"
    args = ["train", "a2c", "rlcourse/MountainCar-v0", "--hp", "curiosity={eta: 0.1}", "--total-steps", "400"]
    assert main([*args, "--name", "c", "--runs-root", str(runs), "--no-progress", "--eval-episodes", "1"]) == 0
    run = runs / "rlcourse_MountainCar-v0" / "a2c" / "c"
    assert yaml.safe_load((run / "config.yaml").read_text())["plugins"]["curiosity"] == {"eta": 0.1}
    assert "curiosity/intrinsic_reward" in EventAccumulator(str(run)).Reload().Tags()["scalars"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "gail", "rlcourse/CartPole-v1"], "give --demos DATASET"),
        (["train", "gail", "rlcourse/CartPole-v1", "--demos", "absent/x-v0"], "no Minari dataset 'absent/x-v0'"),
        (["train", "gail", "rlcourse/CartPole-v1", "--demos", "D", "--hp", "generator=dqn"], "on-policy agent"),
        (["train", "airl", "rlcourse/CartPole-v1", "--demos", "D", "--hp", "discriminator={gama: 0.9}"], "'gama'"),
        (["train", "ppo", "rlcourse/CartPole-v1", "--hp", "discriminator={}"], "setting of gail and airl"),
        (["train", "ppo", "rlcourse/CartPole-v1", "--hp", "curiosity=2"], "curiosity must be true, false"),
        (["train", "ppo", "rlcourse/CartPole-v1", "--hp", "curiosity={beta: 3}"], "beta must be in [0, 1]"),
        (["train", "gail", "rlcourse/Pendulum-v1", "--demos", "D"], "Pendulum"),
    ],
)
def test_bad_plugin_input_is_one_line(args, message, demos, capsys, tmp_path):
    args = [demos if arg == "D" else arg for arg in args]
    assert message in one_error_line([*args, "--runs-root", tmp_path / "runs"], capsys)
    assert not (tmp_path / "runs").exists()
