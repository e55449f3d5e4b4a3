"""Behaviour cloning: the loss by hand, cloning SB3-style identity experts exactly, warm-starting PPO and DQN
with ``init_from`` (the same predictions right after construction), and ``rlcourse train bc`` end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from identity_envs import ContinuousIdentityEnv, IdentityEnv, MaskedIdentityEnv, mean_step_reward

from rlcourse.agents import BC, DQN, PPO
from rlcourse.agents.distributions import Categorical
from rlcourse.agents.networks import ActorCritic
from rlcourse.app.cli import cli, main
from rlcourse.checkpoint import CheckpointError
from rlcourse.policy import StochasticPolicy
from rlcourse.registry import make_vec
from rlcourse.supervised.imitation.bc import bc_loss
from rlcourse.supervised.imitation.demos import record_episodes, save_demonstrations

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIALOGUE = "rlcourse/SlotFilling-v0"


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def identity_demos(env, dataset_id: str, episodes: int = 64) -> str:
    """Demonstrations of the identity expert (the action the one-hot observation names, or the target itself)."""
    expert = (lambda obs, masks: obs.argmax(1)) if not isinstance(env, ContinuousIdentityEnv) else (lambda o, m: o)
    save_demonstrations(record_episodes(env, expert, episodes, seed=0), dataset_id, env, "identity expert")
    return dataset_id


@pytest.fixture
def dialogue_demos(minari_root):
    env = make_vec(DIALOGUE, 16, "cpu")
    expert = env.rule_expert()
    recorded = record_episodes(env, lambda obs, masks: expert(obs), 32, seed=0)
    save_demonstrations(recorded, "rlcourse/SlotFilling/expert-v0", env, "rule expert")
    return "rlcourse/SlotFilling/expert-v0"


def test_bc_loss_is_the_masked_negative_log_likelihood():
    policy = ActorCritic(2, Categorical(3), (4,), "tanh")
    obs, actions = torch.randn(2, 2), torch.tensor([0, 2])
    masks = torch.tensor([[True, True, False], [False, True, True]])
    loss, accuracy = bc_loss(policy, obs, actions, masks)
    logits = policy.policy_params(obs)
    by_hand = [
        -(logits[0, 0] - torch.logsumexp(logits[0, :2], 0)),  # only the valid actions share the probability
        -(logits[1, 2] - torch.logsumexp(logits[1, 1:], 0)),
    ]
    torch.testing.assert_close(loss, torch.stack(by_hand).mean())
    greedy = torch.where(masks, logits, -math.inf).argmax(1)
    assert accuracy.item() == (greedy == actions).float().mean().item()
    assert isinstance(policy, StochasticPolicy)


@pytest.mark.parametrize("network", ["actor_critic", "q_network"])
@pytest.mark.parametrize("env_class", [IdentityEnv, MaskedIdentityEnv], ids=["plain", "masked"])
def test_bc_clones_the_identity_expert(env_class, network, minari_root):
    dataset = identity_demos(env_class(8), "test/identity/expert-v0")
    agent = BC(env_class(8), demos=dataset, network=network, seed=0, gradient_steps=50)
    agent.learn(256 * 50 * 4)
    assert agent.last_log["train/accuracy"] == 1.0
    # the expert's reward every step, and no invalid action (worth 10) ever taken
    assert mean_step_reward(agent, env_class(32)) == 1.0


def test_bc_clones_a_continuous_expert(minari_root):
    dataset = identity_demos(ContinuousIdentityEnv(8), "test/continuous/expert-v0")
    agent = BC(ContinuousIdentityEnv(8), demos=dataset, seed=0, gradient_steps=100)
    before = mean_step_reward(agent, ContinuousIdentityEnv(32))
    agent.learn(256 * 100 * 3)
    assert mean_step_reward(agent, ContinuousIdentityEnv(32)) > max(-0.02, 0.1 * before)


def test_init_from_loads_bc_weights_into_ppo(dialogue_demos, tmp_path):
    bc = BC(DIALOGUE, demos=dialogue_demos, seed=1, gradient_steps=20).learn(256 * 20 * 2)
    bc.save(tmp_path / "bc.pt")
    ppo = PPO(DIALOGUE, num_envs=4, device="cpu", seed=7, batch_size=64).init_from(tmp_path / "bc.pt")
    obs = bc.demos.obs
    masks = bc.demos.action_masks
    assert torch.equal(ppo.predict(obs, action_masks=masks), bc.predict(obs, action_masks=masks))
    for name, tensor in bc.policy.state_dict().items():
        assert torch.equal(ppo.policy.state_dict()[name], tensor), name
    assert ppo.num_timesteps == 0 and not ppo.optimizer.state  # weights only: no optimizer state, no counters


def test_init_from_loads_a_q_network_clone_into_dqn(dialogue_demos, tmp_path):
    bc = BC(DIALOGUE, demos=dialogue_demos, network="q_network", activation="relu", net_arch=(256, 256))
    bc.learn(256 * 100)
    bc.save(tmp_path / "bc_q.pt")
    dqn = DQN(DIALOGUE, num_envs=4, device="cpu").init_from(tmp_path / "bc_q.pt")  # the preset's [256, 256] relu
    obs, masks = bc.demos.obs, bc.demos.action_masks
    assert torch.equal(dqn.predict(obs, action_masks=masks), bc.predict(obs, action_masks=masks))
    for name, tensor in dqn.q_net.state_dict().items():
        assert torch.equal(dqn.q_target.state_dict()[name], tensor)  # Q̂ starts as the loaded Q


def test_a_network_that_does_not_fit_is_named_with_both_shapes(dialogue_demos, tmp_path):
    BC(DIALOGUE, demos=dialogue_demos, net_arch=(32, 32)).save(tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match=r"policy_net\.0\.weight of shape \(32, \d+\).*shape \(64, \d+\)"):
        PPO(DIALOGUE, num_envs=4, device="cpu", batch_size=64).init_from(tmp_path / "small.pt")
    BC(DIALOGUE, demos=dialogue_demos, net_arch=(32,)).save(tmp_path / "shallow.pt")
    with pytest.raises(CheckpointError, match=r"shapes \[\(32, \d+\), \(\d+, 32\).*has \[\(64, \d+\), \(64, 64\)"):
        PPO(DIALOGUE, num_envs=4, device="cpu", batch_size=64).init_from(tmp_path / "shallow.pt")
    BC(DIALOGUE, demos=dialogue_demos, network="q_network").save(tmp_path / "q.pt")
    with pytest.raises(CheckpointError, match=r"networks \['q_net'\], but PPO needs 'policy'"):
        PPO(DIALOGUE, num_envs=4, device="cpu", batch_size=64).init_from(tmp_path / "q.pt")
    cartpole = PPO("rlcourse/CartPole-v1", num_envs=4, device="cpu", batch_size=64)
    with pytest.raises(CheckpointError, match="was saved for spaces"):
        cartpole.init_from(tmp_path / "small.pt")


def test_bc_without_demonstrations_says_how_to_get_them():
    with pytest.raises(ValueError, match=r"bc needs demonstrations: demos=DATASET.*rlcourse collect"):
        BC(DIALOGUE, num_envs=2)


# --------------------------------------------------------------------------- the CLI
def scalar_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for path in run_dir.glob("**/events.out.tfevents.*"):
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        tags.update(accumulator.Tags()["scalars"])
    return tags


def one_error_line(args: list, capsys) -> str:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlcourse: error: ") and "Traceback" not in out + err, err
    return lines[0]


def test_train_bc_then_ppo_from_it(dialogue_demos, tmp_path):
    runner = CliRunner()
    common = ["--runs-root", str(tmp_path / "runs"), "--device", "cpu", "--no-progress", "--eval-episodes", "4"]
    bc_args = ["train", "bc", DIALOGUE, "--demos", dialogue_demos, "--total-steps", "5120", "--name", "bc", *common]
    result = runner.invoke(cli, bc_args)
    assert result.exit_code == 0, result.output
    bc_run = tmp_path / "runs" / "rlcourse_SlotFilling-v0" / "bc" / "bc"
    assert {"train/loss", "train/accuracy", "eval/mean_reward", "eval/success_rate"} <= scalar_tags(bc_run)
    assert yaml.safe_load((bc_run / "config.yaml").read_text())["hyperparameters"]["demos"] == dialogue_demos
    ppo_args = ["train", "ppo", DIALOGUE, "--init-from", str(bc_run), "--name", "ppo", *common]
    ppo_args += ["--total-steps", "256", "--num-envs", "4", "--hp", "n_steps=64", "--hp", "batch_size=64"]
    result = runner.invoke(cli, ppo_args)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "runs" / "rlcourse_SlotFilling-v0" / "ppo" / "ppo" / "config.yaml").read_text())
    assert config["init_from"] == str(bc_run)


def test_train_bc_bad_inputs_are_one_line(dialogue_demos, tmp_path, capsys):
    runs = ["--runs-root", tmp_path / "runs", "--device", "cpu"]
    line = one_error_line(["train", "bc", DIALOGUE, "--demos", tmp_path / "missing", *runs], capsys)
    assert "no Minari dataset" in line and "rlcourse/SlotFilling/expert-v0" in line
    line = one_error_line(["train", "bc", DIALOGUE, "--demos", "rlcourse/SlotFilling/expert-v9", *runs], capsys)
    assert "did you mean 'rlcourse/SlotFilling/expert-v0'" in line
    assert "bc needs demonstrations" in one_error_line(["train", "bc", DIALOGUE, *runs], capsys)
    assert "--demos is for bc" in one_error_line(["train", "ppo", DIALOGUE, "--demos", dialogue_demos, *runs], capsys)
    line = one_error_line(["train", "ppo", DIALOGUE, "--init-from", tmp_path / "nothing", *runs], capsys)
    assert "nothing" in line
    assert not (tmp_path / "runs").exists()  # bad input leaves no run folder behind
