"""``rlcourse collect``: the rule expert's and a trained run's episodes as Minari datasets (read back by
``minari.load_dataset``), default ids that never overwrite, and one-line errors for bad policies, ids and
datasets of another env."""

from __future__ import annotations

import minari
import pytest
from click.testing import CliRunner

from rlcourse.app.cli import cli, main

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIALOGUE = "rlcourse/SlotFilling-v0"
CARTPOLE = "rlcourse/CartPole-v1"


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def collect(*args: str) -> str:
    result = CliRunner().invoke(cli, ["collect", *args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result.output


def one_error_line(args: list, capsys) -> str:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("rlcourse: error: "), err
    assert "Traceback" not in out + err
    return lines[0]


def test_collect_the_rule_expert(minari_root):
    output = collect("expert", DIALOGUE, "--episodes", "12", "--num-envs", "4", "--env-opt", "nlu=tcbot")
    assert "rlcourse/SlotFilling/expert-v0" in output and "success rate" in output
    dataset = minari.load_dataset("rlcourse/SlotFilling/expert-v0")
    assert dataset.total_episodes == 12
    assert dataset.spec.env_spec.kwargs["nlu"] == "tcbot"  # the env's options are part of the dataset
    episode = next(dataset.iterate_episodes())
    assert episode.infos["action_masks"].shape == (len(episode.rewards), dataset.action_space.n)
    # the next collection gets the next version: a dataset is never overwritten
    assert "rlcourse/SlotFilling/expert-v1" in collect("expert", DIALOGUE, "--episodes", "2", "--num-envs", "2")


def test_collect_from_a_trained_run_then_a_mismatched_dataset_is_refused(minari_root, tmp_path, capsys):
    runs = tmp_path / "runs"
    train = ["train", "ppo", CARTPOLE, "--total-steps", "256", "--num-envs", "4", "--hp", "n_steps=16"]
    train += ["--hp", "batch_size=32", "--hp", "n_epochs=1", "--eval-episodes", "2", "--no-progress"]
    result = CliRunner().invoke(cli, [*train, "--runs-root", str(runs), "--name", "r", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run = runs / "rlcourse_CartPole-v1" / "ppo" / "r"
    output = collect(str(run), "--episodes", "3", "--num-envs", "3", "--dataset-id", "cartpole/ppo-v0")
    assert "ppo run" in output
    dataset = minari.load_dataset("cartpole/ppo-v0")
    assert dataset.total_episodes == 3 and dataset.observation_space.shape == (4,)
    collect(str(run / "checkpoint.pt"), CARTPOLE, "--episodes", "1", "--dataset-id", "cartpole/ppo-v1")
    line = one_error_line(["train", "bc", DIALOGUE, "--demos", "cartpole/ppo-v0", "--runs-root", runs], capsys)
    assert "Box(4,)" in line and "rlcourse/SlotFilling-v0 has" in line
    line = one_error_line(["collect", run, DIALOGUE, "--device", "cpu"], capsys)
    assert "trained on rlcourse/CartPole-v1, not rlcourse/SlotFilling-v0" in line


def test_collect_bad_inputs_are_one_line(minari_root, tmp_path, capsys):
    assert "did you mean 'expert'" in one_error_line(["collect", "exprt", DIALOGUE], capsys)
    assert "needs ENV" in one_error_line(["collect", "expert"], capsys)
    assert "has no rule expert" in one_error_line(["collect", "expert", CARTPOLE, "--device", "cpu"], capsys)
    assert "not a Minari id" in one_error_line(["collect", "expert", DIALOGUE, "--dataset-id", "bad id"], capsys)
    collect("expert", DIALOGUE, "--episodes", "1", "--dataset-id", "taken/once-v0")
    assert "exists already" in one_error_line(["collect", "expert", DIALOGUE, "--dataset-id", "taken/once-v0"], capsys)


def test_collect_under_a_root_of_its_own(minari_root, tmp_path):
    output = collect("expert", DIALOGUE, "--episodes", "2", "--root", str(tmp_path / "mine"))
    assert (tmp_path / "mine" / "rlcourse/SlotFilling/expert-v0" / "data").is_dir()
    assert not minari_root.joinpath("rlcourse").exists()
    assert f"--demos {tmp_path / 'mine'}" in output  # the printed command points at the folder
