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


# ----------------------------------------------------------------- a fitted reward model: fit preference, --hp reward_model
CHAT_SMALL = ["--context-len", "4", "--reply-len", "4", "--epochs", "1", "--hp", "embed_dim=8", "--hp", "hidden_dim=8"]


@pytest.fixture
def preference_file(tmp_path, capsys):
    """A preference model fitted on the default corpus with C = R = 4, from a tiny language model's samples too."""
    runs = tmp_path / "runs"
    assert main(["fit", "chat-lm", *CHAT_SMALL, "--name", "lm", "--runs-root", str(runs)]) == 0
    lm = runs / "chat_lm" / "gru" / "lm" / "lm.pt"
    assert main(["fit", "preference", *CHAT_SMALL, "--lm", str(lm), "--name", "p", "--runs-root", str(runs)]) == 0
    out = capsys.readouterr().out
    path = runs / "preference" / "bt" / "p" / "preference.pt"
    assert f"--hp reward_model={path} --env-opt context_len=4 --env-opt reply_len=4" in out
    scores = yaml.safe_load((runs / "preference" / "bt" / "p" / "eval.json").read_text())
    assert 0.0 <= scores["valid_pairwise_accuracy"] <= 1.0
    return path


def test_a_fitted_preference_model_adds_its_reward_and_a_changed_file_is_refused_on_resume(preference_file, tmp_path):
    from rlcourse.app.plugins import file_digest

    runs = tmp_path / "runs"
    args = ["train", "ppo", "rlcourse/Chatbot-v0", "--env-opt", "context_len=4", "--env-opt", "reply_len=4",
            "--hp", f"reward_model={preference_file}", "--hp", "net_arch=[8, 8]", "--total-steps", "512",
            "--name", "c", "--runs-root", str(runs), "--no-progress", "--eval-episodes", "2"]  # fmt: skip
    assert main(args) == 0
    run = runs / "rlcourse_Chatbot-v0" / "ppo" / "c"
    plugins = yaml.safe_load((run / "config.yaml").read_text())["plugins"]
    assert plugins["reward_models"] == [str(preference_file)]
    assert plugins["reward_digests"] == [file_digest(preference_file)]
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0  # rebuilt with the same model
    with open(preference_file, "ab") as file:
        file.write(b"changed")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [("/no/such/file.pt", "no such file"), ("5", "reward-model file or a list"), ("[]", "reward-model file or a list")],
)
def test_bad_reward_model_values_are_one_line(value, message, capsys, tmp_path):
    args = ["train", "ppo", "rlcourse/CartPole-v1", "--hp", f"reward_model={value}", "--runs-root", str(tmp_path)]
    assert message in one_error_line(args, capsys)


def test_a_reward_model_for_another_env_is_one_line(preference_file, capsys, tmp_path):
    args = [
        "train",
        "ppo",
        "rlcourse/CartPole-v1",
        "--hp",
        f"reward_model={preference_file}",
        "--runs-root",
        str(tmp_path),
    ]
    assert "was built for the observation space" in one_error_line(args, capsys)


def test_fit_preference_refuses_a_language_model_of_another_layout(preference_file, capsys, tmp_path):
    lm = preference_file.parents[3] / "chat_lm" / "gru" / "lm" / "lm.pt"
    err = one_error_line(["fit", "preference", "--lm", str(lm), "--runs-root", str(tmp_path)], capsys)
    assert "--lm" in err and "observation space" in err
