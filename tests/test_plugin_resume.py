"""``rlcourse train --resume`` of runs with plug-ins (gail, airl, curiosity): a run stopped by SIGINT and resumed
ends bit-identical to one that never stopped (on the CPU), and a run whose demonstrations are gone or changed, or
whose checkpoint does not fit the plug-ins its config.yaml rebuilds, is refused in one line, changing nothing.

Runs are tiny: 512 CartPole steps, stopped at 256.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import test_cli
import test_plugin_cli
import yaml
from test_cli import assert_same, invoke, load_payload
from test_gail import balancing
from test_plugin_cli import one_error_line

import rlcourse
from rlcourse.app.cli import main
from rlcourse.supervised.imitation.demos import load_demonstrations, record_episodes, save_demonstrations

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # runs compared bit for bit share the thread count
interrupt_at = test_cli.interrupt_at  # the fixtures this module shares: a real SIGINT at a step, and the demos
demos = test_plugin_cli.demos

CARTPOLE = "rlcourse/CartPole-v1"
COMMON = ["--total-steps", "512", "--eval-episodes", "2", "--no-progress", "--device", "cpu"]
SMALL_PPO = ["--num-envs", "4", "--hp", "n_steps=16", "--hp", "batch_size=32", "--hp", "n_epochs=1"]
CASES = {
    # GAIL, with periodic evaluation after the discriminator's training in the callbacks' order.
    "gail": (["gail", CARTPOLE, "--demos", "D", "--eval-freq", "256"], ["0:DiscriminatorTraining", "1:EvalCallback"]),
    # AIRL (the discriminator reads the generator's log π) and curiosity on top: two plug-ins, two wrappers.
    "airl+curiosity": (
        ["airl", CARTPOLE, "--demos", "D", "--hp", "curiosity=true"],
        ["0:DiscriminatorTraining", "1:ModelTraining"],
    ),
    # Curiosity on an on-policy agent, its minibatches drawn from the rollout; and on an off-policy one.
    "ppo+curiosity": (["ppo", CARTPOLE, "--hp", "curiosity={batch_size: 32}", *SMALL_PPO], ["0:ModelTraining"]),
    "dqn+curiosity": (["dqn", CARTPOLE, "--hp", "curiosity={batch_size: 32}"], ["0:ModelTraining"]),
}


def train_pair(args: list[str], root: Path, interrupt_at) -> tuple[Path, Path]:
    """The same run twice: ``whole`` uninterrupted, ``cut`` stopped by SIGINT at step 256; their folders."""
    invoke("train", *args, *COMMON, "--runs-root", root, "--name", "whole")
    interrupt_at(256)
    stopped = invoke("train", *args, *COMMON, "--runs-root", root, "--name", "cut", expect=130)
    (whole,) = root.glob("*/*/whole")
    assert "resume with:" in stopped.stderr
    return whole, whole.parent / "cut"


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_plugin_run_equals_an_uninterrupted_one(case, demos, tmp_path, interrupt_at, capsys):
    args, callback_keys = CASES[case]
    whole, cut = train_pair([demos if arg == "D" else arg for arg in args], tmp_path / "runs", interrupt_at)
    stopped = load_payload(cut)
    assert stopped["counters"]["num_timesteps"] == 256 and list(stopped["callbacks"]) == callback_keys

    resumed = invoke("train", "--resume", cut, "--no-progress")
    assert "at step 256 of 512" in resumed.stdout
    # Everything: networks, optimizers, every RNG, the env's and the wrappers' state, the plug-ins' weights,
    # optimizers and minibatch generators (the callbacks' states), counters.
    assert_same(load_payload(cut), load_payload(whole), "checkpoint")
    assert json.loads((cut / "eval.json").read_text()) == json.loads((whole / "eval.json").read_text())
    # The checkpoint stays the agent's own: eval and play read it on the plain env.
    assert main(["eval", str(cut), "--episodes", "2"]) == 0
    assert main(["play", str(cut), "--episodes", "1"]) == 0
    assert "after 512 steps" in capsys.readouterr().out


@pytest.fixture
def stopped_gail(demos, tmp_path, interrupt_at):
    """A gail run stopped by SIGINT at step 256 of 512: its folder."""
    root = tmp_path / "runs"
    interrupt_at(256)
    invoke("train", "gail", CARTPOLE, "--demos", demos, *COMMON, "--runs-root", root, "--name", "cut", expect=130)
    return root / "rlcourse_CartPole-v1" / "gail" / "cut"


def read_config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_resume_needs_the_runs_own_demonstrations(stopped_gail, demos, capsys):
    record = read_config(stopped_gail)["plugins"]
    folder = Path(record["demos_path"])
    assert record["demos"] == demos and folder.is_absolute() and load_demonstrations(folder).num_episodes == 4
    before = (stopped_gail / "checkpoint.pt").read_bytes()
    shutil.rmtree(folder)
    error = one_error_line(["train", "--resume", stopped_gail], capsys)
    assert f"demonstrations {demos!r}, which are gone from {folder}" in error
    # Other demonstrations under the same id: the run would not continue as it began.
    env = rlcourse.make_vec(CARTPOLE, 4)
    save_demonstrations(record_episodes(env, balancing, 4, seed=1), demos, env, "balancing")
    assert "are not the ones this run trained on" in one_error_line(["train", "--resume", stopped_gail], capsys)
    assert (stopped_gail / "checkpoint.pt").read_bytes() == before
    assert not (stopped_gail / "eval.json").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda config: config["plugins"]["discriminator"].update(net_arch=[32, 32]),
            "its GAILDiscriminator.network.0.weight has shape (64, 6), this one's shape (32, 6)",
        ),
        (
            lambda config: config["plugins"].update(curiosity={}),
            "its env state is under 1 wrapper(s), this env under 2 (ModelReward > ModelReward)",
        ),
        (
            lambda config: config.update(eval_freq=128),
            "holds the state of the callbacks ['0:DiscriminatorTraining'], but the run's config.yaml rebuilds "
            "['0:DiscriminatorTraining', '1:EvalCallback']",
        ),
        (
            lambda config: config["plugins"].update(method="airl") or config.update(algo="airl"),
            "its discriminator weights are not this AIRLDiscriminator's",
        ),
    ],
    ids=["other-layers", "added-curiosity", "added-callback", "other-method"],
)
def test_a_checkpoint_that_does_not_fit_the_plugins_is_refused(stopped_gail, edit, message, capsys):
    config = read_config(stopped_gail)
    edit(config)
    (stopped_gail / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = (stopped_gail / "checkpoint.pt").read_bytes()
    assert message in one_error_line(["train", "--resume", stopped_gail], capsys)
    assert (stopped_gail / "checkpoint.pt").read_bytes() == before
